"""What the results file, the run summary, ``report`` and its HTML page tell a person:
one vocabulary for rows not sent, errors grouped by kind and column, calls over every run,
the chart's times, and whether the import is complete."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from importer.cli import cli
from importer.results.fingerprint import meta_path
from importer.results.journal import Journal, Result, read_outcomes
from importer.results.report import read_report
from importer.results.status import Status
from importer.sandbox.faults import FaultConfig
from importer.summary import Summary

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


class Page(HTMLParser):
    """The text of an HTML page, by table cell and by element id, and its SVG elements."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.by_id: dict[str, str] = {}
        self.svg: list[tuple[str, dict[str, str | None], str]] = []
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._ids: list[tuple[str, str, list[str]]] = []
        self._svg_text: list[str] | None = None
        self._in_svg = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "table":
            self._table = found.get("id") or ""
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []
        if found.get("id"):
            self._ids.append((tag, str(found["id"]), []))
        if tag == "svg":
            self._in_svg = True
        if self._in_svg:
            self.svg.append((tag, found, ""))
            self._svg_text = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None
        if self._ids and self._ids[-1][0] == tag:
            _, name, parts = self._ids.pop()
            self.by_id[name] = " ".join("".join(parts).split())
        if tag == "svg":
            self._in_svg = False
        if tag in ("text", "title") and self._svg_text is not None and self.svg:
            kind, attrs, _ = self.svg[-1]
            self.svg[-1] = (kind, attrs, "".join(self._svg_text))
            self._svg_text = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        for _, _, parts in self._ids:
            parts.append(data)
        if self._svg_text is not None:
            self._svg_text.append(data)


def test_errors_are_grouped_by_kind_and_column_with_an_example_and_the_keys_filled(
    tmp_path, sample_rows, sandbox_thread
) -> None:
    """12 rows whose phone is text and 2 with an unreadable date were 14 groups of one (the
    message quotes each row's value), and the invalid rows had an empty key."""
    sandbox = sandbox_thread(rate=100, per=1.0)
    source = edit_cells(
        sample_rows(30), "phone", {row: f"call me {row}" for row in range(3, 27, 2)}
    )
    edit_cells(source, "visited_at", {4: "yesterday", 8: "3/7/2024 2:15 PM"})
    results = tmp_path / "r.csv"
    outcome = run_cli(source, results, sandbox.base_url)
    assert outcome.exit_code == 1, outcome.output
    phone_line = (
        "  12 invalid: invalid row: column 'phone': … is not a phone number: only digits, a "
        "leading +, spaces, dashes, dots and parentheses are allowed (e.g. 'call me 3' in "
        "row 3; rows 3, 5, 7, 9, 11, 13, 15, 17, 19, 21 and 2 more)"
    )
    date_line = "  2 invalid: invalid row: column 'visited_at': cannot parse … with any of"
    assert phone_line in outcome.output.splitlines(), outcome.output
    assert sum(date_line in line for line in outcome.output.splitlines()) == 1, outcome.output

    lines = {int(line["row"]): line for line in read_results(results)}
    with open(source, newline="", encoding="utf-8") as handle:
        emails = {n: r["email"].casefold() for n, r in enumerate(csv.DictReader(handle), 2)}
    invalid = [n for n, line in lines.items() if line["status"] == "invalid"]
    assert len(invalid) == 14
    assert all(lines[n]["key"] == emails[n] for n in invalid)

    page_file = tmp_path / "report.html"
    reported = invoke("report", results, "--html", page_file)
    assert reported.exit_code == 0, reported.output
    assert phone_line in reported.output.splitlines(), reported.output
    header, *groups = Page(page_file.read_text(encoding="utf-8")).tables["errors"]
    assert header == [
        "status",
        "type",
        "column",
        "problem",
        "example value",
        "rows",
        "row numbers",
    ]
    assert [(g[0], g[2], g[5]) for g in groups] == [
        ("invalid", "phone", "12"),
        ("invalid", "visited_at", "2"),
    ]
    assert groups[0][4] == "'call me 3'"
    assert groups[0][6] == "rows 3, 5, 7, 9, 11, 13, 15, 17, 19, 21 and 2 more"


def test_run_summary_says_how_many_kinds_of_error_it_left_out(tmp_path: Path) -> None:
    """The run summary stopped after 10 error groups without a word about the rest."""
    results = tmp_path / "r.csv"
    journal = Journal(results)
    journal.open()
    for row in range(2, 40):
        kind = f"E{row % 13}"  # 13 kinds of error, 38 rows
        journal.record(Result(row, "k", Status.FAILED, error_type=kind, error_message="no"))
    journal.finalize()
    report = read_report(results)
    summary = Summary(
        input="in.csv", results=str(results), by_status=Counter(report.by_status), report=report
    )
    lines = summary.to_text().splitlines()
    shown = [line for line in lines if line.startswith("  ") and " failed: E" in line]
    assert len(shown) == 10
    left_out = sum(group.count for group in report.errors[10:])
    assert f"  and {left_out} more rows in 3 more kinds of error: lsq-import report " in (
        summary.to_text()
    )


