"""Bulk and auto mode end to end: the CLI on real files against the sandbox over sockets, at
scaled limits (100 calls and 20 bulk calls per 1 s)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from click.testing import CliRunner

from importer.cli import cli
from importer.exitcodes import ExitStatus
from importer.sandbox import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY

from .conftest import EXAMPLE_MAPPING, SAMPLE_CSV, import_into, read_results

RATE, PER, BULK_RATE = 100, 1.0, 20
ENV = {"LSQ_ACCESS_KEY": DEFAULT_ACCESS_KEY, "LSQ_SECRET_KEY": DEFAULT_SECRET_KEY}


def run_cli(*args: str) -> tuple[int, str, str]:
    outcome = CliRunner().invoke(cli, list(args), env=ENV, catch_exceptions=False)
    return outcome.exit_code, outcome.stdout, outcome.stderr


def limits(host: str, *more: str) -> list[str]:
    return [
        "--host",
        host,
        "--rate",
        str(RATE),
        "--per",
        str(PER),
        "--bulk-rate",
        str(BULK_RATE),
        "--quiet",
        *more,
    ]


def test_bulk_mode_imports_the_sample_once_in_batches_of_distinct_keys(
    sandbox_thread, tmp_path: Path
) -> None:
    box = sandbox_thread(rate=RATE, per=PER, bulk_rate=BULK_RATE)
    results, summary_json = tmp_path / "r.csv", tmp_path / "s.json"
    code, out, err = run_cli(
        "run", str(SAMPLE_CSV), "-m", str(EXAMPLE_MAPPING), "--results", str(results),
        "--mode", "bulk", "--summary-json", str(summary_json), *limits(box.base_url),
    )  # fmt: skip
    assert code == 0, err
    lines = read_results(results)
    assert Counter(line["status"] for line in lines) == Counter(success=200)
    # One activity per row, each the one its line names, on the lead it names.
    by_id = {a["Id"]: a for a in box.activities}
    assert len(box.activities) == 200 and {line["activity_id"] for line in lines} == set(by_id)
    assert all(by_id[line["activity_id"]]["LeadId"] == line["lead_id"] for line in lines)
    assert box.duplicate_leads() == 0 and box.bulk_same_key_calls == 0
    assert not box.arrivals()  # no CreateCustom call: everything went in bulk
    bulk = box.bulk_calls()
    assert all(c.records <= 25 for c in bulk) and sum(c.records for c in bulk) >= 400
    assert box.max_bulk_in_window() <= BULK_RATE and box.max_in_window() <= RATE
    said = json.loads(summary_json.read_text())
    assert said["mode"] == "bulk" and said["bulk_calls"] == len(bulk) == 2 * said["batches"]
    assert "bulk calls for" in out + err


def test_auto_mode_sends_through_both_paths_and_each_row_once(
    sandbox_thread, tmp_path: Path
) -> None:
    box = sandbox_thread(rate=RATE, per=PER, bulk_rate=2)
    summary = import_into(
        box, SAMPLE_CSV, tmp_path / "r.csv", mode="auto", bulk_rate=2, rate=10, per=PER
    )
    assert summary.by_status["success"] == 200 and len(box.activities) == 200
    assert box.arrivals() and box.bulk_calls()  # both paths carried rows
    assert box.duplicate_leads() == 0 and box.bulk_same_key_calls == 0
    assert box.max_in_window() <= 10 and box.max_bulk_in_window() <= 2


def test_refused_records_are_failed_with_their_reason_and_the_errors_file_takes_them(
    sandbox_thread, tmp_path: Path
) -> None:
    box = sandbox_thread(rate=RATE, per=PER, bulk_rate=BULK_RATE)
    source = tmp_path / "leads.csv"
    text = SAMPLE_CSV.read_text(encoding="utf-8-sig").splitlines()
    # Row 3's city is refused by the account (longer than mx_City's 100 characters).
    cells = text[2].split(",")
    cells[4] = "x" * 101
    text[2] = ",".join(cells)
    source.write_text("\n".join(text[:31]) + "\n", encoding="utf-8")
    results, errors = tmp_path / "r.csv", tmp_path / "errors.csv"
    code, _, err = run_cli(
        "run", str(source), "-m", str(EXAMPLE_MAPPING), "--results", str(results),
        "--mode", "bulk", "--errors-csv", str(errors), "--no-preflight", *limits(box.base_url),
    )  # fmt: skip
    assert code == int(ExitStatus.ROWS_FAILED), err
    lines = {int(line["row"]): line for line in read_results(results)}
    assert lines[3]["status"] == "failed" and lines[3]["error_message"].startswith(
        "lead refused:"
    ), lines[3]
    assert sum(1 for line in lines.values() if line["status"] == "success") == 29
    assert len(box.activities) == 29  # the refused lead's activity was never sent
    assert "row" in errors.read_text(encoding="utf-8-sig").splitlines()[0]
    code, out, _ = run_cli("report", str(results))
    assert code == 0 and "lead refused" in out
    bulk_calls = len(box.bulk_calls())
    # A bulk call counts once in the report's calls, not once per row it carried.
    assert f"{bulk_calls} calls in all runs" in out
    # A resume in single mode sends only what is left: nothing here but the refused row.
    code, _, _ = run_cli(
        "run", str(source), "-m", str(EXAMPLE_MAPPING), "--results", str(results),
        "--no-preflight", *limits(box.base_url),
    )  # fmt: skip
    assert code == int(ExitStatus.ROWS_FAILED)
    assert len(box.arrivals()) == 1 and len(box.activities) == 29
    code, out, _ = run_cli("report", str(results))
    assert f"{bulk_calls + 1} calls in all runs" in out


def test_a_mapping_bulk_cannot_carry_is_refused_before_anything_is_sent(
    sandbox_thread, tmp_path: Path
) -> None:
    box = sandbox_thread(rate=RATE, per=PER, bulk_rate=BULK_RATE)
    mapping = tmp_path / "cfs.yaml"
    mapping.write_text(
        EXAMPLE_MAPPING.read_text(encoding="utf-8").replace(
            "    mx_Custom_1: {column: amount",
            "    mx_Custom_9:\n      fields:\n        mx_CustomObject_1: city\n"
            "    mx_Custom_1: {column: amount",
        ),
        encoding="utf-8",
    )
    code, out, err = run_cli(
        "run", str(SAMPLE_CSV), "-m", str(mapping), "--results", str(tmp_path / "r.csv"),
        "--mode", "bulk", *limits(box.base_url),
    )  # fmt: skip
    assert code == int(ExitStatus.BAD_INPUT), err
    line = err.strip().splitlines()[-1]
    assert "activity.fields.mx_Custom_9" in line and "--mode single" in line
    assert "Traceback" not in err and not box.calls
    # The dry run says the same offline.
    code, _, err = run_cli(
        "run", str(SAMPLE_CSV), "-m", str(mapping), "--dry-run", "--mode", "bulk", "--limit", "2",
    )  # fmt: skip
    assert code == int(ExitStatus.BAD_INPUT) and "activity.fields.mx_Custom_9" in err


def test_the_budget_stops_a_bulk_run_cleanly_and_the_next_run_goes_on(
    sandbox_thread, tmp_path: Path
) -> None:
    box = sandbox_thread(rate=RATE, per=PER, bulk_rate=BULK_RATE)
    results = tmp_path / "r.csv"
    args = ["run", str(SAMPLE_CSV), "-m", str(EXAMPLE_MAPPING), "--results", str(results)]
    code, _, err = run_cli(*args, "--mode", "bulk", "--max-calls", "7", *limits(box.base_url))
    assert code == int(ExitStatus.BUDGET_REACHED), err
    # 3 preflight calls, then two batches of two calls: a fifth call cannot make a batch.
    assert len(box.bulk_calls()) == 4
    done = Counter(line["status"] for line in read_results(results))
    assert done == Counter(success=50)
    code, _, err = run_cli(*args, "--mode", "bulk", *limits(box.base_url))
    assert code == 0, err
    assert len(box.activities) == 200 and box.duplicate_leads() == 0
