"""One quota per account on one machine: the slot schedule shared by every process.

The single-process pacer (:mod:`importer.sending.pacer`) is safe because a call goes out only
through one of ``rate`` slots, and a slot is reused only ``per`` seconds (plus a margin) after
its last call's answer came back: that call arrived before its answer left, so any window of
``per`` seconds at the server holds at most one arrival per slot. Three processes with a pacer
each would hold ``3 * rate`` slots between them; :class:`SharedPacer` makes them share ``rate``.

The slots live in a small file beside the ledger (``<ledger>.pacing-calls``, and
``.pacing-bulk`` for bulk calls): each slot's reopening time and holder ``(pid, start)``, read
and written under an exclusive ``flock``. A process takes a free slot whose reopening time has
passed (and marks it held by itself), sends, and writes the slot's reopening time, ``per``
after the answer, when it is released; without an answer, ``2 * per`` (the request may still
be on its way). Each process still applies its own pacer first (spacing, the closure after a
429, a learnt limit): the shared slot is taken on top, so it can only delay calls.

Why it holds across processes: the reopening times are on ``CLOCK_MONOTONIC``
(``time.monotonic()`` on Linux), one clock for every process on the machine, so a slot's
"``per`` after the answer" means the same instant to all of them; every call of every process
goes through one of the file's ``rate`` slots, under the same rule as the single pacer, so the
same argument bounds what all of them together put into any window.

A process killed with a slot held leaves the record naming it: whoever next reads the file and
finds that process gone (its pid no longer runs with that start time) reopens the slot ``2 *
per`` from then, as for a call without an answer: the dead process's call was sent before it
died. A reopening time later than ``now + 2 * per`` cannot have been written on this boot (the
monotonic clock restarts at boot) and is brought back to that bound. Each change is a
``pwrite`` or two under the lock (see :class:`SharedSlots` for their order); a torn file (a
different size, a bad header) is rewritten with every slot closed for ``2 * per``, the safe side.

The first process to open the file sets its ``rate``; a later one with another ``rate`` goes by
the file's while any slot is in use (and says so), else rewrites it with its own.
:func:`share` attaches the slots to a :class:`importer.sending.pacer.Pacer`, whose slots then
take a shared one each.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import logging
import math
import os
import struct
import time
from pathlib import Path
from typing import Any

from ..sending.pacer import Pacer
from .claimant import process_start

logger = logging.getLogger("lsq_import")

_HEADER = struct.Struct("<8sid")
_MAGIC = b"LSQPACE2"
_HOLDER = struct.Struct("<qq")
_HELD = math.inf
"""A held slot's reopening time in the file (its holder is named beside it)."""


