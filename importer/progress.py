"""Progress: the library reports events to an observer; the caller decides what to show.

:class:`RunObserver` is what ``run_import``/``validate_file`` call as rows go by. The CLI
attaches a :class:`ProgressBar` (tqdm on stderr) when a person watches a terminal, else a
:class:`StopNotice` (only the line that answers a Ctrl-C; see :func:`terminal_observer`); a
scheduler passes nothing (:class:`NoProgress`) or its own observer (to log, or to export
metrics).
"""

from __future__ import annotations

import contextlib
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from .results.journal import Result
from .results.status import Status

if TYPE_CHECKING:
    from tqdm import tqdm

    from .reader import InputFile, Row


class RunObserver(Protocol):
    """Events of a run or a validation, in order: started; then counted, skipped, settled and
    stopping as they come; finished. Subclass :class:`NoProgress` to implement only some of
    them (events added later then cost nothing)."""

    def started(self, input_path: Path) -> None:
        """Rows of ``input_path`` are about to be read."""

    def counted(self, rows: int, exact: bool) -> None:
        """The input holds ``rows`` rows: ``exact`` when the reader knows (an Excel sheet, from
        the start; a CSV once read to its end), else an estimate from the share of the file
        read so far (see :func:`counted_rows`). Comes again as the estimate improves."""

    def skipped(self, n: int = 1) -> None:
        """``n`` rows went by without an outcome of this run (done earlier, before
        ``start_row``, or validated)."""

    def settled(self, result: Result) -> None:
        """A row has its outcome for this run."""

    def stopping(self, calls_in_flight: int, again: str) -> None:
        """A Ctrl-C or SIGTERM asked the run to stop: no new call starts, ``calls_in_flight``
        calls still await their answers, and ``again`` (``"Ctrl-C"``, ``"SIGTERM"``) once more
        stops at once (those calls are then ``unknown``). Called from the run's event loop: it
        must not block."""

    def finished(self) -> None:
        """The run is over (normally or not)."""


class NoProgress:
    """An observer that shows nothing: the base to subclass for an observer of a few events."""

    def started(self, input_path: Path) -> None:
        pass

    def counted(self, rows: int, exact: bool) -> None:
        pass

    def skipped(self, n: int = 1) -> None:
        pass

    def settled(self, result: Result) -> None:
        pass

    def stopping(self, calls_in_flight: int, again: str) -> None:
        pass

    def finished(self) -> None:
        pass


def listens(observer: RunObserver, event: str) -> bool:
    """Whether ``observer`` does anything on ``event``: it has the method (an observer
    written before the event existed does not) and it is not :class:`NoProgress`'s no-op. A
    loop run for every row leaves out the calls nobody hears."""
    method = getattr(type(observer), event, None)
    return method is not None and method is not getattr(NoProgress, event)


class CountedTo(NoProgress):
    """Hears only ``counted``: passes it to ``note`` (the results file keeps the count for
    ``lsq-import status``), then to ``observer`` if that listens."""

    def __init__(self, note: Callable[[int, bool], None], observer: RunObserver) -> None:
        self.note = note
        self.observer = observer if listens(observer, "counted") else None

    def counted(self, rows: int, exact: bool) -> None:
        self.note(rows, exact)
        if self.observer is not None:
            self.observer.counted(rows, exact)


# The reader's position is looked at every this many rows (a system call each time).
_SAMPLE_EVERY = 32
# The text decoder reads the file in blocks of this many bytes (TextIOWrapper's chunk), so
# the bytes read run up to one block ahead of the rows yielded: half a block on average.
_DECODER_BLOCK = 8192
# No estimate before this much is read: the read-ahead would make it too rough (up to 12.5%
# off here, and less with every block).
_FIRST_ESTIMATE_BYTES = 4 * _DECODER_BLOCK


def counted_rows(
    source: InputFile, rows: Iterable[Row], observer: RunObserver, *, before: int = 0
) -> Iterator[Row]:
    """``rows`` (of ``source``) as they are, telling ``observer`` how many rows the input holds.
    ``before``: the rows before the first of ``rows`` (a resume that starts reading part-way).

    An Excel sheet knows its count when opened: told once, exact. A CSV is estimated as it is
    read, from the rows read so far and the share of the file's bytes they took
    (:func:`estimate_rows`), and told exactly once its last row has been read. Why not count
    first: a quoted cell may span lines, so counting records is a full parse, a second one
    of a file that may hold millions of rows before the first is sent; the estimate is
    within a few per cent once a few blocks are read, and so is the ETA computed from it.
    (Bytes read are not the bar's measure itself: they run ahead of the rows settled by the
    rows read but not yet sent, up to four per call in flight.)
    """
    if source.row_count is not None:
        observer.counted(source.row_count, exact=True)
        yield from rows
        return
    read = before
    position = source.bytes_read
    for row in rows:
        read += 1
        if not read % _SAMPLE_EVERY:
            estimate = estimate_rows(read, position())
            if estimate is not None:
                observer.counted(estimate, exact=False)
        yield row
    observer.counted(read, exact=True)


