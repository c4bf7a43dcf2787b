"""The results file: one line per input row with its outcome; the run's journal while it runs.

While a run goes, every event is *appended* and flushed: first a ``sending`` line written
before a call leaves (the intent), then the outcome line when the answer is in. A crash
therefore loses nothing already decided, and a row whose last line is ``sending`` is known to
be ``unknown`` (it may have landed) rather than silently sent twice. Lines are fsynced every
``fsync_interval`` seconds and at the end.

When the run ends, the file is rewritten atomically (temporary file, fsync, rename) to hold
exactly one line per attempted input row, its latest outcome, in input (row-number) order, so
it reads like the input. Resuming reads it back: rows already ``success`` are not sent again.

Cells that a spreadsheet would run as a formula (starting with ``= + - @``, tab or CR) are
written with a leading apostrophe, and a cell that starts with an apostrophe gets one more;
:func:`unescape_cell` removes exactly one, so the escaping is reversible.
"""

from __future__ import annotations

import csv
import io
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .exceptions import ResultsFileError

COLUMNS = (
    "row",
    "key",
    "status",
    "activity_id",
    "lead_id",
    "http_status",
    "error_type",
    "error_message",
    "attempts",
    "finished_at",
)

SUCCESS = "success"
FAILED = "failed"
INVALID = "invalid"
SKIPPED = "skipped"
UNKNOWN = "unknown"
SENDING = "sending"  # intent: written before the call leaves; never a final status
FINAL_STATUSES = (SUCCESS, FAILED, INVALID, SKIPPED, UNKNOWN)

NO_ANSWER = "sent, but no outcome was recorded (the run stopped while the call was in flight)"

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")


def escape_cell(text: str) -> str:
    """Neutralise a cell a spreadsheet would evaluate; reversible with :func:`unescape_cell`."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def unescape_cell(text: str) -> str:
    """Undo :func:`escape_cell`."""
    return text[1:] if text.startswith("'") else text


def utc_now() -> str:
    """Now, UTC, ISO 8601 with a Z: when an outcome was recorded."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class Result:
    """One line of the results file."""

    row: int
    key: str
    status: str
    activity_id: str = ""
    lead_id: str = ""
    http_status: int | None = None
    error_type: str = ""
    error_message: str = ""
    attempts: int = 0
    finished_at: str = ""

    def cells(self) -> list[str]:
        message = " ".join(self.error_message.split())  # one physical line per record
        return [
            str(self.row),
            escape_cell(self.key),
            self.status,
            self.activity_id,
            self.lead_id,
            "" if self.http_status is None else str(self.http_status),
            escape_cell(self.error_type),
            escape_cell(message),
            str(self.attempts),
            self.finished_at or utc_now(),
        ]


def _header_line() -> str:
    return ",".join(COLUMNS) + "\n"


def _iter_records(path: Path) -> Iterator[list[str]]:
    """Records of a results file, header checked, a torn last line (no newline) dropped."""
    try:
        handle = open(path, encoding="utf-8", newline="")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise ResultsFileError(f"{path}: cannot read the results file ({exc.strerror})") from None
    with handle:
        header = handle.readline()
        if not header:
            return
        if header.rstrip("\r\n") != ",".join(COLUMNS):
            raise ResultsFileError(
                f"{path}: not an lsq-import results file (unexpected header); "
                "pass another --results file"
            )
        for number, line in enumerate(handle, start=2):
            if not line.endswith("\n"):
                return  # torn by a crash mid-write: that event never completed
            try:
                cells = next(csv.reader([line]))
                int(cells[0])
            except (csv.Error, StopIteration, ValueError, IndexError):
                raise ResultsFileError(
                    f"{path}: line {number} is damaged; fix or remove that line and run again"
                ) from None
            if len(cells) != len(COLUMNS):
                raise ResultsFileError(
                    f"{path}: line {number} has {len(cells)} cells, expected {len(COLUMNS)}"
                )
            yield cells


def read_outcomes(path: Path) -> dict[int, str]:
    """The latest status of every row in a results file; ``sending`` becomes ``unknown``.

    An absent or empty file means no row was attempted yet.
    """
    if not path.exists():
        return {}
    statuses: dict[int, str] = {}
    for cells in _iter_records(path):
        statuses[int(cells[0])] = cells[2]
    for row, status in statuses.items():
        if status == SENDING:
            statuses[row] = UNKNOWN
    return statuses


class Journal:
    """Appends results to the results file during a run, then rewrites it in order."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fsync_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self.fsync_interval = fsync_interval
        self._clock = clock
        self._handle: io.TextIOWrapper | None = None
        self._writer: csv.writer | None = None  # type: ignore[valid-type]
        self._last_sync = 0.0

    def open(self) -> None:
        """Open for appending; writes the header into a new file, drops a torn last line."""
        if not self.path.parent.is_dir():
            raise ResultsFileError(
                f"{self.path}: the folder {str(self.path.parent)!r} does not exist"
            )
        try:
            self._drop_torn_tail()
            handle = open(self.path, "a", encoding="utf-8", newline="")  # noqa: SIM115
        except OSError as exc:
            raise ResultsFileError(
                f"{self.path}: cannot write the results file ({exc.strerror})"
            ) from None
        if handle.tell() == 0:
            handle.write(_header_line())
            handle.flush()
        self._handle = handle
        self._writer = csv.writer(handle, lineterminator="\n")
        self._last_sync = self._clock()

    def _drop_torn_tail(self) -> None:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb+") as handle:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) == b"\n":
                return
            # Walk back to the last newline and cut there.
            size = handle.seek(0, os.SEEK_END)
            block = 4096
            pos = size
            while pos > 0:
                start = max(0, pos - block)
                handle.seek(start)
                chunk = handle.read(pos - start)
                cut = chunk.rfind(b"\n")
                if cut >= 0:
                    handle.truncate(start + cut + 1)
                    return
                pos = start
            handle.truncate(0)

    def record(self, result: Result) -> None:
        """Append one event and flush it to the OS (fsync at intervals)."""
        assert self._handle is not None and self._writer is not None, "journal not open"
        self._writer.writerow(result.cells())
        self._handle.flush()
        now = self._clock()
        if now - self._last_sync >= self.fsync_interval:
            os.fsync(self._handle.fileno())
            self._last_sync = now

    def close(self) -> None:
        """Flush and fsync; the file stays a valid journal even without :meth:`finalize`."""
        if self._handle is None:
            return
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        self._handle = self._writer = None

    def finalize(self) -> Counter[str]:
        """Rewrite the file atomically: one line per row, latest outcome, in row order.

        Returns the count of rows by final status.
        """
        self.close()
        latest: dict[int, list[str]] = {}
        for cells in _iter_records(self.path):
            latest[int(cells[0])] = cells
        counts: Counter[str] = Counter()
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            with open(tmp, "w", encoding="utf-8", newline="") as out:
                writer = csv.writer(out, lineterminator="\n")
                out.write(_header_line())
                for row in sorted(latest):
                    cells = latest[row]
                    if cells[2] == SENDING:
                        cells[2] = UNKNOWN
                        cells[7] = NO_ANSWER
                    counts[cells[2]] += 1
                    writer.writerow(cells)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            raise ResultsFileError(
                f"{self.path}: cannot rewrite the results file ({exc.strerror}); "
                "the journal as written is intact"
            ) from None
        _fsync_dir(self.path.parent)
        return counts


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
