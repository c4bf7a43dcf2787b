"""Progress: the library reports events to an observer; the caller decides what to show.

:class:`RunObserver` is what ``run_import``/``validate_file`` call as rows go by. The CLI
attaches a :class:`ProgressBar` (tqdm on stderr) when a person watches a terminal; a scheduler
passes nothing (:class:`NoProgress`) or its own observer (to log, or to export metrics).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from .results.journal import Result
from .results.status import Status

if TYPE_CHECKING:
    from tqdm import tqdm


class RunObserver(Protocol):
    """Events of a run or a validation, in order: started, then skipped/settled, finished."""

    def started(self, input_path: Path) -> None:
        """Rows of ``input_path`` are about to be read."""

    def skipped(self, n: int = 1) -> None:
        """``n`` rows went by without an outcome of this run (done earlier, or validated)."""

    def settled(self, result: Result) -> None:
        """A row has its outcome for this run."""

    def finished(self) -> None:
        """The run is over (normally or not)."""


class NoProgress:
    """An observer that shows nothing."""

    def started(self, input_path: Path) -> None:
        pass

    def skipped(self, n: int = 1) -> None:
        pass

    def settled(self, result: Result) -> None:
        pass

    def finished(self) -> None:
        pass


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


def wants_bar(quiet: bool, stream: TextIO | None = None) -> bool:
    """On unless ``--quiet`` or stderr is not a terminal (cron, CI, a log file)."""
    stream = stream or sys.stderr
    return not quiet and stream.isatty()


class ProgressBar:
    """Rows done with ok/failed counts, rate and ETA: tqdm on ``stream`` (default stderr)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self._ok = self._failed = 0
        self._bar: tqdm[Any] | None = None

    def started(self, input_path: Path) -> None:
        from tqdm import tqdm as bar  # only a terminal session draws a bar

        self._bar = bar(
            total=estimate_rows(Path(input_path)),
            unit="row",
            file=self._stream,
            dynamic_ncols=True,
            smoothing=0.05,
        )

    def skipped(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def settled(self, result: Result) -> None:
        if self._bar is None:
            return
        if result.status == Status.SUCCESS:
            self._ok += 1
        elif result.status in (Status.FAILED, Status.INVALID, Status.UNKNOWN):
            self._failed += 1
        self._bar.set_postfix(ok=self._ok, failed=self._failed, refresh=False)
        self._bar.update(1)

    def finished(self) -> None:
        if self._bar is None:
            return
        if self._bar.total is not None and self._bar.n < self._bar.total:
            # The estimate counted newlines inside quoted cells: end at the true count.
            self._bar.total = self._bar.n
            self._bar.refresh()
        self._bar.close()
        self._bar = None


def observer_for(progress: bool | RunObserver | None) -> RunObserver:
    """``True``: a bar on stderr; ``False``/``None``: nothing; an observer: itself."""
    if progress is True:
        return ProgressBar()
    if progress is False or progress is None:
        return NoProgress()
    return progress
