"""The results file: one line per input row with its outcome; the run's journal while it runs.

While a run goes, every event is *appended* and flushed: first a ``sending`` line written
before a call leaves (the intent), then the outcome line when the answer is in. A crash
therefore loses nothing already decided, and a row whose last line is ``sending`` is known to
be ``unknown`` (it may have landed) rather than silently sent twice. An intent is on disk
(fsynced) before its call leaves: :meth:`Journal.durable` waits for that, and one fsync serves
every intent written meanwhile (group commit), so calls that start together cost one fsync, run
in a worker thread so the event loop keeps going. Outcome lines are fsynced every
``fsync_interval`` seconds and at the end (losing one to a power cut leaves the row
``unknown``, never sent twice). Any write error raises :class:`JournalWriteError`: the run
stops at once. A new file's folder is fsynced once its header is written: an fsynced line is
only as durable as the file's name.

When the run ends, the file is rewritten atomically (temporary file, fsync, rename, fsync of
the folder) to hold
exactly one line per attempted input row, its latest outcome, in input (row-number) order, so
it reads like the input. Resuming reads it back: rows already ``success`` are not sent again.

Cells that a spreadsheet would run as a formula (starting with ``= + - @``, tab or CR) are
written with a leading apostrophe, and a cell that starts with an apostrophe gets one more;
:func:`unescape_cell` removes exactly one, so the escaping is reversible.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import fcntl
import hashlib
import io
import os
import re
import time
import zlib
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import methodcaller
from pathlib import Path
from typing import BinaryIO

from ..exceptions import JournalWriteError, ResultsFileError
from .fingerprint import fsync_dir, size_and_sha256
from .status import FINAL_STATUSES, NotSentType, Status

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


NO_ANSWER = "sent, but no outcome was recorded (the run stopped while the call was in flight)"

MAX_ROW = 100_000_000
"""The highest row number lsq-import handles: resume keeps a byte per row, so a damaged line
naming row 99999999999 must not make it allocate 100 GB."""


def check_row_number(row: int) -> int:
    """``row`` if it can be an input row's number, else ValueError (a damaged line)."""
    if not 2 <= row <= MAX_ROW:
        raise ValueError(f"row {row} is out of range")
    return row


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")


def escape_cell(text: str) -> str:
    """Neutralise a cell a spreadsheet would evaluate; reversible with :func:`unescape_cell`."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def unescape_cell(text: str) -> str:
    """Undo :func:`escape_cell`."""
    return text[1:] if text.startswith("'") else text


MAX_MESSAGE = 2000
"""The most characters of a server's error message a results line keeps."""


def _server_cell(text: str, cap: int) -> str:
    """A server-supplied text as a results cell: one line, at most ``cap`` characters, no lone
    surrogates (a JSON ``\\udc80`` cannot be written as UTF-8), formula-escaped."""
    text = " ".join(text.split())
    if len(text) > cap:
        text = text[: cap - 1] + "…"
    if not text.isascii():
        text = text.encode("utf-8", "replace").decode("utf-8")
    return escape_cell(text)


def utc_now() -> str:
    """Now, UTC, ISO 8601 with a Z: when an outcome was recorded."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class Result:
    """One line of the results file."""

    row: int
    key: str
    status: Status
    activity_id: str = ""
    lead_id: str = ""
    http_status: int | None = None
    error_type: str = ""
    error_message: str = ""
    attempts: int = 0
    finished_at: str = ""

    def cells(self) -> list[str]:
        return [
            str(self.row),
            key_cell(self.key),
            self.status,
            # Server-supplied: one physical line, bounded, valid UTF-8 and formula-safe, or the
            # file could not be read back (a 150 kB stack trace passed the CSV field limit).
            _server_cell(self.activity_id, 200),
            _server_cell(self.lead_id, 200),
            "" if self.http_status is None else str(self.http_status),
            _server_cell(self.error_type, 200),
            _server_cell(self.error_message, MAX_MESSAGE),
            str(self.attempts),
            self.finished_at or utc_now(),
        ]

    @classmethod
    def not_sent(cls, row: int, key: str, *, skipped: bool, message: str) -> Result:
        """The line of a row recorded without a call: ``invalid`` (it could not be read or
        mapped) or ``skipped`` (a filter left it out), stamped now."""
        return cls(
            row,
            key,
            Status.SKIPPED if skipped else Status.INVALID,
            error_type=NotSentType.FILTERED if skipped else NotSentType.INVALID,
            error_message=message,
            finished_at=utc_now(),
        )


def _header_line() -> str:
    return ",".join(COLUMNS) + "\n"


_STATUS_CODES = {
    status: code for code, status in enumerate((Status.SENDING, *FINAL_STATUSES), start=1)
}
_STATUS_NAMES = {code: status for status, code in _STATUS_CODES.items()}
_SENT_AGAIN = frozenset(_STATUS_CODES[s] for s in (Status.FAILED, Status.UNKNOWN, Status.SENDING))
"""Codes of the lines after which a row may be sent again having made calls already."""
_BY_TEXT = {status.value: status for status in Status}


def _open_for_scan(path: Path) -> tuple[BinaryIO, int]:
    """Open a results file for reading, check its header; return the handle and header size."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - the caller closes it
    except OSError as exc:
        raise ResultsFileError(f"{path}: cannot read the results file ({exc.strerror})") from None
    header = handle.readline()
    if header and header.rstrip(b"\r\n") != _header_line().rstrip("\n").encode():
        handle.close()
        raise ResultsFileError(
            f"{path}: not an lsq-import results file (unexpected header); "
            "pass another --results file"
        )
    return handle, len(header)


