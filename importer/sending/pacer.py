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
so the pool sustains ``rate / (per + latency)`` calls per second, the provable ceiling, from
the first window on: every slot is free at the start.

A failure with no answer (timeout, dropped connection) gives no such bound: the request could
still be on its way, so that slot is held for an extra ``per`` seconds.

Starts are also spread ``per / (2 * rate)`` seconds apart on average (a virtual schedule,
GCRA-style, that tolerates a few milliseconds of timer lateness without losing pace), so the
first window is not one burst of ``rate`` calls and slots freed together (after a pause) go out
evenly. Half of ``per / rate``, because spacing at exactly the limit's pace is ~90% busy at
600 ms latency and its queue alone costs ~3% of throughput. That spacing alone would *not* be
safe (``AsyncLimiter(rate, per)`` lets about ``2 * rate`` calls into one window): the slots
are the guarantee. Nothing below ever hands out a slot before its reopening time, so the
spacing and the throttling handling only ever delay calls.

When the server still says "rate limited" (another client on the same account used part of the
quota), :meth:`Pacer.penalize` closes every slot until ``per`` seconds after that answer: the
refused call arrived before its answer left, so by then it has left the server's window. More
429s for calls sent before the closure only push the reopening to ``per`` after the latest one.
Then a single probe call goes out; if it is refused too, the pacer stays closed for another
window, doubling from the second refused probe on, up to ``max_penalty``; once the probe is
answered otherwise, every slot is usable again. Probing with one call (not ``rate``) matters
because servers count refused calls too: a burst of refused calls would prolong the lockout.

A refusal names the account's limit ("exceeded the limit of N in M second(s)"), and it may be
stricter than the one the pacer was given (the plan is not what the user thought).
:meth:`Pacer.learn` then goes on at ``min(rate, N)`` slots and a ``max(per, M)`` window for the
rest of the pacer's life; it never loosens either. The argument above holds for the smaller
pool once the calls made through the slots it drops have left the server's window: free slots
beyond the new rate leave the heap, and every slot kept waits until the latest of them would
have reopened (a window after its last answer); slots held by calls in flight are dropped as
those calls release them (an excess count), never handed out again, and each such release
holds every free slot a window after that call's answer (two without one, as above). A call
made through a dropped slot arrived before its answer, so no call sent after learning shares a
server window with one: each window a new call lands in holds at most one call per kept slot.
A longer window moves every free slot's reopening time back by the difference, so each is still
a (new) window after its last answer; slots in flight reopen a new window after their answer;
the spacing becomes ``per / (2 * rate)`` of the new numbers. The refusal that taught the limit
also closes every slot for a (new) window (:meth:`Pacer.penalize`), which covers those holds in
practice: learning costs no more than the refusal did.

Waiters are served first come, first served by one timer, so a rate-limited retry queues behind
the rows already waiting, and the cost per call does not grow with the number of waiters.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

# Timer lateness the spacing absorbs without falling behind its schedule (seconds).
_SPACING_TOLERANCE = 0.01


class SharedSchedule(Protocol):
    """Slots shared with other processes on the same account (importer.ledger.pacing)."""

    def take(self) -> tuple[int, float]: ...

    def release(self, index: int, answered_at: float | None) -> None: ...

    def give_back(self, index: int, reopens: float) -> None: ...


