"""``lsq-import ledger stats|show|forget|export`` on a ledger a real import filled."""

from __future__ import annotations

import csv
import io
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from importer.cli import cli
from importer.ledger.location import default_path, is_url
from importer.ledger.postgres import parse

from .conftest import SANDBOX_KEYS, import_into, read_results

KEYS_ENV = {"LSQ_ACCESS_KEY": SANDBOX_KEYS.access_key, "LSQ_SECRET_KEY": SANDBOX_KEYS.secret_key}


def invoke(*args: str | Path, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


def assert_one_line_error(result, code: int, *needles: str) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    message = result.stderr.strip()
    assert message.count("\n") == 0, message
    for needle in needles:
        assert needle in message, message
    return message


def import_five(tmp_path: Path, sandbox_thread, sample_rows, ledger: str | Path):
    box = sandbox_thread(rate=100, per=1.0)
    source = sample_rows(5)
    summary = import_into(box, source, tmp_path / "r.csv", ledger=ledger)
    assert summary.by_status == {"success": 5}
    assert len(box.activities) == 5
    return box, source, ledger


@pytest.fixture
def imported(tmp_path: Path, sandbox_thread, sample_rows, ledger_at: str):
    """A sandbox, and 5 sample rows imported into it with a new ledger of each backend (an
    SQLite file's path, a PostgreSQL URL: a str, as ``--ledger`` takes it)."""
    return import_five(tmp_path, sandbox_thread, sample_rows, ledger_at)


@pytest.fixture
def imported_sqlite(tmp_path: Path, sandbox_thread, sample_rows):
    """As ``imported``, with the SQLite ledger ``tmp_path/l.sqlite`` (a Path): for what only
    a file can be (named as an output)."""
    return import_five(tmp_path, sandbox_thread, sample_rows, tmp_path / "l.sqlite")


def stats_of(ledger: str | Path) -> dict:
    result = invoke("ledger", "stats", "--ledger", ledger, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def emails_of(source: Path) -> list[str]:
    with open(source, newline="", encoding="utf-8") as handle:
        return [line["email"] for line in csv.DictReader(handle)]


def test_stats_counts_what_the_import_recorded(imported) -> None:
    _, source, ledger = imported
    result = invoke("ledger", "stats", "--ledger", ledger)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"ledger: {ledger}"
    assert "imported activities: 5" in lines
    assert "claims in flight (or left by a run that stopped): 0" in lines
    assert "leads: 5" in lines and "inputs: 1" in lines
    assert f"  {os.path.abspath(source)}" in lines
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    first = next(line for line in lines if line.startswith("first import: "))
    assert first.startswith(f"first import: {today} ") and first.endswith(" UTC"), first
    assert any(line.startswith("size: ") and line.endswith(" MB") for line in lines)
    assert result.stderr == ""


@pytest.mark.parametrize("flag", [["--json"], ["--json", "-"]])
def test_stats_json_on_stdout(imported, flag: list[str]) -> None:
    _, source, ledger = imported
    result = invoke("ledger", "stats", "--ledger", ledger, *flag)
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)  # nothing but the JSON
    assert (found["imported"], found["claimed"], found["leads"], found["inputs"]) == (5, 0, 5, 1)
    assert found["path"] == str(ledger) and found["bytes"] > 0
    assert found["input_files"] == [os.path.abspath(source)]
    assert found["first_import"] <= found["last_import"] and found["first_import"]


def test_stats_json_to_a_file_keeps_the_text(imported, tmp_path: Path) -> None:
    _, _, ledger = imported
    result = invoke("ledger", "stats", "--ledger", ledger, "--json", tmp_path / "s.json")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "s.json").read_text())["imported"] == 5
    assert "imported activities: 5" in result.stdout


def test_stats_json_refuses_to_overwrite_the_ledger(imported_sqlite) -> None:
    _, _, ledger = imported_sqlite
    before = ledger.read_bytes()
    result = invoke("ledger", "stats", "--ledger", ledger, "--json", ledger)
    assert_one_line_error(result, 2, "--json", "choose another file")
    assert ledger.read_bytes() == before


