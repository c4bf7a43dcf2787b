"""Lookups against aioresponses: the calls and their shapes, paging, retries, budget, pacing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aioresponses import CallbackResult, aioresponses

from importer.exceptions import FatalApiError
from importer.leadsquared.client import (
    ACTIVITIES_OF_LEAD_PATH,
    LEAD_BY_PHONE_PATH,
    LEADS_BY_EMAIL_PATH,
    LEADS_GET_PATH,
    LeadSquaredClient,
    make_session,
)
from importer.leadsquared.lookup import BudgetExhausted, FoundActivity, LookupFailed, Lookups
from importer.sending import Pacer, RetryPolicy
from importer.settings import Credentials

BASE = "https://api-in21.leadsquared.com"
CREDS = Credentials("u$rACCESSKEY1", "SECRETKEY123456")
ACTIVITIES = BASE + ACTIVITIES_OF_LEAD_PATH + "?leadId=L-1"


class Run:
    """One Lookups over a mocked server: what it returned, what it called, how it waited."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.lookups: Lookups | None = None
        self.pacer: Pacer | None = None
        self.mocked: aioresponses | None = None

    def __call__(
        self,
        work: Callable[[Lookups], Awaitable[Any]],
        mock: Callable[[aioresponses], None],
        *,
        retry: RetryPolicy | None = None,
        may_call: Callable[[], bool] = lambda: True,
        page_size: int = 50,
    ) -> Any:
        async def sleep(seconds: float) -> None:
            self.waits.append(seconds)

        async def main() -> Any:
            async with make_session(CREDS) as session:
                self.pacer = Pacer(100, 1.0)
                self.lookups = Lookups(
                    LeadSquaredClient(session, BASE),
                    self.pacer,
                    retry or RetryPolicy(max_attempts=3, base_delay=0.01),
                    may_call=may_call,
                    sleep=sleep,
                    page_size=page_size,
                )
                return await work(self.lookups)

        with aioresponses() as mocked:
            self.mocked = mocked
            mock(mocked)
            return asyncio.run(main())

    def sent(self, method: str, url: str) -> list[Any]:
        """The requests made to ``url`` (with its query string)."""
        assert self.mocked is not None
        return [
            call
            for (m, u), calls in self.mocked.requests.items()
            if m == method and str(u) == url
            for call in calls
        ]

    def bodies(self, method: str, url: str) -> list[Any]:
        return [json.loads(call.kwargs["data"]) for call in self.sent(method, url)]

    @property
    def calls(self) -> int:
        assert self.lookups is not None and self.pacer is not None
        assert self.lookups.calls == self.pacer.calls  # every call took a pacer slot
        return self.lookups.calls


@pytest.fixture
def run() -> Run:
    return Run()


def lead(lead_id: str, **attrs: Any) -> dict[str, Any]:
    return {"ProspectID": lead_id, "FirstName": None, **attrs}


# ---- leads -----------------------------------------------------------------------------------


def test_a_lead_by_email_is_asked_for_by_its_address(run: Run) -> None:
    url = BASE + LEADS_BY_EMAIL_PATH + "?emailaddress=A@Example.com"
    found = run(
        lambda lk: lk.leads("EmailAddress", " A@Example.com "),
        lambda m: m.get(url, payload=[lead("L-1", EmailAddress="a@example.com")]),
    )
    assert found == ["L-1"]
    assert len(run.sent("GET", url)) == 1 and run.calls == 1


def test_no_lead_by_email_is_an_empty_list(run: Run) -> None:
    url = BASE + LEADS_BY_EMAIL_PATH + "?emailaddress=nobody@example.com"
    assert (
        run(
            lambda lk: lk.leads("emailaddress", "nobody@example.com"),
            lambda m: m.get(url, payload=[]),
        )
        == []
    )


def test_two_leads_with_one_address_are_both_answered_once(run: Run) -> None:
    url = BASE + LEADS_BY_EMAIL_PATH + "?emailaddress=a@example.com"
    body = [lead("L-1"), lead("L-2"), lead("L-1")]
    assert run(
        lambda lk: lk.leads("EmailAddress", "a@example.com"), lambda m: m.get(url, payload=body)
    ) == ["L-1", "L-2"]


