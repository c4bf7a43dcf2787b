"""The account's read answers on their own, without a server: they find what the upsert stored,
compared as the upsert compares, in LeadSquared's shapes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from importer.sandbox import ApiError, SandboxAccount

from .helpers import FakeClock, body


def create(account: SandboxAccount, payload: Any) -> dict[str, Any]:
    return account.create_custom("application/json", json.dumps(payload).encode())


def retrieve(account: SandboxAccount, lead_id: str, request: Any = None, **kwargs: Any) -> Any:
    raw = b"" if request is None else json.dumps(request).encode()
    return account.retrieve_activities(lead_id, "application/json", raw, **kwargs)


def leads_get(account: SandboxAccount, request: Any) -> list[dict[str, Any]]:
    return account.leads_get("application/json", json.dumps(request).encode())


def refused(call: Any, *args: Any) -> ApiError:
    with pytest.raises(ApiError) as info:
        call(*args)
    return info.value


def by_field(name: str, value: str, **more: Any) -> dict[str, Any]:
    return {"Parameter": {"LookupName": name, "LookupValue": value, "SqlOperator": "="}, **more}


# ---- leads -----------------------------------------------------------------------------------


def test_a_lead_by_email_ignores_case_as_the_upsert_does() -> None:
    account = SandboxAccount()
    lead_id = create(account, body("Ann@Example.com"))["Message"]["RelatedId"]
    (found,) = account.leads_by_email(" ann@EXAMPLE.com")
    assert found["ProspectID"] == lead_id and found["EmailAddress"] == "Ann@Example.com"
    # Every lead field of the schema is listed, None when unset; a field set as a JSON text.
    assert found["Phone"] is None
    assert set(found) == {"ProspectID", *(f["SchemaName"] for f in account.schema.lead_fields)}
    assert account.leads_by_email("nobody@example.com") == []
    assert refused(account.leads_by_email, None).status == 400


def test_leads_that_a_racy_upsert_doubled_are_both_found_oldest_first() -> None:
    account = SandboxAccount()
    call = account.parse_create("application/json", json.dumps(body("a@example.com")).encode())
    first = account.store(call, None)["Message"]["RelatedId"]
    second = account.store(call, None)["Message"]["RelatedId"]
    assert [lead["ProspectID"] for lead in account.leads_by_email("a@example.com")] == [
        first,
        second,
    ]


def test_a_custom_field_set_of_a_lead_is_a_json_text() -> None:
    account = SandboxAccount()
    kyc = {
        "Attribute": "mx_KYC",
        "Value": "",
        "Fields": [{"Attribute": "Status", "Value": "Pending"}],
    }
    create(account, body(lead=[kyc]))
    (found,) = account.leads_by_email("a@example.com")
    assert json.loads(found["mx_KYC"]) == {"Status": "Pending"}


def test_a_lead_by_phone_is_found_by_its_digits_in_phone_or_mobile() -> None:
    clock = FakeClock()
    account = SandboxAccount(clock=clock)
    by_mobile = body("m@example.com", lead=[{"Attribute": "Mobile", "Value": "+91 98765-43210"}])
    mobile_lead = create(account, by_mobile)["Message"]["RelatedId"]
    clock.now += 1
    by_phone = body("p@example.com", lead=[{"Attribute": "Phone", "Value": "919876543210"}])
    phone_lead = create(account, by_phone)["Message"]["RelatedId"]
    # Both match; the one with the latest activity is answered, alone.
    assert [lead["ProspectID"] for lead in account.leads_by_phone("919876543210")] == [phone_lead]
    clock.now += 1
    create(account, by_mobile)
    assert [lead["ProspectID"] for lead in account.leads_by_phone("919876543210")] == [mobile_lead]
    assert account.leads_by_phone("5550000") == []


@pytest.mark.parametrize("phone", ["+919876543210", "98765 43210", "98765-43210", ""])
def test_a_phone_lookup_takes_digits_only(phone: str) -> None:
    err = refused(SandboxAccount().leads_by_phone, phone)
    assert (err.status, err.exception_type) == (500, "MXInvalidInputException")
    assert "digits only" in err.message


def test_leads_get_finds_by_any_field_compared_as_the_upsert_compares() -> None:
    account = SandboxAccount()
    ids = [
        create(account, body(f"u{n}@example.com", lead=[{"Attribute": "mx_City", "Value": city}]))[
            "Message"
        ]["RelatedId"]
        for n, city in enumerate(["Pune", " Pune ", "Goa"])
    ]
    found = leads_get(
        account, by_field("mx_City", "Pune", Columns={"Include_CSV": "ProspectID, mx_City"})
    )
    assert found == [
        {"ProspectID": ids[0], "mx_City": "Pune"},
        {"ProspectID": ids[1], "mx_City": " Pune "},
    ]
    page_two = leads_get(
        account, by_field("mx_City", "Pune", Paging={"PageIndex": 2, "PageSize": 1})
    )
    assert [lead["ProspectID"] for lead in page_two] == [ids[1]]
    assert leads_get(account, by_field("EmailAddress", "U2@EXAMPLE.COM"))[0]["ProspectID"] == ids[2]
    assert [x["ProspectID"] for x in leads_get(account, by_field("ProspectID", ids[2]))] == [ids[2]]
    assert leads_get(account, by_field("mx_City", "Delhi")) == []


@pytest.mark.parametrize(
    ("request_body", "why"),
    [
        ({}, "LookupName and LookupValue must be strings"),
        (by_field("mx_Nope", "x"), "Invalid LookupName 'mx_Nope'"),
        (by_field("mx_KYC", "x"), "Invalid LookupName 'mx_KYC'"),
        (
            {"Parameter": {"LookupName": "mx_City", "LookupValue": "P%", "SqlOperator": "LIKE"}},
            "use =",
        ),
        (
            by_field("mx_City", "x", Paging={"PageIndex": 0}),
            "PageIndex must be a whole number >= 1",
        ),
        (by_field("mx_City", "x", Columns="ProspectID"), "Columns must be an object"),
    ],
)
def test_leads_get_refuses_what_it_cannot_answer(request_body: Any, why: str) -> None:
    err = refused(leads_get, SandboxAccount(), request_body)
    assert why in err.message


# ---- activities ------------------------------------------------------------------------------


def purchase(n: int, **more: Any) -> dict[str, Any]:
    return {
        "ActivityEvent": 105,
        "ActivityNote": f"order {n}",
        "ActivityDateTime": f"2024-05-01 09:{n:02d}:00",
        "Fields": [
            {"SchemaName": "mx_Custom_1", "Value": str(n)},
            {"SchemaName": "mx_Custom_2", "Value": ""},
        ],
        **more,
    }


def test_the_activities_of_a_lead_newest_first_with_their_data() -> None:
    account = SandboxAccount()
    ids = [create(account, body(activity=purchase(n)))["Message"]["Id"] for n in range(3)]
    call = {"ActivityEvent": 106, "Fields": [{"SchemaName": "mx_Custom_1", "Value": "no answer"}]}
    answer = create(account, body(activity=call))
    lead_id = answer["Message"]["RelatedId"]
    every = retrieve(account, lead_id)  # an empty body: every activity
    assert (
        every["RecordCount"] == 4
        and every["ProspectActivities"][0]["Id"] == answer["Message"]["Id"]
    )
    found = retrieve(account, lead_id, {"Parameter": {"ActivityEvent": 105}})
    assert found["RecordCount"] == 3
    assert [a["Id"] for a in found["ProspectActivities"]] == ids[::-1]
    newest = found["ProspectActivities"][0]
    assert newest == {
        "Id": ids[2],
        "EventCode": 105,
        "EventName": "Website Purchase",
        "ActivityScore": 0,
        "CreatedOn": "2024-05-01 09:02:00",
        "ActivityType": 2,
        "IsEmailType": False,
        "Data": [  # custom fields: the non-empty ones only
            {"Key": "ActivityEvent_Note", "Value": "order 2"},
            {"Key": "ActivityDateTime", "Value": "2024-05-01 09:02:00"},
            {"Key": "mx_Custom_1", "Value": "2"},
        ],
    }


def test_an_activity_field_set_is_a_json_text_in_data() -> None:
    account = SandboxAccount()
    delivery = {
        "Attribute": "mx_Custom_4",
        "Value": "",
        "Fields": [{"Attribute": "City", "Value": "Pune"}],
    }
    lead_id = create(account, body(activity=purchase(1, Fields=[delivery])))["Message"]["RelatedId"]
    (activity,) = retrieve(account, lead_id, {})["ProspectActivities"]
    data = {pair["Key"]: pair["Value"] for pair in activity["Data"]}
    assert json.loads(data["mx_Custom_4"]) == {"City": "Pune"}


@pytest.mark.parametrize(
    ("offset", "rows", "shown"),
    [("0", "2", [4, 3]), ("1", "2", [4, 3]), ("2", "2", [2, 1]), (3, 2, [0]), ("4", "2", [])],
)
def test_offset_is_a_page_number_from_1_and_0_is_the_first_page_too(
    offset: Any, rows: Any, shown: list[int]
) -> None:
    account = SandboxAccount()
    ids = [create(account, body(activity=purchase(n)))["Message"]["Id"] for n in range(5)]
    lead_id = account.activities[0]["LeadId"]
    page = retrieve(account, lead_id, {"Paging": {"Offset": offset, "RowCount": rows}})
    assert page["RecordCount"] == 5
    assert [a["Id"] for a in page["ProspectActivities"]] == [ids[n] for n in shown]


def test_25_activities_a_call_unless_paged() -> None:
    account = SandboxAccount()
    for n in range(30):
        create(account, body(activity=purchase(n)))
    lead_id = account.activities[0]["LeadId"]
    page = retrieve(account, lead_id, {"Parameter": {"ActivityEvent": 105}})
    assert page["RecordCount"] == 30 and len(page["ProspectActivities"]) == 25


def test_an_activity_is_listed_only_once_visible() -> None:
    clock = FakeClock()
    account = SandboxAccount(clock=clock)
    lead_id = create(account, body(activity=purchase(1)))["Message"]["RelatedId"]
    hidden = retrieve(account, lead_id, {}, visible_until=clock.now - 0.001)
    assert hidden == {"RecordCount": 0, "ProspectActivities": []}
    assert retrieve(account, lead_id, {}, visible_until=clock.now)["RecordCount"] == 1


@pytest.mark.parametrize(
    ("lead", "request_body", "status", "why"),
    [
        (None, {}, 400, "leadId parameter is required"),
        ("no-such-lead", {}, 500, "No lead with ProspectID"),
        ("LEAD", {"Parameter": {"ActivityEvent": "105"}}, 500, "must be an integer"),
        ("LEAD", {"Paging": {"Offset": "-1"}}, 500, "Offset must be a whole number >= 0"),
        ("LEAD", {"Paging": {"RowCount": "0"}}, 500, "RowCount must be a whole number >= 1"),
        ("LEAD", [], 400, "must be a JSON object"),
    ],
)
def test_retrieve_refuses_what_it_cannot_answer(
    lead: Any, request_body: Any, status: int, why: str
) -> None:
    account = SandboxAccount()
    lead_id = create(account, body())["Message"]["RelatedId"]
    err = refused(retrieve, account, lead_id if lead == "LEAD" else lead, request_body)
    assert err.status == status and why in err.message


def test_reset_forgets_what_the_reads_find() -> None:
    account = SandboxAccount()
    lead_id = create(account, body())["Message"]["RelatedId"]
    account.reset()
    assert account.leads_by_email("a@example.com") == []
    assert refused(retrieve, account, lead_id, {}).status == 500
