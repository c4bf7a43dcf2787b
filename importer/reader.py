"""Read a CSV/TSV/TXT or Excel file into numbered rows of text cells.

Every cell comes out as the text a person sees in the file, never a guessed type: ``09845098450``
keeps its leading zero, ``+91 98450 98450`` its plus, ``NA`` and ``null`` stay text, and an
empty cell is ``""``. Each :class:`Row` carries the row number a spreadsheet shows (the header
is usually row 1, the first data row row 2), so results and error messages point at the line a
person will look at. Rows whose cells are all empty are counted but not yielded.

Memory and streaming:

* CSV/TSV/TXT are read by pandas' C parser in chunks of ``chunk_size`` records
  (``read_csv(chunksize=...)``), so memory stays flat however large the file is. The header is
  read first with the :mod:`csv` module so that duplicate or blank names are reported as the
  user wrote them, before pandas would rename them to ``email.1`` or ``Unnamed: 3``.
* Excel files (``.xlsx``, ``.xlsm``, ``.xls``) are read with python-calamine. Calamine loads the
  whole sheet into (Rust) memory when the sheet is opened; only the conversion to Python text is
  done row by row. A sheet of a million rows therefore costs its full size in memory: export
  such a sheet to CSV instead.

Why calamine directly and not ``pandas.read_excel(engine="calamine")``: pandas drops the empty
rows above the header (losing the real Excel row numbers), turns booleans into ``True`` and dates
at midnight into ``... 00:00:00``, while the raw calamine values let this module render each
cell exactly as described in :func:`render_cell`.

Row numbers in a CSV count records, not physical lines: a quoted cell that spans three lines is
one row, as a spreadsheet shows it. Blank lines count as rows (a spreadsheet shows them too).
A row with more cells than the header is an error naming the row; a row with fewer cells is
padded with empty cells, which is what a spreadsheet shows when it opens such a file (pandas
cannot tell a missing trailing cell from an empty one).
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import os
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import pandas as pd
import python_calamine

from .exceptions import InputFileError

__all__ = ["CSV_SUFFIXES", "EXCEL_SUFFIXES", "InputFile", "Row", "open_input", "render_cell"]

CSV_SUFFIXES = (".csv", ".txt", ".tsv")
EXCEL_SUFFIXES = (".xlsx", ".xlsm", ".xls")
_SUPPORTED = ", ".join(CSV_SUFFIXES + EXCEL_SUFFIXES)

# Messages of pandas' C tokenizer that we turn into row-level messages. Both numbers count
# records (not physical lines), which is exactly the spreadsheet row number we want.
_TOO_MANY_RE = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
_UNCLOSED_QUOTE_RE = re.compile(r"EOF inside string starting at row (\d+)")


@dataclass(frozen=True, slots=True)
class Row:
    """One data row of the input file."""

    number: int
    """The row number a spreadsheet shows: header is row 1, first data row is 2."""
    values: dict[str, str]
    """Column name -> cell text ("" for an empty cell)."""


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

    def __init__(self, path: Path, display: str, columns: list[str], header_row: int) -> None:
        self.path = path
        self.columns = columns
        self.header_row = header_row
        self.sheet_name = None
        self._display = display
        self._started = False

    def rows(self) -> Iterator[Row]:
        """Stream the data rows in file order. May be called once: the rows are not kept."""
        if self._started:
            raise RuntimeError(f"{self._display}: rows() may be called only once")
        self._started = True
        return self._iter_rows()

    def _iter_rows(self) -> Iterator[Row]:  # pragma: no cover - overridden
        raise NotImplementedError

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


def open_input(
    path: str | os.PathLike[str],
    *,
    sheet: str | int | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    chunk_size: int = 10_000,
) -> InputFile:
    """Open a CSV/TSV/TXT or Excel file, read and check its header, and return an InputFile.

    ``sheet`` (Excel only) is a sheet name or a 0-based index; a string of digits that is not a
    sheet name is taken as an index, so ``--sheet 1`` works from a command line. ``encoding``
    (CSV only) defaults to UTF-8 with or without a byte-order mark. ``delimiter`` (CSV only)
    defaults to ``,`` (tab for ``.tsv``). Raises InputFileError with a one-line message.

    Example::

        with open_input("leads.xlsx", sheet="March") as f:
            print(f.columns)
    """
    display = os.fspath(path)
    p = Path(display)
    suffix = p.suffix.lower()
    if suffix not in CSV_SUFFIXES + EXCEL_SUFFIXES:
        shown = f"'{p.suffix}'" if p.suffix else "(no extension)"
        raise InputFileError(f"{display}: unsupported file type {shown} (use {_SUPPORTED})")
    if not p.exists():
        raise InputFileError(f"{display}: no such file")
    if p.is_dir():
        raise InputFileError(f"{display}: is a directory, not a file")
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    if suffix in EXCEL_SUFFIXES:
        return _ExcelInput.open(p, display, sheet)
    return _CsvInput.open(p, display, encoding, delimiter, chunk_size)


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


# --------------------------------------------------------------------------------------------
# CSV / TSV / TXT


class _CsvInput(InputFile):
    def __init__(
        self,
        path: Path,
        display: str,
        columns: list[str],
        header_row: int,
        encoding: str,
        delimiter: str,
        chunk_size: int,
    ) -> None:
        super().__init__(path, display, columns, header_row)
        self._encoding = encoding
        self._delimiter = delimiter
        self._chunk_size = chunk_size
        self._reader: Any = None

    @classmethod
    def open(
        cls,
        p: Path,
        display: str,
        encoding: str | None,
        delimiter: str | None,
        chunk_size: int,
    ) -> _CsvInput:
        enc = _resolve_encoding(display, encoding)
        if delimiter is None:
            delimiter = "\t" if p.suffix.lower() == ".tsv" else ","
        if len(delimiter) != 1 or delimiter in '\r\n"':
            raise InputFileError(
                f"{display}: delimiter must be one character other than a quote or newline, "
                f"got {delimiter!r}"
            )
        header, header_row = _read_csv_header(p, display, enc, delimiter)
        columns = _check_header(display, header, _where(header_row), lambda i: str(i + 1))
        return cls(p, display, columns, header_row, enc, delimiter, chunk_size)

    def _iter_rows(self) -> Iterator[Row]:
        columns = self.columns
        # The C engine is required: in pandas 3.1 the python engine turns a blank line into NaN
        # cells and can mis-number the rows around a short row.
        try:
            self._reader = pd.read_csv(
                self.path,
                sep=self._delimiter,
                encoding=self._encoding,
                engine="c",
                skiprows=self.header_row - 1,  # leading blank lines, one physical line each
                header=0,
                names=columns,
                index_col=False,
                dtype=str,
                keep_default_na=False,
                na_filter=False,
                skip_blank_lines=False,
                chunksize=self._chunk_size,
            )
        except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
            raise self._translate(exc) from exc
        first_number = self.header_row + 1
        try:
            while True:
                try:
                    with warnings.catch_warnings():
                        # A too-long first data row only warns (and is truncated): make it an
                        # error. _read_csv_header already catches it; this is the backstop.
                        warnings.simplefilter("error", pd.errors.ParserWarning)
                        chunk = next(self._reader)
                except StopIteration:
                    return
                except pd.errors.ParserWarning as exc:
                    raise InputFileError(
                        f"{self._display}: row {first_number}: has more cells than the header "
                        f"({len(columns)}); check for an unquoted '{self._delimiter}' in a cell"
                    ) from exc
                except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
                    raise self._translate(exc) from exc
                numbers = chunk.index + first_number
                for number, cells in zip(
                    numbers.tolist(), chunk.itertuples(index=False, name=None), strict=True
                ):
                    texts = [c if isinstance(c, str) else "" for c in cells]
                    if _is_blank(texts):
                        continue
                    yield Row(number, dict(zip(columns, texts, strict=True)))
        finally:
            self.close()

    def _translate(self, exc: BaseException) -> InputFileError:
        d = self._display
        if isinstance(exc, UnicodeDecodeError):
            return _decode_error(d, self.path, self._encoding, exc)
        if isinstance(exc, OSError):
            return InputFileError(f"{d}: cannot read: {exc.strerror or exc}")
        msg = str(exc)
        m = _TOO_MANY_RE.search(msg)
        if m:
            return InputFileError(
                f"{d}: row {m.group(2)}: expected {len(self.columns)} cells, found {m.group(3)} "
                f"(quote a cell that contains '{self._delimiter}', or fix the row)"
            )
        m = _UNCLOSED_QUOTE_RE.search(msg)
        if m:
            return InputFileError(
                f"{d}: row {int(m.group(1)) + 1}: a quoted cell is never closed "
                "(check for a stray '\"' in or after that row)"
            )
        return InputFileError(f"{d}: cannot parse as CSV: {msg.strip()}")

    def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()


def _where(header_row: int) -> str:
    return "header" if header_row == 1 else f"header (row {header_row})"


def _resolve_encoding(display: str, encoding: str | None) -> str:
    """Default to UTF-8 and read a BOM as a BOM: Excel's "CSV UTF-8" starts with one, and it
    would otherwise stick to the first column's name."""
    if encoding is None:
        return "utf-8-sig"
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise InputFileError(
            f"{display}: unknown encoding '{encoding}' (try utf-8, cp1252 or latin-1)"
        ) from None
    return "utf-8-sig" if name == "utf-8" else encoding


