"""One run per results file: advisory locks on ``<results>.lock`` and on the results file.

Two runs appending to one results file would both send the rows neither has recorded yet. The
lock is an ``flock``, so the kernel releases it when its process dies (``kill -9``, a crash, a
reboot): a lock left by a dead run is simply taken over. It is held on two files:

- ``<results>.lock`` holds the owner's pid, host and start time (JSON), for the message the
  second run prints, to report a takeover, and for ``lsq-import status`` (which reads it
  without locking anything: :mod:`.live`);
- the results file itself (its inode). A lock file can be deleted from under a run, and a
  second run would then lock a new one; the results file cannot be swapped without the first
  run noticing nothing: whoever opens that name gets the inode the first run holds. The final
  rewrite replaces the inode, so the new one is locked before it takes the name
  (:meth:`ResultsLock.adopt`).

A results file created only to be locked is removed again if the run never wrote to it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from pathlib import Path
from types import TracebackType

from ..exceptions import ResultsFileError
from .journal import utc_now


def lock_path(results: Path) -> Path:
    return results.with_name(results.name + ".lock")


class ResultsLock:
    """``with ResultsLock(results):`` holds the lock for the duration of a run."""

    def __init__(self, results: Path) -> None:
        self.path = lock_path(results)
        self.results = results
        self.took_over_from: int | None = None
        self._fd: int | None = None
        self._results_fd: int | None = None
        self._created = False

    def acquire(self) -> None:
        fd = _open_locked(self.path, "create the lock file")
        if fd is None:
            fd = os.open(self.path, os.O_RDONLY)
            owner = _read_owner(fd)
            os.close(fd)
            who = f"pid {owner['pid']} on {owner['host']}" if owner else "another process"
            raise self._in_use(who)
        existed = self.results.exists()
        results_fd = _open_locked(self.results, "open the results file")
        if results_fd is None:
            os.close(fd)
            raise self._in_use(f"its lock file {self.path.name} was removed or replaced")
        self._results_fd, self._created = results_fd, not existed
        previous = _read_owner(fd)
        if previous and previous.get("pid") != os.getpid():
            self.took_over_from = int(previous["pid"])  # it died without releasing
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "since": utc_now()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(owner) + "\n").encode(), 0)
        self._fd = fd

    def _in_use(self, who: str) -> ResultsFileError:
        return ResultsFileError(
            f"{self.results} is in use by another lsq-import run ({who}); wait for it to "
            "finish or stop it, or pass another --results file"
        )

    def adopt(self, fd: int) -> None:
        """Hold the lock through ``fd`` (the rewritten results file, locked by the caller,
        about to replace the old one) instead of the old results inode."""
        old, self._results_fd, self._created = self._results_fd, fd, False
        if old is not None:
            os.close(old)

    def release(self) -> None:
        if self._results_fd is not None:
            with contextlib.suppress(OSError):
                if self._created and os.fstat(self._results_fd).st_size == 0:
                    os.unlink(self.results)  # made only to be locked: leave nothing behind
            os.close(self._results_fd)
            self._results_fd = None
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)  # an empty lock file: nobody to report as a takeover
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> ResultsLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _open_locked(path: Path, what: str) -> int | None:
    """``path`` opened (created if need be) and exclusively flocked; None if another process
    holds the lock."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ResultsFileError(f"{path}: cannot {what} ({exc.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _read_owner(fd: int) -> dict | None:
    try:
        return parse_owner(os.pread(fd, 4096, 0))
    except OSError:
        return None


def parse_owner(data: bytes) -> dict | None:
    """The owner a lock file's bytes name (``pid``, ``host``, and ``since`` when a run of this
    version wrote it), or None: empty (released), or not that JSON (torn mid-write)."""
    try:
        found = json.loads(data.decode() or "null")
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(found, dict) or "pid" not in found or "host" not in found:
        return None
    return found