def _row_and_status(path: Path, number: int, raw: bytes) -> tuple[int, Status]:
    """The row number and status of one line, without a full CSV parse when it can."""
    try:
        line = raw.decode("utf-8")
        first = line.index(",")
        row = check_row_number(int(line[:first]))
        if line.startswith('"', first + 1):  # a quoted key may hold commas: parse properly
            cells = next(csv.reader([line]))
            if len(cells) != len(COLUMNS):
                raise ValueError
            text = cells[2]
        else:
            second = line.index(",", first + 1)
            text = line[second + 1 : line.index(",", second + 1)]
        status = _BY_TEXT[text]
    except (ValueError, KeyError, UnicodeDecodeError, csv.Error, StopIteration):
        raise ResultsFileError(
            f"{path}: line {number} is damaged; fix or remove that line and run again"
        ) from None
    return row, status


_CODES_BY_BYTES = {status.value.encode(): code for status, code in _STATUS_CODES.items()}
_BLOCK = 1 << 20
_QUOTED_KEY = re.compile(rb'\n[^,\n]*,"')
_QUOTED_FIRST_KEY = re.compile(rb'[^,\n]*,"')
"""A line whose key cell is quoted (it may hold commas): such a block is parsed line by line.
(A search for a newline first is several times faster than a multi-line ``^``.)"""
_SPLIT_3 = methodcaller("split", b",", 3)


def _blocks(
    path: Path, start: tuple[int, int] | None = None
) -> Iterator[tuple[int, int, bytes, list[bytes]]]:
    """(first line number, byte offset of that line, the block, its complete lines without
    their newline) of each block of about a megabyte; a torn last line (no newline, left by a
    crash mid-write) is ignored: that event never completed.

    Read in large blocks and split with bytes operations: a line-by-line read of a journal of
    millions of lines costs several times as much. Each block is checked to be UTF-8 in one go
    (a line that is not is damaged, as a line-by-line decode would find).
    """
    handle, offset = _open_for_scan(path)
    number = 2
    if start is not None:  # (byte offset of a line, its line number): read from there
        offset, number = start
        handle.seek(offset)
    with handle:
        rest = b""
        while block := handle.read(_BLOCK):
            data = rest + block
            cut = data.rfind(b"\n") + 1
            if not cut:
                rest = data
                continue
            chunk, rest = data[:cut], data[cut:]
            try:
                chunk.decode("utf-8")
            except UnicodeDecodeError as exc:
                bad = number + chunk.count(b"\n", 0, exc.start)
                raise ResultsFileError(
                    f"{path}: line {bad} is damaged; fix or remove that line and run again"
                ) from None
            lines = chunk.split(b"\n")
            lines.pop()  # the empty piece after the last newline
            yield number, offset, chunk, lines
            number += len(lines)
            offset += cut


def _row_and_code(path: Path, number: int, line: bytes) -> tuple[int, int]:
    """The row number and status code of one line (without its newline, valid UTF-8): bytes
    operations for the usual line, a full CSV parse only when the key is quoted."""
    parts = line.split(b",", 3)
    try:
        if len(parts) < 4:
            raise ValueError
        row = check_row_number(int(parts[0]))
        if parts[1].startswith(b'"'):  # a quoted key may hold commas: parse properly
            row, status = _row_and_status(path, number, line)
            return row, _STATUS_CODES[status]
        return row, _CODES_BY_BYTES[parts[2]]
    except (ValueError, KeyError):
        raise ResultsFileError(
            f"{path}: line {number} is damaged; fix or remove that line and run again"
        ) from None


