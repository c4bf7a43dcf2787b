"""Reports derived from a results file alone: counts, grouped errors, throughput over time.

``lsq-import report RESULTS`` prints the same counts a run printed at its end (or writes them
as JSON, or as a self-contained HTML page with a chart), so the morning check of a nightly
import needs nothing but the results file.
"""

from __future__ import annotations

import calendar
import csv
import html
import io
import json
import re
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..exceptions import ResultsFileError
from .fingerprint import Fingerprints
from .journal import _STATUS_CODES, COLUMNS, NO_ANSWER, _scan, check_row_number, unescape_cell
from .status import FINAL_STATUSES, NOT_DONE, Status

EXAMPLES_PER_ERROR = 10
"""Row numbers an error group lists (the first, by row); its ``count`` has them all."""
MAX_ERROR_GROUPS = 200
"""Error groups a report tells apart; rows of further groups are counted in
``errors_more_rows``."""
PLOTTED = frozenset({Status.SUCCESS, Status.FAILED, Status.UNKNOWN})
"""The outcomes of a call, which the timeline plots: an ``invalid`` or ``skipped`` row made no
call, and is recorded again, unchanged, by every rerun (it would show as activity then)."""
MAX_UNKNOWN_ROWS = 1000
"""Unknown rows a report lists (the first, by row); ``by_status['unknown']`` has them all and
``lsq-import report RESULTS --status unknown`` lists every one."""
_BUCKETS = (1, 5, 10, 30, 60, 300, 600, 1800, 3600, 4 * 3600, 86400)
_COLOURS = {
    "success": "#2e7d32",
    "failed": "#c62828",
    "invalid": "#ef6c00",
    "unknown": "#6a1b9a",
    "skipped": "#9e9e9e",
}


_COLUMN_PREFIX = re.compile(r"column '([^'\n]*)': ")
_VALUES = re.compile(
    # A value quoted as the mapping's messages quote a cell (Python's repr, maybe cut to
    # "...'"), then e-mail addresses, lead and activity ids, numbers: what differs from row
    # to row in a message about the same problem. Quoted values are bounded in length so
    # that a stray apostrophe in a server's text costs little.
    # An HTTP status is the kind itself, not a value.
    r"""(?P<value>'(?:[^'\\\n]|\\.){0,120}'"""
    r"""|"(?:[^"\\\n]|\\.){0,120}(?:"|\.\.\.')"""
    r"|[^\s'\"(),;:<>]+@[^\s'\"(),;:<>]+)"
    r"|\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
    r"|(?<!HTTP )\b\d+\b"
)
VALUE_MARK = "…"
"""What stands for a row's own value in an error group's ``kind``."""


def error_kind(message: str) -> tuple[str, str, str]:
    """(column, kind, example value) of an error message: the column it names (``column 'x':
    ``, "" if none), the message with each row's own values replaced by :data:`VALUE_MARK`
    (so rows with the same problem in the same column share a kind), and the first value
    quoted in it (or e-mail address; "" if none: a line number is not an example)."""
    column = ""
    found = _COLUMN_PREFIX.match(message)
    if found is not None:
        column, message = found[1], message[found.end() :]
    example = ""

    def mark(value: re.Match[str]) -> str:
        nonlocal example
        if not example and value["value"]:
            example = value["value"]
        return VALUE_MARK

    return column, _VALUES.sub(mark, message), example


