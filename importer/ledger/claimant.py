"""Who holds a claim, and whether it is still alive.

A claimant is one lsq-import process: its host name, process id and the process's start time
(from ``/proc`` on Linux, so a recycled pid is not taken for the process that died). On the
claimant's own host, a claim is live while that process runs; a claim by a process on another
host (a ledger on a shared disk, or the PostgreSQL ledger of team mode) is live while its
heartbeat is younger than the lease.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass


def process_start(pid: int) -> int:
    """The start time of process ``pid`` in clock ticks since boot (Linux), 0 when not known,
    -1 when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            text = stat.read()
    except FileNotFoundError:
        return -1 if os.path.isdir("/proc/self") else _exists(pid)
    except OSError:
        return _exists(pid)
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = text[text.rfind(b")") + 2 :].split()
    try:
        return int(fields[19])  # field 22 of the whole line: starttime
    except (IndexError, ValueError):
        return 0


def _exists(pid: int) -> int:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return -1
    except PermissionError:
        return 0
    return 0


@dataclass(frozen=True)
class Claimant:
    """One process, as claims name it."""

    host: str
    pid: int
    start: int

    @classmethod
    def this_process(cls) -> Claimant:
        pid = os.getpid()
        return cls(socket.gethostname(), pid, max(0, process_start(pid)))

    def alive(
        self,
        heartbeat: float | None = None,
        lease: float = 600.0,
        *,
        clock: Callable[[], float] = time.time,
    ) -> bool:
        """Whether the process still runs: checked directly on this host; elsewhere, by a
        heartbeat younger than ``lease`` seconds by ``clock`` (default: this host's wall
        clock; the PostgreSQL ledger passes the database's, the clock its heartbeats are
        written on, so that the hosts' clocks need not agree), read only then."""
        if self.host == socket.gethostname():
            start = process_start(self.pid)
            if start < 0:
                return False
            return start == 0 or self.start == 0 or start == self.start
        if heartbeat is None:
            return False
        return clock() - heartbeat < lease

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host}"
