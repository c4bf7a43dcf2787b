"""Sending: when a call may leave, how often it is tried, and the workers that send rows.

- :mod:`.pacer`: the slot schedule that keeps every window under the rate limit;
- :mod:`.retry`: which attempts are repeated and the backoff between them;
- :mod:`.attempt`: one call under the pacer (shared by the pool and the preflight);
- :mod:`.pool`: the workers, per-lead ordering, the call budget, stopping.
"""

from .attempt import attempt
from .pacer import Pacer
from .pool import PoolStats, StopReason, WorkerPool
from .retry import RetryPolicy

__all__ = ["Pacer", "PoolStats", "RetryPolicy", "StopReason", "WorkerPool", "attempt"]
