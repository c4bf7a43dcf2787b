"""A pandas DataFrame as input, for the Python user who already holds the rows.

``run_import(df, mapping, results=...)`` and ``validate_file(df, mapping)`` take a DataFrame
where they take a file: its columns are the header, its rows are numbered from 2 as a file's
would be (the header is row 1), and each cell is rendered as text the way the Excel reader
renders a typed cell (:func:`importer.reader.render_cell`): integral floats without ``.0``
(a phone that pandas read as ``9845098450.0``), NaN, None, ``NaT`` and ``pd.NA`` as empty,
timestamps as ``YYYY-MM-DD HH:MM:SS`` (``YYYY-MM-DD`` at midnight; a timezone-aware one with its
UTC offset), booleans as ``TRUE``/``FALSE``. The index is not imported (``df.reset_index()``
makes it a column).

A resume needs to know it is the same input: the frame's fingerprint is the SHA-256 of its
header and rendered rows (computed once at the start, a pass over the frame), so the same data
rebuilt in another process resumes, and a frame with one cell changed is another input.

pandas is an optional extra (``pip install 'lsq-import[pandas]'``); this module does not import
it: a DataFrame can only come from a process that already has.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .base import InputFile, Row, _check_header, _is_blank
from .excel import render_cell

__all__ = ["frame_digest", "is_dataframe", "open_frame"]


def is_dataframe(value: object) -> bool:
    """Whether ``value`` is a pandas DataFrame (without importing pandas)."""
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(value, pandas.DataFrame)


def describe(frame: Any) -> str:
    """How a frame is named in messages and summaries: ``DataFrame (620 rows x 9 columns)``."""
    rows, columns = frame.shape
    return f"DataFrame ({rows} rows x {columns} columns)"


def _render(value: object) -> str:
    """One cell as text (see the module's docstring)."""
    if value is None or isinstance(value, str):
        return value or ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    module = type(value).__module__
    if module.startswith(("pandas", "numpy")):
        pandas = sys.modules["pandas"]
        if value is pandas.NaT or value is pandas.NA:
            return ""
        if type(value).__name__ in ("datetime64", "Timestamp"):
            stamp = pandas.Timestamp(value)
            value = None if stamp is pandas.NaT else stamp.floor("us").to_pydatetime()
        elif type(value).__name__ in ("timedelta64", "Timedelta"):
            delta = pandas.Timedelta(value)
            value = None if delta is pandas.NaT else delta.floor("us").to_pytimedelta()
        elif hasattr(value, "item"):  # a numpy scalar: its Python value
            value = value.item()
        return _render(value) if type(value).__module__ != module else render_cell(value)
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        text = render_cell(value.replace(tzinfo=None))
        if len(text) == 10:  # a date alone at midnight: keep the time beside the offset
            text += " 00:00:00"
        offset = value.strftime("%z")
        return f"{text}{offset[:3]}:{offset[3:]}" if offset else text
    return render_cell(value)


def _rows(frame: Any) -> Iterator[list[str]]:
    for values in frame.itertuples(index=False, name=None):
        yield [_render(value) for value in values]


def _is_date(value: object) -> bool:
    """A typed date or date-time cell (a Timestamp, a datetime, a date): as an Excel date cell,
    the mapping reads it whatever its declared formats (see :attr:`Row.date_columns`)."""
    if isinstance(value, dt.date):  # datetime and pandas' Timestamp (NaT is not a date)
        return type(value).__name__ != "NaTType"
    return type(value).__name__ == "datetime64" and not str(value).startswith("NaT")


def _header(frame: Any) -> list[str]:
    return [str(name) for name in frame.columns]


def frame_digest(frame: Any) -> str:
    """``sha256:<hex>`` of the frame's header and rendered rows (as CSV text)."""
    digest = hashlib.sha256()

    class _Sink:
        def write(self, text: str) -> int:
            digest.update(text.encode("utf-8", "surrogatepass"))
            return len(text)

    writer = csv.writer(_Sink(), lineterminator="\n")
    writer.writerow(_header(frame))
    for cells in _rows(frame):
        writer.writerow(cells)
    return f"sha256:{digest.hexdigest()}"


class _FrameInput(InputFile):
    def __init__(self, frame: Any, display: str, columns: list[str]) -> None:
        super().__init__(Path(display), display, columns, 1)
        self._frame = frame

    def _iter_rows(self) -> Iterator[Row]:
        columns = self.columns
        for number, values in enumerate(self._frame.itertuples(index=False, name=None), start=2):
            cells = [_render(value) for value in values]
            if _is_blank(cells):
                continue
            dates = frozenset(
                name
                for name, value, text in zip(columns, values, cells, strict=True)
                if text and _is_date(value)
            )
            yield Row(number, dict(zip(columns, cells, strict=True)), date_columns=dates)

    def close(self) -> None:
        self._frame = None


def open_frame(frame: Any, display: str | None = None) -> InputFile:
    """An :class:`InputFile` over a DataFrame's rows (see the module's docstring)."""
    display = display or describe(frame)
    if frame.columns.nlevels > 1:
        from ..exceptions import InputFileError

        raise InputFileError(
            f"{display}: has a multi-level column index; flatten it (one name per column)"
        )
    columns = _check_header(display, _header(frame), "header", lambda i: str(i + 1))
    return _FrameInput(frame, display, columns)