@dataclass
class ErrorGroup:
    """Rows that failed the same way: one status, error type, column and kind of problem."""

    status: str
    error_type: str
    column: str
    kind: str
    """The problem, with each row's own values as :data:`VALUE_MARK`."""
    message: str = ""
    """The first row's whole message (its value included)."""
    example_value: str = ""
    """The first row's value, as its message quotes it ("" when the message names none)."""
    count: int = 0
    example_rows: list[int] = field(default_factory=list)
    """The first ``EXAMPLES_PER_ERROR`` rows, by row number."""
    original_rows: list[int | None] = field(default_factory=list)
    """When the input was an errors file: each example row's number in the original input
    (its ``lsq_row``; None if it has none), else empty."""

    @property
    def more_rows(self) -> int:
        return self.count - len(self.example_rows)

    def rows_text(self) -> str:
        """'rows 2, 5, 9 and 12 more' (or 'row 4'), then, for an errors file's rows, '(original
        rows 120, 131, 140)'."""
        listed = ", ".join(map(str, self.example_rows))
        noun = "row" if self.count == 1 else "rows"
        more = f" and {self.more_rows} more" if self.more_rows else ""
        return f"{noun} {listed}{more}{_originals_text(self.original_rows)}"

    def to_text(self) -> str:
        """One line: count, status, type, column, problem, an example value, its rows."""
        kind = f"{self.error_type}: " if self.error_type else ""
        column = f"column '{self.column}': " if self.column else ""
        example = (
            f"e.g. {self.example_value} in row {self.example_rows[0]}; "
            if self.example_value and self.example_rows
            else ""
        )
        return (
            f"{self.count} {self.status}: {kind}{column}{self.kind} ({example}{self.rows_text()})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "error_type": self.error_type,
            "column": self.column,
            "kind": self.kind,
            "message": self.message,
            "example_value": self.example_value,
            "count": self.count,
            "example_rows": self.example_rows,
            "original_rows": self.original_rows,
            "more_rows": self.more_rows,
        }


def _originals_text(rows: list[int | None]) -> str:
    """' (original rows 120, 131)' (or ' (original row 120)'; '' for none)."""
    if not rows:
        return ""
    noun = "row" if len(rows) == 1 else "rows"
    return f" (original {noun} {', '.join('?' if r is None else str(r) for r in rows)})"


