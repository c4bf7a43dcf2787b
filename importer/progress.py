"""The progress bar: tqdm on stderr, only for a person watching a terminal."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

from .results.journal import FAILED, INVALID, SUCCESS, UNKNOWN, Result


def estimate_rows(path: Path) -> int | None:
    """A cheap guess of the data rows of a CSV (newlines minus the header), for the ETA.

    Quoted multi-line cells make it an over-estimate; Excel files return None (no ETA).
    """
    if path.suffix.lower() not in (".csv", ".txt", ".tsv"):
        return None
    count = 0
    last = b"\n"
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    if last != b"\n":
        count += 1
    return max(0, count - 1)


class Progress:
    """Rows done with ok/failed counts, rate and ETA. A no-op when disabled."""

    def __init__(self, *, total: int | None, enabled: bool, stream: TextIO | None = None) -> None:
        stream = stream or sys.stderr
        self.enabled = enabled
        self._ok = self._failed = 0
        self._bar = (
            tqdm(total=total, unit="row", file=stream, dynamic_ncols=True, smoothing=0.05)
            if enabled
            else None
        )

    @staticmethod
    def wanted(quiet: bool, stream: TextIO | None = None) -> bool:
        """On unless ``--quiet`` or stderr is not a terminal (cron, CI, a log file)."""
        stream = stream or sys.stderr
        return not quiet and stream.isatty()

    def skipped(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def result(self, result: Result) -> None:
        if self._bar is None:
            return
        if result.status == SUCCESS:
            self._ok += 1
        elif result.status in (FAILED, INVALID, UNKNOWN):
            self._failed += 1
        self._bar.set_postfix(ok=self._ok, failed=self._failed, refresh=False)
        self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            if self._bar.total is not None and self._bar.n < self._bar.total:
                # The estimate counted newlines inside quoted cells: end at the true count.
                self._bar.total = self._bar.n
                self._bar.refresh()
            self._bar.close()
