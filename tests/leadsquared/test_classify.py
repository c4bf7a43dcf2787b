"""Every answer variant of the fact sheet lands in the right error class."""

from __future__ import annotations

import aiohttp
import pytest

from importer.leadsquared.classify import (
    ApiResponse,
    Kind,
    classify,
    classify_read,
    limit_in,
    transport_outcome,
)

OK = {"Status": "Success", "Message": {"Id": "act-1", "RelatedId": "lead-1"}}
RATE = {
    "Status": "Error",
    "ExceptionType": "MXAPIRateLimitExceededException",
    "ExceptionMessage": "API calls exceeded the limit of 25 in 5 second(s)",
}


def mx(etype: str, message: str = "bad") -> dict:
    return {"Status": "Error", "ExceptionType": etype, "ExceptionMessage": message}


@pytest.mark.parametrize(
    ("status", "body", "text", "kind"),
    [
        (200, OK, "", Kind.SUCCESS),
        (200, mx("MXInvalidInputException"), "", Kind.PERMANENT),
        (200, {"Status": "Error", "ExceptionMessage": "x"}, "", Kind.PERMANENT),
        (500, mx("MXInvalidInputException"), "", Kind.PERMANENT),
        (500, mx("MXDuplicateEntryException"), "", Kind.PERMANENT),
        (400, mx("MXInvalidInputException"), "", Kind.PERMANENT),
        (400, None, "Bad Request", Kind.PERMANENT),
        (429, RATE, "", Kind.RATE_LIMITED),
        (429, None, "Too Many Requests", Kind.RATE_LIMITED),
        (403, RATE, "", Kind.RATE_LIMITED),
        (200, RATE, "", Kind.RATE_LIMITED),
        (
            500,
            {
                "Status": "Error",
                "ExceptionMessage": "API calls exceeded the limit of 5 in 5 second(s)",
            },
            "",
            Kind.RATE_LIMITED,
        ),
        (500, None, "Internal Server Error", Kind.TRANSIENT),
        (502, None, "<html>Bad gateway</html>", Kind.TRANSIENT),
        (503, None, "", Kind.TRANSIENT),
        (500, {"Status": "Error"}, "", Kind.TRANSIENT),
        (401, mx("MXUnAuthorizedAccessException"), "", Kind.FATAL),
        (401, None, "", Kind.FATAL),
        (404, None, "Not Found", Kind.FATAL),
    ],
)
def test_classify_variants(status: int, body: dict | None, text: str, kind: Kind) -> None:
    assert classify(ApiResponse(status, body, text)).kind is kind


def test_success_carries_activity_and_lead_ids() -> None:
    outcome = classify(ApiResponse(200, OK))
    assert (outcome.activity_id, outcome.lead_id, outcome.http_status) == ("act-1", "lead-1", 200)


def test_success_without_related_id_leaves_lead_id_empty() -> None:
    outcome = classify(ApiResponse(200, {"Status": "Success", "Message": {"Id": "a"}}))
    assert outcome.activity_id == "a" and outcome.lead_id == ""


def test_error_envelope_is_kept() -> None:
    outcome = classify(ApiResponse(500, mx("MXInvalidInputException", "Invalid email")))
    assert outcome.error_type == "MXInvalidInputException"
    assert outcome.error_message == "Invalid email"


def test_non_json_body_is_summarised_in_one_line() -> None:
    outcome = classify(ApiResponse(502, None, "<html>\n<b>Bad gateway</b>\n</html>"))
    assert outcome.error_message == "HTTP 502: <html> <b>Bad gateway</b> </html>"


def test_transport_failure_after_sending_is_ambiguous() -> None:
    outcome = transport_outcome(aiohttp.ServerDisconnectedError(), maybe_sent=True)
    assert outcome.kind is Kind.AMBIGUOUS and outcome.http_status is None
    assert outcome.error_type == "ServerDisconnectedError"
    # The class name is error_type's; the message says what happened, without repeating it.
    assert outcome.error_message == "Server disconnected"
    bare = transport_outcome(TimeoutError(), maybe_sent=True)
    assert (bare.error_type, bare.error_message) == (
        "TimeoutError",
        "no answer; the call may have been processed",
    )


