"""Pacing: as fast as the account's rate limit allows, and never over it, at any latency.

LeadSquared counts the calls that *arrive* over a rolling window of ``per`` seconds and refuses
call k+``rate`` if it arrives less than ``per`` seconds after call k. We never see arrival times,
only when we sent a call and when its answer came back; an arrival lies somewhere in between.

The schedule that is safe whatever the latency: ``rate`` slots. A call takes a free slot; the
slot becomes usable again ``per`` seconds (plus a small margin) after that call's answer came
back. The next call through the slot is sent no earlier than that, so it arrives at least
``per`` seconds after the previous call through the same slot arrived (that one arrived before
its answer was sent). Hence any window of ``per`` seconds at the server holds at most one
arrival per slot: at most ``rate``. Each slot carries one call per ``per + latency`` seconds,
so the pool sustains ``rate / (per + latency)`` calls per second, the provable ceiling.

A failure with no answer (timeout, dropped connection) gives no such bound: the request could
still be on its way, so that slot is held for an extra ``per`` seconds.

Starts are also spread ``per / rate`` seconds apart (aiolimiter, ``AsyncLimiter(1, per / rate)``),
so the first window is not one burst of ``rate`` calls and slots freed together (after a pause)
go out evenly. That spacing alone would *not* be safe (``AsyncLimiter(rate, per)`` lets about
``2 * rate`` calls into one window): the slots are the guarantee.

When the server still says "rate limited" (another client on the same account used part of the
quota), :meth:`Pacer.penalize` keeps every slot closed for a whole window, doubling on repeated
throttling up to a cap, and resets once calls succeed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from collections.abc import Callable

from aiolimiter import AsyncLimiter


class Pacer:
    """Hands out send permits so that no ``per``-second window holds more than ``rate`` calls.

    Use::

        async with pacer.slot() as slot:
            answer = await send()
            slot.answered()        # or leave it: a slot without an answer is held longer

    Create it inside the running event loop (aiolimiter binds to the loop).
    """

    def __init__(
        self,
        rate: int,
        per: float,
        *,
        margin: float | None = None,
        spread: bool = True,
        clock: Callable[[], float] = time.monotonic,
        max_penalty: float | None = None,
    ) -> None:
        if rate < 1 or per <= 0:
            raise ValueError("rate must be >= 1 and per > 0")
        self.rate = rate
        self.per = float(per)
        # The margin absorbs timer resolution and clock differences; 1% of a window costs ~1%.
        self.margin = margin if margin is not None else max(0.01, 0.005 * self.per)
        self._clock = clock
        self._ready: list[float] = [0.0] * rate  # heap: when each free slot may be used again
        self._free = asyncio.Condition()
        self._spacing = AsyncLimiter(1, self.per / rate) if spread and rate > 1 else None
        self._closed_until = 0.0
        self._penalty = 0.0
        self._max_penalty = max_penalty if max_penalty is not None else 8 * self.per
        self.calls = 0
        self.throttled = 0

    def slot(self) -> _Slot:
        """A context manager holding one slot for one call."""
        return _Slot(self)

    async def _acquire(self) -> None:
        async with self._free:
            while True:
                now = self._clock()
                opens = max(self._ready[0], self._closed_until) if self._ready else None
                if opens is not None and opens <= now:
                    heapq.heappop(self._ready)
                    break
                timeout = None if opens is None else opens - now
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._free.wait(), timeout)
        if self._spacing is not None:
            await self._spacing.acquire()
        self.calls += 1

    async def _release(self, answered_at: float | None) -> None:
        now = self._clock()
        # No answer: the request may still arrive later; hold the slot one more window.
        base = answered_at if answered_at is not None else now + self.per
        async with self._free:
            heapq.heappush(self._ready, base + self.per + self.margin)
            self._free.notify()

    def penalize(self) -> None:
        """The server said "rate limited": close all slots for a window (longer if repeated)."""
        self.throttled += 1
        self._penalty = min(self._max_penalty, self._penalty * 2 if self._penalty else self.per)
        self._closed_until = max(self._closed_until, self._clock() + self._penalty)

    def recovered(self) -> None:
        """A call went through: the next throttling episode starts again at one window."""
        self._penalty = 0.0


class _Slot:
    def __init__(self, pacer: Pacer) -> None:
        self._pacer = pacer
        self._answered_at: float | None = None

    def answered(self) -> None:
        """Mark that the server's answer arrived (now): the slot reopens ``per`` after this."""
        self._answered_at = self._pacer._clock()

    async def __aenter__(self) -> _Slot:
        await self._pacer._acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        # Shielded so that cancelling a worker never loses a slot.
        await asyncio.shield(self._pacer._release(self._answered_at))
