"""Text as the mapping's messages need it: YAML scalars as written, cells quoted on one line."""

from __future__ import annotations

from typing import Any


def scalar_text(value: Any, what: str) -> str:
    """A YAML scalar as the text the user wrote, or ValueError when YAML changed its meaning."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, bool):
        problem = f"YAML read this as {str(value).lower()}; quote it if you meant text"
    elif isinstance(value, float):
        problem = f"YAML read this as the number {value}; quote it to keep it as written"
    elif value is None:
        problem = 'is empty; write "" for an empty text'
    else:
        problem = "must be text"
    raise ValueError(f"{what}: {problem}" if what else problem)


def show(text: str) -> str:
    """A cell value quoted for a one-line message."""
    shown = repr(text)
    return shown if len(shown) <= 80 else shown[:76] + "...'"


PLACEHOLDER = "TODO"
"""What ``init-mapping`` writes where only the user can know the value (a time zone, a
country code): the mapping check refuses it, saying so, until it is replaced."""
