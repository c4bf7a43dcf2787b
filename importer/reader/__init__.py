"""Read a CSV/TSV/TXT or Excel file into numbered rows of text cells.

Every cell comes out as the text a person sees in the file, never a guessed type: ``09845098450``
keeps its leading zero, ``+91 98450 98450`` its plus, ``NA`` and ``null`` stay text, and an
empty cell is ``""``. Each :class:`Row` carries the row number a spreadsheet shows (the header
is usually row 1, the first data row row 2), so results and error messages point at the line a
person will look at. Rows whose cells are all empty are counted but not yielded.

Problems are reported at the smallest scope that is true:

* A problem with one row (more cells than the header, a stray quote that would swallow the rows
  after it, bytes that do not decode, a NUL character, a cell longer than any LeadSquared
  field) gives a :class:`Row` whose ``error`` says what is wrong, naming the line and column
  where it can; reading goes on with the next row, and the mapping turns that row into an
  ``invalid`` result. Rows before a bad one may already have been sent, so a problem found
  only when its row is reached never stops the run as if nothing had been: bytes that do not
  decode may be a wrong encoding for the whole file, but they are reported for the rows that
  hold them.
* A problem with the file (missing, binary, i.e. a NUL in the header, empty, a header that does
  not decode, a blank or duplicate header name) raises
  :class:`~importer.exceptions.InputFileError` with a one-line message, from
  :func:`open_input`: before any row is read.
* When reading cannot go on at all half-way (an I/O error from the disk or a network share),
  the row iterator raises :class:`~importer.exceptions.InputReadError`, an InputFileError
  meaning "the file broke off: the rows before were yielded" (exit 4, resumable).

The package is split by format: :mod:`.base` holds :class:`Row`, :class:`InputFile` and the
header checks both formats share, :mod:`.delimited` the CSV/TSV/TXT reader and :mod:`.excel`
the Excel reader; :func:`open_input` picks one by the file's suffix. Memory, streaming and
format details are in the docstrings of those two modules.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..exceptions import InputFileError
from .base import CSV_SUFFIXES, EXCEL_SUFFIXES, InputFile, ReadPosition, Row
from .delimited import _CsvInput
from .excel import _ExcelInput, render_cell

__all__ = [
    "CSV_SUFFIXES",
    "EXCEL_SUFFIXES",
    "InputFile",
    "ReadPosition",
    "Row",
    "open_input",
    "render_cell",
]

_SUPPORTED = ", ".join(CSV_SUFFIXES + EXCEL_SUFFIXES)


def open_input(
    path: str | os.PathLike[str],
    *,
    sheet: str | int | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    display: str | None = None,
) -> InputFile:
    """Open a CSV/TSV/TXT or Excel file, read and check its header, and return an InputFile.

    ``sheet`` (Excel only) is a sheet name or a 0-based index; a string of digits that is not a
    sheet name is taken as an index, so ``--sheet 1`` works from a command line. ``encoding``
    (CSV only) defaults to UTF-8 with or without a byte-order mark, or UTF-16 when the file
    starts with a UTF-16 byte-order mark. ``delimiter`` (CSV only) defaults to tab for ``.tsv``
    and is sniffed among ``,`` ``;`` tab ``|`` otherwise. ``display``: how messages name the
    file (default: ``path``), e.g. ``<stdin>`` for a copy of stdin (:mod:`.stdin`). Raises
    InputFileError with a one-line message.

    Example::

        with open_input("leads.xlsx", sheet="March") as f:
            print(f.columns)
    """
    p = Path(os.fspath(path))
    display = os.fspath(path) if display is None else display
    suffix = p.suffix.lower()
    if suffix not in CSV_SUFFIXES + EXCEL_SUFFIXES:
        shown = f"'{p.suffix}'" if p.suffix else "(no extension)"
        raise InputFileError(f"{display}: unsupported file type {shown} (use {_SUPPORTED})")
    if not p.exists():
        raise InputFileError(f"{display}: no such file")
    if p.is_dir():
        raise InputFileError(f"{display}: is a directory, not a file")
    if suffix in EXCEL_SUFFIXES:
        return _ExcelInput.open(p, display, sheet)
    return _CsvInput.open(p, display, encoding, delimiter)
