"""Excel error cells and formulas without a saved value (item 16).

python-calamine gives "" for both, as for an empty cell: "#N/A" in a column was reported
downstream as "empty", and a row holding only "#DIV/0!" was dropped as blank. They are found in
the sheet's XML and make their row an error row naming the cell.
"""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest

from importer.exceptions import InputFileError
from importer.reader import Row

from .conftest import read_all
from .xlsx_parts import inline, write_xlsx

NO_VALUE = (
    "has no saved value (the file was written by a program that does not calculate formulas); "
    "open and save it in Excel, or export the sheet as CSV"
)


def test_error_cells_and_unsaved_formulas_from_openpyxl(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["email", "city", "score"])
    ws.append(["a@x.in", "Pune", 1])
    ws.append(["b@x.in", "#N/A", 2])  # openpyxl writes a known error code as an error cell
    ws.append([None, None, "#DIV/0!"])  # nothing else in the row: it was dropped as blank
    ws.append(["c@x.in", "Goa", "=SUM(C2:C3)"])  # openpyxl saves no value for a formula
    ws.append(["d@x.in", "Agra", 4])
    wb.save(tmp_path / "e.xlsx")
    assert read_all(tmp_path / "e.xlsx")[1] == [
        Row(2, {"email": "a@x.in", "city": "Pune", "score": "1"}),
        Row(
            3,
            {"email": "b@x.in", "city": "", "score": "2"},
            error="B3: the cell holds the Excel error #N/A",
        ),
        Row(
            4,
            {"email": "", "city": "", "score": ""},
            error="C4: the cell holds the Excel error #DIV/0!",
        ),
        Row(
            5,
            {"email": "c@x.in", "city": "Goa", "score": ""},
            error=f"C5: the formula =SUM(C2:C3) {NO_VALUE}",
        ),
        Row(6, {"email": "d@x.in", "city": "Agra", "score": "4"}),
    ]


def test_what_excel_writes(tmp_path: Path) -> None:
    # An error a formula computed, a formula with a saved value, a string result whose saved
    # value is empty (fine), a shared formula without a value, and several problems in a row.
    names = "".join(inline(f"{c}1", c.lower()) for c in "ABCD")
    header = f'<row r="1">{names}</row>'
    rows = (
        f'<row r="2">{inline("A2", "a@x.in")}<c r="B2" t="e"><f>VLOOKUP(A2,L:M,2,0)</f>'
        '<v>#N/A</v></c><c r="C2"><f>1+1</f><v>2</v></c></row>'
        '<row r="3"><c r="A3" t="str"><f>IF(1,"","x")</f><v></v></c>'
        '<c r="B3"><f t="shared" si="0"/></c><c r="C3" t="b"><v>1</v></c></row>'
        '<row r="4"><c r="A4" t="e"><v>#REF!</v></c><c r="B4" t="e"><v>#NAME?</v></c>'
        '<c r="C4" t="e"><v>#VALUE!</v></c><c r="D4" t="e"><v>#NUM!</v></c></row>'
        '<row r="5"><c r="A5" s="1" t="e"><f>A1&amp;"&lt;"</f><v>#VALUE!</v></c></row>'
    )
    path = write_xlsx(tmp_path / "x.xlsx", header + rows, dimension="A1:D5")
    rows_read = read_all(path)[1]
    assert [(r.number, r.error) for r in rows_read] == [
        (2, "B2: the cell holds the Excel error #N/A"),
        (3, f"B3: the formula {NO_VALUE}"),
        (
            4,
            "A4: the cell holds the Excel error #REF!; B4: the cell holds the Excel error "
            "#NAME?; C4: the cell holds the Excel error #VALUE!; and 1 more cells like these",
        ),
        (5, "A5: the cell holds the Excel error #VALUE!"),
    ]
    assert rows_read[0].values == {"a": "a@x.in", "b": "", "c": "2", "d": ""}
    assert rows_read[1].values == {"a": "", "b": "", "c": "TRUE", "d": ""}


def test_an_error_in_the_header_is_a_file_error(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "h.xlsx",
        f'<row r="2">{inline("A2", "email")}<c r="B2" t="e"><v>#REF!</v></c></row>'
        f'<row r="3">{inline("A3", "a@x.in")}</row>',
    )
    with pytest.raises(InputFileError) as info:
        read_all(path)
    assert str(info.value) == (
        f"{path}: sheet 'S' header (row 2): B2: the cell holds the Excel error #REF!"
    )


def test_a_last_row_of_unsaved_formulas_still_comes_out(tmp_path: Path) -> None:
    # calamine leaves a formula without a value out of the sheet altogether
    path = write_xlsx(
        tmp_path / "l.xlsx",
        f'<row r="1">{inline("A1", "a")}</row><row r="2">{inline("A2", "x")}</row>'
        '<row r="7"><c r="A7"><f>A2</f></c></row>',
    )
    assert read_all(path)[1] == [
        Row(2, {"a": "x"}),
        Row(7, {"a": ""}, error=f"A7: the formula =A2 {NO_VALUE}"),
    ]


def test_problems_in_rows_out_of_order_and_in_cells_without_r(tmp_path: Path) -> None:
    # rows out of order (calamine sorts them): the problems are gathered and sorted first
    shuffled = write_xlsx(
        tmp_path / "o.xlsx",
        f'<row r="1">{inline("A1", "a")}</row>'
        '<row r="5"><c r="A5" t="e"><v>#N/A</v></c></row>'
        '<row r="3"><c r="A3" t="e"><v>#NULL!</v></c></row>'
        f'<row r="4">{inline("A4", "ok")}</row>',
    )
    assert read_all(shuffled)[1] == [
        Row(3, {"a": ""}, error="A3: the cell holds the Excel error #NULL!"),
        Row(4, {"a": "ok"}),
        Row(5, {"a": ""}, error="A5: the cell holds the Excel error #N/A"),
    ]
    # cells without r are placed by parsing the XML, as calamine places them
    r_less = write_xlsx(
        tmp_path / "r.xlsx",
        '<row><c t="inlineStr"><is><t>a</t></is></c><c t="inlineStr"><is><t>b</t></is></c></row>'
        '<row><c t="inlineStr"><is><t>x</t></is></c><c t="e"><v>#DIV/0!</v></c></row>'
        '<row><c t="inlineStr"><is><t>y</t></is></c><c><f>A1</f></c></row>',
    )
    assert read_all(r_less)[1] == [
        Row(2, {"a": "x", "b": ""}, error="B2: the cell holds the Excel error #DIV/0!"),
        Row(3, {"a": "y", "b": ""}, error=f"B3: the formula =A1 {NO_VALUE}"),
    ]


def test_a_sheet_without_errors_or_formulas_reads_as_before(tmp_path: Path) -> None:
    # "t=\"e\"" or "<f" in text is text, not a marker
    path = write_xlsx(
        tmp_path / "t.xlsx",
        f'<row r="1">{inline("A1", "note")}</row>'
        f'<row r="2">{inline("A2", "t=&quot;e&quot; and &lt;f&gt;x&lt;/f&gt;&lt;/c&gt;")}</row>',
    )
    assert read_all(path)[1] == [Row(2, {"note": 't="e" and <f>x</f></c>'})]
