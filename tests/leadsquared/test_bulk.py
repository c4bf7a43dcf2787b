"""Bulk calls: what goes into them, and their answers judged record by record, through the
real client against aioresponses."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aioresponses import aioresponses
from yarl import URL

from importer.leadsquared.bulk import (
    activity_record,
    bulk_refusal,
    classify_bulk,
    lead_record,
    lost_bulk,
)
from importer.leadsquared.classify import ApiResponse, Kind
from importer.leadsquared.client import (
    BULK_ACTIVITIES_PATH,
    BULK_LEADS_PATH,
    LeadSquaredClient,
    make_session,
)
from importer.mapping import load_mapping
from importer.settings import Credentials

BASE = "https://api-in21.leadsquared.com"
CREDS = Credentials("u$rACCESS", "SECRET123")

BODY = {
    "LeadDetails": [
        {"Attribute": "EmailAddress", "Value": "a@x.org"},
        {"Attribute": "mx_KYC", "Value": "", "Fields": [{"Attribute": "Status", "Value": "Ok"}]},
        {"Attribute": "SearchBy", "Value": "EmailAddress"},
    ],
    "Activity": {
        "ActivityEvent": 105,
        "ActivityNote": "n",
        "ActivityDateTime": "2024-05-01 09:30:00",
        "Fields": [{"SchemaName": "mx_Custom_1", "Value": "1"}],
    },
    "ValidateDropDownOptions": True,
}


def post(path: str, records: Any, params: dict[str, str] | None, **mock: Any) -> tuple[Any, Any]:
    async def go() -> Any:
        async with make_session(CREDS) as session:
            return await LeadSquaredClient(session, BASE).post(path, records, params)

    with aioresponses() as mocked:
        url = URL(BASE + path).with_query(params or {})
        mocked.post(url, **mock)
        answer = asyncio.run(go())
        (_, sent_url), calls = next(iter(mocked.requests.items()))
        return answer, (sent_url, calls[0])


def test_the_records_are_the_rows_bodies_as_the_bulk_calls_take_them() -> None:
    assert lead_record(BODY) == BODY["LeadDetails"]  # custom field set and SearchBy included
    assert activity_record(BODY) == {
        "SearchByValue": "a@x.org",
        **BODY["Activity"],
        "ValidateDropDownOptions": True,
    }


def test_an_activity_call_goes_with_search_by_in_the_query_and_the_keys_in_headers() -> None:
    answer, (url, request) = post(
        BULK_ACTIVITIES_PATH,
        [activity_record(BODY)],
        {"searchBy": "EmailAddress"},
        payload={"Response": [{"ProspectActivityId": "A1"}]},
    )
    assert url.query["searchBy"] == "EmailAddress" and "SECRET" not in str(url)
    assert json.loads(request.kwargs["data"])[0]["SearchByValue"] == "a@x.org"
    judged = classify_bulk(answer, 1, leads=False)
    assert judged.kind is Kind.SUCCESS and judged.records[0].id == "A1"


def test_records_are_matched_by_row_number_and_refusals_keep_their_reason() -> None:
    answer, _ = post(
        BULK_LEADS_PATH,
        [lead_record(BODY)] * 3,
        None,
        payload={
            "Status": "Success",
            "Response": [
                {"RowNumber": 3, "LeadId": "L3"},
                {"RowNumber": 1, "LeadId": "L1", "LeadCreated": True},
                {
                    "RowNumber": 2,
                    "ExceptionType": "MXInvalidInputException",
                    "ExceptionMessage": "Invalid Email",
                },
            ],
        },
    )
    judged = classify_bulk(answer, 3, leads=True)
    assert judged.kind is Kind.SUCCESS
    assert [r.kind for r in judged.records] == [Kind.SUCCESS, Kind.PERMANENT, Kind.SUCCESS]
    assert [r.id for r in judged.records] == ["L1", "", "L3"]
    assert judged.records[1].error_type == "MXInvalidInputException"
    assert judged.records[1].error_message == "Invalid Email"


@pytest.mark.parametrize(
    "body",
    [
        {"Response": [{"ProspectActivityId": "A1"}]},  # one entry for two records
        {"Response": [{"RowNumber": 1, "Id": "A1"}, {"RowNumber": 1, "Id": "A2"}]},
        {"Response": [{"RowNumber": 1, "Id": "A1"}, {"Id": "A2"}]},
        {"Status": "Success"},
        None,
    ],
)
def test_an_answer_not_matched_to_every_record_is_never_a_success(body: Any) -> None:
    answer = ApiResponse(200, body, "" if body is None else json.dumps(body), method="POST")
    activities = classify_bulk(answer, 2, leads=False)
    assert activities.kind is Kind.AMBIGUOUS  # the activities may exist: looked up, not resent
    assert classify_bulk(answer, 2, leads=True).kind is Kind.TRANSIENT  # an upsert: again


def test_an_entry_with_neither_id_nor_error_leaves_that_record_unknown() -> None:
    answer = ApiResponse(200, [{"ProspectActivityId": "A1"}, {}], method="POST")
    judged = classify_bulk(answer, 2, leads=False)
    assert [r.kind for r in judged.records] == [Kind.SUCCESS, Kind.AMBIGUOUS]


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (
            429,
            {
                "Status": "Error",
                "ExceptionType": "MXAPIRateLimitExceededException",
                "ExceptionMessage": "API calls exceeded the limit of 1 in 5 second(s)",
            },
            Kind.RATE_LIMITED,
        ),
        (401, {"Status": "Error", "ExceptionType": "MXUnAuthorizedAccessException"}, Kind.FATAL),
        (
            500,
            {
                "Status": "Error",
                "ExceptionType": "MXInvalidInputException",
                "ExceptionMessage": "bad",
            },
            Kind.PERMANENT,
        ),
        (502, None, Kind.TRANSIENT),
    ],
)
def test_whole_call_answers_mean_what_they_mean_for_createcustom(status, body, kind) -> None:
    answer = ApiResponse(status, body, "<html>" if body is None else "", method="POST")
    assert classify_bulk(answer, 25, leads=False).kind is kind
    assert classify_bulk(answer, 25, leads=True).kind is kind


def test_a_lost_answer_repeats_the_upsert_and_leaves_activities_unknown() -> None:
    assert lost_bulk("TimeoutError", "", maybe_sent=True, leads=True).kind is Kind.TRANSIENT
    assert lost_bulk("TimeoutError", "", maybe_sent=True, leads=False).kind is Kind.AMBIGUOUS
    assert lost_bulk("ConnectError", "x", maybe_sent=False, leads=False).kind is Kind.TRANSIENT


def test_an_activity_custom_field_set_is_refused_for_bulk_naming_its_key(tmp_path) -> None:
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        "version: 1\nlead:\n  search_by: EmailAddress\n"
        "  attributes:\n    EmailAddress: {column: Email}\n"
        "    mx_KYC:\n      fields:\n        Status: {column: Kyc}\n"
        "activity:\n  event: 105\n  fields:\n    mx_Custom_2:\n      fields:\n"
        "        mx_CustomObject_1: {column: Note}\n",
        encoding="utf-8",
    )
    said = bulk_refusal(load_mapping(mapping))
    assert said.startswith("activity.fields.mx_Custom_2: a custom field set inside the activity")
    assert "--mode single" in said
    mapping.write_text(
        mapping.read_text().split("activity:")[0] + "activity:\n  event: 105\n",
        encoding="utf-8",
    )
    assert bulk_refusal(load_mapping(mapping)) == ""  # a lead field set goes in bulk
