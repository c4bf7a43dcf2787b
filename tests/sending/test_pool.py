"""The worker pool and the pacer, with an in-memory fake of the API (no sockets, no sleeps
beyond the pacer's own short scaled windows)."""

from __future__ import annotations

import asyncio
import csv
import random
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from importer.leadsquared.classify import ApiResponse
from importer.leadsquared.client import TransportError
from importer.mapping import Payload
from importer.results.journal import Journal
from importer.sending.pacer import Pacer
from importer.sending.pool import WorkerPool
from importer.sending.retry import RetryPolicy

OK = {"Status": "Success", "Message": {"Id": "a", "RelatedId": "l"}}
RATE = {
    "Status": "Error",
    "ExceptionType": "MXAPIRateLimitExceededException",
    "ExceptionMessage": "API calls exceeded the limit of 25 in 5 second(s)",
}


class FakeApi:
    """Records when each call 'arrives' and answers from a script (default: success)."""

    def __init__(
        self, latency: tuple[float, float] = (0.0, 0.0), script: dict | None = None, seed: int = 1
    ) -> None:
        self.latency = latency
        self.script = script or {}
        self.rng = random.Random(seed)
        self.arrivals: list[float] = []
        self.in_flight: Counter[str] = Counter()
        self.overlap: list[str] = []
        self.order: list[int] = []
        self.tries: Counter[int] = Counter()

    async def create_lead_and_activity(self, body: dict[str, Any]) -> ApiResponse:
        row = body["row"]
        key = body["key"]
        loop = asyncio.get_running_loop()
        up = self.rng.uniform(*self.latency) / 2
        await asyncio.sleep(up)
        self.arrivals.append(loop.time())
        self.order.append(row)
        self.tries[row] += 1
        if key:
            self.in_flight[key] += 1
            if self.in_flight[key] > 1:
                self.overlap.append(key)
        try:
            await asyncio.sleep(self.rng.uniform(*self.latency) / 2)
            answers = self.script.get(row)
            answer = answers[min(self.tries[row], len(answers)) - 1] if answers else None
            if isinstance(answer, BaseException):
                raise answer
            return answer or ApiResponse(200, OK)
        finally:
            if key:
                self.in_flight[key] -= 1


def payloads(n: int, key=lambda i: f"k{i}") -> list[Payload]:
    return [Payload(row=i + 2, key=key(i), body={"row": i + 2, "key": key(i)}) for i in range(n)]


def max_in_window(times: list[float], per: float) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - per:
            start += 1
        best = max(best, end - start + 1)
    return best


