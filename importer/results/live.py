"""``lsq-import status``: how an import stands while it runs, read without disturbing it.

A run holds ``RESULTS.lock`` and the results file with ``flock`` (:mod:`.lock`). A status check
takes no lock at all, not even a shared one: a run starting at that moment would find the lock
taken and be refused. It only opens files read-only and reads:

- ``RESULTS.lock``: the owner's pid, host and start time. On this host ``os.kill(pid, 0)``
  says whether that process is still there (and, where ``/proc`` tells, that it is not a
  zombie, nor a later process that got the same pid); on another host it cannot be told.
  A run that ends releases the lock and empties the file; one that was killed leaves its
  owner in it.
- ``RESULTS``, the journal while a run goes: streamed in blocks of about a megabyte with the
  parser resume uses (:func:`.journal._blocks`; a torn last line, half-written, is left out
  as it is there). Each row's latest status and ``attempts`` take 3 bytes a row; the lines
  of the last minute are counted as they go by (no timestamp is kept), which gives the rate.
- ``RESULTS.meta.json``: the input, mapping and host, and the input's row count: exact once a
  run has read the input to its end, else as the running run counts it (an Excel sheet's
  exact count, a CSV's estimate from the share of its bytes read, as the progress bar shows).

Every figure is what the journal said at the moment it was read: a status is as fresh as the
run's last flushed line (each line is flushed as it is recorded).
"""

from __future__ import annotations

import calendar
import contextlib
import json
import os
import socket
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from ..exceptions import ResultsFileError
from .fingerprint import Fingerprints
from .journal import (
    _CODES_BY_BYTES,
    _STATUS_CODES,
    _STATUS_NAMES,
    MAX_ROW,
    _blocks,
    _header_line,
    _row_and_code,
)
from .lock import lock_path, parse_owner
from .status import FINAL_STATUSES, NOT_DONE, Status

WINDOW_SECONDS = 60
"""The rate is measured over the last this many seconds (or since the run started)."""
MIN_WINDOW_SECONDS = 10
"""A run younger than this has no rate yet: a few seconds of calls say little."""
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_SENDING = _STATUS_CODES[Status.SENDING]


class RunState(StrEnum):
    """Whether a run holds the results file, as far as this host can tell."""

    RUNNING = "running"
    """The lock file's owner is a live process on this host."""
    NOT_RUNNING = "not_running"
    """No run holds it: none started, one finished, or its owner is gone (killed)."""
    OTHER_HOST = "other_host"
    """The lock file names a process on another host: only that host can tell if it runs."""


@dataclass(frozen=True)
class Owner:
    """The run the lock file names (its last owner, if that one is gone)."""

    pid: int
    host: str
    since: str
    """When it took the lock, UTC ISO 8601 ("" from a run of an older version)."""
    alive: bool | None
    """Still running (None: another host, which cannot be asked)."""
    reused: bool = False
    """Not alive because its pid now belongs to a process started after it took the lock."""

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "host": self.host, "since": self.since, "alive": self.alive}