def test_connection_never_made_is_transient() -> None:
    assert transport_outcome(OSError("refused"), maybe_sent=False).kind is Kind.TRANSIENT


@pytest.mark.parametrize("status", [300, 301, 302, 303, 304, 307, 308])
def test_a_redirect_is_fatal_and_says_where_it_pointed(status: int) -> None:
    where = "https://user:pw@other.example:8443/v2/x?token=abc#frag"
    outcome = classify(ApiResponse(status, None, "<html>moved</html>", location=where))
    assert outcome.kind is Kind.FATAL
    assert outcome.redirect_to == "https://other.example:8443/v2/x"
    assert outcome.error_message == (
        f"HTTP {status} redirecting to https://other.example:8443/v2/x: not followed"
    )


def test_a_redirect_with_a_rate_limit_body_is_still_a_redirect() -> None:
    # A 3xx is never LeadSquared's own answer, whatever its body says: stop, don't slow down.
    outcome = classify(ApiResponse(302, RATE, location="http://x.example/"))
    assert outcome.kind is Kind.FATAL and outcome.redirect_to == "http://x.example/"


@pytest.mark.parametrize(
    ("status", "body", "text", "why"),
    [
        (200, None, "<html><body>Thank you</body></html>", "a body that is not JSON: <html>"),
        (200, None, "", "an empty body"),
        (
            200,
            None,
            '{"Status": "Success", "Mess',
            "JSON that does not parse (cut short, or nested too deeply?)",
        ),
        (200, [], "[]", "a JSON list, not LeadSquared's answer object"),
        (200, [1, 2], "[1, 2]", "a JSON list"),
        (200, {"Status": "Success", "Message": {"Id": {"nested": [1, 2]}}}, "", "no activity Id"),
        (200, {"Status": "Success", "Message": {"Id": 17}}, "", "no activity Id"),
        (200, {"Status": "Success", "Message": {"Id": ""}}, "", "no activity Id"),
        (200, {"Status": "Success", "Message": "Id"}, "", "no activity Id"),
        (200, {"Status": "Success"}, "", "no activity Id"),
        (200, {"Message": {"Id": "x"}}, "", "without a known Status (none)"),
        (201, {"Status": "Success", "Message": {"Id": "x"}}, "", "says Success (activity x)"),
        (204, None, "", "an empty body"),
    ],
)
def test_a_2xx_that_cannot_be_read_may_have_been_processed(status, body, text, why) -> None:
    """Retrying such a POST created a second activity each time (5 rows, 25 activities)."""
    outcome = classify(ApiResponse(status, body, text, method="POST"))
    assert outcome.kind is Kind.AMBIGUOUS
    assert outcome.activity_id == ""
    assert why in outcome.error_message and "not sent again" in outcome.error_message
    assert outcome.error_message.startswith(f"HTTP {status} with ")
    # Unknown method: treated as not safe to repeat either.
    assert classify(ApiResponse(status, body, text)).kind is Kind.AMBIGUOUS


@pytest.mark.parametrize("text", ["<html>maintenance</html>", "", '{"Status": "Succ'])
def test_an_unreadable_2xx_to_a_get_is_simply_retried(text: str) -> None:
    # A GET is safe to repeat: the preflight's metadata calls keep retrying such answers.
    assert classify(ApiResponse(200, None, text, method="GET")).kind is Kind.TRANSIENT


def test_a_success_ignores_a_lead_id_that_is_not_a_string() -> None:
    body = {"Status": "Success", "Message": {"Id": "a", "RelatedId": {"x": 1}, "LeadId": "L"}}
    assert classify(ApiResponse(200, body)).lead_id == "L"


@pytest.mark.parametrize("status", [500, 502, 503, 201])
def test_an_error_status_whose_body_says_success_is_not_sent_again(status: int) -> None:
    """HTTP 500 with ``Status: Success`` and an Id was retried as transient: the server says it
    created the activity, so a retry would post it twice. Keep the row ``unknown``."""
    body = {"Status": "Success", "Message": {"Id": "act-1", "RelatedId": "lead-1"}}
    outcome = classify(ApiResponse(status, body, "", method="POST"))
    assert outcome.kind is Kind.AMBIGUOUS
    assert "says Success (activity act-1)" in outcome.error_message
    assert "not sent again" in outcome.error_message
    # A GET (a metadata call) is safe to repeat: still retried.
    assert classify(ApiResponse(500, body, "", method="GET")).kind is Kind.TRANSIENT


