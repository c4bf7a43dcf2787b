"""Sending: when a call may leave, how often it is tried, and the workers that send rows.

- :mod:`.pacer`: the slot schedule that keeps every window under the rate limit;
- :mod:`.retry`: which attempts are repeated and the backoff between them;
- :mod:`.attempt`: one call under the pacer (shared by the pool and the preflight);
- :mod:`.pool`: the workers, per-lead ordering, the call budget, stopping;
- :mod:`.stop`: why a run stopped early.

The names below are imported on first use: a command that sends nothing (a rerun of a
finished file) does not pay for aiohttp. (``attempt`` is not among them: the name is its
module's; import it from :mod:`.attempt`.)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .pacer import Pacer
    from .pool import PoolStats, WorkerPool
    from .retry import RetryPolicy
    from .stop import StopReason

_HOMES = {
    "Pacer": ".pacer",
    "PoolStats": ".pool",
    "WorkerPool": ".pool",
    "RetryPolicy": ".retry",
    "StopReason": ".stop",
}

__all__ = ["Pacer", "PoolStats", "RetryPolicy", "StopReason", "WorkerPool"]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name], __name__), name)
