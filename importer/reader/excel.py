"""The Excel reader (``.xlsx``, ``.xlsm``, ``.xls``) over python-calamine, and :func:`render_cell`.

Memory and streaming: Excel files (``.xlsx``, ``.xlsm``, ``.xls``) are read with
python-calamine, which loads the whole sheet into (Rust) memory when the sheet is opened and has
no lazy API (``iter_rows`` walks the grid it already holds). So :func:`open_input` reads the
sheet once, when it opens it: renders each row to text (with its row number, and its error for
an error row), writes it to an anonymous temporary file in the system temp folder
(``tempfile.TemporaryFile``: no name, so it is gone when closed, on an error, or when the
process dies) and frees calamine's sheet and workbook; ``rows()`` then streams the rows from
that file. So the number of rows is known before the first is read (``row_count``: a progress
bar's total). The whole sheet is in memory only while it is opened (533 MB at the peak for
500,000 rows of 10 cells); while the rows are sent, for a run of days, memory no longer depends
on the sheet's size (55 MB for those 500,000 rows, 346 MB when the sheet stayed loaded; see
``benchmarks/README.md``), and the temporary file takes about the size of the sheet's text (~160
bytes a row of 10 cells there). A full disk or another error writing it is an InputFileError
from :func:`open_input`, before any row is read. Calamine fills the whole grid from the first to
the last used cell, so an ``.xlsx``/``.xlsm`` sheet spanning more than
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

import ctypes
import datetime as dt
import marshal
import struct
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

import python_calamine

from ..exceptions import InputFileError, InputReadError
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
    ``""`` for an error cell too: the reader finds those in the sheet's XML instead.) The
    reader also names the date and date-time cells of each row in :attr:`Row.date_columns`:
    their text is this rendering, not what a person typed, so a mapping reads it whatever
    date formats it declares.
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
        sheet_name: str,
        spill: IO[bytes],
        row_count: int,
    ) -> None:
        super().__init__(path, display, columns, header_row)
        self.sheet_name = sheet_name
        self.row_count = row_count
        self._spill = spill

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
        finally:
            # the rows are in the spill file by now (or opening failed): calamine's copy of the
            # workbook is not needed any more, so its memory goes back before the first row
            workbook.close()
            _release_freed_memory()

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
        finally:
            problems.close()  # all taken by the spill, or opening failed

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
                spill, count = _spill(display, columns, numbered, problems)
                return cls(p, display, columns, number, sheet, spill, count)
        raise InputFileError(f"{display}: {where} is empty; expected a header row")

    def _iter_rows(self) -> Iterator[Row]:
        columns = self.columns
        spill = self._spill
        read, loads, unpack = spill.read, marshal.loads, _LENGTH.unpack
        # The rows of a sheet mostly have their date cells in the same columns: one frozenset
        # per distinct set of them, not one per row.
        date_sets: dict[tuple[int, ...], frozenset[str]] = {(): frozenset()}
        try:
            try:
                spill.seek(0)
                while head := read(_LENGTH.size):
                    number, texts, problem, dated = loads(read(unpack(head)[0]))
                    if texts is None:  # a row calamine does not show (see _spill)
                        yield Row(number, dict.fromkeys(columns, ""), error=problem)
                        continue
                    dates = date_sets.get(dated)
                    if dates is None:
                        dates = date_sets[dated] = frozenset(columns[i] for i in dated)
                    yield Row(
                        number,
                        dict(zip(columns, texts, strict=True)),
                        error=problem,
                        date_columns=dates,
                    )
            except OSError as exc:  # the temporary file could not be read back
                raise InputReadError(
                    f"{self._display}: cannot read the sheet back from its temporary file "
                    f"({exc.strerror or exc}); run again to resume"
                ) from exc
        finally:
            self.close()

    def close(self) -> None:
        self._spill.close()  # an anonymous temporary file: closing it removes it


def _release_freed_memory() -> None:
    """Hand the memory of the freed sheet back to the system (glibc's ``malloc_trim``).

    Why: calamine's cells are millions of small allocations; once freed, glibc keeps most of
    the pages they were on for reuse (195 MB stayed resident for 500,000 rows freed, 346 MB
    with the sheet held), and a run sending for days would hold them all along. Elsewhere
    than glibc (no ``malloc_trim``) nothing is done.
    """
    try:
        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


_LENGTH = struct.Struct("<I")
"""Each spilled row: its length, then ``marshal.dumps((number, texts, error, dated))``,
``dated`` the indexes of its date cells (see :func:`_date_indexes`)."""

_DATE_TYPES = (dt.datetime, dt.date)


def _date_indexes(cells: Sequence[object]) -> tuple[int, ...]:
    """Which cells hold a date or a date-time typed in the workbook (not a time of day, nor
    a duration): :attr:`Row.date_columns`."""
    return tuple(i for i, cell in enumerate(cells) if isinstance(cell, _DATE_TYPES))


def _spill(
    display: str,
    columns: list[str],
    rows_after_header: Iterator[tuple[int, Sequence[object]]],
    problems: _ProblemRows,
) -> tuple[IO[bytes], int]:
    """The rows to yield (and how many), as :func:`render_cell` renders them, with their numbers
    and errors, in an anonymous temporary file (see the module docstring): rows of empty cells
    are left out, error rows kept even when they look blank. marshal, since it reads a tuple of
    strings back faster than anything else in the standard library; the file is only ever read
    by this process."""
    try:
        spill = tempfile.TemporaryFile(prefix="lsq-import-sheet-", buffering=1 << 20)  # noqa: SIM115
    except OSError as exc:
        raise _spill_error(display, exc) from exc
    count = 0
    try:
        write, dumps, pack = spill.write, marshal.dumps, _LENGTH.pack
        for number, cells in rows_after_header:
            texts = [render_cell(c) for c in cells]
            problem = problems.pop(number)
            # an error row even when it looks blank: its error cells render as ""
            if problem or not _is_blank(texts):
                record = dumps((number, texts, problem, _date_indexes(cells)))
                write(pack(len(record)))
                write(record)
                count += 1
        # calamine leaves a formula without a saved value out of the sheet: a row holding
        # only such cells below the last one it shows still has them
        for number, problem in problems.rest():
            record = dumps((number, None, problem, ()))
            write(pack(len(record)))
            write(record)
            count += 1
        spill.flush()
    except OSError as exc:
        spill.close()
        raise _spill_error(display, exc) from exc
    except BaseException:
        spill.close()
        raise
    return spill, count


def _spill_error(display: str, exc: OSError) -> InputFileError:
    return InputFileError(
        f"{display}: cannot write the sheet's rows to a temporary file in "
        f"{tempfile.gettempdir()} ({exc.strerror or exc}); free some space there (or set "
        "TMPDIR to a folder with room), or export the sheet to CSV"
    )


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
