"""The errors file: the input rows a run did not get in, in the input's own columns.

``lsq-import report RESULTS --errors-csv FILE`` (and ``run ... --errors-csv FILE`` at the end
of a run) writes the input's rows of the chosen statuses (``failed``, ``invalid`` and
``unknown`` by default) as the input holds them: its header, each cell as the reader renders
it (an Excel sheet's cells too: the file is always CSV), then :data:`ERROR_COLUMNS`. UTF-8
with a byte-order mark, so that Excel shows accents; every cell formula-escaped as in the
results file (:func:`~.journal.escape_cell`). Corrected in a spreadsheet and saved as CSV or
XLSX, it imports with the same mapping into a new results file: the mapping reads none of
the ``lsq_`` columns, and the reader knows the file by them (:func:`is_errors_file`), so it
undoes the escaping and reads a cell rendered as an Excel date cell was as a date cell again.

The rows are read back from the input file the results metadata names, refused unless it is
the very file the run read (its SHA-256), with the reader settings the run used. Nothing is
held per input row: the results file is scanned once for the byte offset of each wanted
row's latest line (8 bytes a row, as ``report --status`` does), then the input is read once,
in step with those lines (both are in row order), and the file written as it goes.
"""

from __future__ import annotations

import contextlib
import csv
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exceptions import ConfigError, InputFileError, ResultsFileError
from .fingerprint import Fingerprints, file_digest, meta_path
from .journal import _STATUS_CODES, NO_ANSWER, escape_cell, unescape_cell
from .lock import lock_path
from .report import _latest_offsets, _lines_at
from .status import FINAL_STATUSES, Status

if TYPE_CHECKING:  # the reader is imported when a file is read back
    from ..reader import InputFile

ERROR_COLUMNS = ("lsq_row", "lsq_status", "lsq_error_type", "lsq_error_message")
"""The columns an errors file adds after the input's own: the row's number in the original
input (kept from an errors file's own ``lsq_row`` when that is what was imported), its
status, error type and message."""

DEFAULT_STATUSES = (Status.FAILED, Status.INVALID)
"""Not ``unknown`` unless asked for: such a row's first call may have landed, and an errors file
is imported with a new results file that knows nothing of it (see :func:`check_not_unknown`)."""

_READ_SETTINGS = ("sheet", "encoding", "delimiter")
"""What of :attr:`Fingerprints.read_as` :func:`~importer.reader.open_input` takes."""

_UNWRITABLE = re.compile("[\x00\ud800-\udfff]")
"""A NUL, or bytes the reader could not decode (lone surrogates): not text a CSV can hold."""


def is_errors_file(columns: Sequence[str]) -> bool:
    """Whether a header is an errors file's: it has one of :data:`ERROR_COLUMNS` at least (a
    user tidying the file in a spreadsheet may delete some of them)."""
    return not set(ERROR_COLUMNS).isdisjoint(columns)


UNKNOWN_IN_ERRORS_FILE = (
    "lsq_status is 'unknown': this row's first call may have landed in LeadSquared, and this "
    "results file does not know it; settle it in the original results file first (lsq-import "
    "reconcile ORIGINAL.results.csv, which every resume also does), or, once you have checked "
    "it is not in LeadSquared, change its lsq_status"
)
"""Why a row an errors file lists as ``unknown`` is not sent from there."""


