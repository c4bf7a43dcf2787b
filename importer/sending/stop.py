"""Why a run stopped early: a light module, so a summary can name it without the sending stage
(aiohttp) being imported."""

from __future__ import annotations

import enum


class StopReason(enum.StrEnum):
    """Why a run stopped before every row was attempted ("" when it did not)."""

    NONE = ""
    FATAL = "fatal"
    """LeadSquared refused the whole run (bad keys, wrong host)."""
    INTERRUPTED = "interrupted"
    """Ctrl-C or SIGTERM."""
    ERROR = "error"
    """An error mid-run (a callback or the row feed failed)."""
    BUDGET = "budget"
    """The ``max_calls`` budget was reached."""