def test_a_phone_is_looked_up_by_its_digits_only(run: Run) -> None:
    url = BASE + LEAD_BY_PHONE_PATH + "?phone=919988776655"
    found = run(
        lambda lk: lk.leads("Mobile", "+91 99887-76655"),
        lambda m: m.get(url, payload=[lead("L-7", Mobile="+91-9988776655", Phone=None)]),
    )
    assert found == ["L-7"] and len(run.sent("GET", url)) == 1


def test_a_phone_without_its_country_code_still_matches_the_lead(run: Run) -> None:
    url = BASE + LEAD_BY_PHONE_PATH + "?phone=9988776655"
    found = run(
        lambda lk: lk.leads("Phone", "9988776655"),
        lambda m: m.get(url, payload=[lead("L-7", Phone="+91-9988776655")]),
    )
    assert found == ["L-7"]


def test_a_lead_that_matches_the_number_on_the_other_field_cannot_settle_it(run: Run) -> None:
    # RetrieveLeadByPhoneNumber searches Phone and Mobile and answers one lead: the lead whose
    # Mobile the upsert matched may be hidden behind one whose Phone has the same number.
    url = BASE + LEAD_BY_PHONE_PATH + "?phone=9988776655"
    with pytest.raises(LookupFailed, match="another field than Mobile"):
        run(
            lambda lk: lk.leads("Mobile", "9988776655"),
            lambda m: m.get(url, payload=[lead("L-8", Phone="9988776655", Mobile=None)]),
        )


def test_a_phone_value_without_digits_is_not_sent(run: Run) -> None:
    with pytest.raises(LookupFailed, match="no digits"):
        run(lambda lk: lk.leads("Phone", "n/a"), lambda m: None)
    assert run.calls == 0


def test_any_other_field_is_looked_up_with_leads_get_page_by_page(run: Run) -> None:
    url = BASE + LEADS_GET_PATH
    found = run(
        lambda lk: lk.leads("mx_Customer_Id", "C-42"),
        lambda m: (
            m.post(url, payload=[lead("L-1"), lead("L-2")]),
            m.post(url, payload=[lead("L-3")]),
        ),
        page_size=2,
    )
    assert found == ["L-1", "L-2", "L-3"]
    bodies = run.bodies("POST", url)
    assert bodies[0] == {
        "Parameter": {"LookupName": "mx_Customer_Id", "LookupValue": "C-42", "SqlOperator": "="},
        "Columns": {"Include_CSV": "ProspectID"},
        "Paging": {"PageIndex": 1, "PageSize": 2},
    }
    assert [b["Paging"]["PageIndex"] for b in bodies] == [1, 2] and run.calls == 2


def test_leads_get_that_ignores_paging_is_read_once(run: Run) -> None:
    url = BASE + LEADS_GET_PATH
    found = run(
        lambda lk: lk.leads("mx_Customer_Id", "C-42"),
        lambda m: m.post(url, payload=[lead("L-1"), lead("L-2")], repeat=True),
        page_size=2,
    )
    assert found == ["L-1", "L-2"] and run.calls == 2  # page 2 brought nothing new


def test_a_lead_id_is_its_own_lookup(run: Run) -> None:
    assert run(lambda lk: lk.leads("ProspectId", " L-9 "), lambda m: None) == ["L-9"]
    assert run.calls == 0


def test_an_empty_value_finds_nothing_to_look_for(run: Run) -> None:
    with pytest.raises(LookupFailed, match="no EmailAddress value"):
        run(lambda lk: lk.leads("EmailAddress", "  "), lambda m: None)
    assert run.calls == 0


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        ({"ProspectID": "L-1"}, "a JSON dict, not a list of leads"),
        (["L-1"], "list of other things"),
        ([{"FirstName": "A"}], "without a usable ProspectID"),
        ([{"ProspectID": "x" * 500}], "without a usable ProspectID"),
    ],
)
def test_a_lead_answer_of_another_shape_fails_the_lookup(run: Run, payload: Any, why: str) -> None:
    url = BASE + LEADS_BY_EMAIL_PATH + "?emailaddress=a@example.com"
    with pytest.raises(LookupFailed, match=why):
        run(
            lambda lk: lk.leads("EmailAddress", "a@example.com"),
            lambda m: m.get(url, payload=payload),
        )
    assert run.calls == 1  # a readable answer of the wrong shape is not asked again