@dataclass
class RunStatus:
    """A results file's state at one moment: :func:`read_status`."""

    path: str
    checked_at: float
    """When it was read (``time.time()``)."""
    state: RunState
    owner: Owner | None
    by_status: Counter[Status] = field(default_factory=Counter)
    """Rows by their latest status; a row whose last line is ``sending`` is counted in
    :attr:`in_flight` while a run holds the file, and as ``unknown`` once none does (as the
    run's final rewrite would have said)."""
    in_flight: int = 0
    calls: int = 0
    """Calls made for these rows by every run, the calls in flight included (the latest
    ``attempts`` of each row summed, as ``report`` counts them)."""
    input_rows: int | None = None
    """The input's data rows (None: not known yet)."""
    input_rows_exact: bool = False
    """False: :attr:`input_rows` is the running run's estimate from the bytes it has read."""
    window_seconds: float | None = None
    """The span the rate was measured over (None: no rate, as no run is going, or it started
    less than ``MIN_WINDOW_SECONDS`` ago)."""
    window_calls: int = 0
    window_rows: int = 0
    """Calls made, and rows reached for the first time, in that span."""
    last_recorded: str = ""
    """The latest ``finished_at`` in the journal ("" if none)."""
    input: str = ""
    mapping: str = ""
    host: str = ""
    recorded_complete: bool | None = None
    """What the metadata says (None: no metadata beside the file)."""

    @property
    def rows(self) -> int:
        """Rows with an outcome (the ones in flight not included)."""
        return sum(self.by_status.values())

    @property
    def not_reached(self) -> int | None:
        """Rows with no line yet (None while the input's row count is not known)."""
        if self.input_rows is None:
            return None
        return max(0, self.input_rows - self.rows - self.in_flight)

    @property
    def complete(self) -> bool | None:
        """Every row of the input ended ``success`` or ``skipped`` (None: no metadata)."""
        if self.recorded_complete is None:
            return None
        if self.recorded_complete:
            return True
        done = not self.in_flight and not any(self.by_status[s] for s in NOT_DONE)
        return done and self.input_rows_exact and self.not_reached == 0

    def _per_minute(self, count: int) -> float | None:
        if not self.window_seconds:
            return None
        return round(count * 60 / self.window_seconds, 1)

    @property
    def calls_per_minute(self) -> float | None:
        return self._per_minute(self.window_calls)

    @property
    def rows_per_minute(self) -> float | None:
        """Rows reached for the first time, a minute: how fast "not reached yet" goes down."""
        return self._per_minute(self.window_rows)

    @property
    def eta_seconds(self) -> float | None:
        """Seconds until every row not reached yet is, at the current rate (None: not known,
        or no row was reached in the last minute)."""
        left, rate = self.not_reached, self.rows_per_minute
        if left is None or not rate or self.state is RunState.NOT_RUNNING:
            return None
        return round(left * 60 / rate)

    def to_dict(self) -> dict[str, Any]:
        """The status for monitoring: these keys are stable (documented in the README)."""
        eta = self.eta_seconds
        return {
            "results": self.path,
            "checked_at": _iso(self.checked_at),
            "state": self.state.value,
            "owner": self.owner.to_dict() if self.owner else None,
            "rows": self.rows,
            "in_flight": self.in_flight,
            "input_rows": self.input_rows,
            "input_rows_exact": self.input_rows_exact,
            "not_reached": self.not_reached,
            "by_status": {status.value: self.by_status[status] for status in FINAL_STATUSES},
            "calls": self.calls,
            "rate": {
                "window_seconds": self.window_seconds,
                "calls_per_minute": self.calls_per_minute,
                "rows_per_minute": self.rows_per_minute,
            },
            "eta_seconds": eta,
            "eta": _iso(self.checked_at + eta) if eta is not None else None,
            "last_recorded": self.last_recorded,
            "complete": self.complete,
            "input": self.input,
            "mapping": self.mapping,
            "host": self.host,
        }

    def write_json(self, path: str | os.PathLike[str]) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    def to_text(self) -> str:
        lines = [f"{self.path}: {self._state_text()}"]
        counts = ", ".join(f"{self.by_status[s]} {s}" for s in FINAL_STATUSES if self.by_status[s])
        extra = [f"{self.in_flight} in flight"] if self.in_flight else []
        if self.not_reached:
            extra.append(f"{self.not_reached} not reached yet")
        if self.input_rows is None:
            rows = f"{self.rows} rows"
        else:
            total = self.input_rows if self.input_rows_exact else f"~{self.input_rows}"
            share = f" ({100 * self.rows // self.input_rows}%)" if self.input_rows else ""
            rows = f"{self.rows} of {total} rows{share}"
        if self.complete:
            rows += ", complete"
        lines.append(f"{rows}: {counts or 'none yet'}" + "".join(f"; {e}" for e in extra))
        if self.input_rows is None:
            lines.append(
                "the input's row count is not known yet: a run estimates it once it has read "
                "32 KiB of a CSV, and counts it when it has read the whole input"
            )
        elif not self.input_rows_exact:
            lines.append("~: the run's estimate, from the share of the input's bytes read")
        lines.append(f"{self.calls} calls in all runs")
        lines.extend(self._rate_text())
        if self.last_recorded:
            ago = self.checked_at - (_epoch(self.last_recorded) or self.checked_at)
            lines.append(f"last line recorded {_shown(self.last_recorded)} ({_duration(ago)} ago)")
        source = [(n, v) for n, v in (("input", self.input), ("mapping", self.mapping)) if v]
        source += [("host", self.host)] if self.host else []
        if source:
            lines.append(", ".join(f"{name} {value}" for name, value in source))
        return "\n".join(lines)

    def _state_text(self) -> str:
        owner = self.owner
        if self.state is RunState.RUNNING and owner is not None:
            since = ""
            if owner.since:
                started = self.checked_at - (_epoch(owner.since) or self.checked_at)
                since = f" since {_shown(owner.since)}, {_duration(started)} ago"
            return f"running (pid {owner.pid} on {owner.host}{since})"
        if self.state is RunState.OTHER_HOST and owner is not None:
            since = f" since {_shown(owner.since)}" if owner.since else ""
            return (
                f"held by pid {owner.pid} on host {owner.host}{since}; whether it still runs "
                f"can only be checked there"
            )
        if owner is not None:  # the lock file names a process that is gone
            why = " (its number now belongs to a process started later)" if owner.reused else ""
            return (
                f"not running (pid {owner.pid} is gone{why}: it ended without finishing; "
                "the same run command resumes it)"
            )
        return "not running (no run holds it)"

    def _rate_text(self) -> list[str]:
        if self.state is RunState.NOT_RUNNING:
            return []
        if not self.window_seconds:
            return [f"rate: not known yet (measured once the run has gone {MIN_WINDOW_SECONDS} s)"]
        lines = [
            f"last {round(self.window_seconds)} s: {self.window_calls} calls, "
            f"{self.window_rows} rows reached ({self.calls_per_minute} calls, "
            f"{self.rows_per_minute} rows a minute)"
        ]
        eta = self.eta_seconds
        if self.not_reached == 0:
            lines.append("every row is reached: the run is finishing")
        elif eta is not None:
            when = _shown(_iso(self.checked_at + eta))
            lines.append(
                f"ETA {when} (in about {_duration(eta)}) for the {self.not_reached} rows not "
                "reached yet, at that rate"
                + ("" if self.input_rows_exact else " (from the estimated row count)")
            )
        elif self.input_rows is None:
            lines.append("ETA: not known until the input's row count is")
        else:
            lines.append(f"ETA: not known (no new row in the last {round(self.window_seconds)} s)")
        return lines


