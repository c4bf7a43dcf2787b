"""What python-calamine cannot be asked about an ``.xlsx``/``.xlsm`` sheet: its size, before
it is loaded, and which of its cells hold an Excel error or a formula without a saved value.

python-calamine builds the grid from the top-left to the bottom-right cell it finds and fills
every cell of it in memory, about 32 bytes each. One cell at ``XFD1048576`` is a grid of 17
billion cells: the allocation fails and Rust aborts the whole process (exit 134, a backtrace,
no results file flushed). It has no option to refuse, and exposes no dimensions before
loading, so :func:`check_sheet` reads the sheet's XML inside the zip first and refuses a
sheet larger than :data:`MAX_SHEET_CELLS` with one InputFileError line.

The check streams the sheet's XML (flat memory) and refuses

* a declared ``<dimension ref="A1:XFD1048576"/>`` larger than the limit, without reading on;
* cells spanning more than the limit, whatever the dimension says (calamine does not read it:
  a sheet whose dimension is missing, or lies, aborts just the same).

Placing a million cells in Python would cost as much as calamine's own load, so the cells are
checked with one regular-expression search per megabyte, for any cell outside the box seen so
far (left of it, right of it, above it, or further below than the limit allows for its width)
and for any cell the search cannot place: one without a plain ``r="A1"`` as its first
attribute, or with a namespace prefix. A normal sheet's box is set by its first rows, so the
search finds nothing after the first megabyte; it costs about a third of calamine's own load
(0.5 s for 100,000 rows of 10 cells). Only the megabytes where it finds something are looked
at cell by cell, and a sheet that widens half-way is searched a second time. A cell the search
cannot place (in files Excel, LibreOffice, openpyxl and xlsxwriter do not write) sends the
sheet to an XML parse (expat, without namespaces, as calamine reads it) that places every cell
the way calamine does (a cell without ``r`` goes right of the one before it), so no spelling
of the XML hides a cell; that takes a few seconds per million cells.

python-calamine gives ``""`` for a cell holding an Excel error (``#N/A``, ``#DIV/0!``,
``#REF!``...) and for a formula whose value was never saved (files written by programs that do
not calculate, such as openpyxl), exactly as for an empty cell: ``#N/A`` in a column went on as
"empty", and a row holding only ``#DIV/0!`` was dropped as blank. The same pass finds those
cells in the XML (``t="e"``, and ``<f>`` followed by no or an empty ``<v>``, except for a
string result, whose saved value may be empty), and :func:`sheet_problems` streams them, one
message per row, in the order of the XML, for the reader to turn those rows into error rows.
Excel writes rows in order; for a sheet whose rows are not, the problems are gathered and
sorted first, which costs memory in proportion to the rows that have them. A formula whose
saved value is wrong (xlsxwriter saves 0 for every formula it does not calculate) cannot be
told from a right one.

``.xls`` files are not checked here: see the Excel reader's docstring.
"""

from __future__ import annotations

import functools
import html
import posixpath
import re
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from xml.parsers import expat

from ..exceptions import InputFileError

__all__ = ["MAX_SHEET_CELLS", "SheetCheck", "check_sheet", "sheet_problems"]

MAX_SHEET_CELLS = 20_000_000
"""The largest grid (rows x columns, from the top-left to the bottom-right used cell) read from
a sheet: about 650 MB inside python-calamine, e.g. all 1,048,576 rows of 19 columns, or 100,000
rows of 200. A sheet that large belongs in a CSV file, which is read in flat memory."""

_CHUNK = 1 << 20

_DIMENSION = re.compile(rb"""<(?:[A-Za-z_][\w.\-]*:)?dimension\b[^>]*?\sref\s*=\s*["']([^"']*)""")
_SHEET_DATA = re.compile(rb"<(?:[A-Za-z_][\w.\-]*:)?sheetData[\s/>]")
_REF = re.compile(r"\$?([A-Z]{1,3})\$?([0-9]{1,7})")