def test_report_after_retry_unknown_counts_every_runs_calls_and_plots_only_sent_rows(
    tmp_path, sample_rows, sandbox_thread
) -> None:
    """After a ``--retry-unknown`` rerun, ``report`` still said the first run's call count
    (a row's line kept only its latest run's attempts), and the invalid rows, recorded again
    by the rerun, made a spike in the chart's last bar."""
    source = edit_cells(sample_rows(30), "phone", {5: "n/a", 9: "n/a", 13: "n/a"})
    results = tmp_path / "r.csv"
    lossy = sandbox_thread(rate=100, per=1.0, faults=FaultConfig.from_spec("drop_after=0.3,seed=3"))
    first = run_cli(source, results, lossy.base_url, "--no-preflight", "--no-reconcile")
    assert first.exit_code == 1, first.output
    unknown = [line["row"] for line in read_results(results) if line["status"] == "unknown"]
    assert unknown, first.output
    clean = sandbox_thread(rate=100, per=1.0)
    second = run_cli(
        source, results, clean.base_url, "--no-preflight", "--retry-unknown", "--no-reconcile"
    )
    assert second.exit_code == 1, second.output  # the invalid rows are still invalid
    calls = len(lossy.arrivals()) + len(clean.arrivals())
    assert len(clean.arrivals()) == len(unknown)

    report_file = tmp_path / "report.json"
    reported = invoke("report", results, "--json", report_file)
    assert reported.exit_code == 0, reported.output
    found = json.loads(report_file.read_text(encoding="utf-8"))
    assert found["by_status"] == {"success": 27, "invalid": 3}
    assert found["calls"] == calls, reported.output
    assert f"{calls} calls in all runs" in reported.output
    plotted = Counter()
    for bucket in found["timeline"]:
        plotted.update({k: v for k, v in bucket.items() if k != "start"})
    assert plotted == {"success": 27}, found["timeline"]  # no call, no bar: invalid rows
    assert found["timeline"][-1].get("success", 0) <= len(unknown)


def test_resume_knows_the_calls_each_row_left_to_send_again_had(tmp_path: Path) -> None:
    """What the rerun adds to: the attempts of a row's latest line when it is ``failed``,
    ``unknown`` or ``sending`` (a crash), in the quick path and in the one for quoted keys."""
    path = tmp_path / "r.csv"
    journal = Journal(path)
    journal.open()
    for key in ("a@x", "b,c@x"):  # a key with a comma is quoted: the exact parser reads it
        journal.record(Result(2, key, Status.SENDING, attempts=1))
        journal.record(Result(2, key, Status.FAILED, error_message="x, y", attempts=3))
        journal.record(Result(3, key, Status.SENDING, attempts=2))
        journal.record(Result(4, key, Status.FAILED, attempts=2))
        journal.record(Result(4, key, Status.SENDING, attempts=3))
        journal.record(Result(4, key, Status.SUCCESS, attempts=3))
        journal.record(Result(5, key, Status.INVALID, error_type="invalid row"))
        journal.record(Result(6, key, Status.UNKNOWN, attempts=4))
        journal.close()
        outcomes = read_outcomes(path)
        assert [outcomes.attempts(row) for row in range(2, 8)] == [3, 2, 0, 0, 4, 0], key
        path.unlink()
        journal = Journal(path)
        journal.open()
    journal.close()


def html_page(results: Path, tmp_path: Path) -> tuple[str, Page]:
    page_file = tmp_path / "report.html"
    reported = invoke("report", results, "--html", page_file)
    assert reported.exit_code == 0, reported.output
    return reported.output, Page(page_file.read_text(encoding="utf-8"))