@dataclass
class ResultsReport:
    """What a results file says about the rows it holds."""

    path: str
    by_status: Counter[str] = field(default_factory=Counter)
    calls: int = 0
    """Calls made for these rows by every run, retries included (the ``attempts`` column
    summed: a row sent again adds its new calls to its earlier ones)."""
    retries: int = 0
    """Calls beyond each row's first: retries, and rows sent again by a later run."""
    reconciled: int = 0
    """``success`` rows whose answer was lost and which a lookup found in LeadSquared."""
    errors: list[ErrorGroup] = field(default_factory=list)
    unknown_rows: list[int] = field(default_factory=list)
    """The first ``MAX_UNKNOWN_ROWS`` rows whose call may have landed without an answer (check
    these for duplicates); ``unknown_rows_more`` says how many more there are."""
    unknown_original_rows: list[int | None] = field(default_factory=list)
    """When the input was an errors file: the original row of each of ``unknown_rows``."""
    original_rows_note: str = ""
    """Why the original rows of an errors file's rows are not named ("" when they are)."""
    errors_more_rows: int = 0
    """Rows in error groups beyond the first ``MAX_ERROR_GROUPS``."""
    first_finished: str = ""
    last_finished: str = ""
    timeline: list[tuple[str, dict[str, int]]] = field(default_factory=list)
    """(bucket start, counts by status) of the rows sent (:data:`PLOTTED`), over the time
    their outcome was recorded."""
    bucket_seconds: int = 0
    input: str = ""
    """The input file the results belong to, as the metadata beside them says ("" without)."""
    mapping: str = ""
    host: str = ""
    """Where the last run sent its rows (never a key)."""
    input_rows: int = 0
    """The input's data rows, once a run has read it to the end (0: not known yet)."""
    complete: bool | None = None
    """Whether the metadata says every row of the input succeeded (None: no metadata)."""

    @property
    def rows(self) -> int:
        return sum(self.by_status.values())

    @property
    def is_complete(self) -> bool:
        """Every row of the input has its outcome, and none is left to fix or check."""
        if self.complete:
            return True
        done = not any(self.by_status[status] for status in NOT_DONE)
        return done and bool(self.input_rows) and self.rows >= self.input_rows

    def progress_text(self) -> str:
        """'76 of 620 rows, incomplete: 544 not reached yet, 3 failed' (or '620 of 620 rows,
        complete'); "" without metadata beside the file (e.g. ``validate``'s)."""
        if self.complete is None:
            return ""
        total = self.input_rows or (self.rows if self.is_complete else 0)
        rows = f"{self.rows} of {total} rows" if total else f"{self.rows} rows recorded"
        if self.is_complete:
            return f"{rows}, complete"
        why = [f"{total - self.rows} not reached yet"] if total > self.rows else []
        why += [f"{n} {s}" for s in FINAL_STATUSES if s in NOT_DONE and (n := self.by_status[s])]
        if not total:
            why.append("the input's row count is known once a run has read it to the end")
        return f"{rows}, incomplete: {', '.join(why)}"

    def source_text(self) -> str:
        """'input leads.csv, mapping map.yaml, host https://...' from the metadata, or ""."""
        named = [(name, value) for name, value in self.source_items() if value]
        return ", ".join(f"{name} {value}" for name, value in named)

    def source_items(self) -> list[tuple[str, str]]:
        return [("input", self.input), ("mapping", self.mapping), ("host", self.host)]

    @property
    def unknown_rows_more(self) -> int:
        return self.by_status[Status.UNKNOWN] - len(self.unknown_rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "results": self.path,
            "rows": self.rows,
            "by_status": {s: self.by_status[s] for s in FINAL_STATUSES if self.by_status[s]},
            "calls": self.calls,
            "retries": self.retries,
            "reconciled": self.reconciled,
            "errors": [group.to_dict() for group in self.errors],
            "errors_more_rows": self.errors_more_rows,
            "unknown_rows": self.unknown_rows,
            "unknown_rows_more": self.unknown_rows_more,
            "unknown_original_rows": self.unknown_original_rows,
            "first_finished": self.first_finished,
            "last_finished": self.last_finished,
            "bucket_seconds": self.bucket_seconds,
            "timeline": [{"start": start, **counts} for start, counts in self.timeline],
            "input": self.input,
            "mapping": self.mapping,
            "host": self.host,
            "input_rows": self.input_rows,
            "complete": self.is_complete if self.complete is not None else None,
        }

    def errors_text(self, limit: int | None = None) -> list[str]:
        """A line per error group (the first ``limit``), then one saying what was left out:
        'and 40 more rows in 5 more kinds of error'."""
        shown = self.errors if limit is None else self.errors[:limit]
        lines = [f"  {group.to_text()}" for group in shown]
        cut = len(self.errors) - len(shown)
        more_rows = sum(group.count for group in self.errors[len(shown) :]) + self.errors_more_rows
        if more_rows:
            kinds = (
                "other kinds of error"
                if self.errors_more_rows
                else f"{cut} more kind{'s' if cut > 1 else ''} of error"
            )
            where = f": lsq-import report {self.path} lists them" if cut else ""
            lines.append(
                f"  and {more_rows} more row{'s' if more_rows > 1 else ''} in {kinds}{where}"
            )
        return lines

    def to_text(self) -> str:
        counts = ", ".join(f"{self.by_status[s]} {s}" for s in FINAL_STATUSES if self.by_status[s])
        lines = [f"{self.rows} rows in {self.path}: {counts or 'none'}"]
        progress, source = self.progress_text(), self.source_text()
        if progress:
            lines.append(f"{progress}{f' ({source})' if source else ''}")
        lines += [
            f"{self.calls} calls in all runs ({self.retries} retries and rows sent again)"
            + (f", {self.first_finished} to {self.last_finished}" if self.first_finished else ""),
        ]
        if self.reconciled:
            lines.append(
                f"{self.reconciled} success rows were found in LeadSquared after their answer "
                "was lost (error_type 'reconciled')"
            )
        lines.extend(self.errors_text())
        if self.unknown_rows:
            lines.append(
                f"rows that may exist in LeadSquared without an answer (unknown): "
                f"{', '.join(map(str, self.unknown_rows[:50]))}"
                + (" ..." if self.by_status[Status.UNKNOWN] > 50 else "")
                + _originals_text(self.unknown_original_rows[:50])
            )
        if self.original_rows_note:
            lines.append(self.original_rows_note)
        return "\n".join(lines)


