"""Keys echoed by a server are hidden before anything else sees the text."""

from __future__ import annotations

import asyncio
import base64
import json

import aiohttp
import pytest
from aioresponses import aioresponses

from importer.leadsquared.classify import Kind, classify
from importer.leadsquared.client import CREATE_PATH, LeadSquaredClient, TransportError, make_session
from importer.leadsquared.scrub import HIDDEN, WITHHELD, Scrubber
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


def b64_inside(key: str, offset: int, *, urlsafe: bool = False) -> str:
    """``key`` base64-encoded inside a longer blob, starting ``offset`` bytes into a group of
    three: the blob's characters around the key mix its bits with other bytes."""
    raw = b"P" * offset + b"headers: x-LSQ-SecretKey: " + key.encode() + b"; and so on"
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    return encode(raw).decode()


def disguises(key: str) -> dict[str, str]:
    """The encodings of ``key`` a hostile server used, each of which reached the results."""
    half = len(key) // 2
    shown = {
        **{f"base64 at {o}": b64_inside(key, o) for o in range(3)},
        **{f"urlsafe base64 at {o}": b64_inside(key, o, urlsafe=True) for o in range(3)},
        "base64 in MIME lines": "\n".join(
            b64_inside(key, 1)[i : i + 12] for i in range(0, len(b64_inside(key, 1)), 12)
        ),
        "hex": key.encode().hex(),
        "HEX": key.encode().hex().upper(),
        "hex with spaces": " ".join(f"{b:02x}" for b in key.encode()),
        "json escapes": "".join(f"\\u{ord(c):04x}" for c in key),
        "JSON ESCAPES": "".join(f"\\u{ord(c):04X}" for c in key),
        "\\x escapes": "".join(f"\\x{ord(c):02x}" for c in key),
        "html decimal": "".join(f"&#{ord(c)};" for c in key),
        "html hex": "".join(f"&#x{ord(c):x};" for c in key),
        "html double-escaped": "".join(f"&amp;#{ord(c)};" for c in key),
        "partly percent-encoded": "".join(
            f"%{ord(c):02X}" if i % 2 else c for i, c in enumerate(key)
        ),
        "line break": key[:half] + "\n" + key[half:],
        "crlf and indent": key[:half] + "\r\n    " + key[half:],
        "space": key[:half] + " " + key[half:],
        "zero-width space": key[:half] + "\u200b" + key[half:],
        "full-width": "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in key),
        # The second attack: .NET's BitConverter and Encoding.Unicode, and friends.
        "dash-separated HEX": "-".join(f"{b:02X}" for b in key.encode()),
        "colon-separated hex": ":".join(f"{b:02x}" for b in key.encode()),
        "UTF-16LE base64": base64.b64encode(key.encode("utf-16-le")).decode(),
        "UTF-16LE hex": key.encode("utf-16-le").hex(),
        "base64 of base64": base64.b64encode(base64.b64encode(key.encode())).decode(),
        "base32": base64.b32encode(key.encode()).decode(),
        "<wbr> every 8": "<p>" + "<wbr>".join(key[i : i + 8] for i in range(0, len(key), 8)),
    }
    return shown


@pytest.mark.parametrize("how", list(disguises(SECRET)))
@pytest.mark.parametrize("key", [SECRET, ACCESS, "sandbox-secret-key"])
def test_a_key_in_a_disguise_withholds_the_whole_text(key: str, how: str) -> None:
    """Before: each of these went through untouched (plain, JSON-, HTML- and URL-escaped
    forms only), into the results file and the log. Now the whole text is withheld: editing
    an encoding out of a text is where leaks hide."""
    shown = disguises(key)[how]
    scrub = Scrubber((ACCESS, SECRET, "sandbox-secret-key"))
    said = scrub.text(f"Invalid request; echo: {shown}; try again")
    assert shown not in said
    assert said == WITHHELD


def test_a_key_as_the_mojibake_of_its_utf8_is_hidden() -> None:
    # Only a key that is not ASCII has mojibake (Credentials refuses those; the scrubber
    # takes any secret).
    scrub = Scrubber([ODD_SECRET])
    for codec in ("latin-1", "cp1252"):
        shown = ODD_SECRET.encode().decode(codec)
        said = scrub.text(f"key: {shown}")
        assert shown not in said and said in (f"key: {HIDDEN}", WITHHELD)


@pytest.mark.parametrize(
    "ordinary",
    [
        "Invalid access key or secret key, or keys of another region's account",
        "API calls exceeded the limit of 25 in 5 second(s)",
        "<html><body><h1>500 - Internal server error.</h1>&nbsp;&#169; 2024</body></html>",
        "activity 3f2504e0-4f89-11d3-9a0c-0305e82c3301 created",
        base64.b64encode(b"an ordinary attachment, nothing secret in it" * 4).decode(),
        "mx_Custom_1 must be a number: got 'Widget Pro' (C:\\uploads\\x.csv, 100%)",
    ],
)
def test_ordinary_texts_are_left_alone(ordinary: str) -> None:
    assert Scrubber((ACCESS, SECRET, "sandbox-access-key")).text(ordinary) == ordinary


def test_a_disguised_key_in_an_mx_error_withholds_the_message_and_keeps_its_class() -> None:
    """The envelope still says what the answer is (a permanent MX error); only the text that
    held the key is withheld, in the parsed body and in the raw text alike."""
    echoed = {
        "Status": "Error",
        "ExceptionType": "MXInvalidInputException",
        "ExceptionMessage": f"bad request; headers (base64): {b64_inside(SECRET, 2)}",
    }
    answer = call(status=500, body=json.dumps(echoed))
    assert answer.body == {**echoed, "ExceptionMessage": WITHHELD}
    assert b64_inside(SECRET, 2) not in answer.text and "MXInvalidInputException" in answer.text
    outcome = classify(answer)
    assert outcome.kind is Kind.PERMANENT and outcome.error_message == WITHHELD


def test_a_disguised_key_in_a_page_or_transport_error_withholds_it() -> None:
    page = call(status=502, body="<html>key: " + disguises(SECRET)["html hex"] + "</html>")
    assert page.body is None and page.text == WITHHELD
    assert classify(page).error_message == f"HTTP 502: {WITHHELD}"
    cause = aiohttp.ClientPayloadError("echo: " + SECRET.encode().hex())
    error = call(exception=cause)
    assert isinstance(error, TransportError) and error.detail == WITHHELD
    assert _lost(error).error_message == WITHHELD


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
    scrub = Scrubber(["sandbox-access-key", "s3cr3t-Key"])
    said = scrub.text("headers: SANDBOX-ACCESS-KEY, S3CR3T-KEY, Sandbox-Access-Key")
    assert "ACCESS-KEY" not in said.upper() and "S3CR3T" not in said.upper()
    assert said.count(HIDDEN) == 3


def test_a_redirect_to_a_disguised_key_names_no_url() -> None:
    moved = call(status=302, headers={"Location": "https://x.example/?k=" + SECRET.encode().hex()})
    assert moved.location == WITHHELD
    assert classify(moved).error_message == f"HTTP 302 redirecting to {WITHHELD}: not followed"
