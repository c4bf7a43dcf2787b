"""One attempt of one call: take a pacer slot, send, mark the slot answered, judge the answer,
and tell the pacer what it learnt. The worker pool (row calls) and the preflight (metadata
calls) both send through :func:`attempt`, so every call obeys the same pacing rules.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from ..leadsquared.classify import ApiResponse, Kind
from ..leadsquared.client import TransportError
from .pacer import Pacer


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
        pacer.penalize()
    elif kind is Kind.SUCCESS:
        pacer.recovered()
    return judged
