"""The worker pool: takes payloads from a bounded queue and sends each until it has an outcome.

* Workers take payloads in file order. A payload whose SearchBy key is already in flight is
  parked behind it and sent by the same worker right after, so rows of one lead go out one at
  a time and in file order (two concurrent upserts of a new lead can create two leads), while
  the other workers carry on with other keys.
* Every attempt takes a pacer slot, then writes its intent (``sending``) to the journal, then
  sends; the outcome is journaled when it is known.
* ``max_calls`` is a budget of calls (retries included), e.g. a plan's daily quota: the pool
  stops before the call that would exceed it, like :meth:`WorkerPool.stop`.
* A line's ``attempts`` counts the row's calls over every run: ``earlier_attempts`` gives
  the calls earlier runs made for a row sent again (``unknown`` with ``--retry-unknown``, or
  ``failed``), so the results file's attempts add up to every call made.
* :meth:`WorkerPool.stop` (fatal answer, Ctrl-C, a failing callback) stops new rows from
  starting and new retries from being made, also those already waiting for a pacer slot (a
  call leaves only if the pool was not stopped when its slot came, unless the budget stopped
  it: calls within the budget still go); calls in flight
  (:attr:`WorkerPool.calls_in_flight`) finish and are recorded. Rows never started have no
  line in the journal and are sent by the next run.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections import Counter, deque
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..leadsquared.classify import ApiResponse, Kind, Outcome, classify, lost_outcome
from ..leadsquared.client import TransportError
from ..mapping import Payload
from ..results.journal import Journal, Result, utc_now
from ..results.status import Status
from .attempt import attempt
from .pacer import Pacer
from .retry import RetryPolicy
from .stop import StopReason

_DONE: Any = object()


class _NotSent(Exception):
    """The pool was stopped while the call waited for its slot: it never leaves."""


logger = logging.getLogger("lsq_import")


_STATUS_OF = {Kind.SUCCESS: Status.SUCCESS, Kind.AMBIGUOUS: Status.UNKNOWN}


_PHONE_LIKE = re.compile(r"\+?[\d\s().\-/]+")
_NOT_DIGITS = re.compile(r"\D")


def ordering_key(key: str) -> str:
    """The key two rows must not share while in flight: the SearchBy value as the server
    might compare it. Whether LeadSquared compares a custom unique field with or without case
    is not documented (database collations usually ignore it), so case and surrounding spaces
    never tell two keys apart, and a phone-like value is compared by its digits. Serialising
    two rows that turn out to be different leads costs nothing; sending them together when
    the server sees one lead makes a duplicate."""
    text = key.strip().casefold()
    if _PHONE_LIKE.fullmatch(text):
        digits = _NOT_DIGITS.sub("", text)
        if digits:
            return digits
    return text


def _lost(exc: TransportError) -> Outcome:
    # name/detail, not exc.cause: the client hid the keys in the exception's text.
    return lost_outcome(exc.name, exc.detail, maybe_sent=exc.maybe_sent)


class Sender(Protocol):
    async def create_lead_and_activity(self, body: dict[str, Any]) -> ApiResponse: ...


@dataclass
class PoolStats:
    """What the pool did in this run (calls and throttling are counted by its ``pacer``)."""

    outcomes: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    fatal: Outcome | None = None
    stop_reason: StopReason = StopReason.NONE


class WorkerPool:
    """Sends payloads through ``sender`` under ``pacer``, recording every event in ``journal``."""

    def __init__(
        self,
        *,
        sender: Sender,
        pacer: Pacer,
        journal: Journal,
        retry: RetryPolicy | None = None,
        concurrency: int = 25,
        on_result: Callable[[Result], None] | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        max_calls: int | None = None,
        earlier_attempts: Callable[[int], int] | None = None,
    ) -> None:
        self.sender = sender
        self._earlier = earlier_attempts
        """Row -> calls earlier runs made for it: its lines count every run's calls."""
        self.pacer = pacer
        self.row_pacer: Any = pacer
        """What a row's CreateCustom call takes its slot from: ``pacer``, or in auto mode with
        a shared limit the single calls' share of it (see importer.sending.bulk)."""
        self.journal = journal
        self.retry = retry or RetryPolicy()
        self.concurrency = max(1, concurrency)
        self.on_result = on_result
        self._sleep = sleep
        self.stats = PoolStats()
        self._stopping = False
        self._refuse_waiting = False
        self._error: BaseException | None = None
        self._in_flight_keys: set[str] = set()
        self._parked: dict[str, deque[Payload]] = {}
        self._calls_left = max_calls
        self._calls_in_flight = 0

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def calls_in_flight(self) -> int:
        """Calls sent (their intent journaled) and not answered yet: what a stop waits for."""
        return self._calls_in_flight

    def stop(self, reason: StopReason) -> None:
        """Start no new row and no new retry; let calls in flight finish."""
        if not self._stopping:
            self._stopping = True
            self.stats.stop_reason = reason
            # A call still waiting for its pacer slot does not leave either, unless the stop is
            # the budget's: the calls that took their part of it before it ran out still go.
            self._refuse_waiting = reason is not StopReason.BUDGET

    async def run(self, payloads: Iterable[Payload] | AsyncIterable[Payload]) -> PoolStats:
        """Send every payload; returns when all are recorded or the pool was stopped.

        An exception raised by ``on_result`` (or by the payload iterator) stops the pool the
        same way and is re-raised once the calls in flight are recorded.
        """
        queue: asyncio.Queue[Payload] = asyncio.Queue(maxsize=self.concurrency * 4)
        workers = [asyncio.create_task(self._worker(queue)) for _ in range(self.concurrency)]

        async def no_more() -> None:
            for _ in workers:
                await queue.put(_DONE)

        return await self._feed_workers(payloads, queue.put, workers, no_more)

    async def _feed_workers(
        self,
        payloads: Iterable[Payload] | AsyncIterable[Payload],
        put: Callable[[Payload], Awaitable[Any]],
        workers: list[asyncio.Task[None]],
        no_more: Callable[[], Awaitable[Any]],
    ) -> PoolStats:
        """Hand ``payloads`` to ``workers`` through ``put`` until the pool stops, say
        ``no_more`` and wait for them; re-raise what stopped the pool with an error."""
        cancelled = False
        try:
            if isinstance(payloads, AsyncIterable):
                # A feed that waits on something itself (the ledger's claims).
                async for payload in payloads:
                    if self._stopping:
                        break
                    await put(payload)
            else:
                for payload in payloads:
                    if self._stopping:
                        break
                    await put(payload)
        except asyncio.CancelledError:
            # A second Ctrl-C: abandon calls in flight; their intent lines make them `unknown`.
            cancelled = True
            raise
        except Exception as exc:  # the feed failed (the input broke off, the journal failed)
            # The rows already queued were read whole: send them, then stop.
            self._error = self._error or exc
        finally:
            if cancelled:
                for worker in workers:
                    worker.cancel()
            else:
                await no_more()
            await asyncio.gather(*workers, return_exceptions=True)
        if self._error is not None:
            self.stop(StopReason.ERROR)
            raise self._error
        return self.stats

    async def _worker(self, queue: asyncio.Queue[Payload]) -> None:
        while True:
            payload = await queue.get()
            if payload is _DONE:
                return
            if self._stopping:
                continue  # never started: no journal line, the next run sends it
            key = ordering_key(payload.key)
            if key:
                if key in self._in_flight_keys:
                    self._parked.setdefault(key, deque()).append(payload)
                    continue
                self._in_flight_keys.add(key)
            current: Payload | None = payload
            while current is not None:
                try:
                    await self._send_until_settled(current)
                except Exception as exc:  # noqa: BLE001 - e.g. the journal failed: re-raised by run()
                    # Stop everything, but keep draining the queue: a worker that died here
                    # would leave the feeder blocked on a full queue, and the run hanging.
                    self._error = self._error or exc
                    self.stop(StopReason.ERROR)
                current = self._next_of(key)

    def _next_of(self, key: str) -> Payload | None:
        if not key:
            return None
        parked = self._parked.get(key)
        if parked and not self._stopping:
            return parked.popleft()
        self._parked.pop(key, None)
        self._in_flight_keys.discard(key)
        return None

    async def _send_until_settled(self, payload: Payload, first: Outcome | None = None) -> None:
        """Send ``payload`` until it has an outcome, and record it. ``first``: the outcome of
        a first attempt already made (its intent journaled, its call counted in the budget),
        as a worker that took the row once its slot came made it (auto mode)."""
        attempts = 0  # this run's: what the retry policy and the budget go by
        earlier = self._earlier(payload.row) if self._earlier is not None else 0
        outcome: Outcome | None = None
        while True:
            if first is not None:
                outcome, first, attempts = first, None, 1
                if await self._judged(payload, outcome, attempts, earlier):
                    return
                continue
            if not self._take_call():
                if outcome is not None:  # a retry the budget no longer allows
                    self._settle(payload, outcome, attempts, earlier)
                return  # never sent: no journal line, the next run sends it
            attempts += 1
            sent = False

            async def intent(attempts: int = attempts) -> None:
                nonlocal sent
                if self._refuse_waiting:
                    raise _NotSent  # stopped while this call waited for its slot
                sent = True
                self._calls_in_flight += 1
                await self._intent(payload, earlier + attempts)

            try:
                outcome = await attempt(
                    functools.partial(self.sender.create_lead_and_activity, payload.body),
                    pacer=self.row_pacer,  # a Pacer, or a PacerPair
                    judge=classify,
                    lost=_lost,
                    intent=intent,
                )
            except _NotSent:
                if outcome is not None:  # a retry that never left: the last answer stands
                    self._settle(payload, outcome, attempts - 1, earlier)
                return  # a first attempt never sent: no journal line, the next run sends it
            finally:
                if sent:
                    self._calls_in_flight -= 1
            if await self._judged(payload, outcome, attempts, earlier):
                return

    async def _judged(
        self, payload: Payload, outcome: Outcome, attempts: int, earlier: int
    ) -> bool:
        """After an attempt: True once the row is settled (recorded), False to try again
        (after the retry policy's delay)."""
        kind = outcome.kind
        if kind is Kind.FATAL:
            self.stats.fatal = self.stats.fatal or outcome
            self.stop(StopReason.FATAL)
        if not self._stopping and self.retry.should_retry(kind, attempts):
            self.stats.retries += 1
            delay = self.retry.delay(attempts, kind)
            logger.debug(
                "row %d: attempt %d %s (HTTP %s %s), retrying in %.2f s",
                payload.row,
                attempts,
                kind.value,
                outcome.http_status,
                outcome.error_type or outcome.error_message[:80],
                delay,
            )
            await self._sleep(delay)
            if not self._stopping:
                return False
        self._settle(payload, outcome, attempts, earlier)
        return True

    async def _intent(self, payload: Payload, attempts: int) -> None:
        self.journal.record(
            Result(
                payload.row, payload.key, Status.SENDING, attempts=attempts, finished_at=utc_now()
            )
        )
        await self.journal.durable()

    def _take_call(self) -> bool:
        """Count one call against ``max_calls``; at the budget, stop the pool instead."""
        if self._calls_left is None:
            return True
        if self._calls_left <= 0:
            self.stop(StopReason.BUDGET)
            return False
        self._calls_left -= 1
        return True

    def _settle(self, payload: Payload, outcome: Outcome, attempts: int, earlier: int) -> None:
        """Record the row's outcome; its line's ``attempts`` adds the ``earlier`` runs' calls."""
        status = _STATUS_OF.get(outcome.kind, Status.FAILED)
        result = Result(
            payload.row,
            payload.key,
            status,
            activity_id=outcome.activity_id,
            lead_id=outcome.lead_id,
            http_status=outcome.http_status,
            error_type=outcome.error_type,
            error_message=outcome.error_message,
            attempts=earlier + attempts,
            finished_at=utc_now(),
        )
        if status is not Status.SUCCESS:
            logger.debug(
                "row %d: %s after %d attempts (HTTP %s) %s: %s",
                payload.row,
                status,
                attempts,
                outcome.http_status,
                outcome.error_type,
                outcome.error_message,
            )
        self._recorded(result)

    def _recorded(self, result: Result) -> None:
        """Journal a row's outcome, count it, and tell ``on_result`` (whose failure stops the
        pool and is re-raised by :meth:`run`)."""
        self.journal.record(result)
        self.stats.outcomes[result.status] += 1
        if self.on_result is not None:
            try:
                self.on_result(result)
            except BaseException as exc:  # noqa: BLE001 - re-raised by run()
                self._error = self._error or exc
                self.stop(StopReason.ERROR)