@dataclass(frozen=True)
class SheetCheck:
    """What :func:`check_sheet` found out about a sheet that is not too large."""

    part: str
    """The sheet's XML inside the zip."""
    parse: bool
    """Whether its cells can only be placed by parsing the XML (see the module docstring)."""
    problems: bool
    """Whether some cell holds an Excel error or a formula without a saved value."""
    in_order: bool
    """Whether those cells come in the order of their rows in the XML."""


def check_sheet(path: Path, display: str, sheet: str) -> SheetCheck:
    """Raise InputFileError when ``sheet`` of the workbook at ``path`` declares or spans more
    cells than :data:`MAX_SHEET_CELLS`, or when its XML cannot be found or read; else say
    what :func:`sheet_problems` needs."""
    where = f"{display}: sheet '{sheet}'"
    try:
        with zipfile.ZipFile(path) as archive:
            part = _sheet_part(archive, sheet)
            if part is None:
                raise InputFileError(
                    f"{where}: its XML is not where the workbook says, so its size cannot be "
                    "checked; open the file in Excel and save it again, or save the sheet as CSV"
                )
            order = _Order()
            with archive.open(part) as xml:
                declared, cells = _fast_extent(xml, lambda: archive.open(part), order)
            if declared is not None and _area(declared) > MAX_SHEET_CELLS:
                _refuse(where, declared, "declares")
            parse = cells is _UNPLACED
            if parse:
                order = _Order()
                with archive.open(part) as xml:
                    cells = _exact_extent(xml, order)
    except InputFileError:
        raise
    except (OSError, zipfile.BadZipFile, ET.ParseError, expat.ExpatError, ValueError) as exc:
        raise _unreadable(where, exc) from exc
    if cells is not None and _area(cells) > MAX_SHEET_CELLS:
        _refuse(where, cells, "has cells in")
    return SheetCheck(part, parse, order.seen, order.ascending)


def sheet_problems(path: Path, check: SheetCheck) -> Iterator[tuple[int, str]]:
    """(row number, what is wrong) for each row holding an Excel error or a formula without a
    saved value, in row order, naming up to three of its cells: "C14: the cell holds the Excel
    error #N/A". Reads the XML again, streaming unless its rows are out of order; close it to
    close the file early."""
    if not check.problems:
        return
    found = _sheet_problems(path, check)
    if check.in_order:
        yield from _by_row(found)
        return
    rows: dict[int, list[str]] = {}
    for row, _, message in found:
        rows.setdefault(row, []).append(message)
    for row in sorted(rows):
        yield row, _row_message(rows[row])


def _sheet_problems(path: Path, check: SheetCheck) -> Iterator[tuple[int, int, str]]:
    with zipfile.ZipFile(path) as archive, archive.open(check.part) as xml:
        if check.parse:
            yield from _ExactScan(_Order()).problems_in(xml)
        else:
            for data, cut in _chunks(xml):
                yield from _chunk_problems(data, cut)


def _by_row(found: Iterator[tuple[int, int, str]]) -> Iterator[tuple[int, str]]:
    row, messages = 0, list[str]()
    for at, _, message in found:
        if at != row and messages:
            yield row, _row_message(messages)
            messages = []
        row = at
        messages.append(message)
    if messages:
        yield row, _row_message(messages)


def _row_message(messages: list[str]) -> str:
    text = "; ".join(messages[:3])
    if len(messages) > 3:
        text += f"; and {len(messages) - 3} more cells like these"
    return text


def _unreadable(where: str, exc: Exception) -> InputFileError:
    return InputFileError(
        f"{where}: cannot read its XML ({' '.join(str(exc).split())}); open the file in "
        "Excel and save it again, or save the sheet as CSV"
    )