def _scan(path: Path) -> Iterator[tuple[int, int, int]]:
    """(row, status code, byte offset) of each complete line."""
    for number, offset, _, lines in _blocks(path):
        for line in lines:
            row, code = _row_and_code(path, number, line)
            yield row, code, offset
            number += 1
            offset += len(line) + 1


class Outcomes:
    """The latest status of each row of a results file, one byte per row.

    Compact on purpose: resuming a million-row migration must not cost a dict entry per row.
    """

    def __init__(self) -> None:
        self._codes = bytearray()
        self._attempts: array[int] | None = None
        """Row -> the ``attempts`` of its latest line, kept (two bytes a row, allocated at the
        first) for rows that line leaves to be sent again, i.e. ``failed``, ``unknown`` or
        ``sending``; stale for other rows (:meth:`attempts` looks at the status first)."""

    def set(self, row: int, status: Status, attempts: int = 0) -> None:
        if row >= len(self._codes):
            self._codes.extend(bytes(row + 1 - len(self._codes) + 1024))
        code = self._codes[row] = _STATUS_CODES[status]
        if code in _SENT_AGAIN:
            self._set_attempts(row, attempts)

    def _set_attempts(self, row: int, attempts: int) -> None:
        table = self._attempts
        if table is None:
            table = self._attempts = array("H", bytes(2 * len(self._codes)))
        if row >= len(table):
            table.frombytes(bytes(2 * (len(self._codes) - len(table))))
        table[row] = min(attempts, 0xFFFF)

    def attempts(self, row: int) -> int:
        """Calls earlier runs made for a row left ``failed`` or ``unknown`` (0 for others):
        a new call for it adds to them, so the file's ``attempts`` count every run's calls."""
        code = self._codes[row] if 0 <= row < len(self._codes) else 0
        table = self._attempts
        if code not in _SENT_AGAIN or table is None or row >= len(table):
            return 0
        return table[row]

    def get(self, row: int) -> Status | None:
        """The row's status, ``unknown`` for a row whose last line is ``sending``."""
        code = self._codes[row] if 0 <= row < len(self._codes) else 0
        if not code:
            return None
        return _STATUS_NAMES[code].final

    def counts(self) -> Counter[Status]:
        found = Counter(self._codes)
        found.pop(0, None)
        counts: Counter[Status] = Counter()
        for code, n in found.items():
            counts[_STATUS_NAMES[code].final] += n
        return counts

    def unknown_rows(self) -> array[int]:
        """The rows whose latest status is ``unknown`` (or a ``sending`` line), in order."""
        found: array[int] = array("I")
        codes = self._codes
        for code in (_STATUS_CODES[Status.UNKNOWN], _STATUS_CODES[Status.SENDING]):
            at = codes.find(code)
            while at >= 0:
                found.append(at)
                at = codes.find(code, at + 1)
        return array("I", sorted(found))

    def first_to_read(self, start: int, *, keep_unknown: bool) -> int:
        """The first row from ``start`` on that a run must read: not ``success`` (nor
        ``unknown``, when those are kept); a row past the last recorded one if there is none."""
        skip = {_STATUS_CODES[Status.SUCCESS]}
        if keep_unknown:
            skip |= {_STATUS_CODES[Status.UNKNOWN], _STATUS_CODES[Status.SENDING]}
        table = bytes(0 if code in skip else 1 for code in range(256))
        found = self._codes.translate(table).find(1, start)
        return found if found >= 0 else max(start, len(self._codes))

    def counts_between(self, start: int, stop: int) -> Counter[Status]:
        """Rows by status among rows ``start`` to ``stop - 1``."""
        counts: Counter[Status] = Counter()
        part = self._codes[start:stop]
        for code in set(part) - {0}:
            counts[_STATUS_NAMES[code].final] += part.count(code)
        return counts

    def as_dict(self) -> dict[int, Status]:
        """Row -> status, for the few rows a test or a report looks at."""
        return {row: self.get(row) for row, code in enumerate(self._codes) if code}  # type: ignore[misc]

    def __len__(self) -> int:
        return len(self._codes) - self._codes.count(0)