# ---- activities ------------------------------------------------------------------------------


def activity(n: int, event: int = 105, **data: str) -> dict[str, Any]:
    pairs = {"ActivityEvent_Note": f"note {n}", "mx_Custom_1": str(n), **data}
    return {
        "Id": f"A-{n}",
        "EventCode": event,
        "EventName": "Purchase",
        "CreatedOn": f"2024-05-01 09:{n:02d}:00",
        "Data": [{"Key": k, "Value": v} for k, v in pairs.items()],
    }


def server(items: list[dict[str, Any]], paging: str) -> Callable[..., CallbackResult]:
    """Retrieve with ``Offset`` read as a row offset ("rows"), a page number from 0
    ("pages0") or from 1 with 0 also the first page ("pages1")."""

    def answer(url: Any, **kwargs: Any) -> CallbackResult:
        sent = json.loads(kwargs["data"])
        offset, size = int(sent["Paging"]["Offset"]), int(sent["Paging"]["RowCount"])
        start = {"rows": offset, "pages0": offset * size, "pages1": max(0, offset - 1) * size}[
            paging
        ]
        page = items[start : start + size]
        return CallbackResult(payload={"RecordCount": len(items), "ProspectActivities": page})

    return answer


@pytest.mark.parametrize("paging", ["rows", "pages0", "pages1"])
def test_every_page_is_read_whatever_offset_means(run: Run, paging: str) -> None:
    items = [activity(n) for n in range(7)]
    found = run(
        lambda lk: lk.activities("L-1", 105),
        lambda m: m.post(ACTIVITIES, callback=server(items, paging), repeat=True),
        page_size=3,
    )
    assert sorted(a.id for a in found) == [f"A-{n}" for n in range(7)]
    first = run.bodies("POST", ACTIVITIES)[0]
    assert first == {
        "Parameter": {"ActivityEvent": 105},
        "Paging": {"Offset": "0", "RowCount": "3"},
    }
    # Rows: 3 pages. Pages from 0: the row offset 3 (page 3, empty), then pages 1 and 2.
    # Pages from 1: the row offsets 3 (page 3: the last row, new) and 4 (empty), then pages 1
    # (the first again, allowed once) and 2.
    assert run.calls == {"rows": 3, "pages0": 4, "pages1": 5}[paging]


def test_one_page_is_one_call_and_an_activity_carries_what_data_says(run: Run) -> None:
    item = activity(3, ActivityDateTime="2024-05-01 09:30:00", mx_Custom_2="Widget Pro")
    item["Data"].append({"Key": "mx_Custom_9", "Value": None})
    found = run(
        lambda lk: lk.activities("L-1", 105),
        lambda m: m.post(ACTIVITIES, payload={"RecordCount": 1, "ProspectActivities": [item]}),
    )
    assert run.calls == 1
    assert found == [
        FoundActivity(
            id="A-3",
            event=105,
            created_on="2024-05-01 09:03:00",
            date_time="2024-05-01 09:30:00",
            note="note 3",
            fields={
                "ActivityEvent_Note": "note 3",
                "mx_Custom_1": "3",
                "ActivityDateTime": "2024-05-01 09:30:00",
                "mx_Custom_2": "Widget Pro",
                "mx_Custom_9": "",
            },
        )
    ]


def test_data_as_an_object_and_activity_fields_are_read_too(run: Run) -> None:
    item = {
        "Id": "A-1",
        "EventCode": "105",
        "ActivityNote": "top-level note",
        "ActivityFields": {"mx_Custom_1": 1499.0, "mx_Custom_3": {"Status": "Pending"}},
        "Data": {"mx_Custom_2": "Widget"},
    }
    (found,) = run(
        lambda lk: lk.activities("L-1", 105),
        lambda m: m.post(ACTIVITIES, payload={"RecordCount": "1", "ProspectActivities": [item]}),
    )
    assert found.note == "top-level note" and found.created_on == "" and found.date_time == ""
    assert found.fields == {
        "mx_Custom_1": "1499.0",
        "mx_Custom_3": '{"Status":"Pending"}',
        "mx_Custom_2": "Widget",
    }


