"""Tests for importer.reader.excel: Excel input as numbered rows of text, and render_cell."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import openpyxl
import pytest

from importer.reader import Row, open_input, render_cell

from .conftest import input_error, numbers_and_values, read_all, write


def make_xlsx(path: Path, sheets: dict[str, dict[str, object]]) -> Path:
    """sheets: name -> {cell reference: value}."""
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for name, cells in sheets.items():
        ws = wb.create_sheet(name)
        for ref, value in cells.items():
            ws[ref] = value
    wb.save(path)
    return path


def test_xlsx_values_rendered_as_text(tmp_path: Path) -> None:
    path = make_xlsx(
        tmp_path / "x.xlsx",
        {
            "Leads": {
                "A1": "phone", "B1": "amount", "C1": "visited", "D1": "day", "E1": "at",
                "F1": "ok", "G1": "text_phone", "H1": "ratio", "I1": "blank",
                "A2": 9845098450, "B2": 1499.5, "C2": dt.datetime(2024, 3, 5, 14, 30),
                "D2": dt.date(2024, 1, 2), "E2": dt.time(9, 5, 7), "F2": True,
                "G2": "09845098450", "H2": 0.1, "I2": None,
                "A3": 919845098450.0, "B3": 250, "C3": dt.datetime(2025, 12, 31, 0, 0),
                "D3": "NA", "E3": "+91 98450 98450", "F3": False, "G3": "null", "H3": -2.5e-7,
            }
        },
    )  # fmt: skip
    columns, rows = read_all(path)
    assert columns == ["phone", "amount", "visited", "day", "at", "ok", "text_phone", "ratio",
                       "blank"]  # fmt: skip
    assert rows == [
        Row(2, {"phone": "9845098450", "amount": "1499.5", "visited": "2024-03-05 14:30:00",
                "day": "2024-01-02", "at": "09:05:07", "ok": "TRUE", "text_phone": "09845098450",
                "ratio": "0.1", "blank": ""}, date_columns=frozenset({"visited", "day"})),
        Row(3, {"phone": "919845098450", "amount": "250", "visited": "2025-12-31",
                "day": "NA", "at": "+91 98450 98450", "ok": "FALSE", "text_phone": "null",
                "ratio": "-2.5e-07", "blank": ""}, date_columns=frozenset({"visited"})),
    ]  # fmt: skip


def test_xlsx_header_not_on_row_1_keeps_excel_row_numbers(tmp_path: Path) -> None:
    path = make_xlsx(
        tmp_path / "x.xlsx",
        {"S": {"B3": "name", "C3": "email", "B4": "Asha", "C4": "a@x.in", "B6": "Ravi",
               "C9": "r@x.in"}},
    )  # fmt: skip
    with open_input(path) as f:
        assert f.header_row == 3
        assert f.sheet_name == "S"
        assert f.columns == ["name", "email"]
        assert numbers_and_values(list(f.rows())) == [
            (4, ["Asha", "a@x.in"]),
            (6, ["Ravi", ""]),
            (9, ["", "r@x.in"]),
        ]


def test_xlsx_multiline_cell_and_trailing_empty_rows(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["a", "b"])
    ws.append(["x\ny", 1])
    ws.append([None, None])
    ws.append(["z", 2])
    ws["A10"].number_format = "0.00"  # a formatted but empty cell far below
    wb.save(tmp_path / "m.xlsx")
    _, rows = read_all(tmp_path / "m.xlsx")
    assert numbers_and_values(rows) == [(2, ["x\ny", "1"]), (4, ["z", "2"])]


def two_sheets(tmp_path: Path) -> Path:
    return make_xlsx(
        tmp_path / "two.xlsx",
        {
            "January": {"A1": "email", "A2": "jan@x.in"},
            "February": {"A1": "mail", "A2": "feb@x.in", "A3": "feb2@x.in"},
        },
    )


@pytest.mark.parametrize(
    ("sheet", "expected"),
    [
        (None, [(2, ["jan@x.in"])]),
        (0, [(2, ["jan@x.in"])]),
        (1, [(2, ["feb@x.in"]), (3, ["feb2@x.in"])]),
        ("February", [(2, ["feb@x.in"]), (3, ["feb2@x.in"])]),
        ("1", [(2, ["feb@x.in"]), (3, ["feb2@x.in"])]),  # as a CLI would pass it
    ],
)
def test_xlsx_sheet_by_name_or_index(
    tmp_path: Path, sheet: str | int | None, expected: list[tuple[int, list[str]]]
) -> None:
    assert numbers_and_values(read_all(two_sheets(tmp_path), sheet=sheet)[1]) == expected


def test_xlsx_unknown_sheet_lists_the_sheets(tmp_path: Path) -> None:
    path = two_sheets(tmp_path)
    assert input_error(path, sheet="March").endswith(
        "no sheet named 'March' (sheets: 'January', 'February')"
    )
    assert "no sheet number 2 (sheets, counted from 0: 'January', 'February')" in input_error(
        path, sheet=2
    )


def test_xlsx_empty_sheet(tmp_path: Path) -> None:
    path = make_xlsx(tmp_path / "e.xlsx", {"Blank": {}})
    assert "sheet 'Blank' is empty" in input_error(path)


def test_xlsx_duplicate_and_blank_header_use_column_letters(tmp_path: Path) -> None:
    dup = make_xlsx(tmp_path / "d.xlsx", {"S": {"B2": "email", "C2": "x", "D2": "email"}})
    assert "sheet 'S' header (row 2) has a duplicate column 'email' (columns B and D)" in (
        input_error(dup)
    )
    blank = make_xlsx(tmp_path / "b.xlsx", {"S": {"A1": "a", "C1": "c", "B2": "data"}})
    assert "has a blank column name (column B)" in input_error(blank)


def test_not_really_an_excel_file(tmp_path: Path) -> None:
    path = write(tmp_path, "fake.xlsx", "a,b\n1,2\n")
    assert "cannot read as an Excel workbook" in input_error(path)


def test_xlsm_suffix_is_read_as_excel(tmp_path: Path) -> None:
    path = make_xlsx(tmp_path / "x.xlsx", {"S": {"A1": "a", "A2": 7}})
    path = path.rename(tmp_path / "x.xlsm")
    assert read_all(path) == (["a"], [Row(2, {"a": "7"})])


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        (9845098450.0, "9845098450"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (-0.0, "0"),
        (1499.5, "1499.5"),
        (0.1 + 0.2, "0.30000000000000004"),
        (7, "7"),
        (True, "TRUE"),
        (dt.datetime(2024, 3, 5, 14, 29, 59, 999_999), "2024-03-05 14:30:00"),
        (dt.datetime(2024, 3, 5, 23, 59, 59, 600_000), "2024-03-06"),
        (dt.time(9, 5, 7), "09:05:07"),
        (dt.timedelta(hours=30, minutes=5), "30:05:00"),
    ],
)
def test_render_cell(value: object, text: str) -> None:
    assert render_cell(value) == text


def test_xlsx_rows_stream_from_a_temporary_file_once_the_workbook_is_freed(
    tmp_path: Path,
) -> None:
    """The sheet is read once, at open: the rows go to an anonymous temporary file and
    calamine's workbook is closed before the first row, so memory while sending does not
    depend on the sheet's size. The file goes with close(), and with an early stop."""
    path = make_xlsx(
        tmp_path / "x.xlsx",
        {"Leads": {"A1": "email", "B1": "n", "A2": "a@x", "B2": 1, "A4": "b@x", "B4": 2.5}},
    )
    with open_input(path) as f:
        spill = f._spill  # type: ignore[attr-defined]
        assert not spill.closed and spill.tell() > 0  # written at open, before rows()
        rows = f.rows()
        assert next(rows) == Row(2, {"email": "a@x", "n": "1"})
        rows.close()  # a run that stops early
        assert spill.closed
    _, all_rows = read_all(path)
    assert [(r.number, r.values, r.error) for r in all_rows] == [
        (2, {"email": "a@x", "n": "1"}, ""),
        (4, {"email": "b@x", "n": "2.5"}, ""),
    ]


def test_xlsx_spill_failure_is_a_file_error_before_any_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full temp folder while the sheet is spilled: one InputFileError line from open_input
    naming the folder, and the half-written temporary file closed (so removed)."""
    import errno
    import tempfile

    from importer.reader import excel

    opened: list[object] = []

    class Full:
        closed = False

        def write(self, data: bytes) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        def flush(self) -> None:
            pass

        def close(self) -> None:
            self.closed = True

    def temporary_file(**kwargs: object) -> Full:
        opened.append(Full())
        return opened[-1]  # type: ignore[return-value]

    monkeypatch.setattr(excel.tempfile, "TemporaryFile", temporary_file)
    path = make_xlsx(tmp_path / "x.xlsx", {"Leads": {"A1": "email", "A2": "a@x"}})
    message = input_error(path)
    assert "No space left on device" in message and tempfile.gettempdir() in message
    assert [f.closed for f in opened] == [True]  # type: ignore[attr-defined]