def read_status(path: str | os.PathLike[str], *, now: float | None = None) -> RunStatus:
    """What ``path`` (a results file) says now, and whether a run holds it, read without
    taking any lock (see the module's docstring). ``now``: the clock (``time.time()``).

    ResultsFileError for a file that does not exist (no run has started with it) or is not a
    results file.
    """
    file = Path(path)
    checked_at = time.time() if now is None else now
    owner = read_owner(file)
    if not file.exists():
        raise ResultsFileError(
            f"{file}: no such results file: no run has started with it (a run creates it when "
            "it starts); check the name, or the run's --results"
        )
    if not file.is_file():
        raise ResultsFileError(f"{file}: not a regular file, so not a results file")
    if owner is None or owner.alive is False:
        state = RunState.NOT_RUNNING
    else:
        state = RunState.RUNNING if owner.alive else RunState.OTHER_HOST
    # The rate's window: the last minute, or since the run took the lock if that is later.
    start = int(checked_at) - WINDOW_SECONDS
    if owner is not None and owner.since:
        start = max(start, _epoch(owner.since) or start)
    window = checked_at - start
    scan = _scan(file, _iso(start).encode())
    status = RunStatus(path=str(file), checked_at=checked_at, state=state, owner=owner)
    if state is not RunState.NOT_RUNNING and window >= MIN_WINDOW_SECONDS:
        status.window_seconds = round(window, 1)
        status.window_calls, status.window_rows = scan.window_calls, scan.window_rows
    for code in set(scan.codes) - {0}:
        n = scan.codes.count(code)
        if code == _SENDING and state is not RunState.NOT_RUNNING:
            status.in_flight = n
        else:
            status.by_status[_STATUS_NAMES[code].final] += n
    status.calls, status.last_recorded = scan.calls, scan.last
    try:
        recorded = Fingerprints.load(file)
    except ResultsFileError:
        recorded = None  # damaged: a run says so; the journal's figures stand
    if recorded is not None:
        status.input, status.mapping, status.host = recorded.input, recorded.mapping, recorded.host
        status.recorded_complete = recorded.complete
        if recorded.input_rows:
            status.input_rows, status.input_rows_exact = recorded.input_rows, True
        elif recorded.rows_counted:
            status.input_rows = recorded.rows_counted
            status.input_rows_exact = recorded.rows_counted_exact
    return status