def rows_with_status(path: str | Path, status: str) -> Iterator[str]:
    """``row,key,error_type,error_message`` (CSV) of each row whose latest status is ``status``.

    In row order, whatever order the lines are in (a journal mid-run), holding 8 bytes per row
    (where the row's latest line starts, if it is wanted) and no Python object per row.
    """
    file = Path(path)
    wanted = {_status_code(status)} if status in _STATUS_BY_TEXT else set()
    if status == Status.UNKNOWN:
        wanted.add(_status_code(Status.SENDING))
    offsets = _latest_offsets(file, wanted)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="")
    writer.writerow(["row", "key", "error_type", "error_message"])
    yield buffer.getvalue()
    for cells in _lines_at(file, offsets):
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(
            [cells[0], unescape_cell(cells[1]), unescape_cell(cells[6]), unescape_cell(cells[7])]
        )
        yield buffer.getvalue()


_STATUS_BY_TEXT = {s.value: s for s in Status}


def _status_code(status: str) -> int:
    return _STATUS_CODES[_STATUS_BY_TEXT[status]]


def _latest_offsets(file: Path, wanted: set[int] | None = None) -> array[int]:
    """Row -> byte offset of its latest line (-1: none, or its status is not ``wanted``)."""
    if not file.exists():
        raise ResultsFileError(f"{file}: cannot read the results file (No such file or directory)")
    offsets: array[int] = array("q")
    for row, code, offset in _scan(file):
        if row >= len(offsets):
            offsets.extend([-1] * (row + 1 - len(offsets) + 1024))
        offsets[row] = offset if wanted is None or code in wanted else -1
    return offsets


def _lines_at(file: Path, offsets: array[int]) -> Iterator[list[str]]:
    """The cells of the line at each offset (row order), skipping -1."""
    with open(file, "rb") as handle:
        for offset in offsets:
            if offset < 0:
                continue
            handle.seek(offset)
            yield next(csv.reader([handle.readline().decode("utf-8")]))


class _OutOfOrder(Exception):
    """A row's line came after a later row's: a journal, read again through its offsets."""


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


_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def _epoch_seconds(text: str) -> int | None:
    try:
        return calendar.timegm(datetime.strptime(text, _TIME_FORMAT).timetuple())
    except ValueError:
        return None


def _format(epoch: int, pattern: str) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime(pattern)


