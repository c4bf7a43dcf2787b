"""Bulk and auto mode's pool against an in-memory fake of the bulk endpoints (no sockets): per
record outcomes, keys, lost answers, the two limits, the budget and stops."""

from __future__ import annotations

import asyncio
import csv
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from importer.leadsquared.classify import ApiResponse
from importer.leadsquared.client import BULK_ACTIVITIES_PATH, BULK_LEADS_PATH, TransportError
from importer.mapping import Payload
from importer.results.journal import Journal
from importer.sending.bulk import BulkPool
from importer.sending.pacer import Pacer
from importer.sending.retry import RetryPolicy
from importer.sending.stop import StopReason

from .test_pool import max_in_window


def body(row: int, key: str) -> dict[str, Any]:
    return {
        "LeadDetails": [
            {"Attribute": "EmailAddress", "Value": key},
            {"Attribute": "SearchBy", "Value": "EmailAddress"},
        ],
        "Activity": {"ActivityEvent": 105, "ActivityNote": f"row {row}"},
    }


def payloads(n: int, key=lambda i: f"k{i}@x.org") -> list[Payload]:
    return [Payload(row=i + 2, key=key(i), body=body(i + 2, key(i))) for i in range(n)]


def lost(sent: bool = True) -> TransportError:
    return TransportError(aiohttp.ServerDisconnectedError(), maybe_sent=sent)


class FakeBulkApi:
    """Upserts leads by e-mail, posts activities; records arrivals, keys out, what it did.

    ``refuse_lead``/``refuse_activity``: rows (by note) whose record is refused;
    ``lose_leads``/``lose_activities``: calls (1-based count of that endpoint's calls) whose
    answer is lost after they were processed."""

    def __init__(self, latency: float = 0.0, **script: Any) -> None:
        self.latency = latency
        self.leads: dict[str, str] = {}
        self.activities: list[tuple[str, str]] = []  # (lead email, note)
        self.out: Counter[str] = Counter()
        self.overlap: list[str] = []
        self.bulk_arrivals: list[float] = []
        self.single_arrivals: list[float] = []
        self.batches: list[list[str]] = []
        self.calls: Counter[str] = Counter()
        self.refuse_lead: set[int] = script.get("refuse_lead", set())
        self.refuse_activity: set[int] = script.get("refuse_activity", set())
        self.lose_leads: set[int] = script.get("lose_leads", set())
        self.lose_activities: set[int] = script.get("lose_activities", set())
        self.on_lead_call: Any = script.get("on_lead_call")

    def _hold(self, keys: list[str]) -> None:
        for key in keys:
            self.out[key] += 1
            if self.out[key] > 1:
                self.overlap.append(key)

    def _free(self, keys: list[str]) -> None:
        for key in keys:
            self.out[key] -= 1

    async def post(self, path: str, records: Any, params: dict[str, str] | None = None) -> Any:
        await asyncio.sleep(self.latency / 2)
        self.bulk_arrivals.append(asyncio.get_running_loop().time())
        if path == BULK_LEADS_PATH:
            self.calls["leads"] += 1
            number = self.calls["leads"]
            keys = [
                next(e["Value"] for e in r if e["Attribute"] == "EmailAddress") for r in records
            ]
            self.batches.append(keys)
            if self.on_lead_call is not None:
                self.on_lead_call()
            self._hold(keys)
            try:
                answer = []
                for i, key in enumerate(keys, start=1):
                    if self._row_of(key) in self.refuse_lead:
                        answer.append(
                            {
                                "RowNumber": i,
                                "ExceptionType": "MXInvalidInputException",
                                "ExceptionMessage": f"bad lead {key}",
                            }
                        )
                        continue
                    self.leads.setdefault(key, f"L-{key}")
                    answer.append({"RowNumber": i, "LeadId": self.leads[key]})
                await asyncio.sleep(self.latency / 2)
                if number in self.lose_leads:
                    raise lost()
                return ApiResponse(200, {"Status": "Success", "Response": answer}, method="POST")
            finally:
                self._free(keys)
        assert path == BULK_ACTIVITIES_PATH and params == {"searchBy": "EmailAddress"}
        self.calls["activities"] += 1
        number = self.calls["activities"]
        keys = [r["SearchByValue"] for r in records]
        self._hold(keys)
        try:
            answer = []
            for record in records:
                row = int(record["ActivityNote"].split()[1])
                if row in self.refuse_activity:
                    answer.append(
                        {
                            "ExceptionType": "MXInvalidInputException",
                            "ExceptionMessage": f"bad activity {row}",
                        }
                    )
                    continue
                self.activities.append((record["SearchByValue"], record["ActivityNote"]))
                answer.append({"ProspectActivityId": f"A-{row}"})
            await asyncio.sleep(self.latency / 2)
            if number in self.lose_activities:
                raise lost()
            return ApiResponse(200, {"Response": answer}, method="POST")
        finally:
            self._free(keys)

    async def create_lead_and_activity(self, payload: dict[str, Any]) -> ApiResponse:
        await asyncio.sleep(self.latency / 2)
        self.single_arrivals.append(asyncio.get_running_loop().time())
        key = payload["LeadDetails"][0]["Value"]
        self._hold([key])
        try:
            self.calls["single"] += 1
            self.leads.setdefault(key, f"L-{key}")
            note = payload["Activity"]["ActivityNote"]
            self.activities.append((key, note))
            await asyncio.sleep(self.latency / 2)
            row = note.split()[1]
            return ApiResponse(200, {"Status": "Success", "Message": {"Id": f"A-{row}"}})
        finally:
            self._free([key])

    def _row_of(self, key: str) -> int:
        return int(key[1:].split("@")[0]) + 2


