"""Tests for importer.reader.open_input: the checks before any format is read, and the
InputFile contract both formats share."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from importer.reader import InputFile, Row, open_input

from .conftest import input_error, write


def test_missing_file(tmp_path: Path) -> None:
    assert input_error(tmp_path / "leads.csv").endswith("leads.csv: no such file")


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    (tmp_path / "dir.csv").mkdir()
    assert "is a directory" in input_error(tmp_path / "dir.csv")


@pytest.mark.parametrize("name", ["report.pdf", "leads.json", "leads"])
def test_unsupported_extension(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, name, "a,b\n1,2\n")
    message = input_error(path)
    assert "unsupported file type" in message
    assert ".csv, .txt, .tsv, .xlsx, .xlsm, .xls" in message


def test_rows_streams_and_may_be_called_once(tmp_path: Path) -> None:
    path = write(tmp_path, "s.csv", "a\n1\n2\n3\n")
    with open_input(path) as f:
        assert isinstance(f, InputFile)
        rows = f.rows()
        assert next(rows) == Row(2, {"a": "1"})
        with pytest.raises(RuntimeError):
            f.rows()
    # leaving the block closed the file; the generator is finished cleanly
    rows.close()


def test_an_excel_sheet_knows_its_row_count_before_a_row_is_read(tmp_path: Path) -> None:
    import openpyxl

    path = tmp_path / "leads.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["email", "note"])
    for i in range(40):
        sheet.append([f"a{i}@x", f"line one\nline {i}"])  # multi-line cells: still one row
    sheet.append([None, None])  # a blank row is not yielded, so not counted
    sheet.append(["last@x", "=1/0"])  # an error row is yielded: counted
    sheet["B43"].value = "#DIV/0!"
    book.save(path)
    with open_input(path) as f:
        assert f.row_count == 41
        assert f.bytes_read() is None  # nothing to estimate: the count is exact
        assert len(list(f.rows())) == 41


def test_a_csv_reports_how_far_it_has_read_for_an_estimate(tmp_path: Path) -> None:
    header = "email,note\n"
    rows = [f'r{i}@x,"note\n{"x" * 200}"\n' for i in range(500)]
    path = write(tmp_path, "leads.csv", header + "".join(rows))
    size = path.stat().st_size
    ends = list(itertools.accumulate((len(r) for r in rows), initial=len(header)))[1:]
    with open_input(path) as f:
        assert f.row_count is None  # a CSV is streamed: not known before reading it
        seen = []
        for count, _row in enumerate(f.rows(), start=1):
            position = f.bytes_read()
            assert position is not None
            read, total = position
            assert total == size
            # the bytes read cover the rows yielded, at most one 8 KiB block (and the line
            # it cut) ahead of them
            assert ends[count - 1] <= read <= ends[min(count, 499)] + 8192
            seen.append(read)
        assert seen == sorted(seen)
    assert f.bytes_read() == (size, size)