class SharedSlots:
    """``rate`` slots in ``path``, shared by the processes that open it.

    The file: a header (magic, rate, per), then ``rate`` reopening times (doubles, ``inf``
    while held), then ``rate`` holders ``(pid, start)``. A free slot is found with ``min``
    over the times (C speed: taking a slot costs microseconds at any rate); holders are
    looked at only when no slot is free, to find those held by a process that died. A slot
    is taken by writing its holder, then ``inf``; released by writing its time, then clearing
    the holder: a process killed between the two leaves either a free slot (it never sent)
    or a held one without a holder, which is reopened like a dead holder's."""

    def __init__(self, path: str | os.PathLike[str], rate: int, per: float) -> None:
        self.path = Path(path)
        self.per = float(per)
        self.margin = max(0.01, 0.005 * self.per)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        self._pid = os.getpid()
        self._start = max(0, process_start(self._pid))
        self._alive: dict[tuple[int, int], tuple[bool, float]] = {}
        self._looked = 0.0
        with self._locked():
            self.rate = self._init(rate)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)

    @contextlib.contextmanager
    def _locked(self) -> Any:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _size(self, rate: int) -> int:
        return _HEADER.size + rate * (8 + _HOLDER.size)

    def _read(self) -> tuple[int, float, array.array[float], bytes] | None:
        head = os.pread(self._fd, _HEADER.size, 0)
        if len(head) < _HEADER.size:
            return None
        magic, rate, per = _HEADER.unpack(head)
        if magic != _MAGIC or rate < 1:
            return None
        data = os.pread(self._fd, self._size(rate) + 1, 0)
        if len(data) != self._size(rate):
            return None
        times = array.array("d")
        times.frombytes(data[_HEADER.size : _HEADER.size + 8 * rate])
        return rate, per, times, data[_HEADER.size + 8 * rate :]

    def _write_all(self, rate: int, per: float, reopens: float) -> None:
        data = (
            _HEADER.pack(_MAGIC, rate, per)
            + array.array("d", [reopens] * rate).tobytes()
            + _HOLDER.pack(0, 0) * rate
        )
        os.ftruncate(self._fd, len(data))
        os.pwrite(self._fd, data, 0)

    def _write_time(self, index: int, reopens: float) -> None:
        os.pwrite(self._fd, struct.pack("<d", reopens), _HEADER.size + 8 * index)

    def _write_holder(self, index: int, pid: int, start: int) -> None:
        offset = _HEADER.size + 8 * self.rate + _HOLDER.size * index
        os.pwrite(self._fd, _HOLDER.pack(pid, start), offset)

    def _init(self, rate: int) -> int:
        now = time.monotonic()
        found = self._read()
        if found is None:
            size = os.fstat(self._fd).st_size
            # Torn or foreign: every slot closed for two windows (a call may be out).
            self._write_all(rate, self.per, now + 2 * self.per if size else 0.0)
            return rate
        old_rate, old_per, times, _ = found
        if old_rate == rate:
            return rate
        if any(t > now for t in times):  # held, or used within the last window
            logger.warning(
                "%s: other lsq-import processes share this account's pacing at %d calls per "
                "window (this one was given %d): going by theirs",
                self.path.name,
                old_rate,
                rate,
            )
            self.per = max(self.per, old_per)
            return old_rate
        self._write_all(rate, self.per, 0.0)
        return rate

    def _holder_alive(self, pid: int, start: int, now: float) -> bool:
        if pid == self._pid and start == self._start:
            return True
        if not pid:
            return False  # torn: held with no holder written
        known = self._alive.get((pid, start))
        if known is not None and now - known[1] < 0.1:
            return known[0]
        found = process_start(pid)
        alive = found >= 0 and (found == 0 or start == 0 or found == start)
        self._alive[(pid, start)] = (alive, now)
        return alive

    def take(self) -> tuple[int, float]:
        """``(index, reopens)`` of a slot now held by this process, or ``(-1, when)``: none
        is free before ``when`` (monotonic)."""
        now = time.monotonic()
        bound = now + 2 * self.per + self.margin
        with self._locked():
            found = self._read()
            if found is None or found[0] != self.rate:
                self.rate = self._init(self.rate)
                found = self._read()
                assert found is not None
            _, _, times, holders = found
            soonest = min(times)
            if soonest > bound and soonest != _HELD:
                # Written before this boot (the monotonic clock restarts): bring them back.
                for index, reopens in enumerate(times):
                    if bound < reopens < _HELD:
                        times[index] = bound
                        self._write_time(index, bound)
                soonest = min(times)
            if soonest <= now:
                index = times.index(soonest)
                self._write_holder(index, self._pid, self._start)
                self._write_time(index, _HELD)
                return index, soonest
            if _HELD in times and now - self._looked >= 0.1:
                # No slot free: any held by a process that died?
                self._looked = now
                for index, (pid, start) in enumerate(_HOLDER.iter_unpack(holders)):
                    if times[index] == _HELD and not self._holder_alive(pid, start, now):
                        times[index] = bound  # its call may still be on its way
                        self._write_time(index, bound)
                        self._write_holder(index, 0, 0)
                soonest = min(times)
        if soonest == _HELD or _HELD in times:
            # A slot held now reopens no earlier than a window from now.
            soonest = min(soonest, now + self.per + self.margin)
        return -1, soonest

    def release(self, index: int, answered_at: float | None) -> None:
        """The call through slot ``index`` is over: it reopens ``per`` after ``answered_at``
        (monotonic), or ``2 * per`` from now when there was no answer."""
        base = answered_at if answered_at is not None else time.monotonic() + self.per
        with self._locked():
            self._write_time(index, base + self.per + self.margin)
            self._write_holder(index, 0, 0)

    def give_back(self, index: int, reopens: float) -> None:
        """Slot ``index`` was taken but no call left: as it was."""
        with self._locked():
            self._write_time(index, reopens)
            self._write_holder(index, 0, 0)

    def snapshot(self) -> list[tuple[float, int]]:
        """``(reopens, holder pid)`` of each slot (for tests); ``inf`` while held."""
        with self._locked():
            found = self._read()
        if found is None:
            return []
        pids = [pid for pid, _ in _HOLDER.iter_unpack(found[3])]
        return list(zip(found[2], pids, strict=True))


def share(pacer: Pacer, ledger_path: str | os.PathLike[str], kind: str) -> None:
    """Make ``pacer``'s calls also take one of the account's shared slots of ``kind``
    ("calls" or "bulk"), kept beside the ledger (once: a batch's pacer keeps them)."""
    if pacer.shared is None:
        pacer.shared = SharedSlots(f"{ledger_path}.pacing-{kind}", pacer.rate, pacer.per)
