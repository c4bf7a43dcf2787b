"""The Excel reader (``.xlsx``, ``.xlsm``, ``.xls``) over python-calamine, and :func:`render_cell`.

Memory and streaming: Excel files (``.xlsx``, ``.xlsm``, ``.xls``) are read with
python-calamine. Calamine loads the whole sheet into (Rust) memory when the sheet is opened;
only the conversion to Python text is done row by row. A sheet of a million rows therefore costs
its full size in memory: export such a sheet to CSV instead. Calamine fills the whole grid from
the first to the last used cell, so an ``.xlsx``/``.xlsm`` sheet spanning more than
:data:`~.sheetxml.MAX_SHEET_CELLS` cells (20,000,000, about 650 MB there) is refused before it
is loaded, with an InputFileError naming the sheet and its extent: one cell at ``XFD1048576``
would otherwise make calamine abort the process (see :mod:`.sheetxml`). ``.xls`` sheets are not
checked: BIFF8 allows 65,536 x 256 cells (about 1 GB in calamine), but a crafted file with a
column number past 255 still aborts it. Dates in workbooks using the 1904 date system come out
right.

Excel errors and formulas: calamine gives ``""`` for a cell holding an Excel error (``#N/A``,
``#DIV/0!``...) and for a formula whose value was never saved, as for an empty cell. In an
``.xlsx``/``.xlsm`` sheet such cells are found in the sheet's XML (see :mod:`.sheetxml`) and
make their row an error row naming them ("C14: the cell holds the Excel error #N/A"), even a
row that holds nothing else; in the header they are a file error. In an ``.xls`` sheet they
cannot be told from empty cells. A formula whose saved value is wrong (xlsxwriter saves 0 for
every formula it does not calculate) cannot be told from a right one.

Why calamine directly and not ``pandas.read_excel(engine="calamine")``: pandas drops the empty
rows above the header (losing the real Excel row numbers), turns booleans into ``True`` and dates
at midnight into ``... 00:00:00``, while the raw calamine values let this module render each
cell exactly as described in :func:`render_cell`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from pathlib import Path

import python_calamine

from ..exceptions import InputFileError
from .base import InputFile, Row, _check_header, _is_blank
from .sheetxml import check_sheet, sheet_problems

__all__ = ["render_cell"]


def _column_letter(index: int) -> str:
    """0-based column index -> Excel letters (0 -> A, 27 -> AB)."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(ord("A") + rem) + letters
    return letters


_HALF_SECOND = dt.timedelta(microseconds=500_000)


