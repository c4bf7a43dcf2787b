"""The sandbox's HTTP face: keys, the rate window, the helper endpoints, latency, over loopback."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest

from importer.exceptions import ConfigError
from importer.sandbox import (
    DEFAULT_ACCESS_KEY,
    DEFAULT_SECRET_KEY,
    FaultConfig,
    Sandbox,
    SandboxThread,
)

from .helpers import AUTH, CREATE, FakeClock, assert_error, body, post, run

# ---- auth ------------------------------------------------------------------------------------


def test_auth_by_headers_any_case_and_by_query() -> None:
    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        lower = {k.lower(): v for k, v in AUTH.items()}
        assert (await post(s, body("h@example.com"), lower))[0] == 200
        query = f"{CREATE}?accessKey={DEFAULT_ACCESS_KEY}&secretKey={DEFAULT_SECRET_KEY}"
        async with s.post(query, json=body("q@example.com")) as r:
            assert r.status == 200, await r.text()

    sandbox = run(fn)
    assert len(sandbox.leads) == 2
    # The query string (with the keys) is never recorded.
    assert all("?" not in c.path and "secret" not in c.path for c in sandbox.calls)


@pytest.mark.parametrize(
    "headers",
    [{}, {**AUTH, "x-LSQ-SecretKey": "wrong"}, {"x-LSQ-AccessKey": DEFAULT_ACCESS_KEY}],
    ids=["missing", "wrong-secret", "no-secret"],
)
def test_bad_or_missing_keys_are_401_without_echoing_them(headers: dict[str, str]) -> None:
    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        async with s.post(CREATE, json=body(), headers=headers) as r:
            text = await r.text()
            data = json.loads(text)
        assert_error(r.status, data, 401, "MXUnAuthorizedAccessException")
        assert "wrong" not in text and DEFAULT_ACCESS_KEY not in text

    sandbox = run(fn)
    assert sandbox.leads == {} and sandbox.activities == []
    assert [c.metered for c in sandbox.calls] == [False]


def test_custom_keys() -> None:
    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        assert (await post(s, body()))[0] == 401
        good = {"x-LSQ-AccessKey": "u$rabc", "x-LSQ-SecretKey": "s3cret"}
        assert (await post(s, body(), good))[0] == 200

    run(fn, access_key="u$rabc", secret_key="s3cret")


# ---- rate limit ------------------------------------------------------------------------------


def test_sixth_quick_call_is_429_with_documented_message() -> None:
    clock = FakeClock()
    replies: list[tuple[int, Any]] = []

    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        for i in range(6):
            replies.append(await post(s, body(f"u{i}@example.com")))
            clock.now += 0.01

    sandbox = run(fn, rate=5, per=1.0, clock=clock)
    assert [status for status, _ in replies] == [200] * 5 + [429]
    message = assert_error(*replies[5], 429, "MXAPIRateLimitExceededException")
    assert message == "API calls exceeded the limit of 5 in 1 second(s)"
    assert len(sandbox.activities) == 5
    assert sandbox.max_in_window() == 6  # the refused call arrived too: the client overran
    assert sandbox.max_in_window(per=0.025) == 3
    assert sandbox.calls[5].exception_type == "MXAPIRateLimitExceededException"


@pytest.mark.parametrize(
    ("count_rejected", "expected"),
    [(True, [200, 200, 429, 429, 429, 429]), (False, [200, 200, 429, 429, 200, 200])],
    ids=["strict", "lenient"],
)
def test_window_rolls_and_refused_calls_count_when_strict(
    count_rejected: bool, expected: list[int]
) -> None:
    clock = FakeClock()
    got: list[int] = []

    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        for t in [0.0, 0.1, 0.5, 0.95, 1.0, 1.11]:
            clock.now = 1000.0 + t
            got.append((await post(s, body()))[0])

    sandbox = run(fn, rate=2, per=1.0, clock=clock, count_rejected=count_rejected)
    assert got == expected
    # Every metered arrival counts here, accepted or not: 0.1, 0.5, 0.95, 1.0 (0.0 is outside).
    assert sandbox.max_in_window() == 4


def test_rate_limit_is_per_account_across_endpoints_but_not_for_401() -> None:
    clock = FakeClock()

    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        async with s.get("/v2/LeadManagement.svc/LeadsMetaData.Get", headers=AUTH) as r:
            assert r.status == 200
        assert (await post(s, body(), {}))[0] == 401
        assert (await post(s, body()))[0] == 200
        assert (await post(s, body()))[0] == 429

    sandbox = run(fn, rate=2, per=5.0, clock=clock)
    assert sandbox.max_in_window() == 3
    assert sandbox.arrivals() == [1000.0] * 3
    assert sandbox.arrivals("LeadsMetaData.Get") == [1000.0]


# ---- metadata, helpers, other paths ----------------------------------------------------------


def test_metadata_endpoints() -> None:
    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        async with s.get("/v2/ProspectActivity.svc/ActivityTypes.Get", headers=AUTH) as r:
            types = await r.json()
        assert {t["ActivityEvent"] for t in types} == {105, 106}
        assert set(types[0]) == {"ActivityEvent", "ActivityEventName", "DisplayName"}

        url = "/v2/ProspectActivity.svc/CustomActivity/GetActivitySetting"
        async with s.get(url, params={"code": "105"}, headers=AUTH) as r:
            setting = await r.json()
        assert r.status == 200 and set(setting) == {"Name", "DisplayName", "Fields"}
        by_name = {f["SchemaName"]: f for f in setting["Fields"]}
        assert by_name["mx_Custom_1"]["DataType"] == "Number"
        assert [o["Value"] for o in by_name["mx_Custom_3"]["OptionSet"]] == ["Hot", "Warm", "Cold"]
        cfs = by_name["mx_Custom_4"]
        assert cfs["DataType"] == "CustomObject"
        subs = {f["SchemaName"]: f for f in cfs["Fields"]}
        assert list(subs) == ["City", "Slot"]
        assert [o["Value"] for o in subs["Slot"]["OptionSet"]] == ["Morning", "Evening"]
        for code in ("999", "abc"):
            async with s.get(url, params={"code": code}, headers=AUTH) as r:
                assert_error(r.status, await r.json(), 500, "MXInvalidInputException")

        async with s.get("/v2/LeadManagement.svc/LeadsMetaData.Get", headers=AUTH) as r:
            fields = {f["SchemaName"]: f for f in await r.json()}
        assert fields["EmailAddress"]["IsLeadIdentifier"] is True
        assert isinstance(fields["FirstName"]["MaxLength"], str)
        assert [o["Value"] for o in fields["ProspectStage"]["Options"]] == [
            "Prospect",
            "Opportunity",
            "Customer",
        ]
        assert fields["mx_KYC"]["DataType"] == "CustomObject"

        async with s.get("/v2/ProspectActivity.svc/ActivityTypes.Get") as r:
            assert r.status == 401

    run(fn)


def test_unknown_paths_are_plain_404_and_wrong_method_405() -> None:
    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        for path in ["/v2/Nope.svc/Thing", "/api/whatever", "/"]:
            async with s.post(path, json={}, headers=AUTH) as r:
                assert r.status == 404
                assert not r.content_type.endswith("json")
                with pytest.raises(ValueError):
                    json.loads(await r.text())
        async with s.get(CREATE, headers=AUTH) as r:
            assert r.status == 405 and r.content_type == "text/plain"

    sandbox = run(fn)
    assert [(c.http_status, c.metered) for c in sandbox.calls] == [(404, False), (405, False)]


def test_state_and_reset_helpers() -> None:
    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        await post(s, body())
        async with s.get("/_sandbox/state") as r:
            state = await r.json()
        assert set(state) == {
            "calls",
            "leads",
            "activities",
            "redirected",
            "bulk_same_key_calls",
        }
        assert state["redirected"] == []  # only the redirect fault's target fills it
        assert state["calls"][0]["http_status"] == 200
        assert len(state["leads"]) == 1 and len(state["activities"]) == 1
        async with s.post("/_sandbox/reset") as r:
            assert r.status == 200
        assert sandbox.calls == [] and sandbox.leads == {} and sandbox.activities == []
        # After a reset the same email makes a new lead again.
        assert (await post(s, body()))[0] == 200
        assert len(sandbox.leads) == 1

    run(fn)


def test_latency_is_seeded_and_delays_responses() -> None:
    draws = [
        [
            Sandbox(faults=FaultConfig(latency=0.1, jitter=0.05, seed=7)).draws.latency_halves()
            for _ in range(5)
        ]
        for _ in range(2)
    ]
    assert draws[0] == draws[1]
    assert all(0.025 <= up == down <= 0.075 for up, down in draws[0])

    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        started = time.monotonic()
        assert (await post(s, body()))[0] == 200
        assert time.monotonic() - started >= 0.05

    run(fn, faults=FaultConfig(latency=0.06))


def test_in_flight_counts_requests_and_open_connections() -> None:
    runner = SandboxThread(faults=FaultConfig(latency=0.3))
    with runner as sandbox:
        assert runner.call(lambda: sandbox.in_flight) == 0

        async def client() -> int:
            async with aiohttp.ClientSession(base_url=sandbox.base_url) as s:
                task = asyncio.create_task(post(s, body()))
                seen = 0
                while not task.done():
                    seen = max(seen, runner.call(lambda: sandbox.in_flight))
                    await asyncio.sleep(0.01)
                await task
                return seen

        assert asyncio.run(client()) >= 1
        deadline = time.monotonic() + 5
        while runner.call(lambda: sandbox.in_flight) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert runner.call(lambda: sandbox.in_flight) == 0


@pytest.mark.parametrize("kwargs", [{"rate": 0}, {"per": 0}, {"per": float("nan")}])
def test_bad_settings_are_config_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        Sandbox(**kwargs)
