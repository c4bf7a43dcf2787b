"""The retry policy: which attempts are repeated, how often, and how long to wait between them.

Only answers that say the row was *not* processed are retried: rate limited, and transient
failures (5xx without an MX body, non-JSON proxy pages, connections that never opened).
Permanent row errors are never retried, and neither is a call whose answer was lost after it
was sent (it may have created the activity; see ``classify.Kind.AMBIGUOUS``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from ..leadsquared.classify import Kind

RETRYABLE = frozenset({Kind.RATE_LIMITED, Kind.TRANSIENT})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded in attempts and per delay."""

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def should_retry(self, kind: Kind, attempts: int) -> bool:
        """Whether to try again after ``attempts`` attempts ended with ``kind``."""
        return kind in RETRYABLE and attempts < self.max_attempts

    def delay(self, attempts: int, kind: Kind) -> float:
        """Seconds to wait before the next attempt.

        Rate-limited attempts wait on the shared pacer (which closes every slot for a window),
        so they need no extra delay here.
        """
        if kind is Kind.RATE_LIMITED:
            return 0.0
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempts - 1))
        return self.rng.uniform(0, ceiling)
