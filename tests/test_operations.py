"""Nightly operations: budget, trial runs, several files, archiving, reports, logs."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from importer.cli import cli

from .conftest import EXAMPLE_MAPPING, SANDBOX_KEYS, read_results


def keys_env() -> dict[str, str]:
    return {"LSQ_ACCESS_KEY": SANDBOX_KEYS.access_key, "LSQ_SECRET_KEY": SANDBOX_KEYS.secret_key}


def run_cli(*args, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env or keys_env())


def with_bad_email(source: Path, line_index: int) -> Path:
    lines = source.read_text(encoding="utf-8").splitlines()
    lines[line_index] = lines[line_index].replace("@", "@@", 1)
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return source


def test_budget_stops_cleanly_and_the_next_run_continues(
    tmp_path, sample_rows, sandbox_thread
) -> None:
    sandbox = sandbox_thread(rate=100, per=1.0)
    source, results = sample_rows(20), tmp_path / "r.csv"
    first = run_cli(
        "run",
        source,
        "-m",
        EXAMPLE_MAPPING,
        "--results",
        results,
        "--host",
        sandbox.base_url,
        "--rate",
        "100",
        "--per",
        "1",
        "--max-calls",
        "7",
    )
    assert first.exit_code == 5, first.output
    assert "call budget" in first.output
    assert len(sandbox.calls) == 7  # 3 preflight metadata calls, then 4 rows
    assert len(sandbox.activities) == 4
    assert len(read_results(results)) == 4
    second = run_cli(
        "run",
        source,
        "-m",
        EXAMPLE_MAPPING,
        "--results",
        results,
        "--host",
        sandbox.base_url,
        "--rate",
        "100",
        "--per",
        "1",
        "--max-calls",
        "100",
    )
    assert second.exit_code == 0, second.output
    assert len(sandbox.activities) == 20
    assert [int(r["row"]) for r in read_results(results)] == list(range(2, 22))


def test_trial_run_with_start_row_and_limit(tmp_path, sample_rows, sandbox_thread) -> None:
    sandbox = sandbox_thread(rate=100, per=1.0)
    results = tmp_path / "r.csv"
    outcome = run_cli(
        "run",
        sample_rows(20),
        "-m",
        EXAMPLE_MAPPING,
        "--results",
        results,
        "--host",
        sandbox.base_url,
        "--start-row",
        "5",
        "--limit",
        "3",
    )
    assert outcome.exit_code == 0, outcome.output
    assert [r["row"] for r in read_results(results)] == ["5", "6", "7"]


def test_folder_run_archives_done_files_and_skips_them_next_time(
    tmp_path, sample_rows, sandbox_thread
) -> None:
    sandbox = sandbox_thread(rate=100, per=1.0)
    drop, out, archive = tmp_path / "drop", tmp_path / "out", tmp_path / "archive"
    for folder in (drop, out, archive):
        folder.mkdir()
    for index, n in enumerate((3, 4, 5)):
        sample_rows(n, f"day{index}.csv").rename(drop / f"day{index}.csv")
    with_bad_email(drop / "day1.csv", 2)
    (drop / "notes.pdf").write_text("not an input")
    summary_json = tmp_path / "summary.json"
    outcome = run_cli(
        "run",
        drop,
        "-m",
        EXAMPLE_MAPPING,
        "--results-dir",
        out,
        "--archive-dir",
        archive,
        "--host",
        sandbox.base_url,
        "--no-ledger",  # the files repeat the sample's first rows: each is sent here
        "--summary-json",
        summary_json,
    )
    assert outcome.exit_code == 1, outcome.output
    assert sorted(p.name for p in archive.iterdir()) == ["day0.csv", "day2.csv"]
    assert sorted(p.name for p in drop.iterdir()) == ["day1.csv", "notes.pdf"]
    assert {p.name for p in out.glob("*.results.csv")} == {
        "day0.results.csv",
        "day1.results.csv",
        "day2.results.csv",
    }
    data = json.loads(summary_json.read_text())
    assert [f["exit_status"] for f in data["files"]] == [0, 1, 0]
    assert len(sandbox.activities) == 11

    # The fixed file goes through next night; nothing else is sent again.
    fixed = (drop / "day1.csv").read_text(encoding="utf-8").replace("@@", "@")
    (drop / "day1.csv").write_text(fixed, encoding="utf-8")
    again = run_cli(
        "run",
        str(drop / "*.csv"),
        "-m",
        EXAMPLE_MAPPING,
        "--results-dir",
        out,
        "--archive-dir",
        archive,
        "--host",
        sandbox.base_url,
        "--force-resume",
    )
    assert again.exit_code == 0, again.output
    assert len(sandbox.activities) == 12
    assert sorted(p.name for p in archive.iterdir()) == ["day0.csv", "day1.csv", "day2.csv"]


def test_fully_done_file_is_skipped_without_reading_it(
    tmp_path, sample_rows, sandbox_thread
) -> None:
    sandbox = sandbox_thread(rate=100, per=1.0)
    drop = tmp_path / "drop"
    drop.mkdir()
    sample_rows(3, "a.csv").rename(drop / "a.csv")
    first = run_cli(
        "run", drop, "-m", EXAMPLE_MAPPING, "--results-dir", tmp_path, "--host", sandbox.base_url
    )
    assert first.exit_code == 0, first.output
    second = run_cli(
        "run", drop, "-m", EXAMPLE_MAPPING, "--results-dir", tmp_path, "--host", sandbox.base_url
    )
    assert second.exit_code == 0, second.output
    assert "already fully imported: skipped" in second.output
    assert len(sandbox.activities) == 3


def test_report_equals_the_runs_own_summary(tmp_path, sample_rows, sandbox_thread) -> None:
    sandbox = sandbox_thread(rate=100, per=1.0)
    source = with_bad_email(with_bad_email(sample_rows(12), 3), 7)
    results, summary_json = tmp_path / "r.csv", tmp_path / "s.json"
    outcome = run_cli(
        "run",
        source,
        "-m",
        EXAMPLE_MAPPING,
        "--results",
        results,
        "--host",
        sandbox.base_url,
        "--summary-json",
        summary_json,
    )
    assert outcome.exit_code == 1, outcome.output
    run_summary = json.loads(summary_json.read_text())
    report_json = tmp_path / "report.json"
    report = run_cli("report", results, "--json", report_json)
    assert report.exit_code == 0, report.output
    derived = json.loads(report_json.read_text())
    assert derived["by_status"] == run_summary["by_status"] == {"success": 10, "failed": 2}
    assert derived["calls"] == run_summary["calls"] == 12
    assert derived["errors"] == run_summary["errors"]
    assert sorted(row for e in derived["errors"] for row in e["example_rows"]) == [4, 8]
    assert {e["error_type"] for e in derived["errors"]} == {"MXInvalidInputException"}
    assert run_summary["fingerprints"]["input"].startswith("sha256:")
    assert "2 failed: MXInvalidInputException" in report.output  # one kind of error


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data) -> None:
        self.text.append(data)


def test_html_report_is_self_contained(tmp_path, sample_rows, sandbox_thread) -> None:
    sandbox = sandbox_thread(rate=100, per=1.0)
    results = tmp_path / "r.csv"
    run_cli(
        "run",
        with_bad_email(sample_rows(6), 2),
        "-m",
        EXAMPLE_MAPPING,
        "--results",
        results,
        "--host",
        sandbox.base_url,
    )
    page_file = tmp_path / "report.html"
    outcome = run_cli("report", results, "--html", page_file)
    assert outcome.exit_code == 0, outcome.output
    page = _Page()
    page.feed(page_file.read_text(encoding="utf-8"))
    tags = [tag for tag, _ in page.tags]
    assert "script" not in tags and "link" not in tags and "img" not in tags
    assert not any(
        v and re.match(r"https?:", v)
        for _, attrs in page.tags
        for k, v in attrs.items()
        if k in ("src", "href")
    )
    bars = [attrs for tag, attrs in page.tags if tag == "rect"]
    assert {a["class"] for a in bars} == {"bar success", "bar failed"}
    text = " ".join(page.text)
    assert "MXInvalidInputException" in text and "6" in text


def test_unknown_rows_can_be_listed(tmp_path: Path) -> None:
    results = tmp_path / "r.csv"
    results.write_text(
        "row,key,status,activity_id,lead_id,http_status,error_type,error_message,attempts,"
        "finished_at\n"
        "2,a@x,success,A1,L1,200,,,1,2026-01-01T00:00:00Z\n"
        "3,b@x,unknown,,,,ServerDisconnectedError,lost,1,2026-01-01T00:00:01Z\n"
        "4,'+91 98450,sending,,,,,,1,2026-01-01T00:00:02Z\n"
    )
    outcome = run_cli("report", results, "--status", "unknown")
    assert outcome.exit_code == 0, outcome.output
    assert outcome.output.splitlines() == [
        "row,key,error_type,error_message",
        "3,b@x,ServerDisconnectedError,lost",
        "4,+91 98450,,",
    ]


def test_log_file_has_failed_rows_and_retries_but_no_keys(
    tmp_path, sample_rows, sandbox_thread
) -> None:
    access, secret = "u$rLOGACCESS123", "LOGSECRET456"
    sandbox = sandbox_thread(rate=100, per=1.0, access_key=access, secret_key=secret)
    log = tmp_path / "run.log"
    outcome = run_cli(
        "run",
        with_bad_email(sample_rows(5), 2),
        "-m",
        EXAMPLE_MAPPING,
        "--results",
        tmp_path / "r.csv",
        "--host",
        sandbox.base_url,
        "--log-file",
        log,
        "--log-level",
        "debug",
        env={"LSQ_ACCESS_KEY": access, "LSQ_SECRET_KEY": secret},
    )
    assert outcome.exit_code == 1, outcome.output
    text = log.read_text()
    assert re.search(r"row 3: failed after 1 attempts \(HTTP 500\) MXInvalidInputException", text)
    assert access not in text and secret not in text


def test_log_records_go_to_the_log_file_and_not_to_stderr(
    tmp_path, sample_rows, sandbox_thread
) -> None:
    import os
    import subprocess
    import sys

    from .conftest import ROOT

    sandbox = sandbox_thread(rate=100, per=1.0)
    log = tmp_path / "run.log"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "importer",
            "run",
            str(with_bad_email(sample_rows(5), 2)),
            "-m",
            str(EXAMPLE_MAPPING),
            "--results",
            str(tmp_path / "r.csv"),
            "--host",
            sandbox.base_url,
            "--rate",
            "100",
            "--per",
            "1",
            "--log-file",
            str(log),
            "--log-level",
            "debug",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), **keys_env()},
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    text = log.read_text()
    assert "preflight:" in text and "row 3: failed" in text
    assert proc.stderr == ""  # no progress bar (not a terminal), and no log records
    assert "rows in" in proc.stdout and "preflight:" not in proc.stdout


@pytest.mark.parametrize("kind", ["/dev/full", "a folder", "a missing folder", "a FIFO"])
def test_an_unusable_log_file_is_refused_before_anything_is_sent(
    tmp_path, sample_rows, sandbox_thread, kind: str
) -> None:
    import os

    if kind == "/dev/full":
        if not Path("/dev/full").exists():
            pytest.skip("no /dev/full here")
        log = Path("/dev/full")
    elif kind == "a folder":
        log = tmp_path / "logs"
        log.mkdir()
    elif kind == "a FIFO":
        log = tmp_path / "log.fifo"
        os.mkfifo(log)
    else:
        log = tmp_path / "no" / "run.log"
    sandbox = sandbox_thread(rate=100, per=1.0)
    outcome = run_cli(
        "run",
        sample_rows(3),
        "-m",
        EXAMPLE_MAPPING,
        "--results",
        tmp_path / "r.csv",
        "--host",
        sandbox.base_url,
        "--log-file",
        log,
    )
    assert outcome.exit_code == 2, outcome.output
    assert "Traceback" not in outcome.output
    message = outcome.stderr.strip()
    assert message.count("\n") == 0 and "--log-file" in message and str(log) in message, message
    assert sandbox.calls == []
    assert not (tmp_path / "r.csv").exists()


def test_each_command_logs_to_its_own_log_file_and_leaves_no_handler(tmp_path, sample_rows) -> None:
    # A library user or a test calling the CLI twice in one process: the first command's
    # log file must not receive the second command's records, nor stay open.
    import logging

    logger = logging.getLogger("lsq_import")
    handlers, level = list(logger.handlers), logger.level
    source = sample_rows(2)
    for name in ("first", "second"):
        outcome = run_cli(
            "run",
            source,
            "-m",
            EXAMPLE_MAPPING,
            "--sandbox",
            "--rate",
            "100",
            "--per",
            "1",
            "--results",
            tmp_path / f"{name}.csv",
            "--log-file",
            tmp_path / f"{name}.log",
        )
        assert outcome.exit_code == 0, outcome.output
        assert logger.handlers == handlers and logger.level == level
    first, second = (tmp_path / "first.log").read_text(), (tmp_path / "second.log").read_text()
    assert first.count("preflight:") == 1 and second.count("preflight:") == 1
