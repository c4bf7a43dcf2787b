"""The CSV/TSV/TXT reader: encodings, delimiter sniffing, binary files, ragged rows.

Memory and streaming: CSV/TSV/TXT are streamed record by record with the :mod:`csv` module, so
memory stays flat however large the file is. It is as fast as pandas' C parser here (the cost is
turning cells into Python strings either way) and, unlike pandas, reports a ragged row without
losing the rest of its chunk. Only the first 64 KiB are read twice, to sniff the delimiter.

CSV details:

* Encoding: UTF-8 with or without a byte-order mark by default; a UTF-16 file with a
  byte-order mark is recognised without ``encoding``. Anything else (cp1252, latin-1) needs
  ``encoding``. Bytes that do not decode make their row an error row naming the physical line
  and the column and suggesting an encoding ("line 1955, column 'city': cannot decode as
  utf-8 (try --encoding cp1252)"); the rows around it are read as usual. In the header they
  are a file error, since no column can be named.
* A NUL character anywhere in a data row makes that row an error row naming the line and the
  column: it is binary data, not text, and must never reach LeadSquared inside a value. In the
  header it means the file is not text at all (a binary file, or UTF-16 without a byte-order
  mark): a file error.
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
* A stray quote (a cell that starts with ``"`` and was never meant to be quoted) makes csv.reader
  read on past the line end, swallowing the rows after it into one cell, until a quote closes it
  or the file ends. Its row is an error row naming the line and column where the quote opened,
  and reading goes on with the next line, so the rows it swallowed come out as the rows they
  are (and every row keeps the number it has once the quote is fixed). That is the case when the
  quoted cell is never closed, and when it ran past a line end and was closed by a quote followed
  by more text (in a well-formed file a closing quote is followed by the delimiter or the line
  end) where that quote starts a cell of its line (it is the quote that opens the next row's
  quoted note) or the row has the wrong number of cells. The multi-line notes of real exports
  read as they are, however many lines they have; so do those of a writer that does not double
  the quotes inside a cell, unless such a quote follows a delimiter.
* A cell longer than :func:`csv.field_size_limit` (128 Ki characters; no LeadSquared field holds
  that much) makes its row an error row naming the lines it spans. Reading goes on after the
  row's end, found by following the quotes as csv.reader does, so the rest of a huge quoted cell
  never comes out as rows of its own.

Reading never stops half-way because of what a row holds. Only an I/O error half-way (a disk
or a network share failing) stops it, with :class:`~importer.exceptions.InputReadError` after
the rows before it were yielded.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import os
import re
import stat
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO

from ..exceptions import InputFileError, InputReadError
from .base import InputFile, ReadPosition, Row, _check_header, _is_blank

# Delimiters tried when none is given, in tie-break order.
_SNIFF_DELIMITERS = (",", ";", "\t", "|")
_SNIFF_BYTES = 64 * 1024
_SNIFF_RECORDS = 100


_UNCLOSED_QUOTE = (
    "a quoted cell is never closed, so the row runs to the end of the file; "
    "check for a stray '\"' in this row"
)

_BINARY = (
    "contains binary data (NUL bytes), not CSV text; check the file "
    "(for UTF-16 text without a byte-order mark, use --encoding utf-16)"
)

_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"

# The decoder's error handler: each byte that does not decode becomes the lone surrogate
# U+DC00 + byte (what "surrogateescape" does for bytes >= 0x80, here for every byte, so that
# UTF-16 can go on too) and decoding goes on. A strict decoder never produces a lone surrogate,
# so one in a line means undecodable bytes there. A strict decoder would instead fail for its
# whole 8 KiB block, taking the good rows before the bad byte down with it.
_UNDECODABLE_ERRORS = "lsq-import-undecodable"
_UNDECODABLE = re.compile("[\ud800-\udfff]")
# How often the handler has run, in any file. Searching every non-ASCII line for a surrogate
# costs a microsecond a line (a third of the reading time of a file with Indian names), so a
# file only searches its lines once this has moved since it was opened: a file without bad
# bytes never does. (Another file's bad bytes, in another thread, only make it search.)
_undecodable_seen = [0]


def _mark_undecodable(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    _undecodable_seen[0] += 1
    return "".join(chr(0xDC00 + b) for b in exc.object[exc.start : exc.end]), exc.end


codecs.register_error(_UNDECODABLE_ERRORS, _mark_undecodable)

_END = 0
"""In :attr:`_Lines.flags`: the file has no more lines (line numbers start at 1)."""


_RECENT_LINES = 1024
"""How many of the last lines read are kept, to look again at a record that spanned lines."""

_MAX_POSITIONS = 512
_FIRST_POSITION_EVERY = 4096
"""Record starts kept for a later resume (see :class:`ReadPosition`): one every this many rows,
the interval doubling (every other one dropped) whenever more than :data:`_MAX_POSITIONS`
are kept, so a resume parses at most a few thousand rows it skips, at any file length, and the
list stays small. Each costs one ``tell()`` (tens of microseconds)."""

_READER_VERSION = "csv-1"
"""Part of :attr:`_CsvInput.read_settings`: a reader that numbered rows differently must not
start at another's positions."""


