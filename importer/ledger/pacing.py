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

**Across hosts** (team mode, the PostgreSQL ledger): :class:`DatabaseSlots` keeps the same
``rate`` slots as rows of ``pacing_slots`` in the ledger's schema, one row per slot: its
reopening time, and while held, when it was taken and by whom (host, pid, start). A slot is
taken by one ``UPDATE`` of a free row whose reopening time has passed, picked with ``SELECT …
FOR UPDATE SKIP LOCKED`` (two processes never take the same row; neither waits for the
other), released by one ``UPDATE`` that sets it free to reopen ``per`` (plus the margin) after
the release, or ``2 * per`` after when the call had no answer.

Why it holds across hosts: every time in those rows is the database server's clock
(``clock_timestamp()``), never a host's, so the hosts' clocks need not agree. Take a call
through a slot and the next call through it. The first call reached LeadSquared before its
answer came back, which was before its host sent the release, which the database executed at
``r`` on its clock: the slot reopens at ``r + per``. The next call was taken by an ``UPDATE``
the database executed at ``t >= r + per`` on the same clock, before that call was sent, so it
reached LeadSquared after ``t``. Between the two arrivals lie more than ``per`` seconds
(causality orders the events; one clock measures them), so no window of ``per`` seconds at the
server holds two arrivals of one slot, and none more than ``rate`` in all. What it assumes: the
database server's clock does not step backwards (NTP slews it); the margin covers the rest.

A slot held by a process that died is reopened ``2 * per`` after it is found so: on the holder's
own host, when its pid no longer runs with that start time; from anywhere, once it was taken
more than :data:`HOLD_LIMIT` seconds ago (a call gives up after 60 s: no call is still on its
way by then). The database unreachable: taking a slot raises
:class:`importer.exceptions.LedgerWriteError` (the run stops before the call leaves, exit 4);
a release that fails leaves the slot held, reopened after the hold limit.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import logging
import math
import os
import socket
import struct
import time
from pathlib import Path
from typing import Any

from ..exceptions import LedgerWriteError
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
        old_rate, old_per, times, holders = found
        if old_rate == rate:
            return rate
        live = any(
            t == _HELD and self._holder_alive(pid, start, now)
            for t, (pid, start) in zip(times, _HOLDER.iter_unpack(holders), strict=True)
        )
        if live:  # another process is sending under the old rate
            logger.warning(
                "%s: other lsq-import processes share this account's pacing at %d calls per "
                "window (this one was given %d): going by theirs",
                self.path.name,
                old_rate,
                rate,
            )
            self.per = max(self.per, old_per)
            return old_rate
        # Nobody alive holds a slot: the new rate's slots open once the last of the old ones
        # would have (a dead holder's call may still be on its way: 2 * per from now).
        bound = now + 2 * max(self.per, old_per) + self.margin
        latest = max((bound if t == _HELD else t) for t in times)
        self._write_all(rate, self.per, latest if latest > now else 0.0)
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


HOLD_LIMIT = 300.0
"""Seconds after which a slot still held is taken for abandoned (its call long given up)."""


