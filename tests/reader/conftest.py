"""Helpers the reader tests share: write a file, read it all, expect an InputFileError.

A conftest, so pytest rewrites the asserts in input_error as it does in the tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from importer.exceptions import InputFileError
from importer.reader import Row, open_input


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def read_all(path: Path, **kwargs: object) -> tuple[list[str], list[Row]]:
    with open_input(path, **kwargs) as f:  # type: ignore[arg-type]
        return f.columns, list(f.rows())


def numbers_and_values(rows: list[Row]) -> list[tuple[int, list[str]]]:
    return [(r.number, list(r.values.values())) for r in rows]


def input_error(path: Path, **kwargs: object) -> str:
    with pytest.raises(InputFileError) as info:
        read_all(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    return message