def lines(path: Path) -> dict[int, dict[str, str]]:
    with open(path, newline="") as handle:
        return {int(r["row"]): r for r in csv.DictReader(handle)}


async def run_bulk(
    tmp_path: Path,
    api: FakeBulkApi,
    items: list[Payload],
    *,
    rate: int = 50,
    bulk_rate: int = 10,
    per: float = 0.3,
    single_workers: int = 0,
    shares: bool = True,
    max_calls: int | None = None,
    pool_hook: Any = None,
) -> BulkPool:
    journal = Journal(tmp_path / "r.csv")
    journal.open()
    pool = BulkPool(
        sender=api,
        pacer=Pacer(rate, per),
        bulk_pacer=Pacer(bulk_rate, per),
        journal=journal,
        shares_limit=shares,
        single_workers=single_workers,
        retry=RetryPolicy(base_delay=0.01, max_delay=0.02),
        max_calls=max_calls,
    )
    if pool_hook is not None:
        pool_hook(pool)
    try:
        await pool.run(items)
    finally:
        journal.finalize()
    return pool


def test_batches_of_25_get_one_outcome_per_row_with_their_ids(tmp_path: Path) -> None:
    api = FakeBulkApi()
    pool = asyncio.run(run_bulk(tmp_path, api, payloads(60)))
    got = lines(tmp_path / "r.csv")
    assert sorted(got) == list(range(2, 62))
    assert {r["status"] for r in got.values()} == {"success"}
    assert got[10]["activity_id"] == "A-10" and got[10]["lead_id"] == "L-k8@x.org"
    assert sorted(len(b) for b in api.batches) == [10, 25, 25]
    assert api.calls == Counter(leads=3, activities=3)
    assert pool.batches == 3 and pool.bulk_pacer.calls == 6
    assert len(api.activities) == 60


def test_a_batch_holds_distinct_keys_and_a_key_is_never_out_twice(tmp_path: Path) -> None:
    api = FakeBulkApi(latency=0.02)
    items = payloads(40, key=lambda i: f"k{i % 3}@x.org")
    asyncio.run(run_bulk(tmp_path, api, items))
    assert api.overlap == []
    assert all(len(set(b)) == len(b) for b in api.batches)
    notes = [int(note.split()[1]) for _, note in api.activities]
    for k in range(3):  # rows of one lead in file order
        mine = [n for n in notes if (n - 2) % 3 == k]
        assert mine == sorted(mine)
    assert len(notes) == 40


def test_a_refused_lead_fails_its_row_and_its_activity_is_not_posted(tmp_path: Path) -> None:
    api = FakeBulkApi(refuse_lead={5})
    asyncio.run(run_bulk(tmp_path, api, payloads(10)))
    got = lines(tmp_path / "r.csv")
    assert got[5]["status"] == "failed"
    assert "lead refused: bad lead k3@x.org" in got[5]["error_message"]
    assert "row 5" not in {note for _, note in api.activities}
    assert all(got[r]["status"] == "success" for r in got if r != 5)
    assert len(api.activities) == 9


def test_a_refused_activity_fails_only_its_row(tmp_path: Path) -> None:
    api = FakeBulkApi(refuse_activity={7})
    asyncio.run(run_bulk(tmp_path, api, payloads(10)))
    got = lines(tmp_path / "r.csv")
    assert got[7]["status"] == "failed" and "bad activity 7" in got[7]["error_message"]
    assert got[7]["error_type"] == "MXInvalidInputException"
    assert [r for r in got if got[r]["status"] == "success"] == [r for r in range(2, 12) if r != 7]