class _Order:
    """Whether problem cells were seen, and whether their rows never went back."""

    __slots__ = ("ascending", "last", "seen")

    def __init__(self) -> None:
        self.seen, self.ascending, self.last = False, True, 0

    def note(self, found: list[tuple[int, int, str]]) -> None:
        for row, _, _ in found:
            self.seen = True
            if row < self.last:
                self.ascending = False
            self.last = row


_Box = tuple[int, int, int, int]
"""First row, first column, last row, last column; 1-based, inclusive."""

_UNPLACED: _Box = (1, 1, 0, 0)
"""From the fast pass: a cell it cannot place was found; parse the XML."""


def _area(box: _Box) -> int:
    return (box[2] - box[0] + 1) * (box[3] - box[1] + 1)


def _refuse(where: str, box: _Box, verb: str) -> None:
    ref = f"{_letters(box[1])}{box[0]}:{_letters(box[3])}{box[2]}"
    rows, columns = box[2] - box[0] + 1, box[3] - box[1] + 1
    raise InputFileError(
        f"{where} {verb} {ref} ({rows:,} rows x {columns:,} columns = {rows * columns:,} cells), "
        f"more than the {MAX_SHEET_CELLS:,} cells lsq-import reads from a sheet; "
        "save the sheet as CSV and import that"
    )


# --------------------------------------------------------------------------------------------
# Finding the sheet's XML: the way calamine does (the officeDocument relationship, then the
# workbook's relationship for the sheet), with the zip's names matched regardless of case.


def _sheet_part(archive: zipfile.ZipFile, sheet: str) -> str | None:
    names = {name.replace("\\", "/").lower(): name for name in archive.namelist()}

    def read(name: str) -> ET.Element | None:
        found = names.get(name.lower())
        return None if found is None else ET.fromstring(archive.read(found))

    base = "xl/"
    package = read("_rels/.rels")
    for rel in package.iter() if package is not None else ():
        if _local(rel.tag) == "Relationship" and rel.get("Type", "").endswith(
            "/relationships/officeDocument"
        ):
            target = rel.get("Target", "")
            base = target[: target.rfind("/") + 1].lstrip("/")
    workbook = read(f"{base}workbook.xml")
    rels = read(f"{base}_rels/workbook.xml.rels")
    if workbook is None or rels is None:
        return None
    targets = {
        rel.get("Id"): rel.get("Target", "")
        for rel in rels.iter()
        if _local(rel.tag) == "Relationship"
    }
    for element in workbook.iter():
        if _local(element.tag) == "sheet" and element.get("name") == sheet:
            rel_id = next((v for k, v in element.attrib.items() if _local(k) == "id"), None)
            sheet_target = targets.get(rel_id)
            if not sheet_target:
                return None
            if sheet_target.startswith("/"):
                full = sheet_target[1:]
            else:
                full = posixpath.normpath(base + sheet_target)
            return names.get(full.lower())
    return None


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


# --------------------------------------------------------------------------------------------
# The fast pass: search for cells outside the box seen so far.

_CELL_REFS = re.compile(rb'<c r="([A-Z]{1,3})([1-9][0-9]{0,6})"')