def test_no_activities_is_an_empty_list(run: Run) -> None:
    for payload in (
        {"RecordCount": 0, "ProspectActivities": []},
        {"RecordCount": 0, "ProspectActivities": None},
    ):
        found = run(
            lambda lk: lk.activities("L-1", 105), lambda m, p=payload: m.post(ACTIVITIES, payload=p)
        )
        assert found == []


def test_activities_of_another_event_are_left_out(run: Run) -> None:
    items = [activity(1), activity(2, event=200), activity(3)]
    found = run(
        lambda lk: lk.activities("L-1", 105),
        lambda m: m.post(ACTIVITIES, payload={"RecordCount": 3, "ProspectActivities": items}),
    )
    assert [a.id for a in found] == ["A-1", "A-3"]


def test_paging_that_never_reaches_the_record_count_fails_rather_than_answer_short(
    run: Run,
) -> None:
    # A server that answers the first page whatever the Offset: RecordCount says 5, only 2
    # can be read. "Not there" would re-send a row that landed; the lookup fails instead.
    page = {"RecordCount": 5, "ProspectActivities": [activity(1), activity(2)]}
    with pytest.raises(LookupFailed, match="listed 2 of the 5 activities"):
        run(
            lambda lk: lk.activities("L-1", 105),
            lambda m: m.post(ACTIVITIES, payload=page, repeat=True),
            page_size=2,
        )
    assert run.calls == 4  # rows, then page 1 (a repeat allowed once), page 2: no more


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        ([], "a JSON list, not its object"),
        ({"ProspectActivities": []}, "without a RecordCount"),
        ({"RecordCount": 1, "ProspectActivities": ["A-1"]}, "not activity objects"),
        ({"RecordCount": 1, "ProspectActivities": [{"EventCode": 105}]}, "without a usable Id"),
    ],
)
def test_an_activity_answer_of_another_shape_fails_the_lookup(
    run: Run, payload: Any, why: str
) -> None:
    with pytest.raises(LookupFailed, match=why):
        run(lambda lk: lk.activities("L-1", 105), lambda m: m.post(ACTIVITIES, payload=payload))


# ---- retries, failures, fatal answers ---------------------------------------------------------


def test_a_500_a_429_and_a_lost_answer_are_asked_again(run: Run) -> None:
    url = BASE + LEADS_BY_EMAIL_PATH + "?emailaddress=a@example.com"
    rate = {
        "Status": "Error",
        "ExceptionType": "MXAPIRateLimitExceededException",
        "ExceptionMessage": "API calls exceeded the limit of 25 in 5 second(s)",
    }

    def mock(m: aioresponses) -> None:
        m.get(url, status=500, body="Internal Server Error")
        m.get(url, status=429, payload=rate)
        m.get(url, exception=aiohttp.ServerDisconnectedError())
        m.get(url, payload=[lead("L-1")])

    found = run(
        lambda lk: lk.leads("EmailAddress", "a@example.com"),
        mock,
        retry=RetryPolicy(max_attempts=4, base_delay=0.01),
    )
    assert found == ["L-1"] and run.calls == 4 and len(run.sent("GET", url)) == 4
    assert run.pacer is not None and run.pacer.throttled == 1  # the 429 closed the pacer
    # Backoff after the 500 and the lost answer; none after the 429: the pacer waits.
    assert len(run.waits) == 3 and run.waits[1] == 0.0


def test_an_unreadable_200_to_a_post_lookup_is_asked_again_not_ambiguous(run: Run) -> None:
    def mock(m: aioresponses) -> None:
        m.post(ACTIVITIES, status=200, body="<html>Request received</html>")
        m.post(ACTIVITIES, payload={"RecordCount": 0, "ProspectActivities": []})

    assert run(lambda lk: lk.activities("L-1", 105), mock) == [] and run.calls == 2


def test_a_lookup_that_keeps_failing_says_why_in_one_line(run: Run) -> None:
    def mock(m: aioresponses) -> None:
        m.post(
            ACTIVITIES, status=503, body="<html>\n<h1>Service\nUnavailable</h1></html>", repeat=True
        )

    with pytest.raises(LookupFailed) as caught:
        run(lambda lk: lk.activities("L-1", 105), mock)
    reason = caught.value.reason
    assert reason.startswith("ProspectActivity.svc/Retrieve answered HTTP 503")
    assert reason.endswith("(after 3 attempts)") and "\n" not in reason
    assert str(caught.value) == reason and run.calls == 3