def test_show_lists_the_activity_the_results_file_recorded(imported, tmp_path: Path) -> None:
    _, source, ledger = imported
    email = emails_of(source)[1]  # the input's row 3
    recorded = next(line for line in read_results(tmp_path / "r.csv") if line["row"] == "3")
    assert recorded["activity_id"]
    result = invoke("ledger", "show", email, "--ledger", ledger)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1, lines
    line = lines[0]
    assert f"activity {recorded['activity_id']}" in line
    assert f"lead {recorded['lead_id']}" in line
    assert f"{os.path.abspath(source)} row 3" in line
    assert line.endswith("  imported") and " UTC  " in line
    # The ledger compares keys as the server might: case and spaces do not matter.
    again = invoke("ledger", "show", f"  {email.upper()} ", "--ledger", ledger)
    assert again.exit_code == 0 and again.stdout.splitlines() == lines


def test_show_of_a_key_the_ledger_does_not_hold_says_so(imported) -> None:
    _, _, ledger = imported
    result = invoke("ledger", "show", "nobody@example.com", "--ledger", ledger)
    assert result.exit_code == 0, result.output
    assert result.stdout == "no activity in the ledger for nobody@example.com\n"


def test_forget_input_lets_the_next_run_send_the_rows_again(
    imported, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    box, source, ledger = imported
    # Without forgetting, another results file for the same rows sends nothing: the ledger
    # skips them.
    again = import_into(box, source, tmp_path / "r2.csv", ledger=ledger)
    assert len(box.activities) == 5 and again.by_status == {"skipped": 5}
    monkeypatch.chdir(source.parent)  # the file named as typed, relative: its absolute path
    result = invoke("ledger", "forget", "--input", source.name, "--ledger", ledger)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"forgot 5 activities from {source} in {ledger}: ")
    assert "the next run sends their rows again" in result.stdout
    assert stats_of(ledger)["imported"] == 0
    third = import_into(box, source, tmp_path / "r3.csv", ledger=ledger)
    assert third.by_status == {"success": 5}
    assert len(box.activities) == 10
    assert stats_of(ledger)["imported"] == 5


def test_forget_an_input_the_ledger_does_not_know_lists_those_it_does(
    imported, tmp_path: Path
) -> None:
    _, source, ledger = imported
    other = tmp_path / "other.csv"
    result = invoke("ledger", "forget", "--input", other, "--ledger", ledger)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"nothing forgotten: no activity from {other} in {ledger}",
        "the inputs it knows (1):",
        f"  {os.path.abspath(source)}",
    ]
    assert stats_of(ledger)["imported"] == 5


def test_forget_before(imported) -> None:
    _, source, ledger = imported
    result = invoke("ledger", "forget", "--before", "2000-01-01", "--ledger", ledger)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("nothing forgotten: no activity imported before 2000-01-01")
    assert stats_of(ledger)["imported"] == 5
    later = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S")
    result = invoke("ledger", "forget", "--before", later, "--input", source, "--ledger", ledger)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"forgot 5 activities from {source} imported before {later}")
    assert stats_of(ledger)["imported"] == 0


def test_forget_before_a_date_forgets_the_day_before_it(imported) -> None:
    _, _, ledger = imported
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert invoke("ledger", "forget", "--before", today, "--ledger", ledger).exit_code == 0
    if datetime.now(UTC).strftime("%Y-%m-%d") == today:  # not across midnight meanwhile
        assert stats_of(ledger)["imported"] == 5  # imported today: not before today
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d")
    result = invoke("ledger", "forget", "--before", tomorrow, "--ledger", ledger)
    assert result.exit_code == 0 and "forgot 5 activities" in result.stdout, result.output
    assert stats_of(ledger)["imported"] == 0