def read_outcomes(path: Path, open_from: tuple[int, int, int] | None = None) -> Outcomes:
    """The latest status of every row in a results file (what resume skips or sends).

    An absent or empty file means no row was attempted yet. ``open_from``: (row, byte offset,
    line number) that the final rewrite recorded (:attr:`Journal.open_from`): every row before
    that row is ``success`` in the file as rewritten, and the lines from that offset on (that
    row's and later ones, and whatever later runs appended) are read; a resume of a long
    file with its first rows done then reads only the end. The caller checks that the file's
    rewritten part is what was written (the resume check's SHA-256) before anything is sent.
    """
    outcomes = Outcomes()
    if not path.exists():
        return outcomes
    codes = outcomes._codes
    start = None
    if open_from is not None:
        first, offset, first_line = open_from
        check_row_number(first)
        codes.extend(bytes(first + 1024))
        codes[2:first] = bytes([_STATUS_CODES[Status.SUCCESS]]) * (first - 2)
        start = (offset, first_line)
    by_text = _CODES_BY_BYTES
    again = _SENT_AGAIN
    table: array[int] | None = None  # outcomes._attempts, once there is one
    for number, _, chunk, lines in _blocks(path, start):
        if _QUOTED_FIRST_KEY.match(chunk) is None and _QUOTED_KEY.search(chunk) is None:
            # The usual block: no quoted key, so the status is the third cell of every line.
            # Any surprise (too few cells, not a number, an unknown status) sends the block
            # to the exact parser below, which names the damaged line.
            try:
                for row_cell, _, status_cell, rest in map(_SPLIT_3, lines):
                    row = int(row_cell)
                    if row < 2 or row >= len(codes):
                        check_row_number(row)
                        codes.extend(bytes(row + 1 - len(codes) + 1024))
                    code = codes[row] = by_text[status_cell]
                    if code in again:
                        # attempts and finished_at, the last cells, never hold a comma.
                        attempts = int(rest.rsplit(b",", 2)[1])
                        if table is None or row >= len(table) or attempts > 0xFFFF:
                            outcomes._set_attempts(row, attempts)
                            table = outcomes._attempts
                        else:
                            table[row] = attempts
                continue
            except (ValueError, KeyError):
                pass
        for line in lines:
            row, code = _row_and_code(path, number, line)
            if row >= len(codes):
                codes.extend(bytes(row + 1 - len(codes) + 1024))
            codes[row] = code
            if code in again:
                outcomes._set_attempts(row, _attempts_cell(line))
            number += 1
    return outcomes


def _attempts_cell(line: bytes) -> int:
    """The ``attempts`` cell of a line (or of its end): the last two cells, attempts and
    finished_at, never hold a comma or a quote. 0 when it cannot be read."""
    try:
        return int(line.rsplit(b",", 2)[-2])
    except (ValueError, IndexError):
        return 0


# The data (and the size it needs to be read back) is what an intent needs on disk; the file's
# other metadata (times) is not worth a second write per group commit.
_datasync = getattr(os, "fdatasync", os.fsync)


def key_cell(key: str) -> str:
    """The ``key`` cell a row's line holds for ``key`` (one physical line, formula-escaped)."""
    return escape_cell(" ".join(key.splitlines()))


def key_digest(key_text: str) -> int:
    """A 32-bit digest of a ``key`` cell: enough to notice a row whose key changed."""
    return zlib.crc32(key_text.encode("utf-8"))


def read_success_ids(path: Path, keys: set[str]) -> set[str]:
    """The activity ids of the ``success`` lines of leads ``keys``: activities already taken
    by a row, which a reconciliation by content must not give to another (bounded by the rows
    of those leads)."""
    cells_wanted = {key_cell(key) for key in keys}
    found: set[str] = set()
    if not path.exists() or not cells_wanted:
        return found
    for _, _, _, lines in _blocks(path):
        for line in lines:
            parts = line.split(b",", 3)
            if len(parts) < 4:
                continue
            if not parts[1].startswith(b'"') and (
                parts[2] != b"success" or parts[1].decode() not in cells_wanted
            ):
                continue
            cells = next(csv.reader([line.decode("utf-8")]), [])
            if len(cells) == len(COLUMNS) and cells[2] == "success" and cells[1] in cells_wanted:
                found.add(unescape_cell(cells[3]))
    return found