def test_a_lookup_lost_every_time_says_so(run: Run) -> None:
    url = BASE + LEADS_BY_EMAIL_PATH + "?emailaddress=a@example.com"
    with pytest.raises(
        LookupFailed, match=r"gave no answer \(ServerDisconnectedError.*after 3 attempts"
    ):
        run(
            lambda lk: lk.leads("EmailAddress", "a@example.com"),
            lambda m: m.get(url, exception=aiohttp.ServerDisconnectedError(), repeat=True),
        )


def test_an_mx_error_is_not_asked_again(run: Run) -> None:
    body = {
        "Status": "Error",
        "ExceptionType": "MXInvalidInputException",
        "ExceptionMessage": "Invalid LookupName mx_Nope",
    }
    with pytest.raises(
        LookupFailed, match="HTTP 500: MXInvalidInputException Invalid LookupName"
    ) as caught:
        run(
            lambda lk: lk.leads("mx_Nope", "x"),
            lambda m: m.post(BASE + LEADS_GET_PATH, status=500, payload=body),
        )
    assert run.calls == 1 and "attempts" not in caught.value.reason


def test_bad_keys_stop_the_run(run: Run) -> None:
    body = {
        "Status": "Error",
        "ExceptionType": "MXUnAuthorizedAccessException",
        "ExceptionMessage": "no",
    }
    with pytest.raises(FatalApiError, match="refused the keys"):
        run(
            lambda lk: lk.activities("L-1", 105),
            lambda m: m.post(ACTIVITIES, status=401, payload=body),
        )
    assert run.calls == 1


def test_the_keys_never_reach_a_failure_reason(run: Run) -> None:
    echo = {
        "Status": "Error",
        "Message": f"bad request; headers x-LSQ-AccessKey: {CREDS.access_key}; "
        f"x-LSQ-SecretKey: {CREDS.secret_key}",
    }

    def mock(m: aioresponses) -> None:
        m.post(ACTIVITIES, status=500, payload=echo)
        m.post(ACTIVITIES, exception=aiohttp.ClientPayloadError(f"secret={CREDS.secret_key}"))

    with pytest.raises(LookupFailed) as caught:
        run(
            lambda lk: lk.activities("L-1", 105),
            mock,
            retry=RetryPolicy(max_attempts=2, base_delay=0),
        )
    reason = caught.value.reason
    assert CREDS.secret_key not in reason and CREDS.access_key not in reason
    assert "gave no answer (ClientPayloadError" in reason


# ---- the call budget -------------------------------------------------------------------------


def test_a_spent_budget_sends_nothing(run: Run) -> None:
    with pytest.raises(BudgetExhausted, match="--max-calls"):
        run(
            lambda lk: lk.activities("L-1", 105),
            lambda m: m.post(ACTIVITIES, payload={}),
            may_call=lambda: False,
        )
    assert run.calls == 0 and run.sent("POST", ACTIVITIES) == []


def test_the_budget_is_asked_before_every_attempt_and_page(run: Run) -> None:
    left = [3]

    def take() -> bool:
        if left[0] == 0:
            return False
        left[0] -= 1
        return True

    items = [activity(n) for n in range(7)]

    def mock(m: aioresponses) -> None:
        m.post(ACTIVITIES, status=500, body="oops")  # a retry counts too
        m.post(ACTIVITIES, callback=server(items, "rows"), repeat=True)

    with pytest.raises(BudgetExhausted):
        run(lambda lk: lk.activities("L-1", 105), mock, may_call=take, page_size=3)
    assert run.calls == 3 == len(run.sent("POST", ACTIVITIES))  # 500, page 1, page 2; not page 3


def test_concurrent_lookups_all_take_pacer_slots(run: Run) -> None:
    url = BASE + LEADS_BY_EMAIL_PATH

    def mock(m: aioresponses) -> None:
        for n in range(10):
            m.get(f"{url}?emailaddress=u{n}@example.com", payload=[lead(f"L-{n}")])

    async def work(lk: Lookups) -> list[list[str]]:
        return await asyncio.gather(
            *(lk.leads("EmailAddress", f"u{n}@example.com") for n in range(10))
        )

    assert run(work, mock) == [[f"L-{n}"] for n in range(10)]
    assert run.calls == 10