def final_lines(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


async def run_pool(
    tmp_path: Path,
    api: FakeApi,
    items: list[Payload],
    *,
    rate=20,
    per=0.5,
    concurrency=None,
    retry=None,
    on_result=None,
) -> WorkerPool:
    journal = Journal(tmp_path / "r.csv")
    journal.open()
    pool = WorkerPool(
        sender=api,
        pacer=Pacer(rate, per),
        journal=journal,
        retry=retry or RetryPolicy(base_delay=0.01, max_delay=0.02),
        concurrency=concurrency or rate,
        on_result=on_result,
    )
    try:
        await pool.run(items)
    finally:
        journal.finalize()
    return pool


@pytest.mark.parametrize("latency", [(0.0, 0.0), (0.05, 0.35)])
def test_no_window_ever_holds_more_than_rate_calls(tmp_path: Path, latency) -> None:
    api = FakeApi(latency=latency)
    pool = asyncio.run(run_pool(tmp_path, api, payloads(70), rate=20, per=0.5))
    assert pool.stats.outcomes["success"] == 70
    assert len(api.arrivals) == 70
    assert max_in_window(api.arrivals, 0.5) <= 20


def test_every_row_gets_one_final_line(tmp_path: Path) -> None:
    asyncio.run(run_pool(tmp_path, FakeApi(), payloads(30)))
    lines = final_lines(tmp_path / "r.csv")
    assert [int(r["row"]) for r in lines] == list(range(2, 32))
    assert {r["status"] for r in lines} == {"success"}


def test_rows_of_one_key_are_never_in_flight_together_and_keep_file_order(tmp_path) -> None:
    api = FakeApi(latency=(0.01, 0.05))
    items = payloads(40, key=lambda i: f"lead{i % 3}")
    asyncio.run(run_pool(tmp_path, api, items, rate=40, per=0.2))
    assert api.overlap == []
    for k in range(3):
        rows = [r for r in api.order if (r - 2) % 3 == k]
        assert rows == sorted(rows)
    assert len(api.order) == 40


def test_transient_errors_are_retried_and_counted(tmp_path: Path) -> None:
    api = FakeApi(
        script={
            3: [ApiResponse(503, None, "busy"), ApiResponse(500, None, ""), ApiResponse(200, OK)]
        }
    )
    pool = asyncio.run(run_pool(tmp_path, api, payloads(3)))
    lines = {r["row"]: r for r in final_lines(tmp_path / "r.csv")}
    assert lines["3"]["status"] == "success" and lines["3"]["attempts"] == "3"
    assert pool.stats.retries == 2


def test_permanent_errors_are_not_retried(tmp_path: Path) -> None:
    bad = ApiResponse(
        500,
        {
            "Status": "Error",
            "ExceptionType": "MXInvalidInputException",
            "ExceptionMessage": "Invalid email",
        },
    )
    api = FakeApi(script={2: [bad]})
    asyncio.run(run_pool(tmp_path, api, payloads(2)))
    line = final_lines(tmp_path / "r.csv")[0]
    assert (line["status"], line["attempts"], line["error_type"], line["http_status"]) == (
        "failed",
        "1",
        "MXInvalidInputException",
        "500",
    )
    assert api.tries[2] == 1


def test_retries_are_bounded(tmp_path: Path) -> None:
    api = FakeApi(script={2: [ApiResponse(503, None, "down")]})
    asyncio.run(
        run_pool(
            tmp_path,
            api,
            payloads(1),
            retry=RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.01),
        )
    )
    line = final_lines(tmp_path / "r.csv")[0]
    assert (line["status"], line["attempts"]) == ("failed", "3")
    assert api.tries[2] == 3


def test_rate_limited_answer_slows_every_worker(tmp_path: Path) -> None:
    api = FakeApi(script={2: [ApiResponse(429, RATE), ApiResponse(200, OK)]})
    pool = asyncio.run(run_pool(tmp_path, api, payloads(6), rate=5, per=0.2, concurrency=1))
    assert pool.pacer.throttled == 1
    # After the 429 (first arrival) nothing arrives for a whole window.
    first, rest = api.arrivals[0], api.arrivals[1:]
    assert min(rest) - first >= 0.2
    assert {r["status"] for r in final_lines(tmp_path / "r.csv")} == {"success"}


def test_lost_answer_is_unknown_and_not_resent(tmp_path: Path) -> None:
    lost = TransportError(aiohttp.ServerDisconnectedError(), maybe_sent=True)
    api = FakeApi(script={2: [lost]})
    asyncio.run(run_pool(tmp_path, api, payloads(2)))
    line = final_lines(tmp_path / "r.csv")[0]
    assert (line["status"], line["error_type"]) == ("unknown", "ServerDisconnectedError")
    assert api.tries[2] == 1


def test_fatal_answer_stops_new_rows(tmp_path: Path) -> None:
    denied = ApiResponse(
        401,
        {
            "Status": "Error",
            "ExceptionType": "MXUnAuthorizedAccessException",
            "ExceptionMessage": "no",
        },
    )
    api = FakeApi(script={row: [denied] for row in range(2, 202)})
    pool = asyncio.run(run_pool(tmp_path, api, payloads(200), rate=5, per=0.2, concurrency=2))
    assert pool.stats.fatal is not None and pool.stats.stop_reason == "fatal"
    assert len(api.order) <= 2  # the calls already in flight, nothing after
    assert len(final_lines(tmp_path / "r.csv")) == len(api.order)