def _readlines(handle: TextIO) -> Iterator[str]:
    """The lines of ``handle`` read with ``readline``: unlike iterating the file, that keeps
    ``tell()`` working, which is how the reader takes :class:`ReadPosition`\\ s."""
    return iter(handle.readline, "")


class _Lines:
    """The file's physical lines as :class:`csv.reader` reads them, and what it cannot say.

    Both are said out of band, in ``flags``, so that no text in the file can pass for them:

    * csv.reader (with ``strict=False``) gives back a quoted cell that runs to the end of the
      file as if the file had closed it. The only sign is that the record arrives after the
      last line was read: ``ended`` turns true then, and :data:`_END` is added to ``flags``.
    * csv.reader does not know which line a cell came from: the number of each line holding
      undecodable bytes or a NUL is added to ``flags``.

    The row loop clears ``flags`` after each record that has some, so that they always belong
    to the record just read (csv.reader never reads past the end of a record); a record with
    no flags, the usual case, costs one truth test. ``recent`` holds the last lines read (the
    last one is the line csv.reader gave up on, or the last line of the record just read), to
    look again at a record that spanned lines and to read its lines again from another point.

    ``lines`` is a file handle's lines, or the lines of one after a stray quote (some kept in
    ``recent``, then the handle's); ``first`` is the number of its first line, ``replayed``
    how many of them come from ``recent`` (the handle is past those already). ``since`` is
    :data:`_undecodable_seen` before any of those lines was decoded.
    """

    __slots__ = ("_lines", "_first", "from_handle", "since", "ended", "flags", "recent")

    def __init__(
        self,
        lines: Iterable[str],
        first: int = 1,
        since: int | None = None,
        *,
        replayed: int = 0,
    ) -> None:
        self._lines = lines
        self._first = first
        self.from_handle = first + replayed
        """The first physical line read from the handle rather than again from ``recent``:
        the handle's ``tell()`` is where a record starts only after a record ended on it."""
        self.since = _undecodable_seen[0] if since is None else since
        self.ended = False
        self.flags: list[int] = []
        self.recent: deque[str] = deque(maxlen=_RECENT_LINES)

    def __iter__(self) -> Iterator[str]:
        flags = self.flags
        undecodable = _UNDECODABLE.search
        seen, before = _undecodable_seen, self.since
        keep = self.recent.append
        for number, line in enumerate(self._lines, start=self._first):
            # isascii() is O(1) on a str: ASCII lines cost one search for a NUL (a memchr)
            if "\x00" in line or (not line.isascii() and seen[0] != before and undecodable(line)):
                flags.append(number)
            keep(line)
            yield line
        self.ended = True
        flags.append(_END)