def read_key_digests(path: Path) -> array[int]:
    """Row -> :func:`key_digest` of the key cell of its latest line (0: no line), 4 bytes a
    row: what a resume without metadata checks the input against."""
    digests: array[int] = array("I")
    if not path.exists():
        return digests
    handle, _ = _open_for_scan(path)
    with handle:
        for number, raw in enumerate(handle, start=2):
            if not raw.endswith(b"\n"):
                break
            row, _ = _row_and_status(path, number, raw)
            cells = next(csv.reader([raw.decode("utf-8")]))
            if row >= len(digests):
                digests.extend([0] * (row + 1 - len(digests) + 1024))
            digests[row] = key_digest(cells[1]) if cells[1] else 0
    return digests


class Journal:
    """Appends results to the results file during a run, then rewrites it in order."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fsync_interval: float = 1.0,
        commit_window: float = 0.002,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self.fsync_interval = fsync_interval
        self.commit_window = commit_window
        """Seconds an intent waits for others to share its fsync (a few ms: calls take
        hundreds)."""
        self._clock = clock
        self._handle: io.TextIOWrapper | None = None
        self._writer: csv.writer | None = None  # type: ignore[valid-type]
        self._written = 0  # lines appended so far
        self._synced = 0  # lines known to be on disk
        self._syncing: asyncio.Future[None] | None = None
        self.failed: JournalWriteError | None = None
        """The write error that stopped the run, if any (the file is left as written)."""
        self.opened = False
        self.on_checkpoint: Callable[[int, str], None] | None = None
        """Given (bytes, SHA-256 hex of those bytes) of the file each time it was fsynced at an
        interval or at the end: what a later resume checks the file against."""
        self.on_rewrite: Callable[[int, str], None] | None = None
        """Given (bytes, SHA-256 hex) of the final rewrite, fsynced, before it takes the
        file's name."""
        self._digest = hashlib.sha256()
        self._hashed = 0  # bytes of the file that self._digest covers
        self.open_from: tuple[int, int, int] | None = None
        """After :meth:`finalize`: (row, byte offset of its line, line number) of the first row
        of the rewritten file that is not one of an unbroken run of ``success`` rows from row
        2 (not ``success``, or a gap): a resume reads the file from there
        (:func:`read_outcomes`)."""
        self._last_checkpoint = 0.0

    def continue_digest(self, digest: hashlib._Hash) -> None:
        """The SHA-256 of the file as it is now (read by the resume check), to go on from."""
        self._digest = digest
        self._hashed = self.path.stat().st_size

    @property
    def appended(self) -> int:
        """Lines this journal appended since it was opened."""
        return self._written

    @property
    def tmp_path(self) -> Path:
        """Where :meth:`finalize` writes the rewrite before it takes the file's name."""
        return self.path.with_name(f".{self.path.name}.tmp")

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
        try:
            if handle.tell() == 0:
                handle.write(_header_line())
                handle.flush()
                # A new file (made just now to be locked, or left empty): the intents fsynced
                # into it are only as durable as its name, which lives in the folder. Without
                # this, a power cut could leave their fsynced lines in a file no name points to,
                # and the rerun would send those rows again.
                os.fsync(handle.fileno())
                fsync_dir(self.path.parent)
        except OSError as exc:
            handle.close()
            raise ResultsFileError(
                f"{self.path}: cannot write the results file ({exc.strerror})"
            ) from None
        self._handle = handle
        self._writer = csv.writer(handle, lineterminator="\n")
        self.opened = True
        self._last_checkpoint = self._clock()
        if self._hashed > handle.tell():  # the torn tail was cut: hash the file again
            self._digest, self._hashed = hashlib.sha256(), 0

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
        """Append one event and flush it to the OS (outcomes are fsynced at intervals)."""
        assert self._handle is not None and self._writer is not None, "journal not open"
        if self.failed is not None:
            raise self.failed
        try:
            self._writer.writerow(result.cells())
            self._handle.flush()
            self._written += 1
            now = self._clock()
            if now - self._last_checkpoint >= self.fsync_interval:
                self._checkpoint()
                self._last_checkpoint = now
        except OSError as exc:
            raise self._failure(exc) from None

    def _checkpoint(self) -> None:
        """fsync, then tell :attr:`on_checkpoint` what the file now holds."""
        assert self._handle is not None, "journal not open"
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._synced = self._written
        if self.on_checkpoint is None:
            return
        size = self._handle.tell()
        with open(self.path, "rb") as handle:
            handle.seek(self._hashed)
            while self._hashed < size:
                block = handle.read(min(1 << 20, size - self._hashed))
                if not block:
                    break
                self._digest.update(block)
                self._hashed += len(block)
        self.on_checkpoint(self._hashed, self._digest.hexdigest())

    async def durable(self) -> None:
        """Return once every line appended so far is on disk (an intent before its call).

        Group commit: the first caller starts a sync ``commit_window`` seconds later, and every
        line appended meanwhile rides along; callers that arrive while a sync runs wait for
        the next one. The sync itself runs in a worker thread.
        """
        target = self._written
        while self._synced < target:
            if self.failed is not None:
                raise self.failed
            if self._syncing is None:
                self._syncing = asyncio.ensure_future(self._sync_soon())
            await asyncio.shield(self._syncing)

    async def _sync_soon(self) -> None:
        assert self._handle is not None, "journal not open"
        try:
            if self.commit_window > 0:
                await asyncio.sleep(self.commit_window)
            upto = self._written
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, _datasync, self._handle.fileno())
        except OSError as exc:
            raise self._failure(exc) from None
        finally:
            self._syncing = None
        self._synced = max(self._synced, upto)

    def _failure(self, exc: OSError) -> JournalWriteError:
        if self.failed is None:
            self.failed = JournalWriteError(
                f"{self.path}: cannot write the results file ({exc.strerror or exc}): the run "
                "stopped; what it recorded is kept: free space (or fix the error) and run the "
                "same command again to resume"
            )
        return self.failed

    def close(self) -> None:
        """Flush and fsync; the file stays a valid journal even without :meth:`finalize`."""
        if self._handle is None:
            return
        try:
            if self.failed is None:
                self._checkpoint()
            else:
                self._handle.flush()
                os.fsync(self._handle.fileno())
        except OSError as exc:
            raise self._failure(exc) from None
        finally:
            handle, self._handle, self._writer = self._handle, None, None
            with contextlib.suppress(OSError):  # unwritten buffer: the error above says so
                handle.close()

    def finalize(self, lock: Callable[[int], None] | None = None) -> Counter[Status]:
        """Rewrite the file atomically: one line per row, latest outcome, in row order.

        ``lock`` is given the rewritten file's descriptor, already ``flock``ed, before the file
        takes the results file's name, so the results file is never unlocked during a run.
        Returns the count of rows by final status.
        """
        self.close()
        # row -> 1 + byte offset of its latest line (0: none); 4 bytes a row below 4 GiB.
        offsets = array("I" if self.path.stat().st_size < 2**32 - 1 else "Q")
        for row, _, offset in _scan(self.path):
            if row >= len(offsets):
                offsets.frombytes(bytes((row + 1 - len(offsets) + 1024) * offsets.itemsize))
            offsets[row] = offset + 1
        counts: Counter[Status] = Counter()
        tmp = self.tmp_path
        self.open_from = None
        expected, line = 2, 2  # the next row of an unbroken run of success rows; its line
        try:
            with open(self.path, "rb") as src, open(tmp, "wb") as out:
                if lock is not None:
                    held = os.dup(out.fileno())
                    fcntl.flock(held, fcntl.LOCK_EX)
                    lock(held)
                out.write(_header_line().encode())
                for row, offset in enumerate(offsets):
                    if not offset:
                        continue
                    src.seek(offset - 1)
                    raw = src.readline()
                    _, status = _row_and_status(self.path, row, raw)
                    if status == Status.SENDING:
                        cells = next(csv.reader([raw.decode("utf-8")]))
                        cells[2], cells[7] = Status.UNKNOWN, NO_ANSWER
                        buffer = io.StringIO()
                        csv.writer(buffer, lineterminator="\n").writerow(cells)
                        raw, status = buffer.getvalue().encode("utf-8"), Status.UNKNOWN
                    counts[status] += 1
                    if self.open_from is None:
                        if row != expected or status != Status.SUCCESS:
                            self.open_from = (expected, out.tell(), line)
                        expected, line = row + 1, line + 1
                    out.write(raw)
                if self.open_from is None:
                    self.open_from = (expected, out.tell(), line)
                out.flush()
                os.fsync(out.fileno())
            if self.on_rewrite is not None:
                self.on_rewrite(*size_and_sha256(tmp))
            os.replace(tmp, self.path)
        except OSError as exc:
            raise ResultsFileError(
                f"{self.path}: cannot rewrite the results file ({exc.strerror}); "
                "the journal as written is intact"
            ) from None
        fsync_dir(self.path.parent)
        return counts