def _fast_extent(
    xml: IO[bytes], reopen: Callable[[], IO[bytes]], order: _Order
) -> tuple[_Box | None, _Box | None]:
    """The declared dimension (None without one), and the box of the sheet's cells: None for
    a sheet without cells, :data:`_UNPLACED` when a cell was found that the search cannot
    place. Stops early, returning the box so far, once it is too large; ``reopen`` gives the
    XML again for a second search. Problem cells are noted in ``order`` on the way."""
    head = b""  # up to <sheetData>: the dimension comes before it
    while len(head) < 16 * _CHUNK:
        chunk = xml.read(_CHUNK)
        if not chunk:
            break
        head += chunk
        if _SHEET_DATA.search(head, max(0, len(head) - len(chunk) - 64)):
            break
    match = _DIMENSION.search(head)
    declared = _parse_box(match.group(1).decode("ascii", "replace")) if match else None
    if declared is not None and _area(declared) > MAX_SHEET_CELLS:
        return declared, None
    box: _Box | None = None
    searched_with = 0  # the largest "last allowed row" a megabyte was searched with
    for data, cut in _chunks(xml, head):
        if _prefixed_cell(data, cut):
            return declared, _UNPLACED
        if box is None or _outside(box).search(data, 0, cut):
            if _UNPLACEABLE.search(data, 0, cut):
                return declared, _UNPLACED
            refs = set(_CELL_REFS.findall(data, 0, cut))
            if refs:
                columns = {_column_number(letters.decode()) for letters, _ in refs}
                rows = {int(digits) for _, digits in refs}
                if box is None:
                    box = (min(rows), min(columns), max(rows), max(columns))
                else:
                    box = (
                        min(box[0], min(rows)),
                        min(box[1], min(columns)),
                        max(box[2], max(rows)),
                        max(box[3], max(columns)),
                    )
                if _area(box) > MAX_SHEET_CELLS:
                    return declared, box
        order.note(_chunk_problems(data, cut))
        if box is not None:
            searched_with = max(searched_with, _last_allowed_row(box))
    if box is None:
        return declared, None
    if searched_with > _last_allowed_row(box):
        # The box widened after earlier megabytes were searched with a longer allowance:
        # search them again for rows beyond the final one.
        with reopen() as again:
            below = _below(_last_allowed_row(box))
            for data, cut in _chunks(again):
                if below.search(data, 0, cut):
                    deepest = max(int(d) for _, d in _CELL_REFS.findall(data, 0, cut))
                    return declared, (box[0], box[1], deepest, box[3])
    # Rows in megabytes not looked at cell by cell are only known to be within the allowance:
    # the box's bottom may be short, but its area is within the limit either way.
    return declared, box


def _cut(data: bytes) -> int:
    """Where to end this megabyte's search: before the last cell it starts (so that no cell is
    split, for :func:`_chunk_problems`), or at least before the last tag (a tag never holds a
    '<', so that never splits one)."""
    cut = data.rfind(b"<c ")
    if cut <= 0:
        cut = data.rfind(b"<")
    return cut if cut > 0 else len(data)


def _chunks(xml: IO[bytes], data: bytes = b"") -> Iterator[tuple[bytes, int]]:
    """The XML a megabyte at a time (after ``data``, read already), each with the
    :func:`_cut` to search it up to; the rest comes again at the start of the next one, and
    the last one is searched to its end."""
    while chunk := xml.read(_CHUNK):
        data += chunk
        cut = _cut(data)
        yield data, cut
        data = data[cut:]
    if data:
        yield data, len(data)


def _last_allowed_row(box: _Box) -> int:
    """The last row the box may reach, at its width, within the limit."""
    return box[0] + MAX_SHEET_CELLS // (box[3] - box[1] + 1) - 1


# A cell without a plain r="A1" first: no r at all, r after another attribute, odd quoting or
# spaces, a leading zero. Each pattern here starts with the literal "<c", which the regular
# expression engine finds fast; the other tags then fail at their second character.
_UNPLACEABLE_CELL = rb'(?=[\s/>])(?! r="[A-Z]{1,3}[1-9][0-9]{0,6}")'
_UNPLACEABLE = re.compile(b"<c" + _UNPLACEABLE_CELL)
# calamine takes any element named c, whatever its prefix, for a cell: "<x:c r=...>"
_PREFIX = re.compile(rb":c[\s/>]")
_NAME = re.compile(rb"[A-Za-z_][\w.\-]*")


def _prefixed_cell(data: bytes, cut: int) -> bool:
    """Whether ``data[:cut]`` holds a cell element with a namespace prefix. ":c" in text
    costs one look back: text never holds a "<", so a name between the last "<" and it means
    a tag."""
    for match in _PREFIX.finditer(data, 0, cut):
        start = data.rfind(b"<", 0, match.start()) + 1
        if start and _NAME.fullmatch(data, start, match.start()):
            return True
    return False


