"""Reports derived from a results file alone: counts, grouped errors, throughput over time.

``lsq-import report RESULTS`` prints the same counts a run printed at its end (or writes them
as JSON, or as a self-contained HTML page with a chart), so the morning check of a nightly
import needs nothing but the results file.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ..exceptions import ResultsFileError
from .journal import COLUMNS, check_row_number, unescape_cell
from .status import FINAL_STATUSES, Status

EXAMPLES_PER_ERROR = 5
_BUCKETS = (1, 5, 10, 30, 60, 300, 600, 1800, 3600, 4 * 3600, 86400)
_COLOURS = {
    "success": "#2e7d32",
    "failed": "#c62828",
    "invalid": "#ef6c00",
    "unknown": "#6a1b9a",
    "skipped": "#9e9e9e",
}


@dataclass
class ErrorGroup:
    """Rows that failed the same way."""

    status: str
    error_type: str
    message: str
    count: int = 0
    example_rows: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "error_type": self.error_type,
            "message": self.message,
            "count": self.count,
            "example_rows": self.example_rows,
        }


@dataclass
class ResultsReport:
    """What a results file says about the rows it holds."""

    path: str
    by_status: Counter[str] = field(default_factory=Counter)
    calls: int = 0
    """Calls made for these rows, retries included (the ``attempts`` column summed)."""
    retries: int = 0
    errors: list[ErrorGroup] = field(default_factory=list)
    unknown_rows: list[int] = field(default_factory=list)
    """Every row whose call may have landed without an answer: check these for duplicates."""
    first_finished: str = ""
    last_finished: str = ""
    timeline: list[tuple[str, dict[str, int]]] = field(default_factory=list)
    """(bucket start, counts by status) over the time rows were recorded."""
    bucket_seconds: int = 0

    @property
    def rows(self) -> int:
        return sum(self.by_status.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "results": self.path,
            "rows": self.rows,
            "by_status": {s: self.by_status[s] for s in FINAL_STATUSES if self.by_status[s]},
            "calls": self.calls,
            "retries": self.retries,
            "errors": [group.to_dict() for group in self.errors],
            "unknown_rows": self.unknown_rows,
            "first_finished": self.first_finished,
            "last_finished": self.last_finished,
            "bucket_seconds": self.bucket_seconds,
            "timeline": [{"start": start, **counts} for start, counts in self.timeline],
        }

    def to_text(self) -> str:
        counts = ", ".join(f"{self.by_status[s]} {s}" for s in FINAL_STATUSES if self.by_status[s])
        lines = [
            f"{self.rows} rows in {self.path}: {counts or 'none'}",
            f"{self.calls} calls ({self.retries} retries)"
            + (f", {self.first_finished} to {self.last_finished}" if self.first_finished else ""),
        ]
        for group in self.errors:
            rows = ", ".join(map(str, group.example_rows))
            more = ", ..." if group.count > len(group.example_rows) else ""
            kind = f"{group.error_type}: " if group.error_type else ""
            lines.append(
                f"  {group.count} {group.status}: {kind}{group.message} (rows {rows}{more})"
            )
        if self.unknown_rows:
            lines.append(
                f"rows that may exist in LeadSquared without an answer (unknown): "
                f"{', '.join(map(str, self.unknown_rows[:50]))}"
                + (" ..." if len(self.unknown_rows) > 50 else "")
            )
        return "\n".join(lines)


def rows_with_status(path: str | Path, status: str) -> Iterator[str]:
    """``row,key,error_type,error_message`` (CSV) of each row whose latest status is ``status``."""
    file = Path(path)
    wanted = (status, Status.SENDING) if status == Status.UNKNOWN else (status,)
    latest: dict[int, list[str]] = {}
    for cells in _records(file):
        latest[int(cells[0])] = cells
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="")
    writer.writerow(["row", "key", "error_type", "error_message"])
    yield buffer.getvalue()
    for row in sorted(latest):
        cells = latest[row]
        if cells[2] in wanted:
            buffer.seek(0)
            buffer.truncate()
            writer.writerow(
                [
                    cells[0],
                    unescape_cell(cells[1]),
                    unescape_cell(cells[6]),
                    unescape_cell(cells[7]),
                ]
            )
            yield buffer.getvalue()


def _records(file: Path) -> Iterator[list[str]]:
    try:
        handle = open(file, encoding="utf-8", newline="")  # noqa: SIM115
    except OSError as exc:
        raise ResultsFileError(f"{file}: cannot read the results file ({exc.strerror})") from None
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
        except (csv.Error, UnicodeDecodeError):
            header = None
        if header is None or tuple(header) != COLUMNS:
            raise ResultsFileError(f"{file}: not an lsq-import results file (unexpected header)")
        try:
            for cells in reader:
                if len(cells) == len(COLUMNS):  # else a torn last line of a journal
                    check_row_number(int(cells[0]))
                    yield cells
        except (csv.Error, ValueError, UnicodeDecodeError):
            raise ResultsFileError(
                f"{file}: line {reader.line_num} is damaged; fix or remove it"
            ) from None


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return None


def read_report(path: str | Path) -> ResultsReport:
    """Build the report of a results file (a finished one, or a journal mid-run)."""
    file = Path(path)
    report = ResultsReport(path=str(file))
    latest: dict[int, tuple[str, str, str, int, str]] = {}
    for cells in _records(file):
        latest[int(cells[0])] = (cells[2], cells[6], cells[7], int(cells[8] or 0), cells[9])
    groups: dict[tuple[str, str, str], ErrorGroup] = {}
    times: list[tuple[datetime, str]] = []
    for row in sorted(latest):
        status, error_type, message, attempts, finished = latest[row]
        if status == Status.SENDING:
            status = Status.UNKNOWN
        report.by_status[status] += 1
        report.calls += attempts
        report.retries += max(0, attempts - 1)
        if status == Status.UNKNOWN:
            report.unknown_rows.append(row)
        if status != Status.SUCCESS:
            key = (status, unescape_cell(error_type), unescape_cell(message))
            group = groups.setdefault(key, ErrorGroup(*key))
            group.count += 1
            if len(group.example_rows) < EXAMPLES_PER_ERROR:
                group.example_rows.append(row)
        when = _parse_time(finished)
        if when is not None:
            times.append((when, status))
    report.errors = sorted(groups.values(), key=lambda g: (-g.count, g.status, g.message))
    if times:
        times.sort()
        start, end = times[0][0], times[-1][0]
        report.first_finished = start.strftime("%Y-%m-%dT%H:%M:%SZ")
        report.last_finished = end.strftime("%Y-%m-%dT%H:%M:%SZ")
        span = (end - start).total_seconds()
        bucket = next((b for b in _BUCKETS if span / b <= 120), _BUCKETS[-1])
        report.bucket_seconds = bucket
        counts: dict[int, Counter[str]] = {}
        for when, status in times:
            counts.setdefault(int((when - start).total_seconds()) // bucket, Counter())[status] += 1
        last = max(counts)
        for index in range(last + 1):
            at = start + timedelta(seconds=index * bucket)
            report.timeline.append((at.strftime("%Y-%m-%dT%H:%M:%S"), dict(counts.get(index, {}))))
    return report


def write_json(
    report: ResultsReport, path: str | Path, extra: dict[str, Any] | None = None
) -> None:
    """The report (plus ``extra``, e.g. a run's own figures) as pretty JSON."""
    data = {**report.to_dict(), **(extra or {})}
    Path(path).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _chart(report: ResultsReport) -> str:
    """Stacked bars of outcomes per time bucket: throughput and outcomes over time, as SVG."""
    if not report.timeline:
        return "<p>No timestamps in this results file.</p>"
    width, height, pad = 900, 260, 40
    peak = max(sum(c.values()) for _, c in report.timeline) or 1
    bar = (width - 2 * pad) / len(report.timeline)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 40}" '
        f'role="img" aria-label="Rows recorded per {report.bucket_seconds} s">'
    ]
    parts.append(
        f'<line x1="{pad}" y1="{height}" x2="{width - pad}" y2="{height}" stroke="#444"/>'
        f'<text x="{pad}" y="{pad - 10}" font-size="12">{peak} rows per '
        f"{report.bucket_seconds} s</text>"
    )
    for index, (start, counts) in enumerate(report.timeline):
        x = pad + index * bar
        y = float(height)
        for status in FINAL_STATUSES:
            n = counts.get(status, 0)
            if not n:
                continue
            h = (height - pad) * n / peak
            y -= h
            parts.append(
                f'<rect class="bar {status}" x="{x:.1f}" y="{y:.1f}" width="{max(bar - 1, 1):.1f}"'
                f' height="{h:.1f}" fill="{_COLOURS[status]}"><title>{html.escape(start)}: {n} '
                f"{status}</title></rect>"
            )
    first, last = report.timeline[0][0], report.timeline[-1][0]
    parts.append(
        f'<text x="{pad}" y="{height + 20}" font-size="12">{html.escape(first)}</text>'
        f'<text x="{width - pad}" y="{height + 20}" font-size="12" text-anchor="end">'
        f"{html.escape(last)}</text></svg>"
    )
    return "".join(parts)