class _CsvInput(InputFile):
    def __init__(
        self,
        path: Path,
        display: str,
        columns: list[str],
        header_row: int,
        handle: TextIO,
        lines: _Lines,
        delimiter: str,
    ) -> None:
        super().__init__(path, display, columns, header_row)
        self.encoding = handle.encoding
        self.delimiter = delimiter
        self._handle: TextIO | None = handle
        self._enc = handle.encoding
        self._size = _regular_size(handle)
        """The file's size in bytes, or None when it is not a regular file (a pipe)."""
        self._header_end = 0
        """csv.reader's line_num at the end of the header."""
        self._text_after = re.compile(f'"[^"\r\n{re.escape(delimiter)}]').search
        """Finds a quote followed by text: on a record's second line or later, the only place
        the quote that closes a stray quote's cell can be (see :func:`_stray_quote`)."""
        self._positions: list[ReadPosition] = []
        self._position_every = _FIRST_POSITION_EVERY
        self._read_from(lines, 0)

    @property
    def positions(self) -> list[ReadPosition]:
        return list(self._positions)

    @property
    def read_settings(self) -> str:
        return f"{_READER_VERSION} {self._enc} {self.delimiter!r} {csv.field_size_limit()}"

    def _take_position(self, row: int, line_num: int) -> None:
        """Note that record ``row`` starts after csv.reader's ``line_num`` (a record just ended
        there, the usual way), if the handle is there too."""
        line = self._physical(line_num)
        if line < self._lines.from_handle or self._handle is None:
            return  # a line read again after a stray quote: the handle is further on
        try:
            offset = self._handle.tell()
        except OSError:  # pragma: no cover - tell() works on a file read with readline()
            return
        positions = self._positions
        positions.append(ReadPosition(row, line, offset))
        if len(positions) > _MAX_POSITIONS:
            del positions[::2]
            self._position_every *= 2

    def _read_from(self, lines: _Lines, before: int) -> None:
        """Parse ``lines`` from here on; ``before``: the physical lines before its first."""
        self._lines = lines
        self._line_iter = iter(lines)
        self._records = csv.reader(self._line_iter, delimiter=self.delimiter or ",")
        self._before = before
        """Physical lines before the first one csv.reader was given (0, or the line of a stray
        quote that reading went on after): add it to its line_num for the physical line."""
        self._skipped = 0
        """Lines read past csv.reader (the rest of an oversized row): add them too."""

    def _physical(self, line_num: int) -> int:
        """The physical line number of csv.reader's ``line_num``."""
        return self._before + self._skipped + line_num

    @classmethod
    def open(cls, p: Path, display: str, encoding: str | None, delimiter: str | None) -> _CsvInput:
        try:
            with open(p, "rb") as fh:
                head = fh.read(_SNIFF_BYTES)
        except OSError as exc:
            raise InputFileError(f"{display}: cannot read: {exc.strerror or exc}") from exc
        enc = _resolve_encoding(display, encoding, head)
        _reject_office(display, head)
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
            # closed by close()
            handle = open(p, encoding=enc, newline="", errors=_UNDECODABLE_ERRORS)  # noqa: SIM115
        except OSError as exc:
            raise InputFileError(f"{display}: cannot read: {exc.strerror or exc}") from exc
        try:
            self = cls(p, display, [], 0, handle, _Lines(_readlines(handle)), delimiter)
            header, self.header_row = self._read_header(head)
            self.columns = _check_header(
                display, header, _where(self.header_row), lambda i: str(i + 1)
            )
            return self
        except BaseException:
            handle.close()
            raise

    def _read_header(self, head: bytes) -> tuple[list[str], int]:
        """Return the header cells and its row number: the first record that is not blank.

        ``head`` is the file's first 64 KiB, to tell a binary file from a header that only
        does not decode."""
        display, lines, records = self._display, self._lines, self._records
        number = 0
        try:
            for record in records:
                number += 1
                if lines.flags and lines.flags[0] != _END:
                    # No header holds a NUL; UTF-16 without a byte-order mark has one in every
                    # line, and a binary file (a PNG) either one or bytes that do not decode
                    # near NUL bytes. A header that only does not decode is the encoding's fault.
                    if any("\x00" in cell for cell in record) or (
                        b"\x00" in head and _ascii_compatible(self._enc)
                    ):
                        raise InputFileError(f"{display}: {_BINARY}")
                    raise InputFileError(f"{display}: {_decode_message(self._enc, lines.flags[0])}")
                if lines.ended:
                    raise InputFileError(
                        f"{display}: row {number}: a quoted cell in the header is never closed; "
                        "check for a stray '\"' in the header"
                    )
                if not _is_blank(record):
                    self._header_end = records.line_num
                    return record, number
        except UnicodeDecodeError as exc:  # pragma: no cover - the error handler takes them all
            raise InputFileError(f"{display}: {_decode_message(self._enc, None)}") from exc
        except csv.Error as exc:
            raise _csv_error(display, number + 1, exc) from exc
        except OSError as exc:
            raise InputFileError(f"{display}: cannot read: {exc.strerror or exc}") from exc
        if number == 0:
            raise InputFileError(f"{display}: the file is empty; expected a header row")
        raise InputFileError(f"{display}: no header row (the file has only blank lines)")

    def _iter_rows_from(self, start: ReadPosition) -> Iterator[Row]:
        if start.row <= self.header_row or self._handle is None:
            raise ValueError(f"{self._display}: {start} is not after the header")
        self._handle.seek(start.offset)
        self._read_from(_Lines(_readlines(self._handle), start.line + 1), start.line)
        return self._iter_rows(start.row - 1, 0)

    def _iter_rows(self, number: int | None = None, ended_on: int | None = None) -> Iterator[Row]:
        """``number``: the row number before the first record to read; ``ended_on``:
        csv.reader's line_num where the record before it ended (default: the header's)."""
        columns = self.columns
        width = len(columns)
        text_after = self._text_after
        if number is None:
            number = self.header_row
        if ended_on is None:
            ended_on = self._header_end  # csv.reader's line_num where the last record ended
        mark = (number // self._position_every + 1) * self._position_every
        try:
            while True:
                # Rebound when reading goes on after a stray quote, from another _Lines.
                lines = self._lines
                flags = lines.flags
                recent = lines.recent
                records = self._records
                try:
                    # The hot loop: a well-formed row costs a flags test, a length check, a
                    # look at the lines it took, a strip of its first cell, a dict and noting
                    # where it ended. Everything unusual goes through _odd_row.
                    for cells in records:
                        number += 1
                        if not flags and len(cells) == width:
                            line_num = records.line_num
                            spans = line_num - ended_on
                            # One line; or several (a multi-line note) where no quote is
                            # followed by text: a stray quote's closing one would be.
                            if (
                                spans == 1
                                or (spans == 2 and not text_after(recent[-1]))
                                or (
                                    2 < spans <= len(recent)
                                    and not any(text_after(recent[-k]) for k in range(1, spans))
                                )
                            ):
                                if number >= mark:
                                    self._take_position(number + 1, line_num)
                                    every = self._position_every
                                    mark = (number // every + 1) * every
                                if cells[0].strip() or not _is_blank(cells):
                                    yield Row(number, dict(zip(columns, cells, strict=False)))
                                ended_on = line_num
                                continue
                        row = self._odd_row(number, cells, ended_on)
                        ended_on = records.line_num
                        if self._lines is not lines:  # a stray quote: read on after its line
                            assert row is not None
                            yield row
                            break
                        if lines.ended:
                            if row is not None:
                                yield row
                            return  # the record was still open when the file ended
                        flags.clear()
                        if row is not None:
                            yield row
                    else:
                        return
                    ended_on = 0
                except csv.Error as exc:
                    # csv.reader gave up on this record but starts the next one afresh on
                    # the next line: report the row, find its real end, and go on.
                    number += 1
                    row = self._oversized_row(number, exc, ended_on)
                    yield row
                    if self._lines is not lines:  # a stray quote: read on after its line
                        ended_on = 0
                    elif lines.ended:
                        return
                    else:
                        ended_on = records.line_num
        except UnicodeDecodeError as exc:  # pragma: no cover - the error handler takes them all
            raise InputReadError(
                f"{self._display}: row {number + 1}: {_decode_message(self._enc, None)}; "
                "the rows before it were read"
            ) from exc
        except OSError as exc:
            raise InputReadError(
                f"{self._display}: reading broke off at row {number + 1} "
                f"({exc.strerror or exc}); the rows before it were read"
            ) from exc
        finally:
            self.close()

    def _oversized_row(self, number: int, exc: csv.Error, ended_on: int) -> Row:
        """The error row for a record csv.reader refused, once the lines it spans are read.

        With ``newline=""`` and ``strict=False`` csv.reader only refuses a cell longer than
        :func:`csv.field_size_limit`. It stops at the line where the cell passed the limit, and
        would read the next line as a new record, which is wrong when that cell is quoted and
        goes on: the rest of the cell would come out as rows (a huge quoted note whose lines
        look like leads). So the quotes are followed from the record's first line on, the way
        csv.reader reads them, and the lines up to the record's real end are read here. A quote
        that is never closed is a stray quote (see :meth:`_stray_row`): reading goes on after
        its line.
        """
        lines, records = self._lines, self._records
        if "field larger than field limit" not in str(exc):  # pragma: no cover - see above
            raise InputReadError(
                f"{self._display}: row {number}: cannot parse as CSV ({exc}); "
                "the rows before it were read"
            ) from exc
        first = self._physical(ended_on + 1)
        last = self._physical(records.line_num)
        # A record only goes on past a line end inside a quoted cell: if it began on an earlier
        # line, the line where csv.reader gave up began inside one.
        open_quote = _ends_in_quotes(lines.recent[-1], first < last, self.delimiter or ",")
        while open_quote:
            line = next(self._line_iter, None)
            if line is None:
                break
            self._skipped += 1
            last += 1
            open_quote = _ends_in_quotes(line, True, self.delimiter or ",")
        ended = lines.ended
        lines.flags.clear()  # undecodable bytes in these lines are part of this row's error
        if ended:
            lines.flags.append(_END)
        if ended and open_quote:
            found = self._stray_row(number, first, last, fits=False)
            if found is not None:
                return found
        span = f"line {first}" if first == last else f"lines {first} to {last}"
        if ended and open_quote:  # pragma: no cover - _stray_row finds the quote
            error = (
                f"a quoted cell is never closed, so the row runs to the end of the file "
                f"({span}) and a cell is longer than {csv.field_size_limit():,} characters; "
                "check for a stray '\"' in this row"
            )
        else:
            error = (
                f"{span}: a cell is longer than {csv.field_size_limit():,} characters "
                "(no LeadSquared field holds that much)"
            )
            if first != last:
                error += "; if the row has a stray '\"', it swallowed the lines after it"
        return Row(number, dict.fromkeys(self.columns, ""), error=error)

    def _odd_row(self, number: int, cells: list[str], ended_on: int) -> Row | None:
        """A row that spans lines (it may hold a stray quote) or ends the file inside a quote,
        holds undecodable bytes, is short, long or blank. ``ended_on``: csv.reader's line_num
        where the record before it ended."""
        columns = self.columns
        width = len(columns)
        lines = self._lines
        flags = lines.flags
        spans = self._records.line_num - ended_on
        if lines.ended or (
            spans > 1
            and (
                spans > len(lines.recent)
                or any(self._text_after(lines.recent[-k]) for k in range(1, spans))
            )
        ):
            # csv.reader only hands over a record after the last line when a quote left it
            # open; a record that spans lines may hold a stray quote if a quote on a line after
            # its first is followed by text.
            first = self._physical(ended_on + 1)
            last = self._physical(self._records.line_num)
            found = self._stray_row(number, first, last, fits=len(cells) == width)
            if found is not None:
                return found
            if lines.ended:  # pragma: no cover - _stray_row finds the quote
                return Row(number, _padded(columns, cells), error=_UNCLOSED_QUOTE)
        if flags and flags[0] != _END:
            return self._binary_row(number, cells, flags[0])
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

    def _stray_row(self, number: int, first: int, last: int, *, fits: bool) -> Row | None:
        """The error row of a record (physical lines ``first`` to ``last``, the last line read)
        that holds a stray quote, or None if it holds none; reading then goes on after the line
        where the stray quote opened. ``fits``: the record has the header's number of cells.

        A stray quote is a quoted cell that runs past a line end and is never closed, or is
        closed by a quote followed by more text (see :func:`_stray_quote`), where that quote
        starts a cell of its line (it is the quote that opens the next row's quoted note) or the
        record does not fit the header. A well-formed file has neither (a quote inside a quoted
        cell is doubled); one written without doubling them (``"he said "hi""``) is read as
        before unless such a quote follows a delimiter. Reading on after its line reads the
        lines it swallowed as the rows they are, numbered as they will be once the quote is
        fixed. The row's values are its cells up to that line's end (none when its lines are no
        longer kept); it is not imported anyway.
        """
        delimiter = self.delimiter or ","
        kept = self._kept(first, last)
        source = kept if kept is not None else self._lines_from(first)
        try:
            found = _stray_quote(iter(source), first, delimiter)
        finally:
            if not isinstance(source, list):
                source.close()
        if found is None:
            return None
        line, cell, closed, at_cell_start = found
        if closed and fits and not at_cell_start:
            return None
        columns = self.columns
        where = f"line {line}, " + (
            f"column '{columns[cell]}'" if cell < len(columns) else f"cell {cell + 1}"
        )
        if closed:
            error = (
                f"{where}: a quoted cell opens here and swallows the lines after it up to "
                f"line {last}, where a quote ends it with text after it; check for a stray "
                "'\"' in this row"
            )
        else:
            error = (
                f"{where}: a quoted cell opens here and is never closed, so it would run to "
                "the end of the file; check for a stray '\"' in this row"
            )
        values = dict.fromkeys(columns, "")
        if kept is not None:
            # The record as it would be with the quote closed at its line's end.
            cells = next(csv.reader(kept[: line - first + 1], delimiter=delimiter), [])
            if cells:
                cells[-1] = _LINE_END.sub("", cells[-1])
            values = _padded(columns, [_readable(cell) for cell in cells])
        if line < last:
            error += f" (reading went on with line {line + 1})"
            self._read_on_after(line, None if kept is None else kept[line + 1 - first :])
        return Row(number, values, error=error)

    def _kept(self, first: int, last: int) -> list[str] | None:
        """Physical lines ``first`` to ``last`` (the last line read), if still kept."""
        recent = self._lines.recent
        count = last - first + 1
        if count > len(recent):
            return None
        return [recent[k] for k in range(-count, 0)]  # a deque indexes fast near its ends

    def _lines_from(self, first: int) -> TextIO:
        """The file opened again, at physical line ``first``."""
        handle = open(self.path, encoding=self._enc, newline="", errors=_UNDECODABLE_ERRORS)  # noqa: SIM115
        try:
            for _ in itertools.islice(_readlines(handle), first - 1):
                pass
        except BaseException:
            handle.close()
            raise
        return handle

    def _read_on_after(self, line: int, again: list[str] | None) -> None:
        """Go on reading at physical line ``line + 1``: ``again`` (the kept lines from there to
        the last one read), then the rest of the open file; or, when those lines are no longer
        kept, from the file opened again at that line."""
        since = self._lines.since  # those lines were decoded already: search them all
        if again is not None and self._handle is not None:
            lines = itertools.chain(again, _readlines(self._handle))
            self._read_from(_Lines(lines, line + 1, since, replayed=len(again)), line)
            return
        handle = self._lines_from(line + 1)
        old, self._handle = self._handle, handle
        if old is not None:
            old.close()
        self._read_from(_Lines(_readlines(handle), line + 1, since), line)

    def _binary_row(self, number: int, cells: list[str], line: int) -> Row:
        """The error row for a record with undecodable bytes or a NUL, naming the line (the
        first flagged one) and the column of the first cell holding one.

        Those cells are blanked in ``values``: a lone surrogate cannot be written to a UTF-8
        file, a NUL must not be sent, and the row is not imported anyway."""
        columns = self.columns
        bad = [i for i, cell in enumerate(cells) if "\x00" in cell or _UNDECODABLE.search(cell)]
        where = f"line {line}"
        error = _decode_message(self._enc, line, where)
        if bad:
            i = bad[0]
            where += f", column '{columns[i]}'" if i < len(columns) else f", cell {i + 1}"
            if _UNDECODABLE.search(cells[i]):
                error = _decode_message(self._enc, line, where)
            else:
                error = f"{where}: holds a NUL character (binary data, not text); remove it"
        cells = ["" if i in bad else cell for i, cell in enumerate(cells)]
        return Row(number, _padded(columns, cells), error=error)

    def bytes_read(self) -> tuple[int, int] | None:
        size = self._size
        if size is None:
            return None
        handle = self._handle
        if handle is None:  # closed: read to its end, or given up
            return size, size
        try:
            return min(handle.buffer.tell(), size), size
        except (OSError, ValueError, AttributeError):
            return None

    def close(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.close()


def _regular_size(handle: TextIO) -> int | None:
    try:
        info = os.fstat(handle.fileno())
    except (OSError, ValueError, AttributeError):
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


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


def _reject_office(display: str, head: bytes) -> None:
    """Refuse a workbook saved under a text name before the decoder produces a misleading
    message. (Other binary files are refused when their header turns out to hold NULs.)"""
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


def _decode_message(enc: str, line: int | None, where: str | None = None) -> str:
    """ "line 7: cannot decode as utf-8 (try --encoding cp1252)", without the file's name."""
    shown = "utf-8" if enc == "utf-8-sig" else enc
    hint = "try --encoding cp1252" if shown == "utf-8" else "check --encoding"
    where = where or (f"line {line}" if line else "")
    return f"{where + ': ' if where else ''}cannot decode as {shown} ({hint})"


def _ends_in_quotes(line: str, quoted: bool, delimiter: str) -> bool:
    """Whether a quoted cell is still open at the end of ``line``, read the way csv.reader
    reads it (``strict=False``, ``""`` for a quote, no escape character), from inside a quoted
    cell when ``quoted``. Used only to find the end of a row csv.reader refused."""
    stop = len(line.rstrip("\r\n"))  # newline="": a line end only ever ends a line
    i = 0
    at_start = not quoted
    while True:
        if quoted:
            j = line.find('"', i, stop)
            if j < 0:
                return True
            if line.startswith('"', j + 1):  # "" inside quotes is one quote
                i = j + 2
                continue
            quoted, i = False, j + 1
            # after the closing quote: a delimiter starts the next cell; anything else but the
            # line end is more of this cell, unquoted (csv.reader's strict=False)
            at_start = i < stop and line[i] == delimiter
            i += at_start
            continue
        if i >= stop:
            return False
        if at_start and line[i] == '"':
            quoted, i = True, i + 1
            continue
        # an unquoted cell runs to the next delimiter, or the line end ends the record
        j = line.find(delimiter, i, stop)
        if j < 0:
            return False
        i, at_start = j + 1, True


_LINE_END = re.compile(r"(\r\n|\r|\n)$")


def _readable(cell: str) -> str:
    """A cell of an error row as it may be kept: blank if it holds a NUL or undecodable bytes
    (see :meth:`_CsvInput._binary_row`)."""
    return "" if "\x00" in cell or _UNDECODABLE.search(cell) else cell


def _stray_quote(
    lines: Iterator[str], first: int, delimiter: str
) -> tuple[int, int, bool, bool] | None:
    """Follow one record from its first line (numbered ``first``) the way csv.reader reads it
    (``strict=False``, ``""`` for a quote, no escape character) to what may be a stray quote: a
    quoted cell that runs past a line end and then is never closed, or is closed by a quote
    followed by something other than the delimiter or the line end, which a well-formed file
    never has.

    Returns (line, cell index, closed, at cell start) of where that cell's quote opened (the
    first such cell; one never closed is the last to open) and whether the quote that closed it
    starts a cell of its line (first on it, or after a delimiter), or None when the record ends
    without one.
    """
    cell = 0
    quoted = spanned = False
    opened = (first, 0)
    for number, line in enumerate(lines, start=first):
        stop = len(line.rstrip("\r\n"))  # newline="": a line end only ever ends a line
        i = 0
        at_start = not quoted
        while True:
            if quoted:
                j = line.find('"', i, stop)
                if j < 0:
                    break  # the line ends inside the quoted cell
                if line.startswith('"', j + 1):  # "" inside quotes is one quote
                    i = j + 2
                    continue
                quoted, i = False, j + 1
                if spanned and i < stop and line[i] != delimiter:
                    return (*opened, True, j == 0 or line[j - 1] == delimiter)
                # after the closing quote: a delimiter starts the next cell; anything else but
                # the line end is more of this cell, unquoted (csv.reader's strict=False)
                at_start = i < stop and line[i] == delimiter
                cell += at_start
                i += at_start
                continue
            if i >= stop:
                return None  # a line end outside quotes ends the record
            if at_start and line[i] == '"':
                quoted, spanned, opened, i = True, False, (number, cell), i + 1
                continue
            # an unquoted cell runs to the next delimiter, or the line end ends the record
            j = line.find(delimiter, i, stop)
            if j < 0:
                return None
            i, at_start, cell = j + 1, True, cell + 1
        spanned = True
    return (*opened, False, False) if quoted else None


def _single_byte(enc: str) -> bool:
    try:
        return len("\n".encode(enc)) == 1 and len("a".encode(enc)) == 1
    except (LookupError, UnicodeError):
        return False
