"""Rows from stdin (``lsq-import validate - < leads.csv``): a copy in a temporary file.

The readers need a file: a CSV's delimiter and encoding are sniffed from its first bytes, an
Excel workbook is a zip read from its end, and ``validate`` reads the file a second time when
SearchBy keys repeat. So the stream is copied once, in blocks (memory does not grow with it),
into a private temporary folder that is removed with everything in it when the block ends.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from ..exceptions import InputFileError
from .base import CSV_SUFFIXES, EXCEL_SUFFIXES

__all__ = ["FORMATS", "STDIN_NAME", "spooled"]

FORMATS = tuple(suffix.lstrip(".") for suffix in CSV_SUFFIXES + EXCEL_SUFFIXES)
"""What ``--format`` may say stdin holds: the file types :func:`importer.reader.open_input`
reads, by their extension."""
STDIN_NAME = "<stdin>"
"""How messages name rows read from stdin."""


@contextmanager
def spooled(stream: BinaryIO, file_format: str) -> Iterator[Path]:
    """Copy ``stream`` into a temporary file with ``file_format``'s extension; yield its path.

    Raises InputFileError when ``file_format`` is not one of :data:`FORMATS`, or the stream
    is a terminal (nobody piped a file in: reading it would wait for typing).
    """
    if file_format not in FORMATS:
        raise InputFileError(
            f"--format {file_format}: not a file type lsq-import reads (use {', '.join(FORMATS)})"
        )
    if stream.isatty():
        raise InputFileError(
            f"{STDIN_NAME}: INPUT '-' reads the rows from stdin, which is a terminal here; "
            "pipe or redirect a file into it (e.g. < leads.csv), or name the file"
        )
    with tempfile.TemporaryDirectory(prefix="lsq-import-stdin-") as folder:
        path = Path(folder) / f"stdin.{file_format}"
        try:
            with open(path, "wb") as out:
                shutil.copyfileobj(stream, out, 1 << 20)
        except OSError as exc:  # the temporary folder's disk is full, say
            raise InputFileError(
                f"{STDIN_NAME}: cannot copy it into {folder} ({exc.strerror or exc}); set "
                "TMPDIR to a folder with room, or name the file instead of '-'"
            ) from None
        yield path
