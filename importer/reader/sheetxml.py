"""What python-calamine cannot be asked about an ``.xlsx``/``.xlsm`` sheet: its size, before
it is loaded.

python-calamine builds the grid from the top-left to the bottom-right cell it finds and fills
every cell of it in memory, about 32 bytes each. One cell at ``XFD1048576`` is a grid of 17
billion cells: the allocation fails and Rust aborts the whole process (exit 134, a backtrace,
no results file flushed). It has no option to refuse, and exposes no dimensions before
loading, so :func:`check_sheet_size` reads the sheet's XML inside the zip first and refuses a
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

``.xls`` files are not checked here: see the Excel reader's docstring.
"""

from __future__ import annotations

import functools
import posixpath
import re
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO
from xml.parsers import expat

from ..exceptions import InputFileError

__all__ = ["MAX_SHEET_CELLS", "check_sheet_size"]

MAX_SHEET_CELLS = 20_000_000
"""The largest grid (rows x columns, from the top-left to the bottom-right used cell) read from
a sheet: about 650 MB inside python-calamine, e.g. all 1,048,576 rows of 19 columns, or 100,000
rows of 200. A sheet that large belongs in a CSV file, which is read in flat memory."""

_CHUNK = 1 << 20

_DIMENSION = re.compile(rb"""<(?:[A-Za-z_][\w.\-]*:)?dimension\b[^>]*?\sref\s*=\s*["']([^"']*)""")
_SHEET_DATA = re.compile(rb"<(?:[A-Za-z_][\w.\-]*:)?sheetData[\s/>]")
_REF = re.compile(r"\$?([A-Z]{1,3})\$?([0-9]{1,7})")


def check_sheet_size(path: Path, display: str, sheet: str) -> None:
    """Raise InputFileError when ``sheet`` of the workbook at ``path`` declares or spans more
    cells than :data:`MAX_SHEET_CELLS`, or when its XML cannot be found to be checked."""
    where = f"{display}: sheet '{sheet}'"
    try:
        with zipfile.ZipFile(path) as archive:
            part = _sheet_part(archive, sheet)
            if part is None:
                raise InputFileError(
                    f"{where}: its XML is not where the workbook says, so its size cannot be "
                    "checked; open the file in Excel and save it again, or save the sheet as CSV"
                )
            with archive.open(part) as xml:
                declared, cells = _fast_extent(xml, lambda: archive.open(part))
            if declared is not None and _area(declared) > MAX_SHEET_CELLS:
                _refuse(where, declared, "declares")
            if cells is _UNPLACED:
                with archive.open(part) as xml:
                    cells = _exact_extent(xml)
    except InputFileError:
        raise
    except (
        OSError,
        zipfile.BadZipFile,
        ET.ParseError,
        expat.ExpatError,
        KeyError,
        ValueError,
    ) as exc:
        raise InputFileError(
            f"{where}: cannot read its XML ({' '.join(str(exc).split())}); open the file in "
            "Excel and save it again, or save the sheet as CSV"
        ) from exc
    if cells is not None and cells is not _UNPLACED and _area(cells) > MAX_SHEET_CELLS:
        _refuse(where, cells, "has cells in")


_Box = tuple[int, int, int, int]
"""First row, first column, last row, last column; 1-based, inclusive."""

_UNPLACED: _Box = (0, 0, -1, -1)
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
    xml: IO[bytes], reopen: Callable[[], IO[bytes]]
) -> tuple[_Box | None, _Box | None]:
    """The declared dimension (None without one), and the box of the sheet's cells: None for
    a sheet without cells, :data:`_UNPLACED` when a cell was found that the search cannot
    place. Stops early, returning the box so far, once it is too large; ``reopen`` gives the
    XML again for a second search."""
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
    data = head
    while True:
        cut = data.rfind(b"<")  # a tag never holds a '<': the cut never splits one
        if cut <= 0:
            cut = len(data)
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
        if box is not None:
            searched_with = max(searched_with, _last_allowed_row(box))
        chunk = xml.read(_CHUNK)
        if not chunk:
            break
        data = data[cut:] + chunk
    if box is None:
        return declared, None
    if searched_with > _last_allowed_row(box):
        # The box widened after earlier megabytes were searched with a longer allowance:
        # search them again for rows beyond the final one.
        with reopen() as again:
            below = _below(_last_allowed_row(box))
            data = b""
            while chunk := again.read(_CHUNK):
                data += chunk
                cut = data.rfind(b"<")
                cut = len(data) if cut <= 0 else cut
                if below.search(data, 0, cut):
                    deepest = max(int(d) for _, d in _CELL_REFS.findall(data, 0, cut))
                    return declared, (box[0], box[1], deepest, box[3])
                data = data[cut:]
    # Rows in megabytes not looked at cell by cell are only known to be within the allowance:
    # the box's bottom may be short, but its area is within the limit either way.
    return declared, box


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


def _exact_extent(xml: IO[bytes]) -> _Box | None:
    """The grid of all cells, each placed as calamine places it: at its ``r`` when it has one,
    else right of the cell before it in its row (a row without ``r`` follows the one before).
    None for a sheet without cells.

    Parsed with expat without namespaces, as calamine does: it takes any element whose name
    ends in ``:c`` for a cell, whatever the prefix, bound or not."""
    top = left = 1 << 30
    bottom = right = 0
    row = column = 0  # where a cell without r goes; 0-based, as calamine counts

    def start(name: str, attributes: dict[str, str]) -> None:
        nonlocal top, left, bottom, right, row, column
        local = name.rpartition(":")[2]
        if local == "c":
            ref = attributes.get("r")
            if ref is None:
                at = row
            else:  # calamine takes its column for the cells after it, not its row
                at, column = _parse_ref(ref)
            top, bottom = min(top, at + 1), max(bottom, at + 1)
            left, right = min(left, column + 1), max(right, column + 1)
        elif local == "row":
            r = attributes.get("r")
            if r is not None:
                row = int(r) - 1

    def end(name: str) -> None:
        nonlocal row, column
        local = name.rpartition(":")[2]
        if local == "c":
            column += 1
        elif local == "row":
            row, column = row + 1, 0

    parser = expat.ParserCreate()
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.ParseFile(xml)
    return None if bottom == 0 else (top, left, bottom, right)


def _parse_ref(ref: str) -> tuple[int, int]:
    """ "B7" -> (6, 1), 0-based; ValueError for anything else."""
    match = _REF.fullmatch(ref.strip())
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
