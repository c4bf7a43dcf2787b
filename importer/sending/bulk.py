"""Bulk mode and auto mode: rows sent 25 at a time through LeadSquared's bulk endpoints, and,
in auto mode, through single CreateCustom calls at the same time, each under its own limit.

A batch (see :mod:`importer.leadsquared.bulk` for the two calls and their answers):

1. A bulk worker waits for a bulk slot (and, when bulk calls count against the ordinary limit
   too, ``shares_limit``, for an ordinary slot as well, served before single calls waiting:
   the bulk slot must not idle behind them). Only then does it take the rows, up to
   ``batch_size``, so a batch is as full as the rows ready at that moment allow.
2. Before the lead call leaves, every row of the batch gets its ``sending`` line, on disk (one
   ``fsync`` for the batch): the intent. It stands for both calls of the batch: until a row's
   outcome line follows it, a crash leaves the row ``unknown``, and reconciliation settles it.
3. The lead call (an upsert: a lost or unreadable answer is sent again, like a refusal for the
   rate, up to the retry policy's attempts). A lead the answer refuses ends its row ``failed``
   with the reason; its activity is not sent.
4. The activity call for the rows whose lead was taken. A record refused: that row ``failed``.
   The rest ``success`` with their activity ids. A lost answer (the call may have been
   processed) makes every row of the call ``unknown``: never sent again blindly, looked up.

Keys: rows with the same SearchBy key are never in flight together, in a batch or across
batches and single calls: the feed hands out a key's rows one at a time, in file order; the
next is handed out once the one before has its outcome. So a batch's keys are distinct.

Every call counts against ``max_calls``; a batch starts only if the budget holds both of its
calls. A stop (Ctrl-C, a fatal answer) lets calls in flight finish; a batch whose lead call
is done when the run stops sends no activity call then: its rows are ``failed`` ("stopped"),
and the next run sends them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from typing import Any

from ..leadsquared.bulk import (
    BulkOutcome,
    RecordOutcome,
    activity_record,
    classify_bulk,
    lead_record,
    lost_bulk,
    search_of,
)
from ..leadsquared.classify import Kind, Outcome, classify
from ..leadsquared.client import BULK_ACTIVITIES_PATH, BULK_LEADS_PATH, TransportError
from ..mapping import Payload
from ..results.journal import Journal, Result, utc_now
from ..results.status import Status
from .attempt import attempt
from .pacer import Pacer
from .pool import _STATUS_OF, PoolStats, Sender, WorkerPool, _NotSent, ordering_key
from .pool import _lost as _lost_single
from .retry import RetryPolicy
from .stop import StopReason

logger = logging.getLogger("lsq_import")


class _NoRows(Exception):
    """A bulk slot came and no row was ready: the slot goes back unused."""


class PacerPair:
    """Two limits for one call, looking like one :class:`Pacer` to
    :func:`importer.sending.attempt.attempt`: the call takes a slot of ``bulk`` (its own
    limit) and, when ``also`` is given, one of ``also`` too.

    * A bulk call: ``bulk`` is the bulk pacer, ``also`` the ordinary one when bulk calls count
      against it (served first among its waiters: the bulk slot must not idle behind single
      calls). A refusal closes the bulk pacer (the bulk window refused it, or the ordinary
      one: either way the bulk calls wait a window) and teaches it the limit it names.
    * A single call in auto mode with a shared limit: ``bulk`` is the single calls' share of
      the ordinary limit (``rate - bulk_rate`` slots, so that the batches always find their
      ``bulk_rate`` ordinary slots), ``also`` the ordinary pacer; a refusal (the ordinary
      window's) closes and teaches both (``teaches``).
    """

    def __init__(
        self,
        bulk: Pacer,
        also: Pacer | None,
        *,
        priority: bool = True,
        teaches: tuple[Pacer, ...] = (),
    ) -> None:
        self.bulk = bulk
        self.also = also
        self.priority = priority
        self._teaches = teaches or (bulk,)
        said = self._teaches[0]
        self.name = getattr(said, "name", "bulk calls")
        self.option = getattr(said, "option", "--bulk-rate")
        self.per_option = getattr(said, "per_option", "--bulk-per")

    @property
    def rate(self) -> int:
        return self._teaches[0].rate

    @property
    def per(self) -> float:
        return self._teaches[0].per

    def slot(self) -> _PairSlot:
        return _PairSlot(self)

    def penalize(self) -> None:
        for pacer in self._teaches:
            pacer.penalize()

    def recovered(self) -> None:
        self.bulk.recovered()
        if self.also is not None:
            self.also.recovered()

    def learn(self, rate: int, per: float) -> bool:
        learnt = [pacer.learn(rate, per) for pacer in self._teaches]
        return learnt[0]


class _PairSlot:
    def __init__(self, pair: PacerPair) -> None:
        self._pair = pair
        self._bulk = pair.bulk.slot()
        also = pair.also
        self._also = also.slot(priority=pair.priority) if also is not None else None

    async def __aenter__(self) -> _PairSlot:
        await self._bulk.__aenter__()
        if self._also is not None:
            try:
                await self._also.__aenter__()
            except BaseException:
                self._bulk.unused()
                await self._bulk.__aexit__(None, None, None)
                raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._also is not None:
            await self._also.__aexit__(*exc)
        await self._bulk.__aexit__(*exc)

    def answered(self) -> None:
        self._bulk.answered()
        if self._also is not None:
            self._also.answered()

    def unused(self) -> None:
        self._bulk.unused()
        if self._also is not None:
            self._also.unused()


class _Feed:
    """Rows waiting to be sent, handed out so that no two with the same key are out at once.

    ``ready`` holds at most one row per key, none of whose key is out; a key's later rows
    wait in ``parked`` (in file order) until the one out has its outcome. ``ready`` is
    bounded (the reader waits); ``parked`` holds only rows of keys already out.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self.ready: deque[Payload] = deque()
        self._parked: dict[str, deque[Payload]] = {}
        self._present: set[str] = set()  # keys with a row ready or out
        self.out = 0
        self.closed = False  # the reader has finished (or the run stopped)
        self._stopped = False
        self._changed = asyncio.Event()
        self.on_finished: Callable[[], None] | None = None
        """Called once nothing more will be handed out (see :attr:`finished`)."""

    def _notify(self) -> None:
        self._changed.set()
        if self.on_finished is not None and self.finished:
            self.on_finished()

    async def _wait(self) -> None:
        self._changed.clear()
        await self._changed.wait()

    async def put(self, payload: Payload) -> None:
        while len(self.ready) >= self.capacity and not self.closed:
            await self._wait()
        key = ordering_key(payload.key)
        if key and key in self._present:
            self._parked.setdefault(key, deque()).append(payload)
            return
        if key:
            self._present.add(key)
        self.ready.append(payload)
        self._notify()

    def close(self) -> None:
        self.closed = True
        self._notify()

    @property
    def finished(self) -> bool:
        """Nothing is ready, nothing more will come: the reader is done and nothing is out
        (a row out could still release a parked one)."""
        return self.closed and not self.ready and self.out == 0

    def take_now(self, most: int) -> list[Payload]:
        taken: list[Payload] = []
        while self.ready and len(taken) < most:
            taken.append(self.ready.popleft())
        self.out += len(taken)
        if taken:
            self._notify()  # room for the reader
        return taken

    async def wait_for_rows(self) -> bool:
        """Until a row is ready (True) or none will be (False)."""
        while not self.ready:
            if self.finished:
                return False
            await self._wait()
        return True

    def release(self, payload: Payload) -> None:
        """``payload`` has its outcome (or was never sent): its key's next row is ready."""
        self.out -= 1
        key = ordering_key(payload.key)
        if key:
            parked = self._parked.get(key)
            if parked and not self._stopped:
                self.ready.appendleft(parked.popleft())  # older than what is ready
            else:
                self._parked.pop(key, None)
                self._present.discard(key)
        self._notify()

    def stop(self) -> None:
        """Hand out nothing more: the rows ready and parked are never sent (no line: the next
        run sends them)."""
        self._stopped = True
        self.closed = True
        self.ready.clear()
        self._parked.clear()
        self._notify()


class BulkPool(WorkerPool):
    """:class:`WorkerPool` for ``--mode bulk`` (``single_workers=0``) and ``--mode auto``
    (bulk batches and single calls at once, each under its own limit, rows going to whichever
    path asks first: a bulk worker asks when it has its slot, a single worker when it is free).
    """

    def __init__(
        self,
        *,
        sender: Sender,
        pacer: Pacer,
        bulk_pacer: Pacer,
        journal: Journal,
        shares_limit: bool = True,
        batch_size: int = 25,
        bulk_workers: int | None = None,
        single_workers: int = 0,
        retry: RetryPolicy | None = None,
        on_result: Callable[[Result], None] | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        max_calls: int | None = None,
        earlier_attempts: Callable[[int], int] | None = None,
    ) -> None:
        super().__init__(
            sender=sender,
            pacer=pacer,
            journal=journal,
            retry=retry,
            concurrency=max(1, single_workers),
            on_result=on_result,
            sleep=sleep,
            max_calls=max_calls,
            earlier_attempts=earlier_attempts,
        )
        self.bulk_pacer = bulk_pacer
        self.pair = PacerPair(bulk_pacer, pacer if shares_limit else None)
        if shares_limit and single_workers:
            # The batches' bulk_rate ordinary slots are kept for them: single calls take a
            # slot of their own share too (rate - bulk_rate), so they never hold every
            # ordinary slot when a batch comes (at the start, they did: the batches waited a
            # window). The ordinary pacer still bounds both together.
            share = pacer.rate - bulk_pacer.rate
            if share < 1:
                single_workers = 0  # the batches need the whole limit
            else:
                self.row_pacer = PacerPair(
                    Pacer(share, pacer.per), pacer, priority=False, teaches=(pacer,)
                )
        self.shares_limit = shares_limit
        self.batch_size = max(1, batch_size)
        self.bulk_workers = bulk_workers or bulk_pacer.rate
        self.single_workers = single_workers
        self._idle: set[asyncio.Task[Any]] = set()
        self.batches = 0
        self.row_calls = 0
        """Rows carried by the bulk calls made, summed over the calls (each counts the call
        in its ``attempts``)."""
        self._feed: _Feed | None = None

    def stop(self, reason: StopReason) -> None:
        super().stop(reason)
        if self._feed is not None:
            self._feed.stop()

    async def run(self, payloads: Iterable[Payload] | AsyncIterable[Payload]) -> PoolStats:
        capacity = self.batch_size * (self.bulk_workers + 1) + 2 * self.single_workers
        feed = self._feed = _Feed(capacity)
        feed.on_finished = self._wake_idle
        if self._stopping:
            feed.stop()
        workers = [asyncio.create_task(self._bulk_worker(feed)) for _ in range(self.bulk_workers)]
        workers += [
            asyncio.create_task(self._single_worker(feed)) for _ in range(self.single_workers)
        ]

        async def no_more() -> None:
            feed.close()

        return await self._feed_workers(payloads, feed.put, workers, no_more)

    # ---- workers waiting for a slot, holding no row ---------------------------------------

    def _idle_begin(self) -> None:
        """This worker now waits for its slot(s) and holds no row: once the feed has nothing
        more to hand out it is woken (cancelled) instead of waiting up to a window for a
        slot it would give back unused."""
        task = asyncio.current_task()
        if task is not None:
            self._idle.add(task)

    def _idle_end(self) -> None:
        """Its slot came: it takes rows now, and must not be cancelled from here on."""
        task = asyncio.current_task()
        if task is not None:
            self._idle.discard(task)

    def _wake_idle(self) -> None:
        idle, self._idle = self._idle, set()
        for task in idle:
            task.cancel()  # safe: nothing is taken or sent before _idle_end

    # ---- single calls (auto mode) ---------------------------------------------------------

    async def _single_worker(self, feed: _Feed) -> None:
        """Single calls next to the batches: like a batch, a row is taken once its slot is
        there, so no row waits in a single worker while a batch could carry it (at the end of
        a run, rows held by slow single calls made auto slower than bulk alone)."""
        while await feed.wait_for_rows():
            if not await self._single_call(feed):
                return

    async def _single_call(self, feed: _Feed) -> bool:
        """One row through CreateCustom, taken when its slot came; False: stop the worker."""
        taken: list[Payload] = []
        sent = False

        async def take_row() -> None:
            nonlocal sent
            self._idle_end()
            if self._refuse_waiting:
                raise _NotSent
            if not feed.ready:
                raise _NoRows
            if not self._take_call():
                raise _NotSent  # the budget is spent: the pool stops
            taken.extend(feed.take_now(1))
            payload = taken[0]
            sent = True
            self._calls_in_flight += 1
            earlier = self._earlier(payload.row) if self._earlier is not None else 0
            await self._intent(payload, earlier + 1)

        self._idle_begin()
        try:
            try:
                outcome = await attempt(
                    lambda: self.sender.create_lead_and_activity(taken[0].body),
                    pacer=self.row_pacer,
                    judge=classify,
                    lost=_lost_single,
                    intent=take_row,
                )
            finally:
                if sent:
                    self._calls_in_flight -= 1
            await self._send_until_settled(taken[0], first=outcome)
        except _NoRows:
            return True  # a batch took it first
        except _NotSent:
            return False
        except Exception as exc:  # noqa: BLE001 - e.g. the journal failed: run() re-raises
            self._error = self._error or exc
            self.stop(StopReason.ERROR)
        finally:
            for payload in taken:
                feed.release(payload)
        return True

    # ---- batches ----------------------------------------------------------------------------

    async def _bulk_worker(self, feed: _Feed) -> None:
        while not self._stopping:
            if not await feed.wait_for_rows():
                return
            batch: list[Payload] = []
            try:
                await self._send_batch(feed, batch)
            except _NoRows:
                pass  # another worker took them first
            except Exception as exc:  # noqa: BLE001 - re-raised by run()
                self._error = self._error or exc
                self.stop(StopReason.ERROR)
            finally:
                for payload in batch:
                    feed.release(payload)

    def _take_calls(self, count: int) -> bool:
        if self._calls_left is None:
            return True
        if self._calls_left < count:
            self.stop(StopReason.BUDGET)
            return False
        self._calls_left -= count
        return True

    def _give_back_calls(self, count: int) -> None:
        if self._calls_left is not None:
            self._calls_left += count

    async def _send_batch(self, feed: _Feed, batch: list[Payload]) -> None:
        earlier: dict[int, int] = {}  # row -> calls earlier runs made for it

        async def take_rows() -> None:
            self._idle_end()
            if self._refuse_waiting:
                raise _NotSent
            if not feed.ready:
                raise _NoRows
            if not self._take_calls(2):  # the budget cannot carry the batch's two calls
                raise _NotSent
            taken = feed.take_now(self.batch_size)
            batch.extend(taken)
            for payload in taken:
                earlier[payload.row] = self._earlier(payload.row) if self._earlier else 0
                self.journal.record(
                    Result(
                        payload.row,
                        payload.key,
                        Status.SENDING,
                        attempts=earlier[payload.row] + 1,
                        finished_at=utc_now(),
                    )
                )
            await self.journal.durable()

        # The lead call: the first attempt takes the rows once its slots are there.
        self._idle_begin()
        try:
            leads, calls = await self._call(
                lambda: [lead_record(p.body) for p in batch],
                BULK_LEADS_PATH,
                None,
                leads=True,
                first_intent=take_rows,
                count=lambda: len(batch),
            )
        except _NotSent:  # stopped, or out of budget, before the rows were taken
            return
        self.batches += 1
        if leads.kind is not Kind.SUCCESS:
            self._give_back_calls(1)  # the activity call's share: never made
            self._settle_all(batch, leads.outcome, calls, earlier, "lead call")
            return
        taken: list[tuple[Payload, RecordOutcome]] = []
        for payload, record in zip(batch, leads.records, strict=True):
            if record.kind is Kind.SUCCESS:
                taken.append((payload, record))
            else:  # refused, or unreadable: its activity is not sent, so the row may be again
                refused = RecordOutcome(
                    Kind.PERMANENT, "", "", record.error_type, record.error_message
                )
                self._settle_record(payload, refused, calls, earlier, "lead refused")
        if not taken:
            self._give_back_calls(1)
            return
        if self._refuse_waiting:
            self._give_back_calls(1)
            stopped = Outcome(
                Kind.PERMANENT,
                error_type="stopped",
                error_message="the run stopped between the batch's lead call and its activity "
                "call: not sent; the next run sends it",
            )
            self._settle_all([p for p, _ in taken], stopped, calls, earlier, "")
            return
        rows = [p for p, _ in taken]
        search_by = search_of(rows[0].body)[0]
        try:
            answer, more = await self._call(
                lambda: [activity_record(p.body) for p in rows],
                BULK_ACTIVITIES_PATH,
                {"searchBy": search_by},
                leads=False,
                first_intent=None,
                count=lambda: len(rows),
            )
        except _NotSent:  # stopped while it waited for its slot
            self._give_back_calls(1)
            answer, more = BulkOutcome(Kind.PERMANENT, _STOPPED), 0
        calls += more
        if answer.kind is not Kind.SUCCESS:
            self._settle_all(rows, answer.outcome, calls, earlier, "activity call")
            return
        for (payload, lead), record in zip(taken, answer.records, strict=True):
            if record.kind is Kind.SUCCESS and not record.lead_id and lead.id:
                record = RecordOutcome(Kind.SUCCESS, id=record.id, lead_id=lead.id)
            self._settle_record(payload, record, calls, earlier, "activity refused")

    async def _call(
        self,
        body: Callable[[], list[Any]],
        path: str,
        params: dict[str, str] | None,
        *,
        leads: bool,
        first_intent: Callable[[], Awaitable[None]] | None,
        count: Callable[[], int],
    ) -> tuple[BulkOutcome, int]:
        """One bulk call, repeated while the answer says it was not processed (and, for the
        lead upsert, while it was lost); returns the last judgement and the calls made."""
        calls = 0
        judged: BulkOutcome | None = None
        while True:
            if calls and not self._take_call():
                assert judged is not None
                return judged, calls  # a retry the budget no longer allows
            first = calls == 0 and first_intent is not None
            sent = False

            async def intent(first: bool = first) -> None:
                nonlocal sent
                if first:
                    assert first_intent is not None
                    await first_intent()  # takes the rows and journals their intent
                elif self._refuse_waiting:
                    raise _NotSent
                self._calls_in_flight += 1
                sent = True

            send = _poster(self.sender, path, params, body)
            try:
                judged = await attempt(
                    send,
                    pacer=self.pair,  # type: ignore[arg-type]
                    judge=lambda answer: classify_bulk(answer, count(), leads=leads),
                    lost=lambda exc: _lost(exc, leads),
                    intent=intent,
                )
            except _NotSent:
                if judged is not None:
                    return judged, calls
                raise
            finally:
                if sent:
                    self._calls_in_flight -= 1
            calls += 1
            kind = judged.kind
            if kind is Kind.FATAL:
                self.stats.fatal = self.stats.fatal or judged.outcome
                self.stop(StopReason.FATAL)
            if not self._stopping and self.retry.should_retry(kind, calls):
                self.stats.retries += 1
                await self._sleep(self.retry.delay(calls, kind))
                if not self._stopping:
                    continue
            return judged, calls

    # ---- outcomes ---------------------------------------------------------------------------

    def _settle_all(
        self,
        rows: list[Payload],
        outcome: Outcome,
        calls: int,
        earlier: dict[int, int],
        stage: str,
    ) -> None:
        message = outcome.error_message
        if stage and message:
            message = f"{stage}: {message}"
        for payload in rows:
            self._record(
                payload,
                _STATUS_OF.get(outcome.kind, Status.FAILED),
                calls,
                earlier,
                http_status=outcome.http_status,
                error_type=outcome.error_type,
                error_message=message,
            )

    def _settle_record(
        self,
        payload: Payload,
        record: RecordOutcome,
        calls: int,
        earlier: dict[int, int],
        stage: str,
    ) -> None:
        status = _STATUS_OF.get(record.kind, Status.FAILED)
        message = record.error_message
        if status is not Status.SUCCESS and stage:
            message = f"{stage}: {message}"
        self._record(
            payload,
            status,
            calls,
            earlier,
            activity_id=record.id if status is Status.SUCCESS else "",
            lead_id=record.lead_id,
            http_status=200,
            error_type=record.error_type,
            error_message=message,
        )

    def _record(
        self,
        payload: Payload,
        status: Status,
        calls: int,
        earlier: dict[int, int],
        **fields: Any,
    ) -> None:
        self.row_calls += calls
        result = Result(
            payload.row,
            payload.key,
            status,
            attempts=earlier.get(payload.row, 0) + max(1, calls),
            finished_at=utc_now(),
            **fields,
        )
        if status is not Status.SUCCESS:
            logger.debug("row %d: %s (bulk) %s", payload.row, status, result.error_message)
        self._recorded(result)


_STOPPED = Outcome(
    Kind.PERMANENT,
    error_type="stopped",
    error_message="the run stopped before the batch's activity call left: not sent; the next "
    "run sends it",
)


def _lost(exc: TransportError, leads: bool) -> BulkOutcome:
    return lost_bulk(exc.name, exc.detail, maybe_sent=exc.maybe_sent, leads=leads)


def _poster(
    sender: Any, path: str, params: dict[str, str] | None, body: Callable[[], list[Any]]
) -> Callable[[], Awaitable[Any]]:
    async def send() -> Any:
        return await sender.post(path, body(), params)

    return send