def estimate_rows(rows_read: int, position: tuple[int, int] | None) -> int | None:
    """The rows of a file of which ``rows_read`` took ``position`` = (bytes read, size), if the
    rest has as many bytes per row: half a decoder block is taken off the bytes read (the
    average read-ahead). None until 32 KiB are read, or when the position is not known (a
    pipe)."""
    if position is None or rows_read <= 0:
        return None
    done, size = position
    if done < _FIRST_ESTIMATE_BYTES:
        return None
    return round(rows_read * size / (done - _DECODER_BLOCK // 2))


def wants_bar(quiet: bool, stream: TextIO | None = None) -> bool:
    """On unless ``--quiet`` or stderr is not a terminal (cron, CI, a log file)."""
    stream = stream or sys.stderr
    return not quiet and stream.isatty()


def stop_notice(calls_in_flight: int, again: str) -> str:
    """What a person who pressed Ctrl-C is told at once (the calls may take seconds)."""
    if calls_in_flight == 0:
        return f"stopping: no call in flight; {again} again to stop now"
    calls = "1 call" if calls_in_flight == 1 else f"{calls_in_flight} calls"
    return f"stopping: finishing {calls} in flight; {again} again to stop now"


class StopNotice(NoProgress):
    """No bar; only the :func:`stop_notice` line on ``stream`` (default stderr) when a run is
    asked to stop: what the CLI shows with ``--quiet`` or without a terminal."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def stopping(self, calls_in_flight: int, again: str) -> None:
        stream = self._stream or sys.stderr
        with contextlib.suppress(OSError, ValueError):  # a closed stderr: nobody to tell
            stream.write(stop_notice(calls_in_flight, again) + "\n")
            stream.flush()


# tqdm's default layout, with "~" before a total that is an estimate.
_ESTIMATED = "{l_bar}{bar}| {n_fmt}/~{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"


class ProgressBar(NoProgress):
    """Rows done of the input's rows, with ok/failed/invalid counts, rate and ETA: tqdm on
    ``stream`` (default stderr).

    The total is exact for an Excel sheet and, once read to its end, a CSV; before that a
    CSV's is an estimate, shown as ``~620`` (see :func:`counted_rows`). A run that stops early
    (Ctrl-C, ``--limit``, a budget) ends the bar where it stopped, not at 100%.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self._counts: Counter[Status] = Counter()
        self._bar: tqdm[Any] | None = None

    def started(self, input_path: Path) -> None:
        from tqdm import tqdm as bar  # only a terminal session draws a bar

        self._counts = Counter()
        self._bar = bar(
            total=None,
            unit="row",
            file=self._stream,
            dynamic_ncols=True,
            smoothing=0.05,
        )
        self._bar.set_postfix(self._postfix(), refresh=False)

    def counted(self, rows: int, exact: bool) -> None:
        if self._bar is not None:
            self._bar.total = rows
            self._bar.bar_format = None if exact else _ESTIMATED

    def skipped(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def settled(self, result: Result) -> None:
        if self._bar is None:
            return
        self._counts[result.status] += 1
        self._bar.set_postfix(self._postfix(), refresh=False)
        self._bar.update(1)

    def _postfix(self) -> dict[str, int]:
        counts = self._counts
        shown = {
            "ok": counts[Status.SUCCESS],
            "failed": counts[Status.FAILED],
            "invalid": counts[Status.INVALID],
        }
        # rare ones only when they happen: the bar has a terminal's width
        for status in (Status.UNKNOWN, Status.SKIPPED):
            if counts[status]:
                shown[str(status)] = counts[status]
        return shown

    def stopping(self, calls_in_flight: int, again: str) -> None:
        from tqdm import tqdm as bar

        with contextlib.suppress(OSError, ValueError):
            # above the bar, which is drawn again below it
            bar.write(stop_notice(calls_in_flight, again), file=self._stream)

    def finished(self) -> None:
        if self._bar is None:
            return
        self._bar.close()
        self._bar = None


def terminal_observer(quiet: bool, stream: TextIO | None = None) -> RunObserver:
    """What the CLI shows on stderr: a :class:`ProgressBar` in a terminal unless ``quiet``,
    else only the :class:`StopNotice`."""
    if wants_bar(quiet, stream):
        return ProgressBar(stream)
    return StopNotice(stream)


def observer_for(progress: bool | RunObserver | None) -> RunObserver:
    """``True``: a bar on stderr; ``False``/``None``: nothing; an observer: itself."""
    if progress is True:
        return ProgressBar()
    if progress is False or progress is None:
        return NoProgress()
    return progress
