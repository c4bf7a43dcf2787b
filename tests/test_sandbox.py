"""The local LeadSquared sandbox, over real loopback sockets."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from importer import run_import
from importer.exceptions import ConfigError
from importer.leadsquared.classify import ApiResponse, Kind, classify
from importer.sandbox import (
    DEFAULT_ACCESS_KEY,
    DEFAULT_SECRET_KEY,
    FAULTS,
    FaultConfig,
    Sandbox,
    SandboxSchema,
    SandboxThread,
    serve,
)

from .conftest import EXAMPLE_MAPPING, SANDBOX_KEYS, read_results

CREATE = "/v2/ProspectActivity.svc/CreateCustom"
AUTH = {"x-LSQ-AccessKey": DEFAULT_ACCESS_KEY, "x-LSQ-SecretKey": DEFAULT_SECRET_KEY}


class FakeClock:
    """A clock the test moves by hand, so rate-limit windows need no sleeping."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def body(
    email: str = "a@example.com",
    *,
    lead: list[dict[str, Any]] | None = None,
    search_by: str = "EmailAddress",
    activity: dict[str, Any] | None = None,
    **root: Any,
) -> dict[str, Any]:
    details = [{"Attribute": "EmailAddress", "Value": email}]
    details += lead or []
    details.append({"Attribute": "SearchBy", "Value": search_by})
    act = {
        "ActivityEvent": 105,
        "ActivityNote": "imported",
        "ActivityDateTime": "2024-05-01 09:30:00",
        "Fields": [
            {"SchemaName": "mx_Custom_1", "Value": "1499.00"},
            {"SchemaName": "mx_Custom_2", "Value": "Widget Pro"},
        ],
    }
    if activity is not None:
        act = activity
    return {"LeadDetails": details, "Activity": act, **root}


def run(
    fn: Callable[[Sandbox, aiohttp.ClientSession], Awaitable[None]], **sandbox_kwargs: Any
) -> Sandbox:
    """Start a sandbox, run ``fn(sandbox, session)`` against it, stop it; return the sandbox."""

    async def main() -> Sandbox:
        async with (
            Sandbox(**sandbox_kwargs) as sandbox,
            aiohttp.ClientSession(base_url=sandbox.base_url) as session,
        ):
            await fn(sandbox, session)
        return sandbox

    return asyncio.run(main())