@dataclass
class ErrorsCsv:
    """What :func:`write_errors_csv` wrote."""

    path: str
    input: str
    by_status: Counter[str] = field(default_factory=Counter)

    @property
    def rows(self) -> int:
        return sum(self.by_status.values())

    def to_text(self) -> str:
        """'wrote 3 rows of leads.csv to errors.csv (2 failed, 1 invalid)'."""
        counts = ", ".join(f"{self.by_status[s]} {s}" for s in FINAL_STATUSES if self.by_status[s])
        noun = "row" if self.rows == 1 else "rows"
        return f"wrote {self.rows} {noun} of {self.input} to {self.path}" + (
            f" ({counts})" if counts else " (the header only)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {"errors_csv": self.path, "input": self.input, "by_status": dict(self.by_status)}


def write_errors_csv(
    results: str | os.PathLike[str],
    output: str | os.PathLike[str],
    statuses: Iterable[str] = DEFAULT_STATUSES,
) -> ErrorsCsv:
    """Write the input rows whose latest status in ``results`` is one of ``statuses`` to
    ``output``, in the input's columns plus :data:`ERROR_COLUMNS` (see the module's doc).

    Raises :class:`ResultsFileError` for a results file without its metadata, and
    :class:`InputFileError` when the input it names is gone or changed (one line each).
    Written to a temporary file beside ``output`` first: a failure leaves no half file.

    Example::

        write_errors_csv("leads.results.csv", "leads.errors.csv", ["failed"])
    """
    results, output = Path(results), Path(output)
    wanted = {Status(s) for s in statuses}
    recorded = _metadata(results)
    source, settings = recorded_input(results, recorded)
    for kept in (source, results, meta_path(results), lock_path(results)):
        if _same_file(output, kept):
            raise ConfigError(f"--errors-csv {output}: names {kept}; choose another file")
    codes = {_STATUS_CODES[s] for s in wanted}
    if Status.UNKNOWN in wanted:
        codes.add(_STATUS_CODES[Status.SENDING])  # a journal's last word on an unknown row
    lines = _lines_at(results, _latest_offsets(results, codes))
    written = ErrorsCsv(path=str(output), input=recorded.input)
    tmp = output.with_name(f".{output.name}.tmp")
    try:
        handle = open(tmp, "w", encoding="utf-8-sig", newline="")  # noqa: SIM115
    except OSError as exc:
        raise ConfigError(f"--errors-csv {output}: cannot write ({exc.strerror})") from None
    try:
        with handle, _open(source, settings) as found:
            writer = csv.writer(handle)
            columns = [c for c in found.columns if c not in ERROR_COLUMNS]
            writer.writerow([_cell(c) for c in (*columns, *ERROR_COLUMNS)])
            again = is_errors_file(found.columns)
            for row, cells in _in_step(found, lines, results):
                status = Status(cells[2]).final
                message = NO_ANSWER if cells[2] == Status.SENDING else unescape_cell(cells[7])
                origin = row.values.get("lsq_row", "").strip() if again else ""
                writer.writerow(
                    [_cell(row.values.get(c, "")) for c in columns]
                    + [
                        origin if origin.isdigit() else str(row.number),
                        status,
                        _cell(unescape_cell(cells[6])),
                        _cell(message),
                    ]
                )
                written.by_status[status] += 1
        os.replace(tmp, output)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return written


def original_rows(results: Path, recorded: Fingerprints, wanted: Iterable[int]) -> dict[int, int]:
    """Row -> its ``lsq_row`` for the ``wanted`` rows of a results file whose input is an
    errors file (:attr:`Fingerprints.errors_file`), read back from that input (small: the rows
    that failed). Raises :class:`InputFileError` when it is gone or changed."""
    left = set(wanted)
    found: dict[int, int] = {}
    if not left:
        return found
    source, settings = recorded_input(results, recorded)
    with _open(source, settings) as rows:
        if "lsq_row" not in rows.columns:
            return found
        for row in rows.rows():
            if row.number in left:
                left.discard(row.number)
                text = row.values.get("lsq_row", "").strip()
                if text.isdigit():
                    found[row.number] = int(text)
                if not left:
                    break
    return found


def recorded_input(results: Path, recorded: Fingerprints) -> tuple[Path, dict[str, str]]:
    """The input file ``results`` was made from, checked to be that very file (its SHA-256),
    and the reader settings the run read it with (``sheet``, ``encoding``, ``delimiter``)."""
    named = recorded.read_as.get("path") or recorded.input
    tried = [Path(named), Path(recorded.input)]
    if not Path(recorded.input).is_absolute():  # a run started in the results file's folder
        tried.append(results.parent / recorded.input)
    source = next((path for path in tried if path.is_file()), None)
    if source is None:
        raise InputFileError(
            f"{results}: its input {named} cannot be read back (no such file); put the "
            "input back where the run read it"
        )
    try:
        digest = file_digest(source)
    except OSError as exc:
        raise InputFileError(f"{source}: cannot read ({exc.strerror})") from None
    if digest != recorded.input_digest:
        raise InputFileError(
            f"{source} changed since the run that wrote {results} (its SHA-256 is not the one "
            f"in {meta_path(results).name}): its rows may not be the rows numbered there; "
            "restore the file the run read"
        )
    settings = {k: v for k, v in recorded.read_as.items() if k in _READ_SETTINGS}
    return source, settings


def _metadata(results: Path) -> Fingerprints:
    if not results.exists():
        raise ResultsFileError(f"{results}: cannot read the results file (no such file)")
    recorded = Fingerprints.load(results)
    if recorded is None:
        raise ResultsFileError(
            f"{results}: no {meta_path(results).name} beside it: nothing says which input file "
            "its rows are from; put it back to write an errors file"
        )
    return recorded


def _open(source: Path, settings: dict[str, str]) -> InputFile:
    from ..reader import open_input

    return open_input(source, **settings)


def _in_step(
    found: InputFile, lines: Iterator[list[str]], results: Path
) -> Iterator[tuple[Any, list[str]]]:
    """(input row, its results line) for each wanted line, reading both in row order."""
    pending = next(lines, None)
    for row in found.rows():
        if pending is None:
            return
        if int(pending[0]) != row.number:
            if int(pending[0]) > row.number:
                continue
            break  # the input has no row of that number: said below
        yield row, pending
        pending = next(lines, None)
    if pending is not None:
        raise InputFileError(
            f"{results}: row {pending[0]} is not a row of {found.path} as read now "
            "(with the settings the run recorded); the results do not belong to this input"
        )


def _cell(text: str) -> str:
    """A cell as the errors file holds it: text a CSV can hold, formula-escaped."""
    if not text.isascii():
        text = _UNWRITABLE.sub("\ufffd", text)
    elif "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    return escape_cell(text)


def _same_file(one: Path, other: Path) -> bool:
    try:
        return one.resolve() == other.resolve() or (
            one.exists() and other.exists() and os.path.samefile(one, other)
        )
    except OSError:
        return False