@pytest.mark.parametrize("found", ["x" * 900_000, "id\udc80", "two\nlines", "é" * 10])
def test_a_success_whose_id_cannot_be_an_id_is_unknown(found: str) -> None:
    """A 900,000-character ``Message.Id`` was written into the results file, whose lines then
    passed the CSV field limit: every later run said "damaged"."""
    body = {"Status": "Success", "Message": {"Id": found}}
    outcome = classify(ApiResponse(200, body, "", method="POST"))
    assert outcome.kind is Kind.AMBIGUOUS and "not an Id" in outcome.error_message


# ---- classify_read: answers to calls that change nothing (metadata, lookups) ------------------


@pytest.mark.parametrize(
    ("status", "body", "text", "method", "kind"),
    [
        (200, [], "[]", "GET", Kind.SUCCESS),
        (200, {"RecordCount": 0, "ProspectActivities": []}, "", "POST", Kind.SUCCESS),
        (200, mx("MXInvalidInputException"), "", "POST", Kind.PERMANENT),
        (429, RATE, "", "POST", Kind.RATE_LIMITED),
        (401, None, "", "GET", Kind.FATAL),
        (500, None, "Internal Server Error", "POST", Kind.TRANSIENT),
        # A POST's unreadable 2xx leaves a CreateCustom unknown; a lookup just asks again.
        (200, None, "<html>Thank you</html>", "POST", Kind.TRANSIENT),
        (500, OK, "", "POST", Kind.TRANSIENT),
    ],
)
def test_classify_read(status: int, body, text: str, method: str, kind: Kind) -> None:
    found = classify_read(ApiResponse(status, body, text, method=method))
    assert found.kind is kind
    assert (found.problem == "") is (kind is Kind.SUCCESS)
    if kind is not Kind.SUCCESS:
        assert found.problem.startswith(f"answered HTTP {status}")


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        ("API calls exceeded the limit of 25 in 5 second(s)", (25, 5.0)),
        ("api calls EXCEEDED THE LIMIT OF 10 IN 5 SECOND(S)", (10, 5.0)),
        ("exceeded the limit of 2 in 5 seconds", (2, 5.0)),
        ("exceeded the limit of 1 in 1 second", (1, 1.0)),
        ("exceeded the limit of 10 in 1.5 second(s)", (10, 1.5)),
        ("exceeded the limit of 10 in .5 sec", (10, 0.5)),
        ("exceeded the limit of 1,000 in 5 second(s)", (1000, 5.0)),
        ("exceeded the limit of 25 calls in 5 second(s)", (25, 5.0)),
        # classify_read's problem text, as lookups and metadata calls report a refusal
        (
            "answered HTTP 429: MXAPIRateLimitExceededException API calls exceeded the limit "
            "of 10 in 5 second(s)",
            (10, 5.0),
        ),
    ],
)
def test_limit_in_reads_the_limit_a_refusal_names(text: str, limit: tuple[int, float]) -> None:
    assert limit_in(text) == limit


@pytest.mark.parametrize(
    "text",
    [
        "",
        "exceeded the limit",  # the sandbox's and some proxies' bare text
        "Too Many Requests",
        "exceeded the limit of 0 in 5 second(s)",  # no calls at all: not a limit
        "exceeded the limit of 10 in 0 second(s)",
        "exceeded the limit of 10 in 0.0 seconds",
        "exceeded the limit of 10 in " + "9" * 400 + " seconds",  # overflows to infinity
        "exceeded the limit of -3 in 5 seconds",
        "exceeded the limit of 10 in 5 minutes",  # another unit: not guessed at
        "exceeded the limit of ten in 5 seconds",
    ],
)
def test_limit_in_finds_none_where_no_usable_limit_is_named(text: str) -> None:
    assert limit_in(text) is None


def test_a_refusal_keeps_the_text_that_names_the_limit() -> None:
    # What attempt() learns from: the row call's error_message, a read's problem.
    refused = ApiResponse(429, RATE)
    assert limit_in(classify(refused).error_message) == (25, 5.0)
    assert limit_in(classify_read(refused).problem) == (25, 5.0)