async def post(
    session: aiohttp.ClientSession, payload: Any, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    async with session.post(
        CREATE, json=payload, headers=AUTH if headers is None else headers
    ) as r:
        return r.status, await r.json(content_type=None)


def assert_error(status: int, data: Any, want_status: int, want_type: str) -> str:
    assert status == want_status, data
    assert data["Status"] == "Error"
    assert data["ExceptionType"] == want_type
    return data["ExceptionMessage"]


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


# ---- upsert ----------------------------------------------------------------------------------


def test_create_makes_lead_and_activity() -> None:
    result: dict[str, Any] = {}

    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        lead = [
            {"Attribute": "FirstName", "Value": "Asha"},
            {
                "Attribute": "mx_KYC",
                "Value": "",
                "Fields": [{"Attribute": "Status", "Value": "Pending"}],
            },
        ]
        result["status"], result["data"] = await post(s, body(lead=lead))

    sandbox = run(fn)
    assert result["status"] == 200
    message = result["data"]["Message"]
    assert result["data"]["Status"] == "Success"
    (lead_id,) = sandbox.leads
    assert message["RelatedId"] == lead_id
    lead = sandbox.leads[lead_id]
    assert lead["ProspectID"] == lead_id
    assert lead["EmailAddress"] == "a@example.com" and lead["FirstName"] == "Asha"
    assert lead["mx_KYC"] == {"Status": "Pending"}
    assert "SearchBy" not in lead
    (activity,) = sandbox.activities
    assert activity["Id"] == message["Id"] and activity["LeadId"] == lead_id
    assert activity["ActivityEvent"] == 105
    assert activity["ActivityDateTime"] == "2024-05-01 09:30:00"
    assert activity["Fields"] == {"mx_Custom_1": "1499.00", "mx_Custom_2": "Widget Pro"}
    assert [(c.http_status, c.exception_type, c.metered) for c in sandbox.calls] == [
        (200, "", True)
    ]


def test_same_email_any_case_updates_the_same_lead() -> None:
    ids: list[str] = []

    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        for email, city in [("a@example.com", "Pune"), (" A@Example.COM", "Mumbai")]:
            status, data = await post(
                s, body(email, lead=[{"Attribute": "mx_City", "Value": city}])
            )
            assert status == 200, data
            ids.append(data["Message"]["RelatedId"])

    sandbox = run(fn)
    assert ids[0] == ids[1]
    assert len(sandbox.leads) == 1 and len(sandbox.activities) == 2
    assert sandbox.leads[ids[0]]["mx_City"] == "Mumbai"


def test_search_by_phone_compares_digits_only() -> None:
    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        for phone in ["+91 98765-43210", "919876543210"]:
            payload = body(lead=[{"Attribute": "Phone", "Value": phone}], search_by="Phone")
            payload["LeadDetails"].pop(0)  # no email: phone is the only identifier
            assert (await post(s, payload))[0] == 200

    assert len(run(fn).leads) == 1


def test_search_by_prospect_id_updates_existing_and_never_creates() -> None:
    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        _, data = await post(s, body())
        lead_id = data["Message"]["RelatedId"]
        by_id = body(
            lead=[
                {"Attribute": "ProspectID", "Value": lead_id},
                {"Attribute": "JobTitle", "Value": "CTO"},
            ],
            search_by="ProspectId",
        )
        status, data = await post(s, by_id)
        assert status == 200 and data["Message"]["RelatedId"] == lead_id
        assert sandbox.leads[lead_id]["JobTitle"] == "CTO"
        by_id["LeadDetails"][1]["Value"] = "00000000-0000-0000-0000-000000000000"
        assert_error(*await post(s, by_id), 500, "MXInvalidInputException")

    assert len(run(fn).leads) == 1


def test_concurrent_calls_for_one_new_lead_make_one_lead() -> None:
    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        replies = await asyncio.gather(*(post(s, body("same@example.com")) for _ in range(10)))
        assert {status for status, _ in replies} == {200}

    # Jitter interleaves the requests; the upsert itself has no await, so it stays atomic.
    sandbox = run(fn, faults=FaultConfig(latency=0.02, jitter=0.02, seed=3))
    assert len(sandbox.leads) == 1 and len(sandbox.activities) == 10


# ---- validation ------------------------------------------------------------------------------


def test_bad_json_and_wrong_content_type_are_400() -> None:
    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        headers = {**AUTH, "Content-Type": "application/json"}
        for data, hdrs in [(b"{not json", headers), (b"[1, 2]", headers), (b"{}", AUTH)]:
            async with s.post(CREATE, data=data, headers=hdrs) as r:
                assert_error(r.status, await r.json(), 400, "MXInvalidInputException")
        msg = assert_error(*await post(s, body(Extra=1)), 400, "MXInvalidInputException")
        assert "Extra" in msg

    sandbox = run(fn)
    assert sandbox.leads == {}


LATER = (datetime.now(UTC) + timedelta(hours=2)).strftime("%Y-%m-%d %H:%M:%S")


@pytest.mark.parametrize(
    ("payload", "status", "exception_type", "in_message"),
    [
        (
            body(lead=[{"Attribute": "mx_Shoe", "Value": "9"}]),
            500,
            "MXInvalidInputException",
            "mx_Shoe",
        ),
        (
            body(lead=[{"Attribute": "firstname", "Value": "A"}]),
            500,
            "MXInvalidInputException",
            "FirstName",
        ),
        (body("not-an-email"), 500, "MXInvalidInputException", "email"),
        (
            body(lead=[{"Attribute": "FirstName", "Value": "x" * 101}]),
            500,
            "MXInvalidInputException",
            "MaxLength",
        ),
        (
            body(lead=[{"Attribute": "ProspectStage", "Value": "Lost"}]),
            500,
            "MXInvalidInputException",
            "Lost",
        ),
        (
            body(
                lead=[
                    {
                        "Attribute": "mx_KYC",
                        "Value": "",
                        "Fields": [{"Attribute": "Status", "Value": "Maybe"}],
                    }
                ]
            ),
            500,
            "MXInvalidInputException",
            "mx_KYC.Status",
        ),
        (body(search_by="Phone"), 500, "MXInvalidInputException", "SearchBy"),
        (
            {
                "LeadDetails": [{"Attribute": "EmailAddress", "Value": "a@b.co"}],
                "Activity": {"ActivityEvent": 105},
            },
            500,
            "MXInvalidInputException",
            "SearchBy",
        ),
        (body(activity={"ActivityEvent": 999}), 500, "MXInvalidInputException", "999"),
        (body(activity={"ActivityEvent": "105"}), 500, "MXInvalidInputException", "integer"),
        (
            body(activity={"ActivityEvent": 105, "ActivityDateTime": LATER}),
            500,
            "MXInvalidInputException",
            "future",
        ),
        (
            body(activity={"ActivityEvent": 105, "ActivityDateTime": "2024-05-01T09:30:00"}),
            500,
            "MXInvalidInputException",
            "yyyy-MM-dd",
        ),
        (
            body(activity={"ActivityEvent": 105, "ActivityDateTime": "2024-02-30 09:30:00"}),
            500,
            "MXInvalidInputException",
            "real date",
        ),
        (
            body(
                activity={
                    "ActivityEvent": 105,
                    "Fields": [{"SchemaName": "mx_Custom_1", "Value": "1,499"}],
                }
            ),
            500,
            "MXInvalidInputException",
            "not a number",
        ),
        (
            body(
                activity={
                    "ActivityEvent": 105,
                    "Fields": [{"SchemaName": "mx_Custom_9", "Value": "x"}],
                }
            ),
            500,
            "MXInvalidInputException",
            "mx_Custom_9",
        ),
        (
            body(
                activity={
                    "ActivityEvent": 105,
                    "Fields": [{"SchemaName": "mx_Custom_3", "Value": "Lukewarm"}],
                }
            ),
            500,
            "MXInvalidInputException",
            "Hot, Warm, Cold",
        ),
        (
            body(activity={"ActivityEvent": 106}),
            500,
            "MXMandatoryAttributeMissingException",
            "mx_Custom_1",
        ),
    ],
    ids=[
        "unknown-attribute",
        "attribute-case-hint",
        "bad-email",
        "max-length",
        "lead-dropdown",
        "cfs-dropdown",
        "search-by-absent-attribute",
        "no-search-by",
        "unknown-event",
        "event-not-int",
        "future-date",
        "iso-date-format",
        "impossible-date",
        "number-field",
        "foreign-activity-field",
        "activity-dropdown",
        "mandatory-activity-field",
    ],
)
def test_validation_errors(
    payload: dict[str, Any], status: int, exception_type: str, in_message: str
) -> None:
    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        message = assert_error(*await post(s, payload), status, exception_type)
        assert in_message in message

    sandbox = run(fn)
    assert sandbox.leads == {} and sandbox.activities == []  # a refused call stores nothing
    assert sandbox.calls[0].exception_type == exception_type


def test_validate_dropdown_options_flag_skips_activity_dropdown_check() -> None:
    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        act = {"ActivityEvent": 105, "Fields": [{"SchemaName": "mx_Custom_3", "Value": "Lukewarm"}]}
        assert (await post(s, body(activity=act)))[0] == 500
        assert (await post(s, body(activity=act, ValidateDropDownOptions=True)))[0] == 200

    sandbox = run(fn)
    assert sandbox.activities[0]["Fields"] == {"mx_Custom_3": "Lukewarm"}


# ---- custom field sets on the activity -------------------------------------------------------


def delivery(key: str = "Attribute", **subs: str) -> dict[str, Any]:
    """An activity 105 body with the mx_Custom_4 set written with ``key`` throughout."""
    subs = subs or {"City": "Pune", "Slot": "Morning"}
    cfs = {
        key: "mx_Custom_4",
        "Value": "",
        "Fields": [{key: k, "Value": v} for k, v in subs.items()],
    }
    fields = [{"SchemaName": "mx_Custom_2", "Value": "Widget"}, cfs]
    return {"ActivityEvent": 105, "ActivityDateTime": "2024-05-01 09:30:00", "Fields": fields}


@pytest.mark.parametrize("key", ["Attribute", "SchemaName"])
def test_activity_custom_field_set_in_either_form_is_stored_nested(key: str) -> None:
    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        status, data = await post(s, body(activity=delivery(key)))
        assert status == 200, data

    sandbox = run(fn)
    assert sandbox.activities[0]["Fields"] == {
        "mx_Custom_2": "Widget",
        "mx_Custom_4": {"City": "Pune", "Slot": "Morning"},
    }


def _cfs_as_plain_pair(key: str) -> dict[str, Any]:
    return {"ActivityEvent": 105, "Fields": [{key: "mx_Custom_4", "Value": "Pune"}]}


@pytest.mark.parametrize(
    ("activity", "in_message"),
    [
        (
            delivery(city="Pune"),
            "Unknown field 'city' in custom field set mx_Custom_4 (did you mean City?)",
        ),
        (
            delivery("SchemaName", Slot="Noon"),
            "mx_Custom_4.Slot: 'Noon' is not one of its options (Morning, Evening)",
        ),
        (_cfs_as_plain_pair("SchemaName"), "is a custom field set of activity event 105"),
        (_cfs_as_plain_pair("Attribute"), "is a custom field set of activity event 105"),
        (
            {
                "ActivityEvent": 105,
                "Fields": [
                    {
                        "Attribute": "mx_Custom_4",
                        "Value": "x",
                        "Fields": [{"Attribute": "City", "Value": "Pune"}],
                    }
                ],
            },
            'send Value ""',
        ),
        (
            {
                "ActivityEvent": 105,
                "Fields": [
                    {
                        "Attribute": "mx_Custom_4",
                        "Value": "",
                        "Fields": [{"SchemaName": "City", "Value": "Pune"}],
                    }
                ],
            },
            "name the field with Attribute",
        ),
        (
            {
                "ActivityEvent": 105,
                "Fields": [{"SchemaName": "mx_Custom_2", "Value": "W", "Fields": []}],
            },
            "not a custom field set",
        ),
        (
            {"ActivityEvent": 105, "Fields": [{"Attribute": "mx_Custom_2", "Value": "W"}]},
            "with SchemaName, not Attribute",
        ),
    ],
    ids=[
        "unknown-sub-field",
        "sub-dropdown",
        "plain-pair",
        "plain-pair-attribute",
        "cfs-value",
        "mixed-keys",
        "fields-on-plain-field",
        "plain-field-by-attribute",
    ],
)
def test_activity_custom_field_set_errors(activity: dict[str, Any], in_message: str) -> None:
    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        message = assert_error(
            *await post(s, body(activity=activity)), 500, "MXInvalidInputException"
        )
        assert in_message in message and "\n" not in message

    sandbox = run(fn)
    assert sandbox.leads == {} and sandbox.activities == []


def test_validate_dropdown_options_flag_skips_activity_set_dropdowns_too() -> None:
    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        act = delivery(Slot="Noon")
        assert (await post(s, body(activity=act)))[0] == 500
        assert (await post(s, body(activity=act, ValidateDropDownOptions=True)))[0] == 200
        bad = delivery(city="Pune")  # skipping dropdowns does not admit unknown sub-fields
        assert (await post(s, body(activity=bad, ValidateDropDownOptions=True)))[0] == 500

    sandbox = run(fn)
    assert [a["Fields"]["mx_Custom_4"] for a in sandbox.activities] == [{"Slot": "Noon"}]


def test_mandatory_activity_set_and_sub_fields() -> None:
    schema = SandboxSchema.default()
    cfs = next(f for f in schema.activity_types[0]["Fields"] if f["SchemaName"] == "mx_Custom_4")
    cfs["IsMandatory"] = True
    cfs["Fields"][1]["IsMandatory"] = True  # Slot

    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        no_set = {"ActivityEvent": 105, "Fields": [{"SchemaName": "mx_Custom_2", "Value": "W"}]}
        message = assert_error(
            *await post(s, body(activity=no_set)), 500, "MXMandatoryAttributeMissingException"
        )
        assert "mx_Custom_4" in message
        message = assert_error(
            *await post(s, body(activity=delivery(City="Pune"))),
            500,
            "MXMandatoryAttributeMissingException",
        )
        assert "mx_Custom_4.Slot" in message
        assert (await post(s, body(activity=delivery(Slot="Evening"))))[0] == 200

    sandbox = run(fn, schema=schema)
    assert len(sandbox.activities) == 1


def test_activity_custom_field_set_end_to_end(sandbox_thread, sample_rows, tmp_path: Path) -> None:
    """The mapping's activity set, in both of its forms, goes through preflight and lands."""
    source = sample_rows(12)
    cities = {i + 2: line["city"] for i, line in enumerate(read_results(source))}
    text = EXAMPLE_MAPPING.read_text(encoding="utf-8")
    text = text.replace(
        "    mx_Custom_2: product\n",
        "    mx_Custom_2: product\n    mx_Custom_4:\n      fields:\n        City: {column: city}\n",
    )
    assert "mx_Custom_4" in text
    sandbox = sandbox_thread(rate=100, per=1.0)
    for key in ("Attribute", "SchemaName"):
        mapping = tmp_path / f"mapping-{key}.yaml"
        mapping.write_text(
            text.replace(
                "  validate_dropdown_options: false\n",
                f"  validate_dropdown_options: false\n  activity_cfs_key: {key}\n",
            ),
            encoding="utf-8",
        )
        sandbox.activities.clear()  # the run has finished: nothing else touches the list
        results = tmp_path / f"results-{key}.csv"
        summary = run_import(
            source,
            mapping,
            results=results,
            host=sandbox.base_url,
            credentials=SANDBOX_KEYS,
            rate=100,
            per=1.0,
        )
        assert summary.by_status == {"success": 12}, summary.to_text()
        by_id = {a["Id"]: a for a in sandbox.activities}
        for line in read_results(results):
            nested = by_id[line["activity_id"]]["Fields"]["mx_Custom_4"]
            assert nested == {"City": cities[int(line["row"])]}


def test_near_future_within_five_minutes_and_missing_date_are_accepted() -> None:
    soon = (datetime.now(UTC) + timedelta(minutes=3)).strftime("%Y-%m-%d %H:%M:%S")

    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        assert (await post(s, body(activity={"ActivityEvent": 105, "ActivityDateTime": soon})))[
            0
        ] == 200
        assert (await post(s, body(activity={"ActivityEvent": 105})))[0] == 200

    sandbox = run(fn)
    stamped = datetime.strptime(sandbox.activities[1]["ActivityDateTime"], "%Y-%m-%d %H:%M:%S")
    assert abs(stamped - datetime.now(UTC).replace(tzinfo=None)) < timedelta(minutes=1)


def test_mandatory_lead_fields_apply_only_on_create() -> None:
    schema = SandboxSchema.default()
    for f in schema.lead_fields:
        if f["SchemaName"] == "LastName":
            f["IsMandatory"] = True

    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        assert_error(*await post(s, body()), 500, "MXMandatoryAttributeMissingException")
        assert (await post(s, body(lead=[{"Attribute": "LastName", "Value": "Rao"}])))[0] == 200
        assert (await post(s, body()))[0] == 200  # update: LastName not needed

    sandbox = run(fn, schema=schema)
    assert len(sandbox.leads) == 1 and len(sandbox.activities) == 2


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
        assert set(state) == {"calls", "leads", "activities"}
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


# ---- sync usage, schema files, serve ---------------------------------------------------------


def test_sandbox_thread_from_sync_code() -> None:
    async def client(base_url: str) -> list[int]:
        async with aiohttp.ClientSession(base_url=base_url) as s:
            return [(await post(s, body(f"t{i}@example.com")))[0] for i in range(3)]

    runner = SandboxThread(rate=2, per=60.0)
    assert not runner.is_running
    with runner as sandbox:
        assert runner.is_running
        assert sandbox.base_url.startswith("http://127.0.0.1:")
        statuses = asyncio.run(client(sandbox.base_url))
        snap = runner.snapshot()
    assert statuses == [200, 200, 429]
    assert len(snap["activities"]) == 2 and len(sandbox.activities) == 2
    assert json.loads(json.dumps(snap)) == snap
    assert not runner.is_running
    with pytest.raises(aiohttp.ClientConnectionError):
        asyncio.run(client(sandbox.base_url))


def test_schema_from_yaml_and_json(tmp_path: Path) -> None:
    data = {
        "lead_fields": [
            {"SchemaName": "EmailAddress", "DataType": "Email", "IsLeadIdentifier": True},
            {"SchemaName": "mx_Plan", "DataType": "Select", "Options": ["Gold", "Silver"]},
        ],
        "activity_types": [{"ActivityEvent": 201, "ActivityEventName": "Renewal", "Fields": []}],
    }
    yaml_file = tmp_path / "schema.yaml"
    yaml_file.write_text(
        "lead_fields:\n"
        "  - {SchemaName: EmailAddress, DataType: Email, IsLeadIdentifier: true}\n"
        "  - {SchemaName: mx_Plan, DataType: Select, Options: [Gold, Silver]}\n"
        "activity_types:\n"
        "  - {ActivityEvent: 201, ActivityEventName: Renewal, Fields: []}\n"
    )
    json_file = tmp_path / "schema.json"
    json_file.write_text(json.dumps(data))
    assert SandboxSchema.from_file(yaml_file) == SandboxSchema.from_file(json_file)
    schema = SandboxSchema.from_file(yaml_file)

    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        ok = body(lead=[{"Attribute": "mx_Plan", "Value": "Gold"}], activity={"ActivityEvent": 201})
        assert (await post(s, ok))[0] == 200
        assert (
            await post(
                s,
                body(
                    lead=[{"Attribute": "FirstName", "Value": "A"}], activity={"ActivityEvent": 201}
                ),
            )
        )[0] == 500
        assert (await post(s, body(activity={"ActivityEvent": 105})))[0] == 500

    run(fn, schema=schema)


@pytest.mark.parametrize(
    ("content", "in_message"),
    [
        ("lead_fields: [\n", "not valid YAML"),
        ("- just a list\n", "mapping"),
        ("lead_fields: []\nactivity_types: []\nextra: 1\n", "extra"),
        ("lead_fields: [{DisplayName: X}]\nactivity_types: []\n", "lead_fields[0]"),
        ("lead_fields: []\nactivity_types: [{ActivityEventName: X}]\n", "activity_types[0]"),
        ("lead_fields: []\n", "activity_types"),
    ],
    ids=["syntax", "not-mapping", "unknown-key", "no-schema-name", "no-event-code", "missing-key"],
)
def test_bad_schema_file_is_one_line_config_error(
    tmp_path: Path, content: str, in_message: str
) -> None:
    path = tmp_path / "schema.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        SandboxSchema.from_file(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and in_message in message


def test_schema_file_activity_custom_field_set_one_level_only(tmp_path: Path) -> None:
    path = tmp_path / "schema.yaml"
    path.write_text(
        "lead_fields: [{SchemaName: EmailAddress, DataType: Email}]\n"
        "activity_types:\n"
        "  - ActivityEvent: 201\n"
        "    Fields:\n"
        "      - SchemaName: mx_Custom_1\n"
        "        DataType: CustomObject\n"
        "        Fields: [{SchemaName: Tier, DataType: Dropdown, OptionSet: [A, B]}]\n"
    )
    cfs = SandboxSchema.from_file(path).activity_types[0]["Fields"][0]
    assert cfs["Fields"][0]["SchemaName"] == "Tier" and cfs["Fields"][0]["IsMandatory"] is False
    path.write_text(
        path.read_text().replace(
            "[{SchemaName: Tier, DataType: Dropdown, OptionSet: [A, B]}]",
            "[{SchemaName: Inner, DataType: CustomObject, Fields: []}]",
        )
    )
    with pytest.raises(ConfigError, match=r"activity_types\[0\]\.Fields\[0\]\.Fields\[0\].*nested"):
        SandboxSchema.from_file(path)


def test_missing_schema_file_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        SandboxSchema.from_file(tmp_path / "nope.yaml")


def test_schema_built_in_python_is_checked_at_construction() -> None:
    with pytest.raises(ConfigError, match=r"activity_types\[0\]"):
        Sandbox(schema=SandboxSchema(lead_fields=[], activity_types=[{"Fields": []}]))


@pytest.mark.parametrize("kwargs", [{"rate": 0}, {"per": 0}, {"per": float("nan")}])
def test_bad_settings_are_config_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        Sandbox(**kwargs)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "example.com"])
def test_non_loopback_hosts_are_refused(host: str) -> None:
    with pytest.raises(ConfigError, match="loopback"):
        serve(host=host, port=0)
    with pytest.raises(ConfigError, match="loopback"):
        SandboxThread(host=host)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX-only")
