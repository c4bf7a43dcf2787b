"""Row tokens: a short mark in each row's activity that makes "did this row land?" exact.

With ``options.row_token: mx_Custom_N`` in the mapping, every row's activity carries, in that
field, the token of its row: ``lsq-`` and 12 lowercase hexadecimal digits (16 characters), the
first 48 bits of ``SHA-256("<seed>:<row number>")``. The seed is kept in the results file's
metadata (``token_seed``): the first 16 hex digits of the input's SHA-256 when the file was first
sent with a token, kept through every resume, ``--force-resume`` with corrected cells included.
So a row sent again after a lost answer carries the same token as the first attempt, and the
same input gives the same tokens whichever results file sends it. Reconciliation looks for the
activity whose field holds the row's token: one found means the row landed, none that it did
not. Two rows of one input share a token only by a 48-bit collision (about 1 in 500 million
among a million rows).
"""

from __future__ import annotations

import hashlib
from typing import Any

TOKEN_PREFIX = "lsq-"
TOKEN_LENGTH = 16


def seed_for(input_digest: str) -> str:
    """The seed a results file started on this input (``sha256:<hex>``) takes."""
    return input_digest.removeprefix("sha256:")[:16]


def row_token(seed: str, row: int) -> str:
    """The token of row ``row`` of the results file whose seed is ``seed``."""
    digest = hashlib.sha256(f"{seed}:{row}".encode()).hexdigest()
    return TOKEN_PREFIX + digest[: TOKEN_LENGTH - len(TOKEN_PREFIX)]


def add_row_token(body: dict[str, Any], field: str, token: str) -> None:
    """Put ``token`` into the activity field ``field`` of a CreateCustom body."""
    body["Activity"].setdefault("Fields", []).append({"SchemaName": field, "Value": token})