def read_owner(results: Path) -> Owner | None:
    """The run ``results``' lock file names, alive or not; None when it names none (no lock
    file, or an empty one: the last run ended and released it). Read-only, no lock taken."""
    try:
        with open(lock_path(results), "rb") as handle:
            found = parse_owner(handle.read(4096))
    except OSError:
        return None
    if found is None:
        return None
    try:
        pid, host, since = int(found["pid"]), str(found["host"]), str(found.get("since") or "")
    except (TypeError, ValueError):
        return None
    if host != socket.gethostname():
        return Owner(pid, host, since, alive=None)
    alive, reused = _alive(pid, _epoch(since) if since else None)
    return Owner(pid, host, since, alive=alive, reused=reused)


def _alive(pid: int, since: int | None) -> tuple[bool, bool]:
    """(whether ``pid`` is a live process, whether it is gone because the pid was reused)."""
    if pid <= 0:
        return False, False  # 0 and -1 would signal a whole process group
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False, False
    except PermissionError:
        pass  # another user's process: it exists
    except OSError:
        return False, False
    found = _proc_stat(pid)
    if found is None:
        return True, False  # no /proc (macOS): the signal's answer is all there is
    state, started = found
    if state == "Z":
        return False, False  # dead, not yet reaped by its parent
    if since is not None and started is not None and started > since + 2:
        return False, True
    return True, False


def _proc_stat(pid: int) -> tuple[str, float | None] | None:
    """(state letter, start time as ``time.time()``) of a process, from Linux's ``/proc``;
    None where there is none."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        state, ticks = fields[0].decode(), int(fields[19])
    except (OSError, IndexError, ValueError):
        return None
    try:
        with open("/proc/stat", "rb") as handle:
            boot = next(int(line.split()[1]) for line in handle if line.startswith(b"btime "))
        return state, boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, StopIteration, ValueError, IndexError):
        return state, None


@dataclass
class _Scan:
    codes: bytearray
    calls: int
    window_calls: int
    window_rows: int
    last: str


def _scan(path: Path, cutoff: bytes) -> _Scan:
    """Each row's latest status, the calls, and the calls and new rows recorded at or after
    ``cutoff`` (a ``finished_at`` text: they compare as text), in one streaming pass."""
    codes = bytearray()
    attempts: array[int] = array("H")
    calls = window_calls = window_rows = 0
    last = b""
    with contextlib.suppress(OSError), open(path, "rb") as handle:
        head = handle.readline()
        if not head.endswith(b"\n") and _header_line().encode().startswith(head):
            return _Scan(codes, 0, 0, 0, "")  # new: its header is not (all) written yet
    by_bytes = _CODES_BY_BYTES
    for number, _, _, lines in _blocks(path):
        for line in lines:
            parts = line.split(b",", 3)
            try:
                if len(parts) < 4 or parts[1].startswith(b'"'):
                    raise ValueError  # a quoted key may hold commas: the exact parser
                row, code = int(parts[0]), by_bytes[parts[2]]
                if not 2 <= row <= MAX_ROW:
                    raise ValueError
            except (ValueError, KeyError):
                row, code = _row_and_code(path, number, line)  # or: line N is damaged
            number += 1
            # attempts and finished_at, the last two cells, never hold a comma or a quote.
            tail = line.rsplit(b",", 2)
            try:
                tried = min(int(tail[-2]), 0xFFFF)
            except (ValueError, IndexError):
                tried = 0
            if row >= len(codes):
                grow = row + 1 - len(codes) + 4096
                codes.extend(bytes(grow))
                attempts.frombytes(bytes(2 * grow))
            first = not codes[row]
            calls += tried - attempts[row]
            codes[row], attempts[row] = code, tried
            when = tail[-1]
            if when >= cutoff:
                window_calls += code == _SENDING
                window_rows += first
            if when > last:
                last = when
    text = last.decode("ascii", "replace")
    return _Scan(codes, calls, window_calls, window_rows, text if _epoch(text) else "")


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(int(epoch), UTC).strftime(_TIME_FORMAT)


def _epoch(text: str) -> int | None:
    try:
        return calendar.timegm(datetime.strptime(text, _TIME_FORMAT).timetuple())
    except ValueError:
        return None


def _shown(text: str) -> str:
    """'2026-12-02T03:11:26Z' as '2026-12-02 03:11:26 UTC'."""
    return text.replace("T", " ").replace("Z", " UTC")


def _duration(seconds: float) -> str:
    """'45 s', '12 min', '2 h 5 min', '3 days 4 h'."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} days {hours} h" if hours else f"{days} days"