def render_cell(value: object) -> str:
    """Render a calamine cell value as the text a person expects to see.

    Integral numbers without ``.0`` (a phone typed as a number: ``9845098450``), other numbers
    in shortest round-trip form (``1499.5``), date-times as ``YYYY-MM-DD HH:MM:SS`` (rounded to
    the second; ``YYYY-MM-DD`` at midnight), times as ``HH:MM:SS``, durations as ``H:MM:SS``,
    booleans as ``TRUE``/``FALSE``, empty cells as ``""``, strings as stored. (calamine gives
    ``""`` for an error cell too: the reader finds those in the sheet's XML instead.)
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):  # before int: bool is an int
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # 1e21 is where repr() switches to exponent form for integers; beyond that digits
        # would be invented anyway.
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    if isinstance(value, dt.datetime):
        # Excel stores a date-time as a float of days: 14:30 can come back as 14:29:59.999999.
        if value.microsecond:
            value = (value + _HALF_SECOND).replace(microsecond=0)
        # isoformat, not strftime: the same text (years zero-padded) at a seventh of the cost.
        if not (value.hour or value.minute or value.second):
            return value.date().isoformat()
        return value.isoformat(" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.time):
        full = dt.datetime.combine(dt.date(2000, 1, 1), value) + dt.timedelta(microseconds=500_000)
        return full.strftime("%H:%M:%S")
    if isinstance(value, dt.timedelta):
        seconds = round(value.total_seconds())
        sign = "-" if seconds < 0 else ""
        hours, rest = divmod(abs(seconds), 3600)
        return f"{sign}{hours}:{rest // 60:02d}:{rest % 60:02d}"
    return str(value)


class _ExcelInput(InputFile):
    def __init__(
        self,
        path: Path,
        display: str,
        columns: list[str],
        header_row: int,
        workbook: python_calamine.CalamineWorkbook,
        rows_after_header: Iterator[tuple[int, Sequence[object]]],
        sheet_name: str,
        problems: _ProblemRows,
    ) -> None:
        super().__init__(path, display, columns, header_row)
        self.sheet_name = sheet_name
        self._workbook: python_calamine.CalamineWorkbook | None = workbook
        self._rows_after_header = rows_after_header
        self._problems = problems

    @classmethod
    def open(cls, p: Path, display: str, sheet: str | int | None) -> _ExcelInput:
        try:
            workbook = python_calamine.CalamineWorkbook.from_path(str(p))
        except python_calamine.PasswordError as exc:
            raise InputFileError(
                f"{display}: the workbook is password-protected; save a copy without a "
                "password or export the sheet to CSV"
            ) from exc
        except OSError as exc:
            raise InputFileError(f"{display}: cannot read: {exc.strerror or exc}") from exc
        except Exception as exc:  # calamine raises several unrelated types for a bad file
            raise InputFileError(
                f"{display}: cannot read as an Excel workbook ({' '.join(str(exc).split())}); "
                "open it in Excel and save it again, or export the sheet to CSV"
            ) from exc
        try:
            return cls._open_sheet(p, display, workbook, sheet)
        except BaseException:
            workbook.close()
            raise

    @classmethod
    def _open_sheet(
        cls,
        p: Path,
        display: str,
        workbook: python_calamine.CalamineWorkbook,
        sheet: str | int | None,
    ) -> _ExcelInput:
        names: list[str] = list(workbook.sheet_names)
        listed = ", ".join(f"'{n}'" for n in names)
        if sheet is None:
            sheet = 0
        if isinstance(sheet, str) and sheet not in names:
            if not sheet.strip().isdigit():
                raise InputFileError(f"{display}: no sheet named '{sheet}' (sheets: {listed})")
            sheet = int(sheet)
        if isinstance(sheet, int):
            if not 0 <= sheet < len(names):
                raise InputFileError(
                    f"{display}: no sheet number {sheet} (sheets, counted from 0: {listed})"
                )
            sheet = names[sheet]
        problems = _ProblemRows(iter(()))
        if p.suffix.lower() in (".xlsx", ".xlsm"):
            check = check_sheet(p, display, sheet)  # before calamine allocates the grid
            problems = _ProblemRows(sheet_problems(p, check))
        try:
            return cls._read_header(p, display, workbook, sheet, listed, problems)
        except BaseException:
            problems.close()
            raise

    @classmethod
    def _read_header(
        cls,
        p: Path,
        display: str,
        workbook: python_calamine.CalamineWorkbook,
        sheet: str,
        listed: str,
        problems: _ProblemRows,
    ) -> _ExcelInput:
        try:
            data = workbook.get_sheet_by_name(sheet)
        except Exception as exc:
            raise InputFileError(
                f"{display}: cannot read sheet '{sheet}' ({' '.join(str(exc).split())}); "
                f"pick another sheet (sheets: {listed})"
            ) from exc
        where = f"sheet '{sheet}'"
        if data.start is None:
            raise InputFileError(f"{display}: {where} is empty; expected a header row")
        first_col = data.start[1]
        # iter_rows() yields empty rows for the blank rows above the used range, so the n-th
        # row (from 1) is Excel's row n; its cells start at the used range's first column.
        numbered = enumerate(data.iter_rows(), start=1)
        for number, cells in numbered:
            problem = problems.pop(number)
            if problem:  # it is the header: its error cells render as blank names
                raise InputFileError(f"{display}: {where} header (row {number}): {problem}")
            texts = [render_cell(c) for c in cells]
            if not _is_blank(texts):
                columns = _check_header(
                    display,
                    texts,
                    f"{where} header (row {number})",
                    lambda i: _column_letter(first_col + i),
                )
                return cls(p, display, columns, number, workbook, numbered, sheet, problems)
        raise InputFileError(f"{display}: {where} is empty; expected a header row")

    def _iter_rows(self) -> Iterator[Row]:
        columns = self.columns
        problems = self._problems
        try:
            for number, cells in self._rows_after_header:
                texts = [render_cell(c) for c in cells]
                problem = problems.pop(number)
                if problem:  # even in a row that looks blank: its error cells render as ""
                    yield Row(number, dict(zip(columns, texts, strict=True)), error=problem)
                elif not _is_blank(texts):
                    yield Row(number, dict(zip(columns, texts, strict=True)))
            # calamine leaves a formula without a saved value out of the sheet: a row holding
            # only such cells below the last one it shows still has them
            for number, problem in problems.rest():
                yield Row(number, dict.fromkeys(columns, ""), error=problem)
        finally:
            self.close()

    def close(self) -> None:
        self._problems.close()
        workbook, self._workbook = self._workbook, None
        if workbook is not None:
            workbook.close()


class _ProblemRows:
    """The rows :func:`~.sheetxml.sheet_problems` names, taken in row order."""

    def __init__(self, found: Iterator[tuple[int, str]]) -> None:
        self._found = found
        self._next = next(found, None)

    def pop(self, number: int) -> str:
        """What is wrong with row ``number`` ("" if nothing); rows are asked in order."""
        while self._next is not None and self._next[0] < number:
            # Not a row calamine shows (only rows after the last one it shows can be that):
            # cannot happen before it, rows come in order
            self._next = next(self._found, None)
        if self._next is None or self._next[0] != number:
            return ""
        problem = self._next[1]
        self._next = next(self._found, None)
        return problem

    def rest(self) -> Iterator[tuple[int, str]]:
        while self._next is not None:
            yield self._next
            self._next = next(self._found, None)

    def close(self) -> None:
        close = getattr(self._found, "close", None)
        if close is not None:
            close()
