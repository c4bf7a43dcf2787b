"""Keys echoed by a server are hidden before anything else sees the text."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from aioresponses import aioresponses

from importer.leadsquared.client import CREATE_PATH, LeadSquaredClient, TransportError, make_session
from importer.leadsquared.scrub import HIDDEN, Scrubber
from importer.sending.pool import _lost
from importer.settings import Credentials

BASE = "https://api-in21.leadsquared.com"
URL = BASE + CREATE_PATH
# Printable ASCII (Credentials refuses anything else), with characters that JSON, HTML and
# URLs each escape.
ACCESS, SECRET = "u$r/ACCESS&KEY<1>", 'SeCrEt+KEY/2"~'
CREDS = Credentials(ACCESS, SECRET)
# The scrubber itself takes any text as a secret (the sandbox's keys are not Credentials).
ODD_SECRET = "SeCrEt+KEY/2 é"


def assert_clean(text: str) -> None:
    for key in (ACCESS, SECRET, "ACCESS&KEY", "SeCrEt+KEY"):
        assert key not in text, text


@pytest.mark.parametrize(
    "shown",
    [
        ODD_SECRET,
        json.dumps(ODD_SECRET)[1:-1],  # \u00e9
        json.dumps(ODD_SECRET).replace("/", "\\/")[1:-1],  # \/ as some JSON writers escape it
        "SeCrEt%2BKEY%2F2%20%C3%A9",  # URL-encoded
        "SeCrEt%2BKEY%2F2+%C3%A9",  # form-encoded
    ],
)
def test_scrubber_hides_every_form_of_a_key(shown: str) -> None:
    scrub = Scrubber((ACCESS, ODD_SECRET))
    assert scrub.text(f"headers: x-LSQ-SecretKey: {shown}; end") == (
        f"headers: x-LSQ-SecretKey: {HIDDEN}; end"
    )
    assert scrub.text("u$r/ACCESS&amp;KEY&lt;1&gt;") == HIDDEN  # HTML-escaped


def test_scrubber_walks_parsed_values_and_is_a_no_op_without_keys() -> None:
    scrub = Scrubber(CREDS.secrets())
    assert scrub.value({"a": [SECRET, 1, None, {ACCESS: "x"}]}) == {
        "a": [HIDDEN, 1, None, {HIDDEN: "x"}]
    }
    nothing = Scrubber(["", ""])
    assert not nothing and nothing.text(SECRET) == SECRET


def call(client_credentials: Credentials | None = None, **mock_kwargs):
    async def go():
        async with make_session(CREDS) as session:
            client = LeadSquaredClient(session, BASE, credentials=client_credentials)
            return await client.create_lead_and_activity({})

    with aioresponses() as mocked:
        mocked.post(URL, **mock_kwargs)
        try:
            return asyncio.run(go())
        except TransportError as exc:
            return exc


@pytest.mark.parametrize("given", [CREDS, None])  # None: the keys the session sends
def test_an_error_echoing_the_keys_is_scrubbed_in_text_and_body(given) -> None:
    echoed = {
        "Status": "Error",
        "ExceptionType": "MXInvalidInputException",
        "ExceptionMessage": f"bad; headers: x-LSQ-AccessKey: {ACCESS}; x-LSQ-SecretKey: {SECRET}",
    }
    answer = call(given, status=500, body=json.dumps(echoed, ensure_ascii=False))
    assert answer.body["ExceptionMessage"] == (
        f"bad; headers: x-LSQ-AccessKey: {HIDDEN}; x-LSQ-SecretKey: {HIDDEN}"
    )
    assert_clean(answer.text)
    assert HIDDEN in answer.text


def test_a_key_in_a_form_the_raw_text_hides_is_scrubbed_from_the_parsed_body_too() -> None:
    # Every character \u-escaped: no raw form matches, the parsed string does.
    escaped = "".join(f"\\u{ord(c):04x}" for c in SECRET)
    raw = '{"Status": "Error", "ExceptionMessage": "key: ' + escaped + '"}'
    answer = call(status=500, body=raw)
    assert answer.body == {"Status": "Error", "ExceptionMessage": f"key: {HIDDEN}"}
    assert escaped not in answer.text and HIDDEN in answer.text


def test_a_key_in_a_non_json_page_or_a_redirect_location_is_scrubbed() -> None:
    page = call(status=502, body=f"<html>x-LSQ-SecretKey: {SECRET}</html>")
    assert page.body is None and page.text == f"<html>x-LSQ-SecretKey: {HIDDEN}</html>"
    moved = call(status=302, headers={"Location": f"https://x.example/?k={ACCESS}"})
    assert_clean(moved.location)


def test_a_transport_error_quoting_a_key_is_scrubbed() -> None:
    cause = aiohttp.ClientPayloadError(f"echo x-LSQ-SecretKey: {SECRET}")
    error = call(exception=cause)
    assert isinstance(error, TransportError) and error.maybe_sent
    assert error.name == "ClientPayloadError"
    assert_clean(str(error))
    outcome = _lost(error)  # what the pool records for the row
    assert outcome.error_type == "ClientPayloadError"
    assert outcome.error_message == f"echo x-LSQ-SecretKey: {HIDDEN}"


def test_a_key_echoed_in_another_case_is_hidden_too() -> None:
    """A proxy that upper-cases echoed header values revealed the key in full."""
    from importer.leadsquared.scrub import HIDDEN, Scrubber

    scrub = Scrubber(["sandbox-access-key", "s3cr3t-Key"])
    said = scrub.text("headers: SANDBOX-ACCESS-KEY, S3CR3T-KEY, Sandbox-Access-Key")
    assert "ACCESS-KEY" not in said.upper() and "S3CR3T" not in said.upper()
    assert said.count(HIDDEN) == 3