def _read_csv_header(p: Path, display: str, enc: str, delimiter: str) -> tuple[list[str], int]:
    """Return the header cells and its row number: the first record that is not blank.

    Also looks at the record after the header: pandas silently truncates a too-long *first*
    data row (it only warns), so that one is caught here, with its row number.
    """
    try:
        with open(p, encoding=enc, newline="") as fh:
            records = csv.reader(fh, delimiter=delimiter)
            header: list[str] | None = None
            number = 0
            for record in records:
                number += 1
                # A blank record here is always one physical line, so pandas can skip it by
                # line count (skiprows) and the numbers stay aligned.
                if all(c == "" for c in record):
                    continue
                header = record
                break
            if header is None:
                if number == 0:
                    raise InputFileError(f"{display}: the file is empty; expected a header row")
                raise InputFileError(f"{display}: no header row (the file has only blank lines)")
            first = next(records, None)
    except UnicodeDecodeError as exc:
        raise _decode_error(display, p, enc, exc) from exc
    except csv.Error as exc:
        raise InputFileError(f"{display}: cannot parse the header as CSV: {exc}") from exc
    except OSError as exc:
        raise InputFileError(f"{display}: cannot read: {exc.strerror or exc}") from exc
    if first is not None and len(first) > len(header):
        raise InputFileError(
            f"{display}: row {number + 1}: expected {len(header)} cells, found {len(first)} "
            f"(quote a cell that contains '{delimiter}', or fix the row)"
        )
    return header, number