@pytest.mark.parametrize(
    "value", ["2026-13-01", "01/02/2026", "2026-01-01T00:00:00", "2026-01-01 25:00:00", "soon"]
)
def test_forget_before_refuses_what_is_not_a_utc_date(imported, value: str) -> None:
    _, _, ledger = imported
    result = invoke("ledger", "forget", "--before", value, "--ledger", ledger)
    assert_one_line_error(result, 2, f"--before {value!r}", "YYYY-MM-DD")
    assert stats_of(ledger)["imported"] == 5


def test_forget_needs_input_or_before(imported) -> None:
    _, _, ledger = imported
    result = invoke("ledger", "forget", "--ledger", ledger)
    assert_one_line_error(result, 2, "--input", "--before")
    assert stats_of(ledger)["imported"] == 5


def test_export_to_a_file(imported, tmp_path: Path) -> None:
    _, source, ledger = imported
    out = tmp_path / "ledger.csv"
    result = invoke("ledger", "export", "--output", out, "--ledger", ledger)
    assert result.exit_code == 0, result.output
    assert result.stderr == f"exported 5 activities from {ledger} to {out}\n"
    with open(out, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 5
    recorded = {line["activity_id"] for line in read_results(tmp_path / "r.csv")}
    assert {row["activity_id"] for row in rows} == recorded
    assert {row["input"] for row in rows} == {os.path.abspath(source)}
    assert {row["state"] for row in rows} == {"imported"}
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


@pytest.mark.parametrize("extra", [[], ["--output", "-"]])
def test_export_to_stdout(imported, extra: list[str]) -> None:
    _, source, ledger = imported
    result = invoke("ledger", "export", "--ledger", ledger, *extra)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 5
    assert {row["lead_key"] for row in rows} == {e.casefold() for e in emails_of(source)}
    assert result.stderr == f"exported 5 activities from {ledger}\n"


def test_export_refuses_to_overwrite_the_ledger(imported_sqlite) -> None:
    _, _, ledger = imported_sqlite
    before = ledger.read_bytes()
    result = invoke("ledger", "export", "--output", ledger, "--ledger", ledger)
    assert_one_line_error(result, 2, "--output", "choose another file")
    assert ledger.read_bytes() == before


@pytest.mark.parametrize(
    "command",
    [["stats"], ["stats", "--json"], ["show", "a@example.com"], ["export"],
     ["forget", "--before", "2026-01-01"], ["forget", "--input", "x.csv"]],
)  # fmt: skip
def test_a_missing_ledger_is_said_and_not_created(
    tmp_path: Path, command: list[str], ledger_at: str
) -> None:
    """SQLite: a file (and folder) not there; PostgreSQL: a schema not in the database."""
    missing = ledger_at if is_url(ledger_at) else str(tmp_path / "sub" / "none.sqlite")
    result = invoke("ledger", *command, "--ledger", missing)
    assert_one_line_error(result, 2, f"ledger {missing}: does not exist (no import has used it yet")
    assert result.stdout == ""
    if is_url(missing):
        assert not schema_exists(missing)
    else:
        assert not Path(missing).exists() and not Path(missing).parent.exists()


def schema_exists(url: str) -> bool:
    import psycopg

    conninfo, schema, _ = parse(url)
    with psycopg.connect(conninfo) as conn:
        found = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        return found.fetchone() is not None


def test_a_url_with_a_password_never_shows_it(
    tmp_path: Path, sandbox_thread, sample_rows, postgres_ledger: str
) -> None:
    """``stats`` says where the ledger is, its path the URL without the password; no other
    command's output names it either."""
    assert postgres_ledger.startswith("postgresql://lsq@")
    secret = postgres_ledger.replace("postgresql://lsq@", "postgresql://lsq:s3cret@", 1)
    shown = postgres_ledger  # the server trusts loopback: the password is never asked for
    _, source, _ = import_five(tmp_path, sandbox_thread, sample_rows, secret)
    text = invoke("ledger", "stats", "--ledger", secret)
    assert text.exit_code == 0, text.output
    assert text.stdout.splitlines()[0] == f"ledger: {shown}"
    found = stats_of(secret)
    assert found["path"] == shown and found["imported"] == 5
    outputs = {"stats": text.output, "stats --json": json.dumps(found)}
    for command in (
        ["show", emails_of(source)[0]],
        ["export"],
        ["export", "--output", tmp_path / "out.csv"],
        ["forget", "--input", tmp_path / "other.csv"],
        ["forget", "--before", "2000-01-01"],
    ):
        result = invoke("ledger", *command, "--ledger", secret)
        assert result.exit_code == 0, result.output
        outputs[" ".join(str(c) for c in command)] = result.output
    assert f"in {shown}" in outputs["forget --before 2000-01-01"]
    leaks = {command: out for command, out in outputs.items() if "s3cret" in out}
    assert not leaks, f"the password shown by: {sorted(leaks)}"


def test_the_default_ledger_is_the_one_a_run_used(
    tmp_path: Path, sandbox_thread, sample_rows, own_data_dir: Path
) -> None:
    box = sandbox_thread(rate=100, per=1.0)
    source = sample_rows(3)
    # No ledger named: the run uses its account's, in the data directory.
    summary = import_into(box, source, tmp_path / "r.csv")
    assert summary.by_status == {"success": 3}
    expected = default_path(box.base_url, SANDBOX_KEYS.access_key)
    assert expected.exists() and own_data_dir in expected.parents
    # Found by --host and the keys in the environment, or by $LSQ_HOST ...
    by_host = invoke("ledger", "stats", "--json", "--host", box.base_url, env=KEYS_ENV)
    assert by_host.exit_code == 0, by_host.output
    assert json.loads(by_host.stdout)["path"] == str(expected)
    assert json.loads(by_host.stdout)["imported"] == 3
    by_env = invoke("ledger", "stats", "--json", env={**KEYS_ENV, "LSQ_HOST": box.base_url + "/"})
    assert by_env.exit_code == 0, by_env.output
    assert json.loads(by_env.stdout)["path"] == str(expected)
    # ... or by the keys in an env file.
    env_file = tmp_path / "lsq.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in KEYS_ENV.items()))
    env_file.chmod(0o600)
    by_file = invoke("ledger", "stats", "--json", "--host", box.base_url, "--env-file", env_file)
    assert by_file.exit_code == 0, by_file.output
    assert json.loads(by_file.stdout)["path"] == str(expected)
    # Another access key is another account: its ledger does not exist.
    other = {**KEYS_ENV, "LSQ_ACCESS_KEY": "another-access-key"}
    result = invoke("ledger", "stats", "--host", box.base_url, env=other)
    assert result.exit_code == 2, result.output
    assert "does not exist" in result.stderr and str(expected) not in result.stderr
    # $LSQ_LEDGER wins, as in a run.
    named = tmp_path / "named.sqlite"
    result = invoke(
        "ledger", "stats", "--host", box.base_url, env={**KEYS_ENV, "LSQ_LEDGER": str(named)}
    )
    assert_one_line_error(result, 2, f"ledger {named}: does not exist")


def test_ledger_and_host_together_are_refused(imported) -> None:
    _, _, ledger = imported
    result = invoke("ledger", "stats", "--ledger", ledger, "--host", "api.leadsquared.com")
    assert_one_line_error(result, 2, "--ledger", "--host")


def test_a_ledger_that_is_off_is_said(tmp_path: Path) -> None:
    result = invoke("ledger", "stats", env={"LSQ_LEDGER": "off"})
    assert_one_line_error(result, 2, "$LSQ_LEDGER is off", "--ledger FILE")


def test_a_bare_ledger_prints_its_help() -> None:
    result = invoke("ledger")
    assert result.exit_code == 0, result.output
    for name in ("stats", "show", "forget", "export"):
        assert f"  {name} " in result.stdout
