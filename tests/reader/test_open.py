"""Tests for importer.reader.open_input: the checks before any format is read, and the
InputFile contract both formats share."""

from __future__ import annotations

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
