"""lsq-import's Lookups against the sandbox's read endpoints, over real sockets: what a lost
answer left behind is found, read_lag hides it for a while, and reads obey the rate limit."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from importer.exceptions import FatalApiError
from importer.leadsquared.client import LeadSquaredClient, TransportError, make_session
from importer.leadsquared.lookup import FoundActivity, LookupFailed, Lookups
from importer.sandbox import FaultConfig, Sandbox
from importer.sending import Pacer, RetryPolicy
from importer.settings import Credentials

from ..conftest import SANDBOX_KEYS
from .helpers import AUTH, FakeClock, body, run

Work = Callable[[LeadSquaredClient, Lookups], Awaitable[Any]]


def against(
    sandbox: Sandbox,
    work: Work,
    *,
    pacer: Pacer | None = None,
    page_size: int = 50,
    keys: Credentials = SANDBOX_KEYS,
) -> Any:
    """Run ``work`` with a client and Lookups pointed at ``sandbox`` (in its thread)."""

    async def main() -> Any:
        async with make_session(keys) as session:
            client = LeadSquaredClient(session, sandbox.base_url, credentials=keys)
            retry = RetryPolicy(max_attempts=3, base_delay=0.01)
            return await work(client, Lookups(client, pacer, retry, page_size=page_size))

    return asyncio.run(main())


def reads(sandbox: Sandbox) -> list[Any]:
    return [c for c in sandbox.calls if not c.path.lower().endswith("createcustom")]


def test_what_a_drop_after_call_created_is_found(sandbox_thread) -> None:
    sandbox = sandbox_thread(faults=FaultConfig(drop_after=1.0))

    async def work(client: LeadSquaredClient, lookups: Lookups) -> tuple[list[str], Any]:
        with pytest.raises(TransportError):  # the answer was lost
            await client.create_lead_and_activity(body("Lost@Example.com"))
        leads = await lookups.leads("EmailAddress", "lost@example.com")
        return leads, await lookups.activities(leads[0], 105)

    leads, found = against(sandbox, work)
    (created,) = sandbox.calls[:1]
    assert created.fault == "drop_after" and created.activity_id
    assert leads == [sandbox.activities[0]["LeadId"]]
    assert found == [
        FoundActivity(
            id=created.activity_id,
            event=105,
            created_on="2024-05-01 09:30:00",
            date_time="2024-05-01 09:30:00",
            note="imported",
            fields={
                "ActivityEvent_Note": "imported",
                "ActivityDateTime": "2024-05-01 09:30:00",
                "mx_Custom_1": "1499.00",
                "mx_Custom_2": "Widget Pro",
            },
        )
    ]
    assert all(c.metered and c.http_status == 200 for c in reads(sandbox))


def test_read_lag_hides_an_activity_until_the_lag_has_passed(sandbox_thread) -> None:
    clock = FakeClock()
    sandbox = sandbox_thread(faults=FaultConfig.from_spec("read_lag=30"), clock=clock)

    async def work(client: LeadSquaredClient, lookups: Lookups) -> list[int]:
        answer = await client.create_lead_and_activity(body())
        assert answer.status == 200
        (lead_id,) = await lookups.leads("EmailAddress", "a@example.com")  # leads: at once
        seen = [len(await lookups.activities(lead_id, 105))]
        clock.now += 29.9
        seen.append(len(await lookups.activities(lead_id, 105)))
        clock.now += 0.1  # 30 s after it was created
        seen.append(len(await lookups.activities(lead_id, 105)))
        return seen

    assert against(sandbox, work) == [0, 0, 1]


def test_a_burst_of_lookups_never_overruns_the_rate(sandbox_thread) -> None:
    rate, per = 10, 0.5
    sandbox = sandbox_thread(rate=rate, per=per)
    pacer = Pacer(rate, per)

    async def work(client: LeadSquaredClient, lookups: Lookups) -> list[Any]:
        for n in range(4):
            async with pacer.slot() as slot:
                answer = await client.create_lead_and_activity(body(f"u{n}@example.com"))
                slot.answered()
            assert answer.status == 200

        async def both(n: int) -> list[FoundActivity]:
            (lead_id,) = await lookups.leads("EmailAddress", f"u{n % 4}@example.com")
            return await lookups.activities(lead_id, 105)

        found = await asyncio.gather(*(both(n) for n in range(16)))
        assert lookups.calls == 32 == pacer.calls - 4
        return found

    found = against(sandbox, work, pacer=pacer)
    assert all(len(activities) == 1 for activities in found)
    assert sandbox.max_in_window() <= rate
    assert len(reads(sandbox)) == 32 and {c.http_status for c in reads(sandbox)} == {200}


def test_every_page_of_a_long_list_is_read(sandbox_thread) -> None:
    sandbox = sandbox_thread()

    async def work(client: LeadSquaredClient, lookups: Lookups) -> list[FoundActivity]:
        for n in range(7):
            activity = body()["Activity"] | {"ActivityNote": f"order {n}"}
            assert (await client.create_lead_and_activity(body(activity=activity))).status == 200
        (lead_id,) = await lookups.leads("EmailAddress", "a@example.com")
        return await lookups.activities(lead_id, 105)

    found = against(sandbox, work, page_size=3)
    assert sorted(a.note for a in found) == [f"order {n}" for n in range(7)]
    assert {a.id for a in found} == {a["Id"] for a in sandbox.activities}
    retrieves = [c for c in sandbox.calls if c.path.endswith("Retrieve")]
    # Offset read as a row offset first (3, 4: past the rows), then as page numbers 1 to 2.
    assert len(retrieves) == 5


def test_leads_by_phone_and_by_any_field(sandbox_thread) -> None:
    sandbox = sandbox_thread()
    details = [
        {"Attribute": "Mobile", "Value": "+91 98765-43210"},
        {"Attribute": "mx_City", "Value": "Pune"},
    ]

    async def work(client: LeadSquaredClient, lookups: Lookups) -> tuple[Any, ...]:
        assert (await client.create_lead_and_activity(body(lead=details))).status == 200
        by_mobile = await lookups.leads("Mobile", "+91 98765 43210")
        by_city = await lookups.leads("mx_City", "Pune")
        nobody = await lookups.leads("mx_City", "Goa")
        with pytest.raises(LookupFailed, match="another field than Phone"):
            await lookups.leads("Phone", "919876543210")  # the lead has it as its Mobile
        return by_mobile, by_city, nobody

    by_mobile, by_city, nobody = against(sandbox, work)
    lead_id = next(iter(sandbox.leads))
    assert by_mobile == by_city == [lead_id] and nobody == []


def test_reads_with_wrong_keys_stop_the_run_and_are_not_metered(sandbox_thread) -> None:
    sandbox = sandbox_thread()

    async def work(client: LeadSquaredClient, lookups: Lookups) -> None:
        await lookups.leads("EmailAddress", "a@example.com")

    with pytest.raises(FatalApiError, match="refused the keys"):
        against(sandbox, work, keys=Credentials("wrong-access-key", "wrong-secret-key"))
    assert [(c.http_status, c.metered) for c in sandbox.calls] == [(401, False)]


def test_reads_count_against_the_rate_limit() -> None:
    clock = FakeClock()
    statuses: list[int] = []

    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        for _ in range(3):
            async with s.get(
                "/v2/LeadManagement.svc/Leads.GetByEmailaddress",
                params={"emailaddress": "a@example.com"},
                headers=AUTH,
            ) as r:
                statuses.append(r.status)
        async with s.get("/v2/LeadManagement.svc/Leads.Get", headers=AUTH) as r:
            statuses.append(r.status)  # a read with the wrong method: not metered

    sandbox = run(fn, rate=2, per=1.0, clock=clock)
    assert statuses == [200, 200, 429, 405]
    assert [c.metered for c in sandbox.calls] == [True, True, True, False]