class _Tally:
    """The report's figures, added up one row at a time (rows in row order) in bounded memory:
    counts, at most ``MAX_ERROR_GROUPS`` error groups of ``EXAMPLES_PER_ERROR`` rows, the first
    ``MAX_UNKNOWN_ROWS`` unknown rows, and a timeline of at most ``_MAX_TIME_KEYS`` buckets.

    The timeline counts rows in buckets aligned on the clock (a minute bucket starts on the
    minute), so buckets of one width merge exactly into the next wider one (each width in
    ``_BUCKETS`` divides the next) whenever too many are open.
    """

    def __init__(self, report: ResultsReport) -> None:
        self.report = report
        self.groups: dict[tuple[str, str, str, str], ErrorGroup] = {}
        self.width = 1  # seconds per timeline key
        self.times: dict[int, Counter[str]] = {}
        self.first: int | None = None
        self.last: int | None = None
        self.sent_first: int | None = None  # of the rows the timeline plots
        self.sent_last: int | None = None
        self.parsed: dict[str, int | None] = {}  # finished_at text -> seconds (a small cache)

    def add(self, row: int, cells: list[str]) -> None:
        report = self.report
        status = cells[2]
        if status == Status.SENDING:
            # As the final rewrite will say it: a journal reports as the file it becomes.
            status, cells[7] = Status.UNKNOWN, NO_ANSWER
        attempts = int(cells[8] or 0)
        report.by_status[status] += 1
        report.calls += attempts
        report.retries += max(0, attempts - 1)
        if status == Status.SUCCESS and cells[6] == "reconciled":
            report.reconciled += 1
        if status != Status.SUCCESS:
            if status == Status.UNKNOWN and len(report.unknown_rows) < MAX_UNKNOWN_ROWS:
                report.unknown_rows.append(row)
            error_type, message = unescape_cell(cells[6]), unescape_cell(cells[7])
            column, kind, value = error_kind(message)
            key = (status, error_type, column, kind)
            group = self.groups.get(key)
            if group is None and len(self.groups) < MAX_ERROR_GROUPS:
                group = self.groups[key] = ErrorGroup(*key, message=message, example_value=value)
            if group is None:
                report.errors_more_rows += 1
            else:
                group.count += 1
                if len(group.example_rows) < EXAMPLES_PER_ERROR:
                    group.example_rows.append(row)
        text = cells[9]
        when = self.parsed.get(text, -1)
        if when == -1:
            if len(self.parsed) >= 4096:
                self.parsed.clear()
            when = self.parsed[text] = _epoch_seconds(text)
        if when is None:
            return
        self.first = when if self.first is None else min(self.first, when)
        self.last = when if self.last is None else max(self.last, when)
        if status in PLOTTED:
            self._add_time(when, status)

    def _add_time(self, when: int, status: str) -> None:
        self.sent_first = when if self.sent_first is None else min(self.sent_first, when)
        self.sent_last = when if self.sent_last is None else max(self.sent_last, when)
        counts = self.times.get(when // self.width)
        if counts is None:
            counts = self.times[when // self.width] = Counter()
            if len(self.times) > _MAX_TIME_KEYS and self.width < _BUCKETS[-1]:
                wider = _BUCKETS[_BUCKETS.index(self.width) + 1]
                self.times = _merge(self.times, self.width, wider)
                self.width = wider
                counts = self.times[when // wider]
        counts[status] += 1

    def done(self) -> ResultsReport:
        report = self.report
        report.errors = sorted(
            self.groups.values(), key=lambda g: (-g.count, g.status, g.column, g.kind)
        )
        if self.first is None or self.last is None:
            return report
        report.first_finished = _format(self.first, _TIME_FORMAT)
        report.last_finished = _format(self.last, _TIME_FORMAT)
        first, last = self.sent_first, self.sent_last
        if first is None or last is None:
            return report
        span = last - first
        bucket = next((b for b in _BUCKETS if span / b <= 120), _BUCKETS[-1])
        bucket = max(bucket, self.width)
        report.bucket_seconds = bucket
        merged = _merge(self.times, self.width, bucket)
        for index in range(first // bucket, last // bucket + 1):
            report.timeline.append(
                (_format(index * bucket, "%Y-%m-%dT%H:%M:%S"), dict(merged.get(index, {})))
            )
        return report


_MAX_TIME_KEYS = 4096


def _merge(times: dict[int, Counter[str]], width: int, wider: int) -> dict[int, Counter[str]]:
    """Timeline keys of ``width`` seconds re-keyed to ``wider`` ones (a multiple of it)."""
    merged: dict[int, Counter[str]] = {}
    for key, counts in times.items():
        merged.setdefault(key * width // wider, Counter()).update(counts)
    return merged


def read_report(path: str | Path) -> ResultsReport:
    """Build the report of a results file (a finished one, or a journal mid-run).

    Memory does not grow with the file: a finished file (one line per row, in row order) is
    read in one streaming pass; a journal (several lines per row, out of order) is noticed at
    its first out-of-order line and read again through an array of each row's latest line's
    offset (8 bytes a row, no Python object per row).
    """
    file = Path(path)
    tally = _Tally(ResultsReport(path=str(file)))
    try:
        previous = 0
        for cells in _records(file):
            row = int(cells[0])
            if row <= previous:
                raise _OutOfOrder
            previous = row
            tally.add(row, cells)
    except _OutOfOrder:
        tally = _Tally(ResultsReport(path=str(file)))
        for cells in _lines_at(file, _latest_offsets(file)):
            tally.add(int(cells[0]), cells)
    return _with_source(tally.done(), file)


def _with_source(report: ResultsReport, file: Path) -> ResultsReport:
    """What the metadata beside the file says: the input, mapping, host, the input's row
    count and whether the import is complete (nothing, if it is missing or damaged)."""
    try:
        recorded = Fingerprints.load(file)
    except ResultsFileError:
        recorded = None
    if recorded is not None:
        report.input, report.mapping, report.host = recorded.input, recorded.mapping, recorded.host
        report.input_rows, report.complete = recorded.input_rows, recorded.complete
        # A bulk call counted in each of its rows' attempts is one call.
        report.calls += recorded.bulk_calls - min(report.calls, recorded.bulk_row_calls)
        if recorded.errors_file:
            _name_original_rows(report, file, recorded)
    return report


def _name_original_rows(report: ResultsReport, file: Path, recorded: Fingerprints) -> None:
    """The input was an errors file: name the rows the report lists by their original row
    (``lsq_row``), read back from that input (only those rows are kept)."""
    from ..exceptions import ImporterError
    from .errors_csv import original_rows

    listed = {row for group in report.errors for row in group.example_rows}
    try:
        found = original_rows(file, recorded, listed | set(report.unknown_rows))
    except ImporterError as exc:
        report.original_rows_note = f"original rows (lsq_row) not named: {exc}"
        return
    if not found:
        return
    for group in report.errors:
        group.original_rows = [found.get(row) for row in group.example_rows]
    report.unknown_original_rows = [found.get(row) for row in report.unknown_rows]


def write_json(
    report: ResultsReport, path: str | Path, extra: dict[str, Any] | None = None
) -> None:
    """The report (plus ``extra``, e.g. a run's own figures) as pretty JSON."""
    data = {**report.to_dict(), **(extra or {})}
    Path(path).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _duration(seconds: int) -> str:
    """A bucket's width as a person says it: '1 s', '5 min', '4 h', '1 day'."""
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def _shown_time(text: str) -> str:
    """'2025-01-01T10:00:00' (a timeline start) as '2025-01-01 10:00:00'."""
    return text.replace("T", " ").rstrip("Z")


def _chart(report: ResultsReport) -> str:
    """Stacked bars of the rows sent per time bucket, by outcome, as SVG: both axes labelled,
    times in UTC at the start, middle and end, each bar titled with its time span."""
    if not report.timeline:
        return "<p>No row was sent: nothing to plot.</p>"
    esc = html.escape
    width, height = 900, 320
    left, right, top, bottom = 70, 20, 20, height - 70  # plot area; labels outside it
    peak = max(sum(c.values()) for _, c in report.timeline) or 1
    bar = (width - left - right) / len(report.timeline)
    every = _duration(report.bucket_seconds)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="Rows sent per {esc(every)}, by outcome, over time (UTC)">',
        f'<line x1="{left}" y1="{bottom}" x2="{width - right}" y2="{bottom}" stroke="#444"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="#444"/>',
    ]
    for value in sorted({0, peak // 2, peak}):
        y = bottom - (bottom - top) * value / peak
        parts.append(
            f'<line x1="{left - 5}" y1="{y:.1f}" x2="{left}" y2="{y:.1f}" stroke="#444"/>'
            f'<text class="tick y" x="{left - 8}" y="{y + 4:.1f}" font-size="12" '
            f'text-anchor="end">{value}</text>'
        )
    parts.append(
        f'<text class="axis-label y" x="{16}" y="{(top + bottom) / 2:.1f}" font-size="12" '
        f'text-anchor="middle" transform="rotate(-90 16 {(top + bottom) / 2:.1f})">'
        f"rows sent per {esc(every)}</text>"
    )
    for index, (start, counts) in enumerate(report.timeline):
        x = left + index * bar
        y = float(bottom)
        end = _format((_epoch_seconds(start + "Z") or 0) + report.bucket_seconds, "%H:%M:%S")
        span = f"{_shown_time(start)} to {end} UTC"
        for status in FINAL_STATUSES:
            n = counts.get(status, 0)
            if not n:
                continue
            h = (bottom - top) * n / peak
            y -= h
            parts.append(
                f'<rect class="bar {status}" x="{x:.1f}" y="{y:.1f}" width="{max(bar - 1, 1):.1f}"'
                f' height="{h:.1f}" fill="{_COLOURS[status]}"><title>{esc(span)}: {n} '
                f"{status}</title></rect>"
            )
    ticks = [(0, report.timeline[0][0], "start")]
    if len(report.timeline) > 2:
        middle = len(report.timeline) // 2
        ticks.append((middle, report.timeline[middle][0], "middle"))
    last = _epoch_seconds(report.timeline[-1][0] + "Z")
    if last is not None:
        stamp = _format(last + report.bucket_seconds, "%Y-%m-%dT%H:%M:%S")
        ticks.append((len(report.timeline), stamp, "end"))
    for index, stamp, anchor in ticks:
        x = left + index * bar
        parts.append(
            f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 5}" stroke="#444"/>'
            f'<text class="tick x" x="{x:.1f}" y="{bottom + 20}" font-size="12" '
            f'text-anchor="{anchor}">{esc(_shown_time(stamp))}</text>'
        )
    parts.append(
        f'<text class="axis-label x" x="{(left + width - right) / 2:.1f}" y="{bottom + 45}" '
        f'font-size="12" text-anchor="middle">time the outcome was recorded (UTC), one bar '
        f"per {esc(every)}</text></svg>"
    )
    shown = [s for s in FINAL_STATUSES if any(c.get(s) for _, c in report.timeline)]
    legend = " ".join(
        f'<span class="swatch" style="background:{_COLOURS[s]}"></span>{s}' for s in shown
    )
    note = (
        '<p class="note">Each bar: the rows sent in that span, by outcome. Invalid and skipped '
        "rows made no call and are not plotted (every rerun records them again).</p>"
    )
    return f'<p class="legend">{legend}</p>' + "".join(parts) + note


def write_html(report: ResultsReport, path: str | Path) -> None:
    """A self-contained HTML page (no scripts, no network): whether the import is complete,
    its input, mapping and host, counts, the chart and the error table."""
    esc = html.escape
    status_rows = "".join(
        f'<tr><td><span class="swatch" style="background:{_COLOURS[s]}"></span>{s}</td>'
        f'<td class="n">{report.by_status[s]}</td></tr>'
        for s in FINAL_STATUSES
        if report.by_status[s]
    )
    error_rows = (
        "".join(
            f"<tr><td>{esc(g.status)}</td><td>{esc(g.error_type)}</td><td>{esc(g.column)}</td>"
            f"<td>{esc(g.kind)}</td><td>{esc(g.example_value)}</td>"
            f'<td class="n">{g.count}</td><td>{esc(g.rows_text())}</td></tr>'
            for g in report.errors
        )
        or '<tr><td colspan="7">No errors.</td></tr>'
    ) + (
        f'<tr><td colspan="7">and {report.errors_more_rows} more rows in other kinds of error'
        "</td></tr>"
        if report.errors_more_rows
        else ""
    )
    progress = report.progress_text()
    state = "" if report.complete is None else ("complete" if report.is_complete else "incomplete")
    headline, _, why = progress.partition(": ")
    progress_html = (
        f'<p id="progress" class="{state}"><strong>{esc(headline)}</strong>'
        + (f": {esc(why)}" if why else "")
        + "</p>"
        if progress
        else '<p id="progress">No metadata beside the results file: its input, and whether '
        "the import is complete, are not known.</p>"
    )
    recorded = (
        f"{esc(_shown_time(report.first_finished))} to {esc(_shown_time(report.last_finished))} UTC"
        if report.first_finished
        else "nothing yet"
    )
    about = [("results file", esc(report.path))]
    about += [(name, esc(value)) for name, value in report.source_items() if value]
    about += [
        ("calls", f"{report.calls} in all runs ({report.retries} retries and rows sent again)"),
        ("recorded", recorded),
    ]
    about_rows = "".join(
        f'<tr><th>{name}</th><td id="{name.replace(" ", "-")}">{value}</td></tr>'
        for name, value in about
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>lsq-import report: {esc(report.path)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #ccc; padding: 4px 8px; text-align: left; }}
td.n {{ text-align: right; }}
.swatch {{ display: inline-block; width: 10px; height: 10px; margin: 0 6px 0 12px; }}
td .swatch {{ margin-left: 0; }}
#progress {{ font-size: 1.2em; }}
#progress.incomplete strong {{ color: #c62828; }}
#progress.complete strong {{ color: #2e7d32; }}
.note {{ color: #555; font-size: 0.9em; }}
</style></head><body>
<h1>lsq-import report</h1>
{progress_html}
<table id="about">{about_rows}</table>
<h2>Outcomes</h2>
<table id="outcomes"><tr><th>status</th><th>rows</th></tr>{status_rows}</table>
<h2>Rows sent over time</h2>
{_chart(report)}
<h2>Errors</h2>
<table id="errors"><tr><th>status</th><th>type</th><th>column</th><th>problem</th>
<th>example value</th><th>rows</th><th>row numbers</th></tr>{error_rows}</table>
</body></html>
"""
    Path(path).write_text(page, encoding="utf-8")
