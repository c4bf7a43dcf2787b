"""attempt(): one call under the pacer, shared by the worker pool and the preflight."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from importer.leadsquared.classify import (
    ApiResponse,
    Kind,
    classify,
    classify_read,
    read_unanswered,
    transport_outcome,
)
from importer.leadsquared.client import TransportError
from importer.sending import Pacer, RetryPolicy
from importer.sending.attempt import attempt, attempt_with_retries

from .virtual import VirtualClock, run_virtual

OK = ApiResponse(200, {"Status": "Success", "Message": {"Id": "A"}})
THROTTLED = ApiResponse(429, {"Status": "Error", "ExceptionMessage": "exceeded the limit"})


def lost(exc: TransportError):
    return transport_outcome(exc.cause, maybe_sent=exc.maybe_sent)


def test_intent_is_recorded_after_the_slot_and_before_the_call() -> None:
    events: list[str] = []

    async def send() -> ApiResponse:
        events.append("send")
        return OK

    async def intent() -> None:
        events.append("intent")

    async def main() -> Kind:
        pacer = Pacer(2, 0.2)
        outcome = await attempt(send, pacer=pacer, judge=classify, lost=lost, intent=intent)
        assert pacer.calls == 1
        return outcome.kind

    assert asyncio.run(main()) is Kind.SUCCESS
    assert events == ["intent", "send"]


def test_a_refusal_closes_the_pacer_for_a_window() -> None:
    async def send() -> ApiResponse:
        return THROTTLED

    async def main() -> tuple[Kind, int, float]:
        loop = asyncio.get_running_loop()
        pacer = Pacer(5, 0.3)
        outcome = await attempt(send, pacer=pacer, judge=classify, lost=lost)
        started = loop.time()
        await attempt(send, pacer=pacer, judge=classify, lost=lost)
        return outcome.kind, pacer.throttled, loop.time() - started

    kind, throttled, waited = asyncio.run(main())
    assert kind is Kind.RATE_LIMITED and throttled == 2
    assert waited >= 0.3  # the second call waited for the window after the refusal


def test_a_lost_answer_is_judged_by_lost_and_holds_its_slot() -> None:
    async def send() -> ApiResponse:
        raise TransportError(ConnectionResetError("gone"), maybe_sent=True)

    async def main() -> tuple[Kind, float]:
        loop = asyncio.get_running_loop()
        pacer = Pacer(1, 0.2, spread=False)
        outcome = await attempt(send, pacer=pacer, judge=classify, lost=lost)
        started = loop.time()
        await attempt(send, pacer=pacer, judge=classify, lost=lost)
        return outcome.kind, loop.time() - started

    kind, waited = asyncio.run(main())
    assert kind is Kind.AMBIGUOUS
    assert waited >= 0.4  # per after the call, plus per more: the request may still be travelling


def test_without_a_pacer_the_call_goes_at_once() -> None:
    calls: list[int] = []

    async def send() -> ApiResponse:
        calls.append(1)
        return OK

    outcome = asyncio.run(attempt(send, pacer=None, judge=classify, lost=lost))
    assert outcome.kind is Kind.SUCCESS and calls == [1]


# ---- attempt_with_retries: calls safe to repeat (metadata, lookups) ---------------------------


def read_judge(answer: ApiResponse):
    return classify_read(answer)


def test_retries_transient_answers_with_the_policys_backoff_then_stops() -> None:
    answers = [ApiResponse(500, None, "boom", method="POST")] * 2 + [ApiResponse(200, [])]
    waits: list[float] = []
    counted: list[int] = []

    async def send() -> ApiResponse:
        return answers.pop(0)

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def main():
        pacer = Pacer(5, 0.2)
        found, attempts = await attempt_with_retries(
            send,
            pacer=pacer,
            retry=RetryPolicy(max_attempts=5, base_delay=0.01),
            judge=read_judge,
            lost=read_unanswered,
            sleep=sleep,
            before=lambda: counted.append(1),
        )
        return found, attempts, pacer.calls

    found, attempts, paced = asyncio.run(main())
    assert found.kind is Kind.SUCCESS and found.body == []
    assert attempts == 3 == paced == len(counted)
    assert len(waits) == 2 and all(0 <= w <= 0.02 for w in waits)


def test_gives_up_after_max_attempts_with_the_last_judgement() -> None:
    async def send() -> ApiResponse:
        raise TransportError(ConnectionResetError("gone"), maybe_sent=True)

    async def main():
        return await attempt_with_retries(
            send,
            pacer=None,
            retry=RetryPolicy(max_attempts=3, base_delay=0),
            judge=read_judge,
            lost=read_unanswered,
        )

    found, attempts = asyncio.run(main())
    assert attempts == 3 and found.kind is Kind.TRANSIENT
    assert found.problem == "gave no answer (ConnectionResetError: gone)"


def test_before_can_stop_before_anything_is_sent() -> None:
    sent: list[int] = []

    async def send() -> ApiResponse:
        sent.append(1)
        return ApiResponse(200, [])

    class Stop(Exception):
        pass

    def before() -> None:
        raise Stop

    async def main() -> None:
        pacer = Pacer(5, 0.2)
        try:
            await attempt_with_retries(
                send,
                pacer=pacer,
                retry=RetryPolicy(),
                judge=read_judge,
                lost=read_unanswered,
                before=before,
            )
        finally:
            assert pacer.calls == 0

    with pytest.raises(Stop):
        asyncio.run(main())
    assert sent == []


# ---- learning the account's limit from a refusal ---------------------------------------------


def refusal(limit: str) -> ApiResponse:
    return ApiResponse(
        429,
        {
            "Status": "Error",
            "ExceptionType": "MXAPIRateLimitExceededException",
            "ExceptionMessage": f"API calls exceeded the limit of {limit} second(s)",
        },
    )


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_a_stricter_limit_in_a_refusal_becomes_the_pace_and_is_said_once(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="lsq_import")
    clock = VirtualClock()
    pacer = Pacer(25, 5.0, clock=clock)

    async def send() -> ApiResponse:
        return refusal("10 in 5")

    async def main() -> list[Kind]:
        # A whole episode: five calls in flight together, every one of them refused.
        outcomes = await asyncio.gather(
            *(attempt(send, pacer=pacer, judge=classify, lost=lost) for _ in range(5))
        )
        return [outcome.kind for outcome in outcomes]

    assert run_virtual(main, clock) == [Kind.RATE_LIMITED] * 5
    assert (pacer.rate, pacer.per, pacer.learnt, pacer.throttled) == (10, 5.0, (10, 5.0), 5)
    assert warnings(caplog) == [
        "LeadSquared says the account's limit is 10 calls per 5 s: going on at that pace "
        "(was 25 per 5 s); give --rate 10 next time"
    ]


def test_lookups_and_metadata_calls_learn_the_limit_too(caplog) -> None:
    # They are judged by classify_read, whose judgement has a problem, not an error_message.
    caplog.set_level(logging.WARNING, logger="lsq_import")
    clock = VirtualClock()
    pacer = Pacer(5, 5.0, clock=clock)
    answers = [refusal("2 in 5"), refusal("2 in 5"), ApiResponse(200, [])]

    async def send() -> ApiResponse:
        return answers.pop(0)

    async def no_wait(seconds: float) -> None:
        pass

    async def main():
        return await attempt_with_retries(
            send,
            pacer=pacer,
            retry=RetryPolicy(max_attempts=5, base_delay=0),
            judge=read_judge,
            lost=read_unanswered,
            sleep=no_wait,
        )

    found, attempts = run_virtual(main, clock)
    assert found.kind is Kind.SUCCESS and attempts == 3
    assert pacer.learnt == (2, 5.0)
    assert clock.now >= 10.0  # two refusals: each closed the pacer for a (5 s) window
    assert warnings(caplog) == [
        "LeadSquared says the account's limit is 2 calls per 5 s: going on at that pace "
        "(was 5 per 5 s); give --rate 2 next time"
    ]


@pytest.mark.parametrize(
    ("pacer", "limit", "said"),
    [
        (
            Pacer.for_bulk(5, 5.0),
            "1 in 5",
            "LeadSquared says the account's limit is 1 bulk calls per 5 s: going on at that "
            "pace (was 5 per 5 s); give --bulk-rate 1 next time",
        ),
        (
            Pacer.for_bulk(5, 1.0),
            "1 in 5",
            "LeadSquared says the account's limit is 1 bulk calls per 5 s: going on at that "
            "pace (was 5 per 1 s); give --bulk-rate 1 --bulk-per 5 next time",
        ),
        (
            Pacer(25, 1.0),
            "10 in 5",
            "LeadSquared says the account's limit is 10 calls per 5 s: going on at that pace "
            "(was 25 per 1 s); give --rate 10 --per 5 next time",
        ),
        (
            # The pacer's longer window stays: the pace is not the limit itself then.
            Pacer(25, 10.0),
            "10 in 5",
            "LeadSquared says the account's limit is 10 calls per 5 s: going on at 10 per "
            "10 s (was 25 per 10 s); give --rate 10 next time",
        ),
        (Pacer(10, 5.0), "25 in 5", None),  # looser than ours: another client's calls
        (Pacer(5, 10.0), "10 in 5", None),
    ],
    ids=[
        "bulk",
        "bulk, longer window",
        "longer window",
        "keeps its window",
        "looser",
        "looser, shorter window",
    ],
)
def test_what_a_refusal_naming_a_limit_changes_and_says(
    caplog, pacer: Pacer, limit: str, said: str | None
) -> None:
    caplog.set_level(logging.WARNING, logger="lsq_import")
    before = pacer.rate, pacer.per

    async def send() -> ApiResponse:
        return refusal(limit)

    outcome = asyncio.run(attempt(send, pacer=pacer, judge=classify, lost=lost))
    assert outcome.kind is Kind.RATE_LIMITED and pacer.throttled == 1
    assert warnings(caplog) == ([said] if said else [])
    # Learnt before the closure: it lasts the window the pacer goes by now.
    assert pacer.closed_until - time.monotonic() > pacer.per - 0.5
    if said is None:
        assert (pacer.rate, pacer.per, pacer.learnt) == (*before, None)


def test_a_refusal_that_names_no_limit_changes_only_the_closure(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="lsq_import")
    pacer = Pacer(25, 5.0)

    async def send() -> ApiResponse:
        return THROTTLED

    asyncio.run(attempt(send, pacer=pacer, judge=classify, lost=lost))
    assert (pacer.rate, pacer.per, pacer.learnt, pacer.throttled) == (25, 5.0, None, 1)
    assert warnings(caplog) == []