def _decode_error(display: str, p: Path, enc: str, exc: UnicodeDecodeError) -> InputFileError:
    shown = "utf-8" if enc == "utf-8-sig" else enc
    hint = "try --encoding cp1252" if shown == "utf-8" else "check --encoding"
    line = _first_undecodable_line(p, enc)
    at = f"line {line}: " if line else ""
    return InputFileError(f"{display}: {at}cannot decode as {shown} ({hint})")


def _first_undecodable_line(p: Path, enc: str) -> int | None:
    """Find the physical line of the first bad byte; only on error, so the extra pass is fine.

    Only for encodings where a newline byte is always a newline (UTF-8, single-byte codepages);
    for UTF-16 and friends we say nothing rather than something wrong."""
    if codecs.lookup(enc).name not in ("utf-8", "utf-8-sig") and not _single_byte(enc):
        return None
    try:
        with open(p, "rb") as fh:
            for number, raw in enumerate(fh, start=1):
                try:
                    raw.decode(enc)
                except UnicodeDecodeError:
                    return number
    except OSError:
        return None
    return None


def _single_byte(enc: str) -> bool:
    try:
        return len("\n".encode(enc)) == 1 and len("a".encode(enc)) == 1
    except (LookupError, UnicodeError):
        return False


# --------------------------------------------------------------------------------------------
# Excel


def _column_letter(index: int) -> str:
    """0-based column index -> Excel letters (0 -> A, 27 -> AB)."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(ord("A") + rem) + letters
    return letters


def render_cell(value: object) -> str:
    """Render a calamine cell value as the text a person expects to see.

    Integral numbers without ``.0`` (a phone typed as a number: ``9845098450``), other numbers
    in shortest round-trip form (``1499.5``), date-times as ``YYYY-MM-DD HH:MM:SS`` (rounded to
    the second; ``YYYY-MM-DD`` at midnight), times as ``HH:MM:SS``, durations as ``H:MM:SS``,
    booleans as ``TRUE``/``FALSE``, empty and error cells as ``""``, strings as stored.
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
        rounded = (value + dt.timedelta(microseconds=500_000)).replace(microsecond=0)
        if rounded.time() == dt.time(0, 0):
            return rounded.strftime("%Y-%m-%d")
        return rounded.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return value.strftime("%Y-%m-%d")
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
        workbook: Any,
        rows_after_header: Iterator[tuple[int, list[object]]],
        sheet_name: str,
    ) -> None:
        super().__init__(path, display, columns, header_row)
        self.sheet_name = sheet_name
        self._workbook = workbook
        self._rows_after_header = rows_after_header

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
        cls, p: Path, display: str, workbook: Any, sheet: str | int | None
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
            texts = [render_cell(c) for c in cells]
            if not _is_blank(texts):
                columns = _check_header(
                    display,
                    texts,
                    f"{where} header (row {number})",
                    lambda i: _column_letter(first_col + i),
                )
                return cls(p, display, columns, number, workbook, numbered, sheet_name=sheet)
        raise InputFileError(f"{display}: {where} is empty; expected a header row")

    def _iter_rows(self) -> Iterator[Row]:
        columns = self.columns
        try:
            for number, cells in self._rows_after_header:
                texts = [render_cell(c) for c in cells]
                if _is_blank(texts):
                    continue
                yield Row(number, dict(zip(columns, texts, strict=True)))
        finally:
            self.close()

    def close(self) -> None:
        workbook, self._workbook = self._workbook, None
        if workbook is not None:
            workbook.close()