def _outside(box: _Box) -> re.Pattern[bytes]:
    """A search for a cell outside ``box`` in any direction, or further below than the limit
    allows at its width, or one it cannot place (see :data:`_UNPLACEABLE`)."""
    top, left, _, right = box
    columns = [_greater(_letters(right), _LETTERS, 3), _less(_letters(left), _LETTERS)]
    rows = [_greater(str(_last_allowed_row(box)), _DIGITS, 7), _less(str(top), _DIGITS)]
    return _compiled(
        b"<c(?:"
        + b"|".join(
            [_UNPLACEABLE_CELL]
            + [b' r="(?:' + c.encode() + b")[0-9]" for c in columns if c]
            + [b' r="[A-Z]{1,3}(?:' + r.encode() + b')"' for r in rows if r]
        )
        + b")"
    )


def _below(last_row: int) -> re.Pattern[bytes]:
    """A search for a cell below ``last_row``."""
    return _compiled(b'<c r="[A-Z]{1,3}(?:' + _greater(str(last_row), _DIGITS, 7).encode() + b')"')


@functools.lru_cache(maxsize=64)
def _compiled(pattern: bytes) -> re.Pattern[bytes]:
    return re.compile(pattern)


_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_DIGITS = "0123456789"


def _greater(value: str, alphabet: str, longest: int) -> str:
    """A regular expression for the strings over ``alphabet`` (in its order) of at most
    ``longest`` characters that come after ``value`` in the numbering that column letters and
    row numbers use: longer is greater, and the same length compares character by character."""
    first, last = alphabet[0], alphabet[-1]
    any_char = f"[{first}-{last}]"
    options = []
    for i, char in enumerate(value):
        if char != last:
            after = alphabet[alphabet.index(char) + 1]
            rest = len(value) - i - 1
            options.append(f"{re.escape(value[:i])}[{after}-{last}]{any_char}{{{rest}}}")
    if len(value) < longest:
        options.append(f"{any_char}{{{len(value) + 1},{longest}}}")
    return "|".join(options)


def _less(value: str, alphabet: str) -> str:
    """Like :func:`_greater`, for the strings before ``value`` (shorter, or the same length and
    smaller), with no leading first character of ``alphabet`` (no "0" in front of a row)."""
    first, last = alphabet[0], alphabet[-1]
    options = []
    for i, char in enumerate(value):
        lowest = alphabet[1] if i == 0 and first == "0" else first
        if char > lowest:
            before = alphabet[alphabet.index(char) - 1]
            rest = len(value) - i - 1
            options.append(f"{re.escape(value[:i])}[{lowest}-{before}][{first}-{last}]{{{rest}}}")
    if len(value) > 1:
        lead = f"[{alphabet[1]}-{last}]" if first == "0" else f"[{first}-{last}]"
        options.append(f"{lead}[{first}-{last}]{{0,{len(value) - 2}}}")
    return "|".join(options)


# --------------------------------------------------------------------------------------------
# The exact pass: place every cell as calamine does.


def _exact_extent(xml: IO[bytes], order: _Order) -> _Box | None:
    """The grid of all cells, each placed as calamine places it; problem cells are noted in
    ``order``. None for a sheet without cells."""
    scan = _ExactScan(order)
    for _ in scan.problems_in(xml):
        pass
    return scan.box()