class DatabaseSlots:
    """``rate`` slots of ``kind`` in the ``pacing_slots`` table of the PostgreSQL ledger in
    ``schema`` (created by its migrations), over a connection of their own."""

    def __init__(
        self, conninfo: str, schema: str, kind: str, rate: int, per: float, *, shown: str = ""
    ) -> None:
        from .postgres import connect, why

        self.kind = kind
        self.per = float(per)
        self.margin = max(0.01, 0.005 * self.per)
        self._shown = shown or "the PostgreSQL ledger"
        self._schema = schema
        self._host = socket.gethostname()
        self._pid = os.getpid()
        self._start = max(0, process_start(self._pid))
        self._looked = 0.0
        self._warned = False
        try:
            self._conn = connect(conninfo, schema)
            self.rate = self._init(rate)
        except self._errors() as exc:
            raise LedgerWriteError(
                f"ledger {self._shown}: the shared pacing {why(exc)}; nothing was sent"
            ) from None

    @staticmethod
    def _errors() -> tuple[type[BaseException], ...]:
        import psycopg

        return (psycopg.Error,)

    def _init(self, rate: int) -> int:
        conn = self._conn
        with conn.transaction():
            conn.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                (_PACING_LOCK, f"{self._schema}.{self.kind}"),
            )
            found = conn.execute(
                "SELECT rate, per, extract(epoch FROM clock_timestamp())::float8 FROM pacing "
                "WHERE kind = %s",
                (self.kind,),
            ).fetchone()
            if found is not None and found[0] == rate:
                return rate
            opens = 0.0
            if found is not None:
                now = float(found[2])
                slots = conn.execute(
                    "SELECT reopens, taken_at, host, pid, start FROM pacing_slots WHERE kind = %s",
                    (self.kind,),
                ).fetchall()
                busy = any(
                    taken is not None and not self._abandoned(now, taken, host, pid, start)
                    for _, taken, host, pid, start in slots
                )
                if busy:  # another process is sending under the old rate
                    logger.warning(
                        "%s: other lsq-import processes share this account's pacing at %d "
                        "calls per window (this one was given %d): going by theirs",
                        self._shown,
                        found[0],
                        rate,
                    )
                    self.per = max(self.per, float(found[1]))
                    return int(found[0])
                # Nobody alive holds a slot: the new rate's slots open once the last of the
                # old ones would have (a dead holder's call may be on its way: 2 * per).
                bound = now + 2 * max(self.per, float(found[1])) + self.margin
                latest = max(
                    (
                        bound if taken is not None else float(reopens)
                        for reopens, taken, *_ in slots
                    ),
                    default=0.0,
                )
                opens = latest if latest > now else 0.0
                conn.execute("DELETE FROM pacing_slots WHERE kind = %s", (self.kind,))
            conn.execute(
                "INSERT INTO pacing(kind, rate, per) VALUES (%s, %s, %s) ON CONFLICT (kind) "
                "DO UPDATE SET rate = excluded.rate, per = excluded.per",
                (self.kind, rate, self.per),
            )
            conn.execute(
                "INSERT INTO pacing_slots(kind, slot, reopens) "
                "SELECT %s, n, %s FROM generate_series(0, %s - 1) AS n",
                (self.kind, opens, rate),
            )
        return rate

    def take(self) -> tuple[int, float]:
        """``(index, reopens)`` of a slot now held by this process, or ``(-1, when)``: none
        is free before ``when`` (this host's monotonic clock)."""
        try:
            return self._take()
        except self._errors() as exc:
            from .postgres import why

            raise LedgerWriteError(
                f"ledger {self._shown}: the shared pacing {why(exc)}; the run stops before "
                "its next call (nothing is lost: the results file holds every row sent; the "
                "ledger's claims on rows in flight are settled by lookups when the next run "
                "meets them)"
            ) from None

    def _take(self) -> tuple[int, float]:
        conn = self._conn
        taken = conn.execute(
            "UPDATE pacing_slots s SET taken_at = extract(epoch FROM clock_timestamp()), "
            "host = %s, pid = %s, start = %s "
            "FROM (SELECT slot, reopens FROM pacing_slots WHERE kind = %s AND taken_at IS NULL "
            "AND reopens <= extract(epoch FROM clock_timestamp()) ORDER BY reopens LIMIT 1 "
            "FOR UPDATE SKIP LOCKED) pick "
            "WHERE s.kind = %s AND s.slot = pick.slot RETURNING s.slot, pick.reopens",
            (self._host, self._pid, self._start, self.kind, self.kind),
        ).fetchone()
        if taken is not None:
            return int(taken[0]), float(taken[1])
        local = time.monotonic()
        state = conn.execute(
            "SELECT extract(epoch FROM clock_timestamp())::float8, "
            "min(reopens) FILTER (WHERE taken_at IS NULL), "
            "count(*) FILTER (WHERE taken_at IS NOT NULL) FROM pacing_slots WHERE kind = %s",
            (self.kind,),
        ).fetchone()
        assert state is not None  # an aggregate has a row
        now, soonest, held = state
        if held and local - self._looked >= 1.0:
            self._looked = local
            if self._reopen_abandoned(float(now)):
                return self._take()
        wait = self.per + self.margin if soonest is None else max(0.0, soonest - now)
        if held:
            wait = min(wait, self.per + self.margin)
        return -1, local + wait

    def _abandoned(self, now: float, taken_at: float, host: str, pid: int, start: int) -> bool:
        """Whether a slot taken at ``taken_at`` (database clock) by ``pid`` on ``host`` is
        held by nobody alive: held longer than HOLD_LIMIT, or its process gone from this
        host."""
        if now - float(taken_at) > HOLD_LIMIT:
            return True
        if host != self._host or (pid, start) == (self._pid, self._start):
            return False
        found = process_start(int(pid))
        return found < 0 or (found != 0 and start != 0 and found != start)

    def _reopen_abandoned(self, now: float) -> int:
        """Reopen (``2 * per`` from now) the slots held by processes that died; how many."""
        reopened = 0
        rows = self._conn.execute(
            "SELECT slot, taken_at, host, pid, start FROM pacing_slots "
            "WHERE kind = %s AND taken_at IS NOT NULL",
            (self.kind,),
        ).fetchall()
        for slot, taken_at, host, pid, start in rows:
            if self._abandoned(now, taken_at, host, pid, start):
                cursor = self._conn.execute(
                    "UPDATE pacing_slots SET taken_at = NULL, host = NULL, pid = NULL, "
                    "start = NULL, reopens = %s WHERE kind = %s AND slot = %s AND taken_at = %s",
                    (now + 2 * self.per + self.margin, self.kind, slot, taken_at),
                )
                reopened += cursor.rowcount
        return reopened

    def _free(self, index: int, reopens_sql: str, args: tuple[Any, ...]) -> None:
        try:
            self._conn.execute(
                "UPDATE pacing_slots SET taken_at = NULL, host = NULL, pid = NULL, start = NULL, "
                f"reopens = {reopens_sql} WHERE kind = %s AND slot = %s AND pid = %s",
                (*args, self.kind, index, self._pid),
            )
        except self._errors() as exc:
            # Left held: others reopen it after HOLD_LIMIT (the safe side); the run goes on
            # until its next take, which says what is wrong.
            if not self._warned:
                self._warned = True
                from .postgres import why

                logger.warning(
                    "ledger %s: a shared pacing slot could not be released (%s): it reopens "
                    "after %d s",
                    self._shown,
                    why(exc),
                    HOLD_LIMIT,
                )

    def release(self, index: int, answered_at: float | None) -> None:
        """The call through slot ``index`` is over: it reopens ``per`` after now (on the
        database's clock, which is after the answer), or ``2 * per`` after with no answer."""
        after = self.per + self.margin if answered_at is not None else 2 * self.per + self.margin
        self._free(index, "extract(epoch FROM clock_timestamp()) + %s", (after,))

    def give_back(self, index: int, reopens: float) -> None:
        """Slot ``index`` was taken but no call left: as it was."""
        self._free(index, "%s", (reopens,))

    def snapshot(self) -> list[tuple[float, int]]:
        """``(reopens, holder pid)`` of each slot (for tests); ``inf`` while held."""
        rows = self._conn.execute(
            "SELECT reopens, taken_at, pid FROM pacing_slots WHERE kind = %s ORDER BY slot",
            (self.kind,),
        ).fetchall()
        return [(math.inf if t is not None else float(r), int(p or 0)) for r, t, p in rows]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.close()


_PACING_LOCK = 0x4C5352
"""The first key of the advisory lock under which a kind's slots are (re)made."""


def share(pacer: Pacer, ledger: Any, kind: str) -> None:
    """Make ``pacer``'s calls also take one of the account's shared slots of ``kind``
    ("calls" or "bulk"), kept with the ``ledger`` (:meth:`Ledger.shared_schedule`: a file
    beside an SQLite ledger, a table of a PostgreSQL one); once: a batch's pacer keeps them."""
    if pacer.shared is None:
        pacer.shared = ledger.shared_schedule(kind, pacer.rate, pacer.per)