def test_report_says_how_much_of_the_input_is_imported_and_from_where(
    tmp_path, sample_rows, sandbox_thread
) -> None:
    """The HTML said "8 rows, 8 calls" of an import stopped part-way, with nothing about the
    input's 30 rows, the input, mapping or host, and a chart without axis labels or times."""
    sandbox = sandbox_thread(rate=100, per=1.0)
    source, results = sample_rows(30), tmp_path / "r.csv"
    host = sandbox.base_url.replace("http://", "http://ops:hunter2pass@")  # user info: no key
    # One call in flight, so the feed is only a few rows ahead when the budget stops it.
    # Without the ledger, whose first claims read the first 64 rows (this whole input) ahead.
    stopped = run_cli(
        source,
        results,
        host,
        "--no-preflight",
        "--max-calls",
        "8",
        "--concurrency",
        "1",
        "--no-ledger",
    )
    assert stopped.exit_code == 5, stopped.output

    text, page = html_page(results, tmp_path)
    unknown_total = "8 rows recorded, incomplete: the input's row count is known once a run"
    assert unknown_total in text, text
    assert page.by_id["progress"].startswith(unknown_total)
    about = dict(row for row in page.tables["about"] if len(row) == 2)
    assert about["input"] == str(source) and about["mapping"] == str(EXAMPLE_MAPPING)
    assert about["host"] == sandbox.base_url  # without the user info
    page_text = (tmp_path / "report.html").read_text(encoding="utf-8")
    meta = (tmp_path / "r.csv.meta.json").read_text(encoding="utf-8")
    for secret in ("hunter2pass", SANDBOX_KEYS.access_key, SANDBOX_KEYS.secret_key):
        assert secret not in page_text and secret not in meta and secret not in text

    labels = {attrs.get("class"): said for tag, attrs, said in page.svg if tag == "text"}
    assert labels["axis-label y"].startswith("rows sent per ")
    assert labels["axis-label x"].startswith("time the outcome was recorded (UTC)")
    ticks = [said for tag, attrs, said in page.svg if attrs.get("class") == "tick x"]
    assert len(ticks) >= 2
    for tick in ticks:
        datetime.strptime(tick, "%Y-%m-%d %H:%M:%S")  # a date and time, not a bare index
    titles = [said for tag, _, said in page.svg if tag == "title"]
    assert titles and all(re.fullmatch(r"\S+ \S+ to \S+ UTC: \d+ success", t) for t in titles)

    finished = run_cli(source, results, sandbox.base_url, "--no-preflight")
    assert finished.exit_code == 0, finished.output
    assert json.loads(meta_path(results).read_text(encoding="utf-8"))["input_rows"] == 30
    text, page = html_page(results, tmp_path)
    assert "30 of 30 rows, complete" in text
    assert page.by_id["progress"] == "30 of 30 rows, complete"


def test_report_counts_the_rows_not_reached_once_the_total_is_known(
    tmp_path, sample_rows, sandbox_thread
) -> None:
    """A run that reads the input to its end records the row count (a trial from row 12 does,
    and leaves rows 2 to 11 unsent); the report then says how many are left."""
    sandbox = sandbox_thread(rate=100, per=1.0)
    source = edit_cells(sample_rows(30), "phone", {20: "n/a"})
    results = tmp_path / "r.csv"
    trial = run_cli(source, results, sandbox.base_url, "--no-preflight", "--start-row", "12")
    assert trial.exit_code == 1, trial.output
    text, page = html_page(results, tmp_path)
    expected = "20 of 30 rows, incomplete: 10 not reached yet, 1 invalid"
    assert expected in text, text
    assert page.by_id["progress"] == expected
    report_file = tmp_path / "report.json"
    assert invoke("report", results, "--json", report_file).exit_code == 0
    found = json.loads(report_file.read_text(encoding="utf-8"))
    assert (found["input_rows"], found["complete"], found["input"]) == (30, False, str(source))


def test_a_resume_that_reads_on_from_part_way_still_counts_the_inputs_rows(
    tmp_path: Path, sample_rows, sandbox_thread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resume starts reading near its first row left; the rows it skips are the input's
    too, so the row count it records is the whole input's, not what it read."""
    from importer.reader import delimited

    monkeypatch.setattr(delimited, "_FIRST_POSITION_EVERY", 4)
    sandbox = sandbox_thread(rate=100, per=1.0)
    source, results = sample_rows(40), tmp_path / "r.csv"
    import_into(sandbox, source, results, limit=30)  # the feed stops: no row count yet
    assert json.loads(meta_path(results).read_text(encoding="utf-8"))["input_rows"] == 0
    read = []
    real = delimited._CsvInput._iter_rows_from

    def spy(self, start):  # type: ignore[no-untyped-def]
        read.append(start.row)
        return real(self, start)

    monkeypatch.setattr(delimited._CsvInput, "_iter_rows_from", spy)
    import_into(sandbox, source, results)
    assert read and read[0] > 2  # it did start part-way
    assert json.loads(meta_path(results).read_text(encoding="utf-8"))["input_rows"] == 40
    assert "40 of 40 rows, complete" in invoke("report", results).output


def test_a_run_that_left_rows_unreached_says_so_in_its_summary(
    tmp_path, sample_rows, sandbox_thread
) -> None:
    """'2 rows in x2.csv: 2 success ... all rows succeeded' after --limit 2 of 600: the run's
    summary did not say 598 rows were never reached (only ``report`` did)."""
    sandbox = sandbox_thread(rate=100, per=1.0)
    source = sample_rows(12)
    first = run_cli(source, tmp_path / "r.csv", sandbox.base_url, "--limit", "2")
    assert first.exit_code == 0, first.output
    assert "the import is 2 rows recorded, incomplete" in first.output and (
        "all rows sent so far succeeded" in first.output
    ), first.output
    done = run_cli(source, tmp_path / "r.csv", sandbox.base_url)
    assert "not reached yet" not in done.output and "all rows succeeded" in done.output