def test_a_lost_activity_answer_leaves_its_batch_unknown_and_sends_nothing_again(
    tmp_path: Path,
) -> None:
    api = FakeBulkApi(lose_activities={1})
    asyncio.run(run_bulk(tmp_path, api, payloads(30), bulk_rate=1))
    got = lines(tmp_path / "r.csv")
    statuses = Counter(r["status"] for r in got.values())
    assert statuses == Counter(unknown=25, success=5)
    assert api.calls["activities"] == 2  # never repeated
    assert len(api.activities) == 30  # the lost call's 25 exist: reconciliation finds them


def test_a_lost_lead_answer_is_sent_again_without_a_second_lead(tmp_path: Path) -> None:
    api = FakeBulkApi(lose_leads={1})
    pool = asyncio.run(run_bulk(tmp_path, api, payloads(5)))
    got = lines(tmp_path / "r.csv")
    assert {r["status"] for r in got.values()} == {"success"}
    assert api.calls == Counter(leads=2, activities=1)
    assert len(api.leads) == 5 and len(api.activities) == 5
    assert pool.stats.retries == 1
    assert got[2]["attempts"] == "3"  # two lead calls and one activity call carried it


@pytest.mark.parametrize("shares", [True, False])
def test_bulk_calls_stay_under_the_bulk_limit_and_the_shared_one(tmp_path: Path, shares) -> None:
    api = FakeBulkApi(latency=0.02)
    pool = asyncio.run(
        run_bulk(
            tmp_path,
            api,
            payloads(300),
            rate=6,
            bulk_rate=4,
            per=0.3,
            shares=shares,
            single_workers=6,
        )
    )
    assert max_in_window(api.bulk_arrivals, 0.3) <= 4
    if shares:  # the ordinary limit counts both kinds
        assert max_in_window(api.bulk_arrivals + api.single_arrivals, 0.3) <= 6
        # and the batches' share of it is kept for them: single calls use the rest only
        assert max_in_window(api.single_arrivals, 0.3) <= 6 - 4
    else:
        assert max_in_window(api.single_arrivals, 0.3) <= 6
    assert api.calls["single"] > 0 and api.calls["leads"] > 0  # auto: both paths carried rows
    assert len(api.activities) == 300 == pool.stats.outcomes["success"]
    assert api.overlap == []


def test_the_budget_starts_no_batch_it_cannot_finish(tmp_path: Path) -> None:
    api = FakeBulkApi()
    # Ten workers wait for rows at once: the budget is taken with the rows, not before.
    pool = asyncio.run(run_bulk(tmp_path, api, payloads(60), bulk_rate=10, max_calls=5))
    assert pool.stats.stop_reason is StopReason.BUDGET
    assert api.calls == Counter(leads=2, activities=2)
    got = lines(tmp_path / "r.csv")
    assert len(got) == 50 and {r["status"] for r in got.values()} == {"success"}


def test_a_stop_after_the_lead_call_sends_no_activity_and_fails_the_rows(tmp_path: Path) -> None:
    holder: dict[str, BulkPool] = {}
    api = FakeBulkApi(on_lead_call=lambda: holder["pool"].stop(StopReason.INTERRUPTED))
    asyncio.run(
        run_bulk(
            tmp_path, api, payloads(30), bulk_rate=1, pool_hook=lambda p: holder.update(pool=p)
        )
    )
    got = lines(tmp_path / "r.csv")
    assert api.calls == Counter(leads=1)
    assert api.activities == []
    assert len(got) == 25  # the rows never taken have no line: the next run sends them
    assert {r["status"] for r in got.values()} == {"failed"}
    assert {r["error_type"] for r in got.values()} == {"stopped"}


def test_auto_mode_takes_a_row_for_a_single_call_only_once_its_slot_is_there(
    tmp_path: Path,
) -> None:
    """Single calls whose limit has no room hold no rows: the batches carry them all (a row
    taken before its slot came would wait there while batches went by)."""
    api = FakeBulkApi()

    def closed(pool: BulkPool) -> None:
        import time

        pool.pacer.hold_until(time.monotonic() + 3600)  # no ordinary slot within the test
        pool.pair.also = None  # the batches need none here (their limits counted apart)

    async def go() -> BulkPool:
        return await asyncio.wait_for(
            run_bulk(tmp_path, api, payloads(80), single_workers=5, pool_hook=closed), 30
        )

    pool = asyncio.run(go())
    assert api.calls["single"] == 0 and len(api.activities) == 80
    assert pool.stats.outcomes["success"] == 80
