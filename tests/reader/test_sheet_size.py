"""Tests for importer.reader.sheetxml: an .xlsx sheet too large for python-calamine is refused
before calamine is asked to load it (item 15).

One cell at XFD1048576 made calamine allocate a grid of 17 billion cells and abort the process
(exit 134, a Rust backtrace). The files that did so are read in a child process, so that a
regression aborts that process, not the test run.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import openpyxl
import pytest
import python_calamine

from importer.exceptions import InputFileError
from importer.reader import open_input, sheetxml

from .conftest import read_all
from .xlsx_parts import inline, write_xlsx

ROOT = Path(__file__).resolve().parents[2]
LIMIT = (
    "more than the 20,000,000 cells lsq-import reads from a sheet; "
    "save the sheet as CSV and import that"
)
WHOLE_GRID = "A1:XFD1048576 (1,048,576 rows x 16,384 columns = 17,179,869,184 cells)"


def read_in_child(paths: list[Path]) -> list[str]:
    """What open_input makes of each file, read in a child process: "ok", or the error."""
    script = (
        "import json, sys\n"
        "from importer.reader import open_input\n"
        "from importer.exceptions import InputFileError\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n"
        "        with open_input(path) as f:\n"
        "            list(f.rows())\n"
        "        print(json.dumps('ok'), flush=True)\n"
        "    except InputFileError as exc:\n"
        "        print(json.dumps(str(exc)), flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, *map(str, paths)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_a_cell_at_xfd1048576_is_refused_not_an_abort(tmp_path: Path) -> None:
    made = tmp_path / "openpyxl.xlsx"  # what the attacker sent: openpyxl writes the dimension
    wb = openpyxl.Workbook()
    wb.active.title = "S"
    wb.active["A1"] = "email"
    wb.active["XFD1048576"] = "x"
    wb.save(made)
    header = f'<row r="1">{inline("A1", "email")}</row>'
    far = f'<row r="1048576">{inline("XFD1048576", "x")}</row>'
    no_dimension = write_xlsx(tmp_path / "none.xlsx", header + far)
    lying = write_xlsx(tmp_path / "lying.xlsx", header + far, dimension="A1:B2")
    # cells without r go right of the one before: 16,384 of them reach column XFD
    wide = "<row>" + '<c t="inlineStr"><is><t>h</t></is></c>' * 16_384 + "</row>"
    r_less = write_xlsx(
        tmp_path / "r_less.xlsx", wide + '<row r="1048576"><c t="n"><v>1</v></c></row>'
    )
    prefixed = write_xlsx(
        tmp_path / "prefixed.xlsx",
        header + '<x:row r="1048576"><x:c r="XFD1048576" t="n"><x:v>1</x:v></x:c></x:row>',
    )
    assert read_in_child([made, no_dimension, lying, r_less, prefixed]) == [
        f"{made}: sheet 'S' declares {WHOLE_GRID}, {LIMIT}",
        f"{no_dimension}: sheet 'S' has cells in {WHOLE_GRID}, {LIMIT}",
        f"{lying}: sheet 'S' has cells in {WHOLE_GRID}, {LIMIT}",
        f"{r_less}: sheet 'S' has cells in {WHOLE_GRID}, {LIMIT}",
        f"{prefixed}: sheet 'S' has cells in {WHOLE_GRID}, {LIMIT}",
    ]


def test_a_declared_dimension_over_the_limit_is_refused_as_declared(tmp_path: Path) -> None:
    # calamine would read these two cells, but a sheet that says it is that large is taken at
    # its word: it is refused without reading on
    path = write_xlsx(
        tmp_path / "d.xlsx",
        f'<row r="1">{inline("A1", "a")}</row><row r="2">{inline("A2", "x")}</row>',
        dimension="A1:T1000001",
    )
    message = str(pytest.raises(InputFileError, read_all, path).value)
    assert message == (
        f"{path}: sheet 'S' declares A1:T1000001 (1,000,001 rows x 20 columns = 20,000,020 "
        f"cells), {LIMIT}"
    )


def test_sheets_within_the_limit_are_read(tmp_path: Path) -> None:
    # all 1,048,576 rows of 19 columns fit; so does a small block far down and right
    header = "".join(inline(f"{letter}1", letter) for letter in "ABCDEFGHIJKLMNOPQRS")
    at_the_limit = write_xlsx(
        tmp_path / "limit.xlsx",
        f'<row r="1">{header}</row><row r="1048576">{inline("B1048576", "x")}</row>',
        dimension="A1:S1048576",
    )
    far = write_xlsx(
        tmp_path / "far.xlsx",
        f'<row r="1000000">{inline("Z1000000", "a")}{inline("AA1000000", "b")}</row>'
        f'<row r="1000009">{inline("AA1000009", "x")}</row>',
    )
    sheetxml.check_sheet(at_the_limit, "limit.xlsx", "S")  # (reading it all takes seconds)
    sheetxml.check_sheet(far, "far.xlsx", "S")  # 10 rows x 2 columns, however far down


def test_a_sheet_that_widens_half_way_is_searched_again(tmp_path: Path) -> None:
    # Megabyte 1 sets the box to columns A-B (20,000,000 / 2 rows allowed). Row 1,500,000, in
    # megabyte 2, is within that; a cell in column T, in megabyte 3, cuts the allowance to
    # 1,000,000 rows: the megabytes before must be searched again, and row 1,500,000 found.
    rows = [
        f'<row r="{n}">{inline(f"A{n}", "a")}{inline(f"B{n}", "b")}</row>' for n in range(1, 60_001)
    ]
    far = f'<row r="1500000">{inline("B1500000", "far")}</row>'
    wide = f'<row r="60001">{inline("T60001", "wide")}</row>'
    widening = write_xlsx(
        tmp_path / "w.xlsx", "".join(rows[:25_000] + [far] + rows[25_000:] + [wide])
    )
    assert len("".join(rows)) > 3 * 2**20
    message = str(pytest.raises(InputFileError, read_all, widening).value)
    assert message == (
        f"{widening}: sheet 'S' has cells in A1:T1500000 (1,500,000 rows x 20 columns = "
        f"30,000,000 cells), {LIMIT}"
    )
    fine = write_xlsx(tmp_path / "f.xlsx", "".join(rows + [wide]))
    sheetxml.check_sheet(fine, "f.xlsx", "S")  # 60,001 rows x 20 columns: fine


def test_the_exact_pass_places_cells_as_calamine_does(tmp_path: Path) -> None:
    # cells without r, rows without r, a cell whose r is in another row than its row element
    sheets = [
        '<row><c t="n"><v>1</v></c><c t="n"><v>2</v></c></row><row><c t="n"><v>3</v></c></row>',
        '<row r="3"><c t="n"><v>1</v></c><c r="E3" t="n"><v>2</v></c><c t="n"><v>3</v></c></row>',
        f'<row r="1">{inline("A1", "h")}</row><row r="2"><c r="B7" t="n"><v>1</v></c>'
        '<c t="n"><v>2</v></c></row><row><c t="n"><v>3</v></c></row>',
        "<row r='2'><c r = 'C2' t='n'><v>1</v></c></row><row r=\"9\"><c t=\"n\"><v>1</v></c></row>",
    ]
    for n, sheet_data in enumerate(sheets):
        path = write_xlsx(tmp_path / f"e{n}.xlsx", sheet_data)
        data = python_calamine.CalamineWorkbook.from_path(str(path)).get_sheet_by_name("S")
        assert data.start is not None and data.end is not None
        expected = (data.start[0] + 1, data.start[1] + 1, data.end[0] + 1, data.end[1] + 1)
        with zipfile.ZipFile(path) as archive, archive.open("xl/worksheets/sheet1.xml") as xml:
            assert sheetxml._exact_extent(xml, sheetxml._Order()) == expected, sheet_data


@pytest.mark.parametrize(
    ("value", "alphabet", "longest", "universe"),
    [
        ("J", sheetxml._LETTERS, 3, range(1, 800)),
        ("AZ", sheetxml._LETTERS, 3, range(1, 800)),
        ("XFD", sheetxml._LETTERS, 3, range(16_000, 16_385)),
        ("100001", sheetxml._DIGITS, 7, range(1, 3_000)),
        ("2000", sheetxml._DIGITS, 7, range(1, 3_000)),
        ("9", sheetxml._DIGITS, 7, range(1, 3_000)),
    ],
)
def test_greater_and_less_match_exactly_the_later_and_earlier_numbers(
    value: str, alphabet: str, longest: int, universe: range
) -> None:
    letters = alphabet == sheetxml._LETTERS
    spell = sheetxml._letters if letters else str
    number = sheetxml._column_number(value) if letters else int(value)
    greater = re.compile(sheetxml._greater(value, alphabet, longest))
    less = re.compile(sheetxml._less(value, alphabet) or "(?!)")
    for candidate in universe:
        text = spell(candidate)
        assert bool(greater.fullmatch(text)) is (candidate > number), (value, text)
        assert bool(less.fullmatch(text)) is (candidate < number), (value, text)


def test_xlsm_is_checked_too(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "m.xlsm",
        f'<row r="1">{inline("A1", "a")}</row><row r="900000">{inline("ZZ900000", "x")}</row>',
    )
    with pytest.raises(InputFileError, match="has cells in A1:ZZ900000"):
        open_input(path)