def test_exception_in_callback_stops_after_in_flight_calls_are_recorded(tmp_path: Path) -> None:
    seen: list[int] = []

    def explode(result) -> None:
        seen.append(result.row)
        if len(seen) == 5:
            raise RuntimeError("boom")

    api = FakeApi(latency=(0.01, 0.02))
    with pytest.raises(RuntimeError, match="boom"):
        asyncio.run(run_pool(tmp_path, api, payloads(100), rate=10, per=0.2, on_result=explode))
    lines = final_lines(tmp_path / "r.csv")
    assert 5 <= len(lines) < 100
    assert {r["status"] for r in lines} == {"success"}  # nothing left half-sent
    assert len(lines) == len(api.order)


def test_pacer_reopens_a_slot_only_a_window_after_its_answer() -> None:
    async def scenario() -> list[float]:
        pacer = Pacer(2, 0.2, spread=False, margin=0.0)
        loop = asyncio.get_running_loop()
        starts: list[float] = []

        async def call(delay: float) -> None:
            async with pacer.slot() as slot:
                starts.append(loop.time())
                await asyncio.sleep(delay)
                slot.answered()

        await asyncio.gather(call(0.1), call(0.0), call(0.0))
        return starts

    starts = asyncio.run(scenario())
    # The third call waits for the second slot: answered at ~t0, reopened at ~t0 + 0.2.
    assert starts[2] - starts[0] >= 0.2
    assert starts[1] - starts[0] < 0.05


def test_keys_the_server_may_treat_as_one_lead_are_never_in_flight_together(
    tmp_path: Path,
) -> None:
    """CODE1 and code1 went out concurrently and made 40 duplicate leads: a custom unique
    field may be compared without case, so case, spaces and phone punctuation don't count."""
    spellings = ["CODE1", "code1", " Code1 ", "+91 98765-43210", "919876543210", "(91) 98765 43210"]

    class OneLeadPerLookalike(FakeApi):
        def __init__(self) -> None:
            super().__init__(latency=(0.01, 0.03))
            self.active: Counter[str] = Counter()
            self.together: list[str] = []

        async def create_lead_and_activity(self, body: dict[str, Any]) -> ApiResponse:
            lead = "".join(ch for ch in body["key"].casefold() if ch.isalnum())
            self.active[lead] += 1
            if self.active[lead] > 1:
                self.together.append(body["key"])
            try:
                return await super().create_lead_and_activity({**body, "key": ""})
            finally:
                self.active[lead] -= 1

    api = OneLeadPerLookalike()
    items = payloads(36, key=lambda i: spellings[i % len(spellings)])
    asyncio.run(run_pool(tmp_path, api, items, rate=50, per=0.5))
    assert api.together == []
    lines = final_lines(tmp_path / "r.csv")
    assert len(lines) == 36 and {line["status"] for line in lines} == {"success"}


def test_a_stop_sends_no_call_still_waiting_for_its_slot(tmp_path: Path) -> None:
    # Two slots a window, six workers: when the first answer comes, one call is in flight and
    # four workers wait for a slot. A stop then finishes that call and sends none of theirs
    # (their rows have no journal line: the next run sends them).
    from importer.sending.stop import StopReason

    api = FakeApi(latency=(0.1, 0.1))
    journal = Journal(tmp_path / "r.csv")
    journal.open()
    in_flight: list[int] = []

    def stop_at_first(result) -> None:
        if not in_flight:
            pool.stop(StopReason.INTERRUPTED)
            in_flight.append(pool.calls_in_flight)

    pool = WorkerPool(
        sender=api,
        pacer=Pacer(2, 0.5, spread=False),
        journal=journal,
        concurrency=6,
        on_result=stop_at_first,
    )
    try:
        asyncio.run(pool.run(payloads(20)))
    finally:
        journal.finalize()
    assert in_flight == [1]
    assert len(api.order) == 2  # the first call and the one in flight, none after the stop
    assert {line["status"] for line in final_lines(tmp_path / "r.csv")} == {"success"}
    assert len(final_lines(tmp_path / "r.csv")) == 2
    assert pool.calls_in_flight == 0
    assert pool.pacer.calls == 2  # a slot given back unused is not counted as a call