def write_html(report: ResultsReport, path: str | Path) -> None:
    """A self-contained HTML page (no scripts, no network): counts, error table, chart."""
    esc = html.escape
    status_rows = "".join(
        f'<tr><td><span class="swatch" style="background:{_COLOURS[s]}"></span>{s}</td>'
        f'<td class="n">{report.by_status[s]}</td></tr>'
        for s in FINAL_STATUSES
        if report.by_status[s]
    )
    error_rows = (
        "".join(
            f"<tr><td>{esc(g.status)}</td><td>{esc(g.error_type)}</td><td>{esc(g.message)}</td>"
            f'<td class="n">{g.count}</td><td>{esc(", ".join(map(str, g.example_rows)))}</td></tr>'
            for g in report.errors
        )
        or '<tr><td colspan="5">No errors.</td></tr>'
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>lsq-import report: {esc(report.path)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #ccc; padding: 4px 8px; text-align: left; }}
td.n {{ text-align: right; }}
.swatch {{ display: inline-block; width: 10px; height: 10px; margin-right: 6px; }}
</style></head><body>
<h1>lsq-import report</h1>
<p>Results file <code>{esc(report.path)}</code>: <strong id="rows">{report.rows}</strong> rows,
{report.calls} calls ({report.retries} retries), recorded {esc(report.first_finished)} to
{esc(report.last_finished)} (UTC).</p>
<h2>Outcomes</h2>
<table id="outcomes"><tr><th>status</th><th>rows</th></tr>{status_rows}</table>
<h2>Throughput and outcomes over time</h2>
{_chart(report)}
<h2>Errors</h2>
<table id="errors"><tr><th>status</th><th>type</th><th>message</th><th>rows</th>
<th>example rows</th></tr>{error_rows}</table>
</body></html>
"""
    Path(path).write_text(page, encoding="utf-8")
