"""Read a CSV/TSV/TXT or Excel file into numbered rows of text cells.

Every cell comes out as the text a person sees in the file, never a guessed type: ``09845098450``
keeps its leading zero, ``+91 98450 98450`` its plus, ``NA`` and ``null`` stay text, and an
empty cell is ``""``. Each :class:`Row` carries the row number a spreadsheet shows (the header
is usually row 1, the first data row row 2), so results and error messages point at the line a
person will look at. Rows whose cells are all empty are counted but not yielded.

Problems are reported at the smallest scope that is true:

* A problem with one row (more cells than the header, a quoted cell never closed before the end
  of the file) gives a :class:`Row` whose ``error`` says what is wrong; reading goes on with
  the next row, and the mapping turns that row into an ``invalid`` result.
* A problem with the file (missing, binary, undecodable, empty, a blank or duplicate header
  name) raises :class:`~importer.exceptions.InputFileError` with a one-line message. Bytes that
  do not decode are a file problem: the encoding is wrong for the whole file, not for one row.

Memory and streaming:

* CSV/TSV/TXT are streamed record by record with the :mod:`csv` module, so memory stays flat
  however large the file is. It is as fast as pandas' C parser here (the cost is turning cells
  into Python strings either way) and, unlike pandas, reports a ragged row without losing the
  rest of its chunk. Only the first 64 KiB are read twice, to sniff the delimiter.
* Excel files (``.xlsx``, ``.xlsm``, ``.xls``) are read with python-calamine. Calamine loads the
  whole sheet into (Rust) memory when the sheet is opened; only the conversion to Python text is
  done row by row. A sheet of a million rows therefore costs its full size in memory: export
  such a sheet to CSV instead. Dates in workbooks using the 1904 date system come out right.

Why calamine directly and not ``pandas.read_excel(engine="calamine")``: pandas drops the empty
rows above the header (losing the real Excel row numbers), turns booleans into ``True`` and dates
at midnight into ``... 00:00:00``, while the raw calamine values let this module render each
cell exactly as described in :func:`render_cell`.

CSV details:

* Encoding: UTF-8 with or without a byte-order mark by default; a UTF-16 file with a
  byte-order mark is recognised without ``encoding``. Anything else (cp1252, latin-1) needs
  ``encoding``; the error for undecodable bytes names the physical line and suggests one.
* Delimiter: ``.tsv`` is tab-separated; for ``.csv`` and ``.txt`` the delimiter is sniffed from
  the first records among ``,`` ``;`` tab and ``|`` (a European export with ``;`` just works).
  The winner splits the header into the most columns without making any sampled row longer than
  the header; a tie goes to the earlier one in that list. An explicit ``delimiter`` always wins.
* Row numbers count records, not physical lines: a quoted cell that spans three lines is one
  row, as a spreadsheet shows it. Blank lines count as rows (a spreadsheet shows them too).
* A row with fewer cells than the header is padded with empty cells, which is what a
  spreadsheet shows when it opens such a file. A row with more cells is an error row ("expected
  10 cells, found 11") whose ``values`` hold its first cells, unless the extra cells are all
  empty (a trailing delimiter), which a spreadsheet shows as nothing either.
* A quote that is never closed swallows the rest of the file into one cell: that row is an error
  row and the last one. If the swallowed text is longer than :func:`csv.field_size_limit`,
  reading stops with an InputFileError naming the row instead.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import python_calamine

from ..exceptions import InputFileError

__all__ = ["CSV_SUFFIXES", "EXCEL_SUFFIXES", "InputFile", "Row", "open_input", "render_cell"]

CSV_SUFFIXES = (".csv", ".txt", ".tsv")
EXCEL_SUFFIXES = (".xlsx", ".xlsm", ".xls")
_SUPPORTED = ", ".join(CSV_SUFFIXES + EXCEL_SUFFIXES)

# Delimiters tried when none is given, in tie-break order.
_SNIFF_DELIMITERS = (",", ";", "\t", "|")
_SNIFF_BYTES = 64 * 1024
_SNIFF_RECORDS = 100

# Appended after the last line of a CSV file. A file that ends cleanly gives it back as a record
# of its own; a quote left open swallows it into its cell, which is how an unclosed quote is
# told apart from a cell that merely ends the file. NUL never occurs in a text file we accept.
_EOF_MARK = "\x00lsq-import end of file\x00"

_UNCLOSED_QUOTE = (
    "a quoted cell is never closed, so the row runs to the end of the file; "
    "check for a stray '\"' in this row"
)

_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


@dataclass(frozen=True, slots=True)
class Row:
    """One data row of the input file."""

    number: int
    """The row number a spreadsheet shows: header is row 1, first data row is 2."""
    values: dict[str, str]
    """Column name -> cell text ("" for an empty cell). Partial when ``error`` is set."""
    error: str = ""
    """Why this row cannot be imported ("" when it can), e.g. "expected 10 cells, found 11"."""


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

    def __init__(self, path: Path, display: str, columns: list[str], header_row: int) -> None:
        self.path = path
        self.columns = columns
        self.header_row = header_row
        self.sheet_name = None
        self.encoding = None
        self.delimiter = None
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
) -> InputFile:
    """Open a CSV/TSV/TXT or Excel file, read and check its header, and return an InputFile.

    ``sheet`` (Excel only) is a sheet name or a 0-based index; a string of digits that is not a
    sheet name is taken as an index, so ``--sheet 1`` works from a command line. ``encoding``
    (CSV only) defaults to UTF-8 with or without a byte-order mark, or UTF-16 when the file
    starts with a UTF-16 byte-order mark. ``delimiter`` (CSV only) defaults to tab for ``.tsv``
    and is sniffed among ``,`` ``;`` tab ``|`` otherwise. Raises InputFileError with a one-line
    message.

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
    if suffix in EXCEL_SUFFIXES:
        return _ExcelInput.open(p, display, sheet)
    return _CsvInput.open(p, display, encoding, delimiter)


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
        handle: IO[str],
        records: Iterator[list[str]],
        delimiter: str,
    ) -> None:
        super().__init__(path, display, columns, header_row)
        self.encoding = handle.encoding
        self.delimiter = delimiter
        self._handle: IO[str] | None = handle
        self._enc = handle.encoding
        self._records = records

    @classmethod
    def open(cls, p: Path, display: str, encoding: str | None, delimiter: str | None) -> _CsvInput:
        try:
            with open(p, "rb") as fh:
                head = fh.read(_SNIFF_BYTES)
        except OSError as exc:
            raise InputFileError(f"{display}: cannot read: {exc.strerror or exc}") from exc
        enc = _resolve_encoding(display, encoding, head)
        _reject_binary(display, enc, head)
        if delimiter is None:
            if p.suffix.lower() == ".tsv":
                delimiter = "\t"
            else:
                delimiter = _sniff_delimiter(_decode_sample(head, enc, len(head) == _SNIFF_BYTES))
        elif len(delimiter) != 1 or delimiter in '\r\n"':
            raise InputFileError(
                f"{display}: delimiter must be one character other than a quote or newline, "
                f"got {delimiter!r}"
            )
        try:
            handle = open(p, encoding=enc, newline="")  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise InputFileError(f"{display}: cannot read: {exc.strerror or exc}") from exc
        try:
            records = csv.reader(itertools.chain(handle, [_EOF_MARK]), delimiter=delimiter)
            header, header_row = _read_csv_header(p, display, enc, records)
            columns = _check_header(display, header, _where(header_row), lambda i: str(i + 1))
            return cls(p, display, columns, header_row, handle, records, delimiter)
        except BaseException:
            handle.close()
            raise

    def _iter_rows(self) -> Iterator[Row]:
        columns = self.columns
        width = len(columns)
        mark = _EOF_MARK
        number = self.header_row
        try:
            # The hot loop: a well-formed row costs a length check, an end-mark check, a strip
            # of its first cell and a dict. Everything unusual goes through _odd_row.
            for cells in self._records:
                number += 1
                if len(cells) == width and not cells[-1].endswith(mark):
                    if cells[0].strip() or not _is_blank(cells):
                        yield Row(number, dict(zip(columns, cells, strict=False)))  # checked
                    continue
                if cells == [mark]:
                    return  # the end of the file, reached cleanly
                row = self._odd_row(number, cells)
                if row is not None:
                    yield row
                    if row.error == _UNCLOSED_QUOTE:
                        return  # it swallowed the rest of the file
        except UnicodeDecodeError as exc:
            raise _decode_error(self._display, self.path, self._enc, exc) from exc
        except csv.Error as exc:
            raise _csv_error(self._display, number + 1, exc) from exc
        except OSError as exc:
            raise InputFileError(f"{self._display}: cannot read: {exc.strerror or exc}") from exc
        finally:
            self.close()

    def _odd_row(self, number: int, cells: list[str]) -> Row | None:
        """A row that is short, long, blank, or ends the file inside a quote."""
        columns = self.columns
        width = len(columns)
        if cells and cells[-1].endswith(_EOF_MARK):
            cells[-1] = cells[-1][: -len(_EOF_MARK)]
            return Row(
                number,
                _padded(columns, cells),
                error=_UNCLOSED_QUOTE,
            )
        if len(cells) < width:
            if _is_blank(cells):
                return None
            return Row(number, _padded(columns, cells))
        if _is_blank(cells[width:]):  # a trailing delimiter: nothing is lost
            if _is_blank(cells):
                return None
            return Row(number, dict(zip(columns, cells, strict=False)))  # drops the extras
        return Row(
            number,
            dict(zip(columns, cells, strict=False)),
            error=f"expected {width} cells, found {len(cells)}; "
            f"quote any cell that contains '{self.delimiter}'",
        )

    def close(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.close()


def _padded(columns: list[str], cells: list[str]) -> dict[str, str]:
    values = dict.fromkeys(columns, "")
    values.update(zip(columns, cells, strict=False))  # cells may be fewer
    return values


def _where(header_row: int) -> str:
    return "header" if header_row == 1 else f"header (row {header_row})"


def _resolve_encoding(display: str, encoding: str | None, head: bytes) -> str:
    """Default to UTF-8 and read a BOM as a BOM: Excel's "CSV UTF-8" starts with one, and it
    would otherwise stick to the first column's name. "Unicode text" from Excel is UTF-16 with
    a BOM: recognise it rather than fail on its NUL bytes."""
    if encoding is None:
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        return "utf-8-sig"
    try:
        info = codecs.lookup(encoding)
    except LookupError:
        info = None
    # base64 and rot13 are codecs too, but not text encodings: open() would refuse them.
    if info is None or not getattr(info, "_is_text_encoding", True):
        raise InputFileError(
            f"{display}: unknown encoding '{encoding}' (try utf-8, cp1252, latin-1 or utf-16)"
        )
    return "utf-8-sig" if info.name == "utf-8" else encoding


def _reject_binary(display: str, enc: str, head: bytes) -> None:
    """Refuse a file that is not text before the decoder produces a misleading message."""
    if head.startswith(_ZIP_MAGIC):
        raise InputFileError(
            f"{display}: is a zip file, not CSV text (an Excel .xlsx workbook?); "
            "give it its .xlsx name, or export the sheet as CSV"
        )
    if head.startswith(_OLE_MAGIC):
        raise InputFileError(
            f"{display}: is an Office file, not CSV text (an Excel .xls workbook?); "
            "give it its .xls name, or export the sheet as CSV"
        )
    if b"\x00" in head and _ascii_compatible(enc):
        raise InputFileError(
            f"{display}: contains binary data (NUL bytes), not CSV text; check the file "
            "(for UTF-16 text without a byte-order mark, use --encoding utf-16)"
        )


def _ascii_compatible(enc: str) -> bool:
    return codecs.lookup(enc).name in ("utf-8", "utf-8-sig") or _single_byte(enc)


def _decode_sample(head: bytes, enc: str, truncated: bool) -> str:
    """The first records as text, for sniffing only: bad bytes are replaced here and reported
    with their line number when the file is read."""
    text = codecs.getincrementaldecoder(enc)(errors="replace").decode(head, final=not truncated)
    if truncated and "\n" in text:
        text = text[: text.rindex("\n") + 1]  # drop the last line: it is probably cut short
    return text


def _sniff_delimiter(sample: str) -> str:
    """Pick the delimiter that splits the header into the most columns without making any
    sampled row longer than the header. Fewer too-long rows first, then more rows exactly as
    wide as the header, then the wider header, then list order; "," when nothing splits."""
    best, best_key = ",", None
    for order, candidate in enumerate(_SNIFF_DELIMITERS):
        try:
            reader = csv.reader(io.StringIO(sample), delimiter=candidate)
            records = [r for r in itertools.islice(reader, _SNIFF_RECORDS) if not _is_blank(r)]
        except csv.Error:
            continue
        if not records or len(records[0]) < 2:
            continue
        width = len(records[0])
        too_long = sum(len(r) > width for r in records[1:])
        exact = sum(len(r) == width for r in records[1:])
        key = (-too_long, exact, width, -order)
        if best_key is None or key > best_key:
            best, best_key = candidate, key
    return best


def _read_csv_header(
    p: Path, display: str, enc: str, records: Iterator[list[str]]
) -> tuple[list[str], int]:
    """Return the header cells and its row number: the first record that is not blank."""
    number = 0
    try:
        for record in records:
            number += 1
            if record == [_EOF_MARK]:
                if number == 1:
                    raise InputFileError(f"{display}: the file is empty; expected a header row")
                raise InputFileError(f"{display}: no header row (the file has only blank lines)")
            if record and record[-1].endswith(_EOF_MARK):
                raise InputFileError(
                    f"{display}: row {number}: a quoted cell in the header is never closed; "
                    "check for a stray '\"' in the header"
                )
            if not _is_blank(record):
                return record, number
    except UnicodeDecodeError as exc:
        raise _decode_error(display, p, enc, exc) from exc
    except csv.Error as exc:
        raise _csv_error(display, number + 1, exc) from exc
    except OSError as exc:
        raise InputFileError(f"{display}: cannot read: {exc.strerror or exc}") from exc
    raise AssertionError("unreachable: the end mark is always read")  # pragma: no cover


def _csv_error(display: str, number: int, exc: csv.Error) -> InputFileError:
    """csv.Error with newline='' and strict=False means a cell over the field size limit: a
    huge cell, or (more often) a stray quote swallowing the rows after it."""
    if "field larger than field limit" in str(exc):
        return InputFileError(
            f"{display}: row {number}: a cell is longer than {csv.field_size_limit():,} "
            "characters (no LeadSquared field holds that much); if that row has a stray '\"', "
            "it swallowed the rows after it"
        )
    return InputFileError(f"{display}: row {number}: cannot parse as CSV ({exc})")


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
    if not _ascii_compatible(enc):
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


_HALF_SECOND = dt.timedelta(microseconds=500_000)


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
