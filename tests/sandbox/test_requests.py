"""What CreateCustom accepts and stores, over HTTP: the upsert, validation, custom field sets."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from importer import run_import
from importer.sandbox import FaultConfig, Sandbox, SandboxSchema

from ..conftest import EXAMPLE_MAPPING, SANDBOX_KEYS, read_results
from .helpers import AUTH, CREATE, assert_error, body, post, run

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