class _ExactScan:
    """The sheet parsed with expat, without namespaces, as calamine reads it: any element whose
    name ends in ``:c`` is a cell, whatever its prefix, bound or not. Each cell is placed at its
    ``r`` when it has one, else right of the cell before it in its row (a row without ``r``
    follows the one before), as calamine does."""

    def __init__(self, order: _Order) -> None:
        self._order = order
        self._top = self._left = 1 << 30
        self._bottom = self._right = 0
        self._row = self._column = 0  # where a cell without r goes; 0-based, as calamine counts
        self._at = (0, 0)
        self._type: str | None = None
        self._formula: list[str] | None = None  # the formula's text, when the cell has one
        self._value: list[str] | None = None  # the saved value's text, when it has one
        self._into: list[str] | None = None  # where character data goes
        self._found: list[tuple[int, int, str]] = []

    def box(self) -> _Box | None:
        if self._bottom == 0:
            return None
        return self._top, self._left, self._bottom, self._right

    def problems_in(self, xml: IO[bytes]) -> Iterator[tuple[int, int, str]]:
        """Parse ``xml`` 64 KiB at a time, yielding the problem cells found as it goes."""
        parser = expat.ParserCreate()
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.CharacterDataHandler = self._text
        while True:
            chunk = xml.read(1 << 16)
            parser.Parse(chunk, not chunk)
            found, self._found = self._found, []
            self._order.note(found)
            yield from found
            if not chunk:
                return

    def _start(self, name: str, attributes: dict[str, str]) -> None:
        local = name.rpartition(":")[2]
        if local == "c":
            ref = attributes.get("r")
            if ref is None:
                at = self._row
            else:  # calamine takes its column for the cells after it, not its row
                at, self._column = _parse_ref(ref)
            self._at = (at, self._column)
            self._top, self._bottom = min(self._top, at + 1), max(self._bottom, at + 1)
            self._left = min(self._left, self._column + 1)
            self._right = max(self._right, self._column + 1)
            self._type, self._formula, self._value = attributes.get("t"), None, None
        elif local == "row":
            r = attributes.get("r")
            if r is not None:
                self._row = int(r) - 1
        elif local == "f":
            self._formula = self._into = []
        elif local == "v":
            self._value = self._into = []

    def _end(self, name: str) -> None:
        local = name.rpartition(":")[2]
        if local == "c":
            row, column = self._at
            problem = _problem(
                self._type,
                None if self._formula is None else "".join(self._formula),
                None if self._value is None else "".join(self._value),
            )
            if problem:
                ref = f"{_letters(column + 1)}{row + 1}"
                self._found.append((row + 1, column + 1, f"{ref}: {problem}"))
            self._column += 1
        elif local == "row":
            self._row, self._column = self._row + 1, 0
        elif local in ("f", "v"):
            self._into = None

    def _text(self, text: str) -> None:
        if self._into is not None:
            self._into.append(text)


# --------------------------------------------------------------------------------------------
# Problem cells, as the fast pass finds them: every cell starts with a plain <c r="A1".

_CELL_START = re.compile(rb'<c r="([A-Z]{1,3})([1-9][0-9]{0,6})"([^>]*)>')
_TYPE = re.compile(rb'\st\s*=\s*["\']([^"\']*)')
# a formula not followed by a saved value: no <v>, or an empty one, before </c>
_NO_VALUE = re.compile(rb"(?:</f>|<f\b[^>]*/>)\s*(<v\s*/>|<v>\s*</v>)?\s*</c>")
_FORMULA = re.compile(rb"<f\b[^>]*?(?:/>|>([^<]*)</f>)")
_VALUE = re.compile(rb"<v>([^<]*)</v>")


def _chunk_problems(data: bytes, cut: int) -> list[tuple[int, int, str]]:
    """The problem cells in ``data[:cut]``, as (row, column, "C14: ..."), in the order of the
    XML. Only the cells around a ``t="e"`` or a formula are looked at: nothing else is parsed,
    so a sheet without either costs two searches a megabyte."""
    cells: dict[int, tuple[int, int, str]] = {}  # by where the cell starts: each cell once
    at = data.find(b't="e"', 0, cut)
    while at >= 0:
        cell = _cell_at(data, at, cut)
        if cell is not None and cell.kind == "e":
            value = _VALUE.search(cell.content)
            problem = _problem("e", None, None if value is None else _text(value.group(1)))
            cells[cell.start] = (cell.row, cell.column, f"{cell.ref}: {problem}")
        at = data.find(b't="e"', at + 1, cut)
    if data.find(b"<f", 0, cut) >= 0:
        for match in _NO_VALUE.finditer(data, 0, cut):
            cell = _cell_at(data, match.start(), cut)
            if cell is None or cell.start in cells:
                continue
            formula = _FORMULA.search(cell.content)
            text = None if formula is None else _text(formula.group(1) or b"")
            problem = _problem(cell.kind, text, "" if match.group(1) else None)
            if problem:
                cells[cell.start] = (cell.row, cell.column, f"{cell.ref}: {problem}")
    return [cells[start] for start in sorted(cells)]


