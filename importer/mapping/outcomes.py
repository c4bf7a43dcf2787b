"""What building one row gives: a :class:`Payload` to send, or why the row is not sent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class RowWarning:
    """Something about a row that is sent as documented but may not be what was meant, e.g. a
    local time that happens twice (the clocks went back). ``validate`` lists them.

    ``column`` is the input column it is about, when there is exactly one; otherwise the
    message starts with the mapping key.
    """

    message: str
    column: str | None = None

    def __str__(self) -> str:
        return (
            f"column '{self.column}': {self.message}" if self.column is not None else self.message
        )


@dataclass(frozen=True, slots=True)
class Payload:
    """One row, ready to send.

    ``key`` is the row's SearchBy value normalised for comparison (casefolded e-mail or lead
    id, digits of a phone number): the sender keeps two rows with the same key out of flight
    together, because two concurrent upserts of one new lead can create it twice.
    ``warnings``: what the row holds that is sent, but worth a look (see :class:`RowWarning`).
    """

    row: int
    key: str
    body: dict[str, Any]
    warnings: tuple[RowWarning, ...] = ()


class RowError(Exception):
    """This row cannot be mapped: it is recorded as ``invalid`` and the run goes on.

    ``column`` is the input column to fix, when there is exactly one.
    """

    def __init__(self, message: str, column: str | None = None) -> None:
        self.column = column
        self.message = message
        super().__init__(f"column '{column}': {message}" if column is not None else message)


class RowSkipped(Exception):
    """A ``filters.skip_if`` condition matched: the row is recorded as ``skipped``, not sent.

    Deliberately not a :class:`RowError`: a skipped row is the user's choice, not a fault to
    fix, so it must not count as invalid nor be retried on resume as if it were.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)
