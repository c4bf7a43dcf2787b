"""options.row_token: every row's activity carries its token, the same one again on a resume
(forced or not); the mapping and the preflight refuse a field that cannot hold it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from importer.cli import cli
from importer.exceptions import MappingError
from importer.mapping import load_mapping
from importer.sending.token import TOKEN_LENGTH, row_token

from ..conftest import EXAMPLE_MAPPING, SANDBOX_KEYS, import_into, read_results


def token_mapping(tmp_path: Path, field: str = "mx_Custom_5") -> Path:
    text = EXAMPLE_MAPPING.read_text(encoding="utf-8")
    path = tmp_path / "token.yaml"
    path.write_text(with_token(text, field), encoding="utf-8")
    return path


def with_token(text: str, field: str) -> str:
    assert "\noptions:\n" in text
    return text.replace("\noptions:\n", f"\noptions:\n  row_token: {field}\n")


def tokens(sandbox) -> list[str]:  # type: ignore[no-untyped-def]
    return [a["Fields"]["mx_Custom_5"] for a in sandbox.activities]


def test_the_token_format() -> None:
    token = row_token("3f2a9c0d1e5b7a61", 1234)
    assert re.fullmatch(r"lsq-[0-9a-f]{12}", token) and len(token) == TOKEN_LENGTH
    assert token == row_token("3f2a9c0d1e5b7a61", 1234) != row_token("3f2a9c0d1e5b7a61", 1235)
    assert row_token("another-seed", 1234) != token


def test_every_row_carries_its_token_and_a_resume_writes_the_same_ones(
    tmp_path: Path, sample_rows, sandbox_thread
) -> None:
    sandbox = sandbox_thread(rate=100, per=1.0)
    mapping = token_mapping(tmp_path)
    source = sample_rows(12)
    results = tmp_path / "r.csv"
    import_into(sandbox, source, results, mapping=mapping, limit=5)
    import_into(sandbox, source, results, mapping=mapping)
    seed = json.loads((tmp_path / "r.csv.meta.json").read_text())["token_seed"]
    rows = read_results(results)
    assert [r["status"] for r in rows] == ["success"] * 12
    assert sorted(tokens(sandbox)) == sorted(row_token(seed, n) for n in range(2, 14))
    # Another results file for the same input: the same tokens (they name the input's rows).
    other = tmp_path / "other.csv"
    import_into(sandbox, source, other, mapping=mapping, limit=1)
    assert json.loads((tmp_path / "other.csv.meta.json").read_text())["token_seed"] == seed


def test_the_seed_is_kept_through_a_forced_resume_with_a_corrected_input(
    tmp_path: Path, sample_rows, sandbox_thread
) -> None:
    sandbox = sandbox_thread(rate=100, per=1.0)
    mapping = token_mapping(tmp_path)
    source = sample_rows(6)
    results = tmp_path / "r.csv"
    import_into(sandbox, source, results, mapping=mapping, limit=3)
    meta = tmp_path / "r.csv.meta.json"
    seed = json.loads(meta.read_text())["token_seed"]
    source.write_text(source.read_text().replace("Pune", "Puné"), encoding="utf-8")
    import_into(sandbox, source, results, mapping=mapping, force_resume=True)
    assert json.loads(meta.read_text())["token_seed"] == seed
    assert sorted(tokens(sandbox)) == sorted(row_token(seed, n) for n in range(2, 8))


def test_a_token_field_mapped_from_a_column_or_not_custom_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match=r"options.row_token: mx_Custom_2 is also mapped"):
        load_mapping(token_mapping(tmp_path, "mx_Custom_2"))
    with pytest.raises(MappingError, match=r"'Notes' is not an activity custom field"):
        load_mapping(token_mapping(tmp_path, "Notes"))


@pytest.mark.parametrize(
    ("field", "problem"),
    [
        ("mx_Custom_9", "options.row_token: mx_Custom_9 is not a field of activity 105"),
        ("mx_Custom_3", "options.row_token: mx_Custom_3 (Interest) is a dropdown"),
        ("mx_Custom_4", "options.row_token: mx_Custom_4 (Delivery) is a CustomObject field"),
    ],
)
def test_the_preflight_refuses_a_token_field_the_activity_type_lacks(
    tmp_path: Path, sample_rows, sandbox_thread, field: str, problem: str
) -> None:
    sandbox = sandbox_thread(rate=100, per=1.0)
    path = token_mapping(tmp_path, field)
    result = CliRunner().invoke(
        cli,
        ["run", str(sample_rows(3)), "-m", str(path), "--host", sandbox.base_url],
        env={"LSQ_ACCESS_KEY": SANDBOX_KEYS.access_key, "LSQ_SECRET_KEY": SANDBOX_KEYS.secret_key},
    )
    assert result.exit_code == 2, result.output
    assert problem in result.output
    assert not sandbox.activities


def test_a_dry_run_shows_the_tokens_the_run_then_sends(
    tmp_path: Path, sample_rows, sandbox_thread
) -> None:
    sandbox = sandbox_thread(rate=100, per=1.0)
    mapping = token_mapping(tmp_path)
    source = sample_rows(5)
    results = tmp_path / "r.csv"
    env = {"LSQ_ACCESS_KEY": SANDBOX_KEYS.access_key, "LSQ_SECRET_KEY": SANDBOX_KEYS.secret_key}
    base = ["run", str(source), "-m", str(mapping), "--results", str(results)]
    dry = CliRunner().invoke(cli, [*base, "--dry-run", "--limit", "3"], env=env)
    assert dry.exit_code == 0, dry.output
    shown = [json.loads(line) for line in dry.stdout.splitlines() if line.startswith("{")]
    shown_tokens = sorted(
        f["Value"]
        for b in shown
        for f in b["body"]["Activity"]["Fields"]
        if f["SchemaName"] == "mx_Custom_5"
    )
    assert len(shown_tokens) == 3 and not results.exists()
    sent = CliRunner().invoke(
        cli,
        [*base, "--limit", "3", "--host", sandbox.base_url, "--rate", "100", "--per", "1"],
        env=env,
    )
    assert sent.exit_code == 0, sent.output
    assert sorted(tokens(sandbox)) == shown_tokens