@pytest.mark.parametrize(
    ("faults", "shown"), [("", ""), ("drop_after=0.05,seed=7", "; faults seed=7,drop_after=0.05")]
)
def test_serve_prints_one_line_and_exits_cleanly_on_ctrl_c(faults: str, shown: str) -> None:
    code = (
        "from importer.sandbox import FaultConfig, serve; "
        f"serve(port=0, rate=7, per=2.5, faults=FaultConfig.from_spec({faults!r}))"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert line.startswith("LeadSquared sandbox on http://127.0.0.1:")
        assert line.endswith(f" (rate 7 per 2.5 s{shown}) - Ctrl-C to stop\n")
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert "Traceback" not in rest and rest == ""


# ---- fault injection -------------------------------------------------------------------------


def test_fault_spec_parses_round_trips_and_validates() -> None:
    config = FaultConfig.from_spec(
        " drop_after=0.05, error_500_plain=0.1,seed=7,latency=0.2,"
        "nonatomic_upsert,upsert_pause=0.01"
    )
    assert config == FaultConfig(
        latency=0.2,
        seed=7,
        error_500_plain=0.1,
        drop_after=0.05,
        nonatomic_upsert=True,
        upsert_pause=0.01,
    )
    assert FaultConfig.from_spec(config.to_spec()) == config
    assert FaultConfig.from_spec("") == FaultConfig()
    assert FaultConfig.from_spec("nonatomic_upsert=off").nonatomic_upsert is False
    assert set(FAULTS) <= {f.name for f in dataclasses.fields(FaultConfig)}


@pytest.mark.parametrize(
    ("spec", "in_message"),
    [
        ("drop_later=0.1", "unknown fault 'drop_later'"),
        ("drop_after=lots", "must be a number"),
        ("seed=1.5", "whole number"),
        ("drop_after=1.5", "probability"),
        ("drop_after=-0.1", "probability"),
        ("drop_after=nan", "probability"),
        ("drop_after=0.6,drop_before=0.6", "add up to 1.2"),
        ("seed=1,seed=2", "twice"),
        ("latency=-1", "latency"),
        ("nonatomic_upsert=maybe", "true or false"),
    ],
)
def test_bad_fault_spec_is_one_line_config_error(spec: str, in_message: str) -> None:
    with pytest.raises(ConfigError) as info:
        FaultConfig.from_spec(spec)
    message = str(info.value)
    assert "\n" not in message and "--faults" in message and in_message in message


def test_bad_fault_config_built_in_python_is_refused() -> None:
    with pytest.raises(ConfigError, match="throttle_429"):
        Sandbox(faults=FaultConfig(throttle_429=2.0))


def classify_reply(status: int, text: str) -> Kind:
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    return classify(ApiResponse(status, parsed, text)).kind


@pytest.mark.parametrize(
    ("fault", "status", "exception_type", "kind", "metered"),
    [
        ("error_500_plain", 500, "", Kind.TRANSIENT, True),
        ("error_500_mx", 500, "MXInvalidInputException", Kind.PERMANENT, True),
        ("error_200", 200, "MXInvalidInputException", Kind.PERMANENT, True),
        ("throttle_429", 429, "MXAPIRateLimitExceededException", Kind.RATE_LIMITED, True),
        ("throttle_403", 403, "MXAPIRateLimitExceededException", Kind.RATE_LIMITED, True),
        ("throttle_200", 200, "MXAPIRateLimitExceededException", Kind.RATE_LIMITED, True),
        ("proxy_502", 502, "", Kind.TRANSIENT, False),
    ],
)
def test_answering_faults_create_nothing_and_mean_what_the_fact_sheet_says(
    fault: str, status: int, exception_type: str, kind: Kind, metered: bool
) -> None:
    replies: list[tuple[int, str]] = []

    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        for i in range(6):
            async with s.post(CREATE, json=body(f"f{i}@example.com"), headers=AUTH) as r:
                replies.append((r.status, await r.text()))
        # Metadata calls never get faults.
        async with s.get("/v2/ProspectActivity.svc/ActivityTypes.Get", headers=AUTH) as r:
            assert r.status == 200

    sandbox = run(fn, rate=100, per=1.0, faults=FaultConfig(seed=1, **{fault: 1.0}))
    assert sandbox.leads == {} and sandbox.activities == []
    for got_status, text in replies:
        assert got_status == status, text
        assert classify_reply(got_status, text) is kind, text
        if exception_type:
            assert json.loads(text)["ExceptionType"] == exception_type
        if kind is Kind.RATE_LIMITED:
            assert "exceeded the limit of 100 in 1 second(s)" in text
    creates = sandbox.calls[:6]
    assert [(c.fault, c.http_status, c.metered, c.activity_id) for c in creates] == [
        (fault, status, metered, "")
    ] * 6
    assert sandbox.calls[6].fault == ""
    if fault == "error_500_plain":  # both shapes seen in the wild: an HTML page and bare JSON
        shapes = {text.startswith("{") for _, text in replies}
        assert shapes == {True, False}


@pytest.mark.parametrize("fault", ["drop_before", "drop_after"])
def test_dropped_connections(fault: str) -> None:
    errors: list[BaseException] = []

    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        for i in range(3):
            try:
                await post(s, body(f"d{i}@example.com"))
            except aiohttp.ClientError as exc:
                errors.append(exc)

    sandbox = run(fn, faults=FaultConfig(**{fault: 1.0}))
    assert len(errors) == 3
    assert all(isinstance(e, aiohttp.ServerDisconnectedError) for e in errors)
    assert [c.fault for c in sandbox.calls] == [fault] * 3
    if fault == "drop_before":  # closed before processing: nothing metered, nothing created
        assert [(c.http_status, c.metered, c.activity_id) for c in sandbox.calls] == [
            (0, False, "")
        ] * 3
        assert sandbox.activities == [] and sandbox.leads == {}
    else:  # processed, then the answer was lost
        assert [c.http_status for c in sandbox.calls] == [200] * 3
        assert [c.activity_id for c in sandbox.calls] == [a["Id"] for a in sandbox.activities]
        assert len(sandbox.leads) == 3


def test_faults_are_the_same_for_the_same_seed_and_call_order() -> None:
    config = "error_500_plain=0.2,error_500_mx=0.1,throttle_403=0.1,drop_before=0.1,drop_after=0.1"

    def faults_seen(seed: int) -> list[str]:
        async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
            for i in range(40):
                with contextlib.suppress(aiohttp.ClientError):
                    async with s.post(CREATE, json=body(f"s{i}@example.com"), headers=AUTH) as r:
                        await r.read()

        sandbox = run(fn, rate=100, per=1.0, faults=FaultConfig.from_spec(f"{config},seed={seed}"))
        created = {a["Id"] for a in sandbox.activities}
        # Every activity was created by a call that says so: no fault, or drop_after.
        assert created == {c.activity_id for c in sandbox.calls if c.activity_id}
        assert all(c.fault in ("", "drop_after") for c in sandbox.calls if c.activity_id)
        return [c.fault for c in sandbox.calls]

    first = faults_seen(11)
    assert faults_seen(11) == first
    assert faults_seen(12) != first
    assert {"", "error_500_plain", "drop_before", "drop_after"} <= set(first)


def test_real_rate_limit_comes_before_injected_server_faults() -> None:
    clock = FakeClock()
    statuses: list[int] = []

    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        for i in range(3):
            statuses.append((await post(s, body(f"r{i}@example.com")))[0])

    sandbox = run(fn, rate=2, per=1.0, clock=clock, faults=FaultConfig(error_200=1.0))
    assert statuses == [200, 200, 429]
    assert [c.fault for c in sandbox.calls] == ["error_200", "error_200", ""]


def test_nonatomic_upsert_doubles_a_new_lead_under_concurrency_only() -> None:
    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        replies = await asyncio.gather(*(post(s, body("race@example.com")) for _ in range(5)))
        assert {status for status, _ in replies} == {200}
        for _ in range(3):  # one at a time: the lookup finds the lead
            assert (await post(s, body("calm@example.com")))[0] == 200

    sandbox = run(fn, faults=FaultConfig(nonatomic_upsert=True, upsert_pause=0.05))
    emails = sorted(lead["EmailAddress"] for lead in sandbox.leads.values())
    assert emails == ["calm@example.com"] + ["race@example.com"] * 5
    assert sandbox.duplicate_leads() == 5
    assert len(sandbox.activities) == 8
    # The same calls against the atomic upsert make one lead per email.
    assert run(fn).duplicate_leads() == 0


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
