"""What the results file, the run summary, ``report`` and its HTML page tell a person:
one vocabulary for rows not sent, errors grouped by kind and column, calls over every run,
the chart's times, and whether the import is complete."""

from __future__ import annotations

import csv
from pathlib import Path

from click.testing import CliRunner

from importer.cli import cli

from .conftest import EXAMPLE_MAPPING, SANDBOX_KEYS, import_into, read_results


def invoke(*args: object, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


def mapping_with(tmp_path: Path, extra: str, name: str = "map.yaml") -> Path:
    """The example mapping plus ``extra`` YAML at its top level (e.g. a filters section)."""
    path = tmp_path / name
    path.write_text(EXAMPLE_MAPPING.read_text(encoding="utf-8") + "\n" + extra, encoding="utf-8")
    return path


def edit_cells(source: Path, column: str, values: dict[int, str]) -> Path:
    """Set ``column`` of the given rows (numbered as a spreadsheet shows them)."""
    with open(source, newline="", encoding="utf-8") as handle:
        records = list(csv.reader(handle))
    at = records[0].index(column)
    for row, value in values.items():
        records[row - 1][at] = value
    with open(source, "w", newline="", encoding="utf-8") as out:
        csv.writer(out).writerows(records)
    return source


FILTER_PENDING = (
    "filters:\n  skip_if:\n    - {column: kyc_status, equals: Pending, reason: not yet verified}\n"
)


def test_validate_and_run_record_skipped_rows_with_one_error_type(
    tmp_path: Path, sample_rows, sandbox_thread
) -> None:
    """``validate --results`` wrote a skipped row with an empty error_type, where ``run``
    (and the README) say ``filtered``."""
    source = sample_rows(8)
    mapping = mapping_with(tmp_path, FILTER_PENDING)
    checked = tmp_path / "check.csv"
    outcome = invoke("validate", source, "-m", mapping, "--results", checked)
    assert outcome.exit_code == 0, outcome.output
    skipped = [line for line in read_results(checked) if line["status"] == "skipped"]
    assert skipped, "the sample's first rows have a Pending one"
    assert {line["error_type"] for line in skipped} == {"filtered"}
    assert {line["error_message"] for line in skipped} == {"not yet verified"}
    sent = tmp_path / "run.csv"
    import_into(sandbox_thread(rate=100, per=1.0), source, sent, mapping=mapping)
    by_run = [line for line in read_results(sent) if line["status"] == "skipped"]
    assert [(s["row"], s["error_type"]) for s in by_run] == [
        (s["row"], s["error_type"]) for s in skipped
    ]


def sandbox_env() -> dict[str, str]:
    return {"LSQ_ACCESS_KEY": SANDBOX_KEYS.access_key, "LSQ_SECRET_KEY": SANDBOX_KEYS.secret_key}


def run_cli(source: Path, results: Path, host: str, *extra: object, mapping: Path | None = None):
    return invoke(
        "run",
        source,
        "-m",
        mapping or EXAMPLE_MAPPING,
        "--results",
        results,
        "--host",
        host,
        "--rate",
        "100",
        "--per",
        "1",
        *extra,
        env=sandbox_env(),
    )


def test_budget_message_counts_the_preflight_calls(tmp_path, sample_rows, sandbox_thread) -> None:
    """``--max-calls 10`` said "stopped at the call budget (7 calls)": the other 3 went to
    the preflight check, and the message must add up to the budget the user gave."""
    sandbox = sandbox_thread(rate=100, per=1.0)
    outcome = run_cli(sample_rows(20), tmp_path / "r.csv", sandbox.base_url, "--max-calls", "10")
    assert outcome.exit_code == 5, outcome.output
    assert len(sandbox.calls) == 10
    (line,) = [line for line in outcome.output.splitlines() if "call budget" in line]
    assert "budget of 10 calls (7 for rows, 3 for the preflight check)" in line, line
