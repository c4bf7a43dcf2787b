"""One attempt of one call: take a pacer slot, send, mark the slot answered, judge the answer,
and tell the pacer what it learnt. The worker pool (row calls), the metadata reader (the
preflight and ``lsq-import account``) and the lookups all send through :func:`attempt`, so
every call obeys the same pacing rules. :func:`attempt_with_retries` repeats it under a
:class:`RetryPolicy`, for calls that are safe to repeat (metadata and lookups; the pool has
its own loop, which journals each attempt).

A refusal that names a stricter limit than the pacer keeps ("exceeded the limit of 10 in 5
second(s)") lowers the pacer's pace for good (:meth:`Pacer.learn`), whichever kind of call
was refused, and a warning on the ``lsq_import`` logger says so once per change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from ..leadsquared.classify import ApiResponse, Kind, limit_in
from ..leadsquared.client import TransportError
from .pacer import Pacer
from .retry import RetryPolicy

logger = logging.getLogger("lsq_import")

UNPACED_THROTTLE_DELAY = 5.0
"""Seconds to wait after a refusal when no pacer closes the window: LeadSquared's window."""


class Judged(Protocol):
    """What a judge makes of an answer: at least its :class:`Kind`."""

    @property
    def kind(self) -> Kind: ...


J = TypeVar("J", bound=Judged)


async def attempt(
    send: Callable[[], Awaitable[ApiResponse]],
    *,
    pacer: Pacer | None,
    judge: Callable[[ApiResponse], J],
    lost: Callable[[TransportError], J],
    intent: Callable[[], Awaitable[None]] | None = None,
) -> J:
    """Make one call under ``pacer`` and return what ``judge`` (an answer) or ``lost`` (no
    answer) makes of it.

    ``intent`` is awaited once the slot is taken, right before the call leaves: the pool
    journals the row's ``sending`` line there and waits until it is on disk, so a crash or a
    power cut during the call leaves the row ``unknown``, never forgotten.
    A slot is released as "answered" unless the request may still be on its way (a lost
    answer), which holds the slot an extra window (see :mod:`importer.sending.pacer`).
    """
    if pacer is None:
        if intent is not None:
            await intent()
        try:
            return judge(await send())
        except TransportError as exc:
            return lost(exc)
    async with pacer.slot() as slot:
        if intent is not None:
            try:
                await intent()
            except BaseException:
                slot.unused()  # nothing was sent with it
                raise
        try:
            answer = await send()
        except TransportError as exc:
            if not exc.maybe_sent:
                slot.answered()  # it never reached the server
            judged = lost(exc)
        else:
            slot.answered()
            judged = judge(answer)
    kind = judged.kind
    if kind is Kind.RATE_LIMITED:
        _learn(pacer, judged)  # first: penalize() closes for the window it learns
        pacer.penalize()
    elif kind is Kind.SUCCESS:
        pacer.recovered()
    return judged


def _refusal_text(judged: object) -> str:
    """What a refusal said: an :class:`~importer.leadsquared.classify.Outcome`'s
    ``error_message`` (row calls), or a ``ReadAnswer``'s ``problem`` (metadata, lookups)."""
    for name in ("error_message", "problem"):
        text = getattr(judged, name, "")
        if isinstance(text, str) and text:
            return text
    return ""


def _learn(pacer: Pacer, judged: object) -> None:
    """Go on at the limit a refusal names when it is stricter than the pacer's, and say so:
    once per change (see :meth:`Pacer.learn`), however many calls of the episode were
    refused."""
    limit = limit_in(_refusal_text(judged))
    if limit is None:
        return
    was = pacer.rate, pacer.per
    if not pacer.learn(*limit):
        return
    rate, per = pacer.rate, pacer.per
    # Not always the limit itself: a longer window or a lower rate the pacer had is kept.
    pace = "that pace" if (rate, per) == limit else f"{rate} per {per:g} s"
    # getattr: a bulk call's PacerPair stands in for a Pacer.
    option = getattr(pacer, "option", "--rate")
    per_option = getattr(pacer, "per_option", "--per")
    advice = f"{option} {rate}" + (f" {per_option} {per:g}" if per != was[1] else "")
    logger.warning(
        "LeadSquared says the account's limit is %d %s per %g s: going on at %s "
        "(was %d per %g s); give %s next time",
        limit[0],
        getattr(pacer, "name", "calls"),
        limit[1],
        pace,
        was[0],
        was[1],
        advice,
    )


async def attempt_with_retries(
    send: Callable[[], Awaitable[ApiResponse]],
    *,
    pacer: Pacer | None,
    retry: RetryPolicy,
    judge: Callable[[ApiResponse], J],
    lost: Callable[[TransportError], J],
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    before: Callable[[], None] | None = None,
) -> tuple[J, int]:
    """:func:`attempt` until the answer is not worth repeating or ``retry`` says stop; returns
    the last judgement and the number of attempts made.

    Only for calls that are safe to repeat: ``lost`` decides what a lost answer means, and a
    ``TRANSIENT`` or ``RATE_LIMITED`` judgement is tried again after ``retry``'s backoff (a
    refusal waits on the pacer, which closes its slots for a window; without a pacer, one
    :data:`UNPACED_THROTTLE_DELAY`). ``before`` runs before each attempt, before its slot is
    taken: it may raise to stop (a call budget), and nothing is sent then.
    """
    attempts = 0
    while True:
        if before is not None:
            before()
        attempts += 1
        judged = await attempt(send, pacer=pacer, judge=judge, lost=lost)
        kind = judged.kind
        if not retry.should_retry(kind, attempts):
            return judged, attempts
        delay = retry.delay(attempts, kind)
        if kind is Kind.RATE_LIMITED and pacer is None:
            delay = UNPACED_THROTTLE_DELAY
        await sleep(delay)
