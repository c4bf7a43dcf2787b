"""The bulk endpoints over loopback: per-record answers, partial failures, their own rate
window, faults on bulk calls, and the record_error fault."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from importer.exceptions import ConfigError
from importer.leadsquared.client import BULK_ACTIVITIES_PATH, BULK_LEADS_PATH
from importer.sandbox import FaultConfig, Sandbox
from importer.sandbox.errors import RECORD_FAULT_MESSAGE, RECORD_FAULT_TYPE

from .helpers import AUTH, FakeClock, assert_error, body, post, run

ACTIVITIES = "/v2/ProspectActivity.svc/Retrieve"


def lead(email: str | None = None, *pairs: tuple[str, str], search_by: str | None = None) -> list:
    """One bulk lead: attribute/value pairs, a SearchBy entry when ``search_by`` is given."""
    details = [{"Attribute": "EmailAddress", "Value": email}] if email is not None else []
    details += [{"Attribute": name, "Value": value} for name, value in pairs]
    if search_by is not None:
        details.append({"Attribute": "SearchBy", "Value": search_by})
    return details


def activity(value: str, **extra: Any) -> dict[str, Any]:
    return {
        "SearchByValue": value,
        "ActivityEvent": 105,
        "ActivityNote": "bulk",
        "ActivityDateTime": "2024-05-01 09:30:00",
        "Fields": [{"SchemaName": "mx_Custom_2", "Value": "Widget"}],
        **extra,
    }


async def send(
    s: aiohttp.ClientSession, path: str, payload: Any, *, raw: bytes | None = None, **query: str
) -> tuple[int, Any]:
    """POST a bulk body (``raw`` bytes as they are, else ``payload`` as JSON)."""
    kwargs: dict[str, Any] = {"json": payload} if raw is None else {"data": raw}
    headers = AUTH if raw is None else {**AUTH, "Content-Type": "application/json"}
    async with s.post(path, params=query or None, headers=headers, **kwargs) as r:
        return r.status, await r.json(content_type=None)


async def bulk_leads(s: aiohttp.ClientSession, *leads: list) -> list[dict[str, Any]]:
    status, data = await send(s, BULK_LEADS_PATH, list(leads))
    assert status == 200 and data["Status"] == "Success", data
    return data["Response"]


async def bulk_activities(
    s: aiohttp.ClientSession, *records: dict[str, Any], search_by: str = "EmailAddress"
) -> list[dict[str, Any]]:
    status, data = await send(s, BULK_ACTIVITIES_PATH, list(records), searchBy=search_by)
    assert status == 200 and data["Status"] == "Success", data
    return data["Response"]


async def single_call_error(s: aiohttp.ClientSession, payload: dict[str, Any]) -> dict[str, str]:
    """What CreateCustom answers for ``payload``: the record error a bulk call must repeat."""
    status, data = await post(s, payload)
    assert data["Status"] == "Error", data
    return {"ExceptionType": data["ExceptionType"], "ExceptionMessage": data["ExceptionMessage"]}


# ---- Lead/Bulk/CreateOrUpdate ----------------------------------------------------------------


def test_bulk_upsert_creates_then_updates_leads_answering_each_in_request_order() -> None:
    answers: list[list[dict[str, Any]]] = []

    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        answers.append(
            await bulk_leads(
                s,
                lead("ann@example.com", ("FirstName", "Ann")),  # found by EmailAddress
                lead(None, ("Phone", "+91 98450-12345"), ("FirstName", "Bo")),  # by Phone
                lead("cy@example.com", ("mx_City", "Pune"), search_by="EmailAddress"),
            )
        )
        answers.append(
            await bulk_leads(
                s,
                lead("ANN@Example.com", ("mx_City", "Goa")),
                lead(None, ("Phone", "919845012345"), ("LastName", "Ray")),
                lead("dee@example.com"),
            )
        )

    sandbox = run(fn, bulk_rate=10, per=1.0)
    first, second = answers
    assert [set(r) for r in first] == [{"RowNumber", "LeadId", "LeadCreated", "LeadUpdated"}] * 3
    assert [(r["RowNumber"], r["LeadCreated"], r["LeadUpdated"]) for r in first] == [
        (1, True, False),
        (2, True, False),
        (3, True, False),
    ]
    assert [(r["RowNumber"], r["LeadCreated"], r["LeadUpdated"]) for r in second] == [
        (1, False, True),
        (2, False, True),
        (3, True, False),
    ]
    ann, bo, _ = (r["LeadId"] for r in first)
    assert [r["LeadId"] for r in second[:2]] == [ann, bo]
    assert len(sandbox.leads) == 4 and sandbox.duplicate_leads() == 0
    assert sandbox.leads[ann]["FirstName"] == "Ann" and sandbox.leads[ann]["mx_City"] == "Goa"
    assert sandbox.leads[bo]["LastName"] == "Ray" and sandbox.leads[bo]["FirstName"] == "Bo"
    calls = sandbox.bulk_calls()
    assert [(c.path, c.records, c.http_status, c.failed_rows) for c in calls] == [
        (BULK_LEADS_PATH, 3, 200, []),
        (BULK_LEADS_PATH, 3, 200, []),
    ]
    assert calls[1].lead_ids == [r["LeadId"] for r in second]
    assert sandbox.activities == []  # a bulk lead call adds no activity


def test_a_bulk_lead_a_single_call_would_refuse_fails_alone_with_that_calls_error() -> None:
    answer: list[dict[str, Any]] = []
    expected: list[dict[str, str]] = []

    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        bad_stage = [("ProspectStage", "Nope")]
        unknown = [("mx_city", "Pune")]
        expected.append(
            await single_call_error(s, body("bad1@example.com", lead=_pairs(bad_stage)))
        )
        expected.append(await single_call_error(s, body("bad2@example.com", lead=_pairs(unknown))))
        answer.extend(
            await bulk_leads(
                s,
                lead("ok1@example.com"),
                lead("bad1@example.com", *bad_stage),
                lead("bad2@example.com", *unknown),
                lead(None, ("FirstName", "Nobody")),  # nothing to find it by
                "not a list of pairs",  # type: ignore[arg-type]
                lead("ok2@example.com", search_by="EmailAddress"),
            )
        )

    sandbox = run(fn, rate=100, per=1.0)
    assert [r["RowNumber"] for r in answer] == [1, 2, 3, 4, 5, 6]
    assert answer[1] == {"RowNumber": 2, **expected[0]}
    assert answer[2] == {"RowNumber": 3, **expected[1]}
    assert "did you mean mx_City?" in answer[2]["ExceptionMessage"]
    assert answer[3]["ExceptionType"] == "MXInvalidInputException"
    assert (
        "no SearchBy entry and no value for EmailAddress or Phone"
        in (answer[3]["ExceptionMessage"])
    )
    assert answer[4]["ExceptionMessage"].startswith("LeadDetails must be a non-empty list")
    assert answer[0]["LeadCreated"] and answer[5]["LeadCreated"]  # the others went in
    emails = sorted(lead["EmailAddress"] for lead in sandbox.leads.values())
    assert emails == ["ok1@example.com", "ok2@example.com"]
    (call,) = sandbox.bulk_calls()
    assert call.failed_rows == [2, 3, 4, 5] and call.faulted_rows == []
    assert call.lead_ids == [answer[0]["LeadId"], answer[5]["LeadId"]]


def _pairs(pairs: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"Attribute": name, "Value": value} for name, value in pairs]


def test_custom_field_sets_in_bulk_leads_are_checked_and_merged_as_in_create_custom() -> None:
    answers: list[list[dict[str, Any]]] = []

    def kyc(**fields: str) -> dict[str, Any]:
        sub = [{"Attribute": k, "Value": v} for k, v in fields.items()]
        return {"Attribute": "mx_KYC", "Value": "", "Fields": sub}

    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        answers.append(
            await bulk_leads(
                s,
                [*lead("k@example.com"), kyc(Status="Pending", Document_Number="X1")],
                [*lead("j@example.com"), kyc(Status="Maybe")],
            )
        )
        answers.append(await bulk_leads(s, [*lead("k@example.com"), kyc(Status="Verified")]))

    sandbox = run(fn, bulk_rate=10, per=1.0)
    first, second = answers
    assert first[0]["LeadCreated"] and second[0]["LeadUpdated"]
    assert first[1]["ExceptionType"] == "MXInvalidInputException"
    assert (
        "Field mx_KYC.Status: 'Maybe' is not one of its options" in (first[1]["ExceptionMessage"])
    )
    (stored,) = sandbox.leads.values()
    assert stored["mx_KYC"] == {"Status": "Verified", "Document_Number": "X1"}


def test_two_leads_with_one_key_in_a_call_go_in_order_and_are_counted() -> None:
    answers: list[list[dict[str, Any]]] = []
    states: list[int] = []

    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        answers.append(await bulk_leads(s, lead("a@example.com"), lead("b@example.com")))
        answers.append(await bulk_leads(s, lead("a@example.com"), lead("c@example.com")))
        assert sandbox.bulk_same_key_calls == 0  # the same key in two calls is fine
        answers.append(
            await bulk_leads(
                s,
                lead("new@example.com", ("FirstName", "One")),
                lead(" NEW@example.com", ("LastName", "Two"), search_by="EmailAddress"),
            )
        )
        answers.append(
            await bulk_leads(
                s,
                lead(None, ("Phone", "98450 12345")),
                lead("p@example.com", ("Phone", "9845012345"), search_by="Phone"),
            )
        )
        async with s.get("/_sandbox/state") as r:
            states.append((await r.json())["bulk_same_key_calls"])

    sandbox = run(fn, bulk_rate=10, per=1.0)
    one, two = answers[2]
    assert one["LeadCreated"] and two["LeadUpdated"] and one["LeadId"] == two["LeadId"]
    stored = sandbox.leads[one["LeadId"]]
    assert (stored["FirstName"], stored["LastName"]) == ("One", "Two")
    assert answers[3][1]["LeadId"] == answers[3][0]["LeadId"]
    assert sandbox.bulk_same_key_calls == 2 and states == [2]
    assert sandbox.duplicate_leads() == 0
    sandbox.reset()
    assert sandbox.bulk_same_key_calls == 0


@pytest.mark.parametrize("path", [BULK_LEADS_PATH, BULK_ACTIVITIES_PATH])
@pytest.mark.parametrize(
    ("raw", "in_message"),
    [
        (b"not json", "not valid JSON"),
        (b'{"a": 1}', "must be a JSON list"),
        (b"[]", "send 1 to 25"),
        (json.dumps([["x"]] * 26).encode(), "26 "),
    ],
    ids=["not-json", "object", "empty", "26-records"],
)
def test_a_bad_bulk_body_is_refused_whole_and_stores_nothing(
    path: str, raw: bytes, in_message: str
) -> None:
    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        status, data = await send(s, path, None, raw=raw, searchBy="EmailAddress")
        message = assert_error(status, data, 400, "MXInvalidInputException")
        assert in_message in message and "\n" not in message
        async with s.post(path, data=b"[]", headers=AUTH, params={"searchBy": "EmailAddress"}) as r:
            assert r.status == 400  # not application/json

    sandbox = run(fn, bulk_rate=10, per=1.0)
    assert sandbox.leads == {} and sandbox.activities == []
    assert all(c.bulk and c.http_status == 400 and not c.lead_ids for c in sandbox.calls)


def test_25_records_are_taken_and_paths_match_in_any_case() -> None:
    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        leads = [lead(f"u{i}@example.com") for i in range(25)]
        status, data = await send(s, BULK_LEADS_PATH.lower(), leads)
        assert status == 200 and len(data["Response"]) == 25

    sandbox = run(fn)
    assert len(sandbox.leads) == 25 and sandbox.bulk_calls()[0].records == 25


# ---- Bulk/CustomActivity/Add/ByLeadField -----------------------------------------------------


def test_bulk_activities_find_the_lead_by_the_field_or_fail_alone() -> None:
    answer: list[dict[str, Any]] = []
    expected: list[dict[str, str]] = []
    leads: list[dict[str, Any]] = []

    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        leads.extend(await bulk_leads(s, lead("a@example.com"), lead("b@example.com")))
        wrong_field = [{"SchemaName": "mx_Custom_9", "Value": "x"}]
        expected.append(
            await single_call_error(s, body("a@example.com", activity=_act(Fields=wrong_field)))
        )
        answer.extend(
            await bulk_activities(
                s,
                activity("A@Example.com"),
                activity("nobody@example.com"),
                activity("b@example.com", Fields=wrong_field),
                activity(
                    "b@example.com",
                    Fields=[{"SchemaName": "mx_Custom_3", "Value": "Lukewarm"}],
                    ValidateDropDownOptions=True,  # skips the dropdown check, as at the root
                ),
                activity("b@example.com", ActivityEvent=106, Fields=[]),  # a mandatory one missing
            )
        )

    sandbox = run(fn, bulk_rate=10, rate=100, per=1.0)
    a, b = (r["LeadId"] for r in leads)
    assert set(answer[0]) == {"RowNumber", "ProspectActivityId", "LeadId"}
    assert (answer[0]["RowNumber"], answer[0]["LeadId"]) == (1, a)
    assert answer[1]["RowNumber"] == 2 and answer[1]["ExceptionType"] == "MXInvalidInputException"
    assert answer[1]["ExceptionMessage"].startswith("Lead not found")
    assert "nobody@example.com" in answer[1]["ExceptionMessage"]
    assert answer[2] == {"RowNumber": 3, **expected[0]}
    assert (answer[3]["RowNumber"], answer[3]["LeadId"]) == (4, b)
    assert answer[4]["ExceptionType"] == "MXMandatoryAttributeMissingException"
    stored = {x["Id"]: x for x in sandbox.activities}
    assert set(stored) == {answer[0]["ProspectActivityId"], answer[3]["ProspectActivityId"]}
    assert stored[answer[3]["ProspectActivityId"]]["Fields"] == {"mx_Custom_3": "Lukewarm"}
    assert stored[answer[0]["ProspectActivityId"]]["LeadId"] == a
    call = sandbox.bulk_calls()[-1]
    assert call.path == BULK_ACTIVITIES_PATH  # no query string: keys may be in it
    assert call.activity_ids == [answer[0]["ProspectActivityId"], answer[3]["ProspectActivityId"]]
    assert call.failed_rows == [2, 3, 5] and call.records == 5


def _act(**extra: Any) -> dict[str, Any]:
    record = activity("", **extra)
    del record["SearchByValue"]
    return record


@pytest.mark.parametrize(
    ("query", "status", "in_message"),
    [
        ({}, 400, "searchBy parameter is required"),
        ({"searchBy": "Nickname"}, 500, "Invalid searchBy 'Nickname'"),
        ({"searchBy": "mx_KYC"}, 500, "Invalid searchBy"),  # a set is no search field
    ],
)
def test_a_missing_or_unknown_search_by_refuses_the_whole_call(
    query: dict[str, str], status: int, in_message: str
) -> None:
    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        await bulk_leads(s, lead("a@example.com"))
        code, data = await send(s, BULK_ACTIVITIES_PATH, [activity("a@example.com")], **query)
        assert in_message in assert_error(code, data, status, "MXInvalidInputException")

    sandbox = run(fn, bulk_rate=10, per=1.0)
    assert sandbox.activities == []


def test_search_by_is_any_case_and_compares_as_the_upsert_does() -> None:
    answers: list[list[dict[str, Any]]] = []

    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        (made,) = await bulk_leads(s, lead("a@example.com", ("Phone", "+91 98450 12345")))
        status, data = await send(
            s, BULK_ACTIVITIES_PATH, [activity("919845012345")], searchby="phone"
        )
        assert status == 200, data
        answers.append(data["Response"])
        answers.append(await bulk_activities(s, activity(made["LeadId"]), search_by="ProspectId"))

    sandbox = run(fn, bulk_rate=10, per=1.0)
    lead_id = next(iter(sandbox.leads))
    assert [r[0]["LeadId"] for r in answers] == [lead_id, lead_id]
    assert len(sandbox.activities) == 2


def test_read_endpoints_see_bulk_activities_once_the_read_lag_has_passed() -> None:
    clock = FakeClock()
    seen: list[Any] = []

    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        (made,) = await bulk_leads(s, lead("r@example.com"))
        (added,) = await bulk_activities(s, activity("r@example.com"))
        for _ in range(2):
            async with s.post(
                ACTIVITIES, params={"leadId": made["LeadId"]}, json={}, headers=AUTH
            ) as r:
                seen.append(await r.json())
            clock.now += 2.0
        async with s.get(
            "/v2/LeadManagement.svc/Leads.GetByEmailaddress",
            params={"emailaddress": "R@example.com"},
            headers=AUTH,
        ) as r:
            seen.append(await r.json())
        seen.append(added)

    run(fn, rate=100, bulk_rate=10, per=1.0, clock=clock, faults=FaultConfig(read_lag=2.0))
    lagging, listed, found, added = seen
    assert lagging == {"RecordCount": 0, "ProspectActivities": []}
    assert listed["RecordCount"] == 1
    (shown,) = listed["ProspectActivities"]
    assert shown["Id"] == added["ProspectActivityId"] and shown["EventCode"] == 105
    assert {"Key": "mx_Custom_2", "Value": "Widget"} in shown["Data"]
    assert [x["ProspectID"] for x in found] == [added["LeadId"]]


# ---- the bulk rate window --------------------------------------------------------------------


def test_the_bulk_window_refuses_past_bulk_rate_with_its_own_message() -> None:
    clock = FakeClock()
    replies: list[tuple[int, Any]] = []

    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        for i in range(3):
            replies.append(await send(s, BULK_LEADS_PATH, [lead(f"w{i}@example.com")]))
            clock.now += 0.1
        replies.append(await post(s, body("single@example.com")))  # the ordinary window has room
        clock.now += 10.0  # past the bulk window
        replies.append(await send(s, BULK_LEADS_PATH, [lead("later@example.com")]))

    sandbox = run(fn, rate=10, per=1.0, bulk_rate=2, bulk_per=10.0, clock=clock)
    assert [status for status, _ in replies] == [200, 200, 429, 200, 200]
    message = assert_error(*replies[2], 429, "MXAPIRateLimitExceededException")
    assert message == "API calls exceeded the limit of 2 in 10 second(s)"
    assert sorted(lead["EmailAddress"] for lead in sandbox.leads.values()) == [
        "later@example.com",
        "single@example.com",
        "w0@example.com",
        "w1@example.com",
    ]
    assert sandbox.max_bulk_in_window() == 3  # the refused call counted too
    assert sandbox.max_in_window() == 4  # 3 bulk calls and the single one, in 1 s
    assert len(sandbox.bulk_arrivals()) == 4
    assert sandbox.arrivals() == [sandbox.calls[3].arrived]  # CreateCustom's only
    assert len(sandbox.arrivals("Lead/Bulk/CreateOrUpdate")) == 4


@pytest.mark.parametrize("shares", [True, False])
def test_a_bulk_call_needs_room_in_the_ordinary_window_only_when_it_shares_it(
    shares: bool,
) -> None:
    clock = FakeClock()
    replies: list[tuple[int, Any]] = []

    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        replies.append(await post(s, body("one@example.com")))
        replies.append(await send(s, BULK_LEADS_PATH, [lead("b1@example.com")]))
        replies.append(await post(s, body("two@example.com")))  # the ordinary window: full?
        replies.append(await send(s, BULK_LEADS_PATH, [lead("b2@example.com")]))

    sandbox = run(fn, rate=2, per=1.0, bulk_rate=5, bulk_shares_limit=shares, clock=clock)
    statuses = [status for status, _ in replies]
    if shares:
        assert statuses == [200, 200, 429, 429]
        assert assert_error(*replies[2], 429, "MXAPIRateLimitExceededException") == (
            "API calls exceeded the limit of 2 in 1 second(s)"
        )
        # Refused by the ordinary window, so its message names the ordinary limit.
        assert replies[3][1]["ExceptionMessage"] == replies[2][1]["ExceptionMessage"]
        assert sandbox.max_in_window() == 4 and sandbox.max_bulk_in_window() == 2
    else:
        assert statuses == [200, 200, 200, 200]
        assert sandbox.max_in_window() == 2 and sandbox.max_bulk_in_window() == 2


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [
        ({"bulk_rate": 0}, "bulk_rate"),
        ({"bulk_rate": 1.5}, "bulk_rate"),
        ({"bulk_per": 0}, "bulk_per"),
        ({"bulk_per": float("inf")}, "bulk_per"),
        ({"bulk_shares_limit": "yes"}, "bulk_shares_limit"),
    ],
)
def test_bad_bulk_limits_are_refused_naming_them(kwargs: dict[str, Any], bad: str) -> None:
    with pytest.raises(ConfigError, match=bad):
        Sandbox(**kwargs)


def test_the_info_endpoint_reports_the_limits() -> None:
    infos: list[Any] = []

    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        async with s.get("/_sandbox/info") as r:
            infos.append(await r.json())

    run(fn, rate=10, per=5.0, bulk_rate=5, bulk_shares_limit=False)
    assert infos[0]["limits"] == {
        "rate": 10,
        "per": 5.0,
        "bulk_rate": 5,
        "bulk_per": 5.0,
        "bulk_shares_limit": False,
    }


# ---- faults on bulk calls --------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["drop_after", "truncated_200", "html_200", "nested_200"])
def test_a_bulk_call_that_loses_its_answer_was_processed(fault: str) -> None:
    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        leads = [lead("d1@example.com"), lead("d2@example.com")]
        try:
            async with s.post(BULK_LEADS_PATH, json=leads, headers=AUTH) as r:
                text = await r.text()
        except aiohttp.ClientError:
            assert fault == "drop_after"
            return
        assert r.status == 200 and fault != "drop_after"
        with pytest.raises((ValueError, RecursionError)):
            json.loads(text)

    sandbox = run(fn, faults=FaultConfig(seed=3, **{fault: 1.0}))
    (call,) = sandbox.calls
    assert call.fault == fault and call.bulk and call.http_status == 200
    assert len(sandbox.leads) == 2 and call.lead_ids == list(sandbox.leads)


@pytest.mark.parametrize(
    ("fault", "status", "exception_type"),
    [
        ("error_500_mx", 500, "MXInvalidInputException"),
        ("error_200", 200, "MXInvalidInputException"),
        ("throttle_403", 403, "MXAPIRateLimitExceededException"),
        ("proxy_502", 502, ""),
    ],
)
def test_a_bulk_call_answered_by_a_fault_processes_none_of_its_records(
    fault: str, status: int, exception_type: str
) -> None:
    replies: list[tuple[int, str]] = []

    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        made = sandbox.account.bulk_create_or_update(
            "application/json", json.dumps([lead("x@example.com")]).encode()
        )
        assert made.lead_ids  # the lead the activity would go to is there
        for path, records in (
            (BULK_LEADS_PATH, [lead("y@example.com")]),
            (BULK_ACTIVITIES_PATH, [activity("x@example.com")]),
        ):
            async with s.post(
                path, json=records, headers=AUTH, params={"searchBy": "EmailAddress"}
            ) as r:
                replies.append((r.status, await r.text()))

    sandbox = run(
        fn, bulk_rate=10, bulk_per=2.5, per=1.0, faults=FaultConfig(seed=1, **{fault: 1.0})
    )
    assert len(sandbox.leads) == 1 and sandbox.activities == []
    for got, text in replies:
        assert got == status, text
        if exception_type:
            assert json.loads(text)["ExceptionType"] == exception_type
        if fault.startswith("throttle_"):  # a bulk call's throttle names the bulk limit
            assert "exceeded the limit of 10 in 2.5 second(s)" in text
    assert [c.fault for c in sandbox.calls] == [fault, fault]


async def _leads_then_activities(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
    await bulk_leads(s, *(lead(f"r{i}@example.com") for i in range(25)))
    await bulk_activities(s, *(activity(f"r{i}@example.com") for i in range(25)))


def test_record_error_fails_single_records_repeatably_under_a_seed() -> None:
    faults = FaultConfig(seed=11, record_error=0.3)
    runs = [run(_leads_then_activities, bulk_rate=10, faults=faults) for _ in range(2)]
    first, second = runs
    leads_call, activities_call = first.bulk_calls()
    assert [c.faulted_rows for c in first.bulk_calls()] == [
        c.faulted_rows for c in second.bulk_calls()
    ]
    assert 0 < len(leads_call.faulted_rows) < 25 and 0 < len(activities_call.faulted_rows) < 25
    assert leads_call.failed_rows == leads_call.faulted_rows  # no other record failed
    assert len(first.leads) == 25 - len(leads_call.faulted_rows)  # a faulted record: not stored
    # An activity fails if its own draw fails it, or if its lead was never made.
    assert set(leads_call.faulted_rows) <= set(activities_call.failed_rows)
    assert set(activities_call.faulted_rows) <= set(activities_call.failed_rows)
    assert len(first.activities) == 25 - len(activities_call.failed_rows)
    assert leads_call.http_status == activities_call.http_status == 200


def test_a_record_error_answers_the_documented_type_and_message() -> None:
    answers: list[list[dict[str, Any]]] = []

    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        answers.append(await bulk_leads(s, lead("a@example.com"), lead("b@example.com")))

    sandbox = run(fn, faults=FaultConfig(seed=1, record_error=1.0))
    assert answers[0] == [
        {
            "RowNumber": 1,
            "ExceptionType": RECORD_FAULT_TYPE,
            "ExceptionMessage": RECORD_FAULT_MESSAGE,
        },
        {
            "RowNumber": 2,
            "ExceptionType": RECORD_FAULT_TYPE,
            "ExceptionMessage": RECORD_FAULT_MESSAGE,
        },
    ]
    assert RECORD_FAULT_TYPE == "MXUnknownException"
    assert sandbox.leads == {} and sandbox.calls[0].fault == ""  # not a call-level fault


def test_call_faults_are_drawn_for_bulk_calls_in_call_order_under_a_seed() -> None:
    faults = FaultConfig(seed=5, error_500_plain=0.4, drop_before=0.2)

    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        for i in range(12):
            try:
                if i % 2:
                    await post(s, body(f"c{i}@example.com"))
                else:
                    await send(s, BULK_LEADS_PATH, [lead(f"c{i}@example.com")])
            except (aiohttp.ClientError, ValueError):
                pass  # drop_before, or a plain 500's HTML page

    drawn = [[c.fault for c in run(fn, rate=100, bulk_rate=100, faults=faults).calls] for _ in "ab"]
    assert drawn[0] == drawn[1]
    bulk_faults = drawn[0][::2]
    assert any(bulk_faults) and not all(bulk_faults)  # bulk calls draw like the others


def test_record_error_is_a_probability_outside_the_per_call_sum() -> None:
    config = FaultConfig.from_spec("record_error=0.5,drop_after=0.9,seed=2")
    assert (config.record_error, config.drop_after) == (0.5, 0.9)
    assert FaultConfig.from_spec(config.to_spec()) == config
    with pytest.raises(ConfigError, match="record_error must be a probability"):
        FaultConfig.from_spec("record_error=1.5")
