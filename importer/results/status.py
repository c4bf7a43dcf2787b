"""The vocabulary of the results file: what a row's line says about it."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """A row's status in the results file (a ``str``: it is written and compared as text)."""

    SUCCESS = "success"
    """The activity exists; its Id is recorded."""
    FAILED = "failed"
    """LeadSquared refused the row (or retries ran out): fix it and rerun."""
    INVALID = "invalid"
    """The row could not be read or mapped: nothing was sent."""
    SKIPPED = "skipped"
    """Left out by the mapping's ``filters``: nothing was sent."""
    UNKNOWN = "unknown"
    """Sent, but the answer was lost: it may exist in LeadSquared."""
    SENDING = "sending"
    """Intent, written before a call leaves; never a final status (read back as ``unknown``)."""

    @property
    def final(self) -> Status:
        """What the status means once the run is over: ``sending`` reads as ``unknown``."""
        return Status.UNKNOWN if self is Status.SENDING else self


class NotSentType(StrEnum):
    """The ``error_type`` of a row recorded without a call: ``run`` and ``validate`` write the
    same words."""

    INVALID = "invalid row"
    """The row could not be read or mapped (status ``invalid``)."""
    FILTERED = "filtered"
    """A ``filters.skip_if`` condition matched (status ``skipped``)."""


FINAL_STATUSES = (Status.SUCCESS, Status.FAILED, Status.INVALID, Status.SKIPPED, Status.UNKNOWN)
"""Every status a row can end with, in the order summaries list them."""

NOT_DONE = frozenset({Status.FAILED, Status.INVALID, Status.UNKNOWN})
"""Statuses that make a run's exit status "some rows failed"."""
