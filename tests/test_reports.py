"""What the results file, the run summary, ``report`` and its HTML page tell a person:
one vocabulary for rows not sent, errors grouped by kind and column, calls over every run,
the chart's times, and whether the import is complete."""

from __future__ import annotations

import csv
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

from click.testing import CliRunner

from importer.cli import cli
from importer.results.journal import Journal, Result
from importer.results.report import read_report
from importer.results.status import Status
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
        if tag in ("rect", "text", "line", "title", "svg"):
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
