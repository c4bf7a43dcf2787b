"""The CSV/TSV/TXT reader: encodings, delimiter sniffing, binary files, ragged rows.

Memory and streaming: CSV/TSV/TXT are streamed record by record with the :mod:`csv` module, so
memory stays flat however large the file is. It is as fast as pandas' C parser here (the cost is
turning cells into Python strings either way) and, unlike pandas, reports a ragged row without
losing the rest of its chunk. Only the first 64 KiB are read twice, to sniff the delimiter.

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
import io
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from ..exceptions import InputFileError
from .base import InputFile, Row, _check_header, _is_blank

# Delimiters tried when none is given, in tie-break order.
_SNIFF_DELIMITERS = (",", ";", "\t", "|")
_SNIFF_BYTES = 64 * 1024
_SNIFF_RECORDS = 100


_UNCLOSED_QUOTE = (
    "a quoted cell is never closed, so the row runs to the end of the file; "
    "check for a stray '\"' in this row"
)

_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


class _Lines:
    """The file's physical lines as :class:`csv.reader` reads them, and what it cannot say.

    csv.reader (with ``strict=False``) gives back a quoted cell that runs to the end of the file
    as if the file had closed it. The only sign is that the record arrives after the last line
    was read, so that is said here, out of band: ``ended`` turns true when the file has no more
    lines. No text in the file can end reading early or pass for the end of the file.
    """

    __slots__ = ("_handle", "ended")

    def __init__(self, handle: TextIO) -> None:
        self._handle = handle
        self.ended = False

    def __iter__(self) -> Iterator[str]:
        yield from self._handle
        self.ended = True


class _CsvInput(InputFile):
    def __init__(
        self,
        path: Path,
        display: str,
        columns: list[str],
        header_row: int,
        handle: TextIO,
        lines: _Lines,
        records: Iterator[list[str]],
        delimiter: str,
    ) -> None:
        super().__init__(path, display, columns, header_row)
        self.encoding = handle.encoding
        self.delimiter = delimiter
        self._handle: TextIO | None = handle
        self._enc = handle.encoding
        self._lines = lines
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
            lines = _Lines(handle)
            records = csv.reader(lines, delimiter=delimiter)
            header, header_row = _read_csv_header(p, display, enc, lines, records)
            columns = _check_header(display, header, _where(header_row), lambda i: str(i + 1))
            return cls(p, display, columns, header_row, handle, lines, records, delimiter)
        except BaseException:
            handle.close()
            raise

    def _iter_rows(self) -> Iterator[Row]:
        columns = self.columns
        width = len(columns)
        lines = self._lines
        number = self.header_row
        try:
            # The hot loop: a well-formed row costs a length check, an end-of-file check, a
            # strip of its first cell and a dict. Everything unusual goes through _odd_row.
            for cells in self._records:
                number += 1
                if len(cells) == width and not lines.ended:
                    if cells[0].strip() or not _is_blank(cells):
                        yield Row(number, dict(zip(columns, cells, strict=False)))  # checked
                    continue
                row = self._odd_row(number, cells)
                if row is not None:
                    yield row
                if lines.ended:
                    return  # the record was still open when the file ended: nothing follows
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
        if self._lines.ended:
            # csv.reader only hands over a record after the last line when a quote left it open
            return Row(number, _padded(columns, cells), error=_UNCLOSED_QUOTE)
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
    p: Path, display: str, enc: str, lines: _Lines, records: Iterator[list[str]]
) -> tuple[list[str], int]:
    """Return the header cells and its row number: the first record that is not blank."""
    number = 0
    try:
        for record in records:
            number += 1
            if lines.ended:
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
    if number == 0:
        raise InputFileError(f"{display}: the file is empty; expected a header row")
    raise InputFileError(f"{display}: no header row (the file has only blank lines)")


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