class Pacer:
    """Hands out send permits so that no ``per``-second window holds more than ``rate`` calls.

    Use::

        async with pacer.slot() as slot:
            answer = await send()
            slot.answered()        # or leave it: a slot without an answer is held longer
        if rate_limited(answer):
            limit = limit_in(message)  # importer.leadsquared.classify.limit_in
            if limit is not None:
                pacer.learn(*limit)  # the account's limit, when stricter than ours
            pacer.penalize()
        elif succeeded(answer):
            pacer.recovered()

    ``name``, ``option`` and ``per_option`` are for what
    :func:`importer.sending.attempt.attempt` says when the pacer learns a limit: a bulk pacer
    is ``Pacer(1, 5.0, name="bulk calls", option="--bulk-rate", per_option="--bulk-per")``.

    It serves one event loop at a time. Once that loop has stopped (each :func:`run_import`
    of a batch runs its own ``asyncio.run``), the next loop to use it takes it over with its
    state: slot reopening times, spacing and closures are on the pacer's clock, not the
    loop's, so they stay valid, and a batch's files share one limit.
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
        name: str = "calls",
        option: str = "--rate",
        per_option: str = "--per",
    ) -> None:
        if rate < 1 or per <= 0:
            raise ValueError("rate must be >= 1 and per > 0")
        self.rate = rate
        """Slots: calls per window, as the pacer goes now (lowered by :meth:`learn`)."""
        self.per = float(per)
        """The window in seconds, as the pacer goes now (lengthened by :meth:`learn`)."""
        self.name = name
        """What the pacer paces, for messages: "calls", or "bulk calls" for a bulk pacer."""
        self.option = option
        """The command-line option that sets its rate, for advice ("--rate", "--bulk-rate")."""
        self.per_option = per_option
        """The one that sets its window ("--per", "--bulk-per")."""
        self.learnt: tuple[int, float] | None = None
        """``(rate, per)`` the pacer went on at after a refusal named a stricter limit (see
        :meth:`learn`); None until then."""
        self._spread = spread
        self._own_margin = margin is None
        self._own_max_penalty = max_penalty is None
        # The margin absorbs timer resolution and clock differences; 1% of a window costs ~1%.
        self.margin = margin if margin is not None else max(0.01, 0.005 * self.per)
        self._clock = clock
        self._ready: list[float] = [0.0] * rate  # heap: when each free slot may be used again
        self._waiters: deque[asyncio.Future[_Grant]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._interval = self.per / (2 * rate) if spread and rate > 1 else 0.0
        self._next_start = 0.0  # the spacing's virtual schedule
        self._closed_until = 0.0
        self._probing = False  # after a closure: one call at a time until one is not refused
        self._probe_out = False
        self._strikes = 0  # refused probes in a row
        self._max_penalty = max_penalty if max_penalty is not None else 8 * self.per
        self._excess = 0  # slots in flight to drop when released (a learnt, lower rate)
        self.calls = 0
        self.throttled = 0
        self.shared: SharedSchedule | None = None
        """Slots shared with other processes (importer.ledger.pacing.share): each call takes
        one of them too, after its own."""

    @classmethod
    def for_bulk(cls, rate: int, per: float) -> Pacer:
        """A pacer for bulk calls: the same schedule, named for them in what it says (the
        learnt limit's warning names the bulk calls and ``--bulk-rate``/``--bulk-per``)."""
        return cls(rate, per, name="bulk calls", option="--bulk-rate", per_option="--bulk-per")

    def hold_until(self, when: float) -> None:
        """Use no slot before ``when`` (this pacer's clock): calls another process made into
        the same window (a run that just stopped, or died) must leave it first."""
        self._ready = [max(ready, when) for ready in self._ready]
        heapq.heapify(self._ready)

    @property
    def closed_until(self) -> float:
        """Clock time before which no slot is handed out after a refusal (0: not closed)."""
        return self._closed_until

    def slot(self, *, priority: bool = False) -> _Slot:
        """A context manager holding one slot for one call. ``priority``: served before the
        calls already waiting (a bulk call that holds its bulk slot already, when bulk calls
        also count against this limit: it would hold that slot idle behind them)."""
        return _Slot(self, priority)

    # ---- handing out slots ----------------------------------------------------------------

    def _bind(self) -> asyncio.AbstractEventLoop:
        """The running loop, taking the pacer over from a previous loop that has stopped."""
        loop = asyncio.get_running_loop()
        old = self._loop
        if old is loop:
            return loop
        if old is not None:
            if old.is_running():
                # Two loops at once (threads) would race on the heap and the waiters.
                raise RuntimeError("this Pacer is in use by another running event loop")
            # The old loop's timer and waiters die with it: its tasks were cancelled (their
            # slots came back in _Slot.__aexit__) and its timer never fires again. Left in
            # place, a stale timer would stop the next waiter from arming a new one.
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._waiters.clear()
        self._loop = loop
        return loop

    async def _acquire(self, priority: bool = False) -> _Grant:
        loop = self._bind()
        first = priority
        while True:
            grant = None if self._waiters else self._take(self._clock())
            if grant is None:
                waiter: asyncio.Future[_Grant] = loop.create_future()
                if first:
                    self._waiters.appendleft(waiter)
                else:
                    self._waiters.append(waiter)
                if self._timer is None or first:
                    self._dispatch()
                try:
                    grant = await waiter
                except asyncio.CancelledError:
                    if waiter.done() and not waiter.cancelled():
                        self._give_back(waiter.result())  # granted, never used
                    raise
                # penalize() may have closed the pacer between the grant and this task running.
                if self._closed_until > self._clock():
                    self._give_back(grant)
                    first = True
                    continue
            self.calls += 1
            return grant

    def _take(self, now: float) -> _Grant | None:
        """A slot if one may be used now, else None."""
        if self._closed_until > now or (self._probing and self._probe_out):
            return None
        if not self._ready or self._ready[0] > now:
            return None
        if self._interval and self._next_start - _SPACING_TOLERANCE > now:
            return None
        ready = heapq.heappop(self._ready)
        if self._interval:
            self._next_start = max(self._next_start, now) + self._interval
        probe = self._probing
        if probe:
            self._probe_out = True
        return _Grant(ready, probe, self.throttled)

    def _dispatch(self) -> None:
        """Serve waiters in order while slots may be used; arm the timer for the next one."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        now = self._clock()
        waiters = self._waiters
        while waiters:
            if waiters[0].done():  # cancelled while waiting
                waiters.popleft()
                continue
            grant = self._take(now)
            if grant is None:
                break
            waiters.popleft().set_result(grant)
        if not waiters or not self._ready or (self._probing and self._probe_out):
            return  # a release or the probe's outcome calls _dispatch again
        opens = max(self._ready[0], self._closed_until)
        if self._interval:
            opens = max(opens, self._next_start - _SPACING_TOLERANCE)
        assert self._loop is not None
        self._timer = self._loop.call_later(max(0.0, opens - now), self._dispatch)

    def _give_back(self, grant: _Grant) -> None:
        if self._excess:
            self._excess -= 1  # one slot more than a learnt limit allows; nothing was sent
        else:
            heapq.heappush(self._ready, grant.ready)
        if grant.probe:
            self._probe_out = False
        self._dispatch()

    def _release(self, grant: _Grant, answered_at: float | None) -> None:
        # No answer: the request may still arrive later; hold the slot one more window.
        base = answered_at if answered_at is not None else self._clock() + self.per
        reopens = base + self.per + self.margin
        if self._excess:
            # One slot more than a learnt limit allows: dropped, and its call must leave the
            # server's window before another slot goes.
            self._excess -= 1
            self.hold_until(reopens)
        else:
            heapq.heappush(self._ready, reopens)
        if grant.probe and self._loop is not None:
            # The caller reports the probe's answer (penalize/recovered) right after releasing
            # the slot; judge the probe once that has run.
            self._loop.call_soon(self._probe_settled, grant.throttled)
        if self._waiters:
            self._dispatch()

    def _probe_settled(self, throttled_before: int) -> None:
        self._probe_out = False
        if self.throttled == throttled_before and self._clock() >= self._closed_until:
            self._probing = False  # answered, not refused: the account has room again
            self._strikes = 0
        if self._waiters:
            self._dispatch()

    # ---- throttling -----------------------------------------------------------------------

    def penalize(self) -> None:
        """The server said "rate limited": close every slot for a window (longer if repeated)."""
        self.throttled += 1
        now = self._clock()
        if now < self._closed_until:
            # An answer to a call sent before we closed: same episode, reopen a window after it.
            self._closed_until = max(self._closed_until, now + self.per + self.margin)
            return
        if self._probing:
            self._strikes += 1  # refused again after reopening: the other client is still busy
        else:
            self._probing = True
            self._strikes = 0
        penalty = self.per * 2 ** max(0, self._strikes - 1)
        penalty = max(self.per, min(self._max_penalty, penalty))
        self._closed_until = now + penalty + self.margin

    def learn(self, rate: int, per: float) -> bool:
        """A refusal named the account's limit, ``rate`` calls per ``per`` seconds: go on at
        no more than ``rate`` slots and a window of no less than ``per`` from now on.

        Returns True when that changed the pace (the caller says so, once per change), False
        when the limit is the one the pacer keeps already or looser: then the refusal was
        another client's doing, and :meth:`penalize` is all it takes. Never raises the rate
        nor shortens the window. Call it before :meth:`penalize`, so that the closure lasts
        the learnt window. See the module's docstring for why it is safe."""
        if rate < 1 or not (math.isfinite(per) and per > 0):
            raise ValueError("rate must be >= 1 and per a positive number of seconds")
        new_rate, new_per = min(self.rate, rate), max(self.per, float(per))
        if new_rate == self.rate and new_per == self.per:
            return False
        if new_per > self.per:
            # Each free slot reopens a (new) window after its last answer, as before; adding
            # the same amount to every entry keeps the heap a heap.
            longer = new_per - self.per
            self._ready = [ready + longer for ready in self._ready]
            self.per = new_per
            if self._own_margin:
                self.margin = max(0.01, 0.005 * self.per)
            if self._own_max_penalty:
                self._max_penalty = 8 * self.per
        if new_rate < self.rate:
            drop = self.rate - new_rate
            free = sorted(self._ready)  # a sorted list is a heap
            kept = len(free) - min(drop, len(free))
            self._excess += drop - (len(free) - kept)  # the rest are in flight: on release
            self._ready = free[:kept]
            if kept < len(free):
                # The dropped slots' last calls must leave the window before a kept one goes.
                self.hold_until(free[-1])
            self.rate = new_rate
        self._interval = self.per / (2 * self.rate) if self._spread and self.rate > 1 else 0.0
        self.learnt = (self.rate, self.per)
        return True

    def recovered(self) -> None:
        """A call went through: if the pacer was probing after throttling, open every slot."""
        if self._probing and self._clock() >= self._closed_until:
            self._probing = False
            self._strikes = 0
            if self._waiters:
                self._dispatch()


class _Grant:
    __slots__ = ("probe", "ready", "throttled")

    def __init__(self, ready: float, probe: bool, throttled: int) -> None:
        self.ready = ready  # when the slot had become usable (restored if given back unused)
        self.probe = probe
        self.throttled = throttled  # Pacer.throttled when granted, to judge a probe


class _Slot:
    def __init__(self, pacer: Pacer, priority: bool = False) -> None:
        self._pacer = pacer
        self._priority = priority
        self._grant: _Grant | None = None
        self._answered_at: float | None = None
        self._shared = -1  # the shared slot held (see Pacer.shared), -1: none
        self._shared_was = 0.0

    def answered(self) -> None:
        """Mark that the server's answer arrived (now): the slot reopens ``per`` after this."""
        self._answered_at = self._pacer._clock()

    def unused(self) -> None:
        """No call left with this slot (its intent could not be journalled): give it back at
        once and do not count it as a call."""
        shared = self._pacer.shared
        if shared is not None and self._shared >= 0:
            shared.give_back(self._shared, self._shared_was)
            self._shared = -1
        if self._grant is not None:
            self._pacer.calls -= 1
            self._pacer._give_back(self._grant)
            self._grant = None

    async def __aenter__(self) -> _Slot:
        self._grant = await self._pacer._acquire(self._priority)
        shared = self._pacer.shared
        if shared is not None:
            try:
                while True:
                    index, when = shared.take()
                    if index >= 0:
                        self._shared, self._shared_was = index, when
                        break
                    await asyncio.sleep(max(0.0, when - time.monotonic()))
            except BaseException:
                self.unused()
                raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        # Synchronous: cancelling a worker here can never lose the slot.
        shared = self._pacer.shared
        if shared is not None and self._shared >= 0:
            shared.release(self._shared, self._answered_at)
            self._shared = -1
        if self._grant is not None:
            self._pacer._release(self._grant, self._answered_at)
            self._grant = None
