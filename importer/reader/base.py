"""What both readers share: the :class:`Row` they yield, the :class:`InputFile` they are, the
supported suffixes, and the header checks.

It knows no format, so :mod:`.delimited` and :mod:`.excel` both build on it without importing
each other or the package that dispatches to them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from ..exceptions import InputFileError
from ..results.errors_csv import is_errors_file
from ..results.journal import unescape_cell

__all__ = ["CSV_SUFFIXES", "EXCEL_SUFFIXES", "InputFile", "ReadPosition", "Row"]

CSV_SUFFIXES = (".csv", ".txt", ".tsv")
EXCEL_SUFFIXES = (".xlsx", ".xlsm", ".xls")


@dataclass(frozen=True, slots=True)
class Row:
    """One data row of the input file."""

    number: int
    """The row number a spreadsheet shows: header is row 1, first data row is 2."""
    values: dict[str, str]
    """Column name -> cell text ("" for an empty cell). Partial when ``error`` is set."""
    error: str = ""
    """Why this row cannot be imported ("" when it can), e.g. "expected 10 cells, found 11"."""
    date_columns: frozenset[str] = frozenset()
    """The columns whose cell is a date or date-time typed in the workbook (an Excel date
    cell), not text: the reader renders those ``YYYY-MM-DD HH:MM:SS``, or ``YYYY-MM-DD`` at
    midnight, and a mapping reads them whatever its date formats say. Empty for CSV."""


@dataclass(frozen=True, slots=True)
class ReadPosition:
    """Where a record starts in a file: what a resume reads on from, without the rows before.

    Taken by the reader itself while it reads (:attr:`InputFile.positions`), so that a later
    reader of the same bytes, started there with :meth:`InputFile.rows`, numbers the rows after
    it exactly as a reader from the top would. Only valid for the same file (its SHA-256) read
    with the same settings (:attr:`InputFile.read_settings`).
    """

    row: int
    """The number of the record that starts here."""
    line: int
    """Physical lines before it (error messages name physical lines)."""
    offset: int
    """The text stream's ``tell()`` there (a byte offset for UTF-8)."""


class InputFile:
    """An opened input file: its header names and a one-shot stream of its rows.

    Use it as a context manager so file handles are closed even when the run stops early::

        with open_input("leads.csv") as f:
            for row in f.rows():
                print(row.number, row.values["email"])
    """

    path: Path
    columns: list[str]
    header_row: int
    """Row number of the header (1 unless blank rows come before it)."""
    sheet_name: str | None
    """The Excel sheet being read; None for CSV."""
    encoding: str | None
    """CSV: the encoding in use (``utf-8-sig`` is UTF-8 with or without a BOM); None for Excel."""
    delimiter: str | None
    """CSV: the delimiter in use (given, sniffed, or tab for ``.tsv``); None for Excel."""
    row_count: int | None
    """How many rows :meth:`rows` yields, when that is known before they are read: an Excel
    sheet (read whole when opened); None for CSV, which is streamed (see
    :meth:`bytes_read`)."""

    def __init__(self, path: Path, display: str, columns: list[str], header_row: int) -> None:
        self.path = path
        self.columns = columns
        self.header_row = header_row
        self.sheet_name = None
        self.encoding = None
        self.delimiter = None
        self.row_count = None
        self._display = display
        self._started = False

    def rows(self, start: ReadPosition | None = None) -> Iterator[Row]:
        """Stream the data rows in file order. May be called once: the rows are not kept.

        ``start``: a position an earlier reader of this very file took (see
        :attr:`positions`): reading begins with the record that starts there, numbered as
        always. Only a format that records positions takes one (CSV); ValueError otherwise.
        """
        if self._started:
            raise RuntimeError(f"{self._display}: rows() may be called only once")
        self._started = True
        rows = self._iter_rows_from(start) if start is not None else self._iter_rows()
        return _as_written(rows) if is_errors_file(self.columns) else rows

    def _iter_rows(self) -> Iterator[Row]:  # pragma: no cover - overridden
        raise NotImplementedError

    def _iter_rows_from(self, start: ReadPosition) -> Iterator[Row]:
        raise ValueError(f"{self._display}: this format cannot start reading part-way")

    @property
    def positions(self) -> list[ReadPosition]:
        """Record starts seen so far, a few hundred at most, spread over what was read (none
        for a format that cannot start part-way)."""
        return []

    @property
    def read_settings(self) -> str:
        """What a :class:`ReadPosition` of this reader depends on besides the file's bytes
        (format, encoding, delimiter): "" when it takes none."""
        return ""

    def bytes_read(self) -> tuple[int, int] | None:
        """(bytes of the file read so far, the file's size) while :meth:`rows` streams a file
        (CSV), to estimate how many rows it holds without a second pass; None when that is
        not known (an Excel sheet: see :attr:`row_count`; a pipe). The bytes read run up to
        8 KiB ahead of the last row yielded (the decoder reads in blocks)."""
        return None

    def close(self) -> None:
        """Release file handles; safe to call twice."""

    def __enter__(self) -> InputFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._display!r} columns={self.columns!r}>"


_RENDERED_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?: \d{2}:\d{2}:\d{2})?")
"""How the Excel reader renders a date cell (:func:`.excel.render_cell`)."""


def _as_written(rows: Iterator[Row]) -> Iterator[Row]:
    """The rows of an errors file (``report --errors-csv``) as they were before lsq-import
    wrote them: each cell formula-escaped there is unescaped, and a cell that reads as the
    Excel reader renders a date cell is a date cell again (as it was in the sheet, for a
    mapping whose formats are a person's: see :attr:`Row.date_columns`)."""
    for row in rows:
        values = {name: unescape_cell(text) for name, text in row.values.items()}
        dates = frozenset(name for name, text in values.items() if _RENDERED_DATE.fullmatch(text))
        yield Row(row.number, values, row.error, row.date_columns | dates)


# --------------------------------------------------------------------------------------------
# Header checks shared by both formats


def _check_header(
    display: str, names: list[str], where: str, label: Callable[[int], str]
) -> list[str]:
    """Strip the names and reject blanks and duplicates, naming the columns as the user sees
    them (``label(i)`` gives "4" for CSV, "D" for Excel)."""
    names = [n.strip() for n in names]
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if not name:
            raise InputFileError(
                f"{display}: {where} has a blank column name (column {label(i)}); "
                "name the column or delete it"
            )
        if name in seen:
            raise InputFileError(
                f"{display}: {where} has a duplicate column '{name}' "
                f"(columns {label(seen[name])} and {label(i)}); rename one of them"
            )
        seen[name] = i
    return names


def _is_blank(values: list[str]) -> bool:
    return not any(v.strip() for v in values)