@dataclass(frozen=True, slots=True)
class _Cell:
    start: int
    ref: str
    row: int
    column: int
    kind: str | None
    """Its ``t`` attribute."""
    content: bytes
    """Between its start tag and ``</c>``."""


def _cell_at(data: bytes, inside: int, cut: int) -> _Cell | None:
    """The cell ``data[inside]`` falls in, if any."""
    start = data.rfind(b"<c ", 0, inside)
    match = _CELL_START.match(data, start) if start >= 0 else None
    if match is None:
        return None
    if match.group(3).endswith(b"/"):  # <c r="A1" s="2"/>: nothing inside
        close = end = match.end()
    else:
        close = data.find(b"</c>", match.end(), cut)
        close = cut if close < 0 else close
        end = close + 4
    if inside >= end:
        return None
    kind = _TYPE.search(match.group(3))
    letters, digits = match.group(1).decode(), match.group(2).decode()
    return _Cell(
        start,
        letters + digits,
        int(digits),
        _column_number(letters),
        None if kind is None else kind.group(1).decode("ascii", "replace"),
        data[match.end() : close],
    )


def _text(raw: bytes) -> str:
    return html.unescape(raw.decode("utf-8", "replace"))


def _problem(kind: str | None, formula: str | None, value: str | None) -> str:
    """What is wrong with a cell of type ``kind`` (its t) holding ``formula`` and the saved
    ``value`` (None when there is none), or "" when nothing is."""
    if kind == "e":
        return (
            f"the cell holds the Excel error {value}" if value else "the cell holds an Excel error"
        )
    if formula is None:
        return ""
    if value is not None and (value.strip() or kind in ("str", "inlineStr")):
        return ""  # a saved value; for a string result an empty one is the value
    shown = f" ={formula[:60]}{'...' if len(formula) > 60 else ''}" if formula else ""
    return (
        f"the formula{shown} has no saved value (the file was written by a program that does "
        "not calculate formulas); open and save it in Excel, or export the sheet as CSV"
    )


def _parse_ref(ref: str) -> tuple[int, int]:
    """ "B7" -> (6, 1), 0-based; ValueError for anything else."""
    match = _REF.fullmatch(ref.strip().upper())
    if match is None:
        raise ValueError(f"bad cell reference {ref!r}")
    return int(match.group(2)) - 1, _column_number(match.group(1)) - 1


def _parse_box(ref: str) -> _Box | None:
    """ "A1:C3" or "B2" -> 1-based box; None when it is not a reference."""
    try:
        corners = [_parse_ref(part) for part in ref.split(":")]
    except ValueError:
        return None
    if len(corners) not in (1, 2):
        return None
    (r1, c1), (r2, c2) = corners[0], corners[-1]
    return min(r1, r2) + 1, min(c1, c2) + 1, max(r1, r2) + 1, max(c1, c2) + 1


def _column_number(letters: str) -> int:
    number = 0
    for char in letters:
        number = number * 26 + ord(char) - 64
    return number


def _letters(number: int) -> str:
    """1-based column number -> letters (1 -> A, 28 -> AB)."""
    letters = ""
    while number:
        number, rem = divmod(number - 1, 26)
        letters = chr(65 + rem) + letters
    return letters
