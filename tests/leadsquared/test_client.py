"""The HTTP client against aioresponses, and host/credential settings."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import aiohttp
import pytest
from aioresponses import aioresponses

from importer.exceptions import ConfigError
from importer.leadsquared.client import CREATE_PATH, LeadSquaredClient, TransportError, make_session
from importer.settings import Credentials, base_url, credentials_from_env

BASE = "https://api-in21.leadsquared.com"
URL = BASE + CREATE_PATH
CREDS = Credentials("u$rACCESS", "SECRET123")


def call(payload_body: dict, **mock_kwargs):
    async def go():
        async with make_session(CREDS) as session:
            client = LeadSquaredClient(session, BASE)
            return await client.create_lead_and_activity(payload_body)

    with aioresponses() as mocked:
        mocked.post(URL, **mock_kwargs)
        result = asyncio.run(go()) if "exception" not in mock_kwargs else None
        if result is None:
            with pytest.raises(TransportError) as info:
                asyncio.run(go())
            result = info.value
        return result, mocked


def test_keys_travel_in_headers_not_in_the_url() -> None:
    answer, mocked = call(
        {"LeadDetails": []}, status=200, payload={"Status": "Success", "Message": {"Id": "x"}}
    )
    (method, url), calls = next(iter(mocked.requests.items()))
    assert method == "POST" and str(url) == URL
    request = calls[0]
    assert "SECRET123" not in str(url) and "ACCESS" not in str(url)
    sent = json.loads(request.kwargs["data"])
    assert sent == {"LeadDetails": []}
    assert request.kwargs["headers"]["Content-Type"] == "application/json"
    assert answer.status == 200 and answer.body["Message"]["Id"] == "x"


def test_post_sends_its_body_and_query_parameters_without_the_keys() -> None:
    url = BASE + "/v2/ProspectActivity.svc/Retrieve"

    async def go():
        async with make_session(CREDS) as session:
            client = LeadSquaredClient(session, BASE)
            return await client.post(
                "/v2/ProspectActivity.svc/Retrieve", {"Parameter": {}}, {"leadId": "L-1"}
            )

    with aioresponses() as mocked:
        mocked.post(url + "?leadId=L-1", status=200, payload={"RecordCount": 0})
        answer = asyncio.run(go())
        (method, sent_url), calls = next(iter(mocked.requests.items()))
    assert method == "POST" and str(sent_url) == url + "?leadId=L-1"
    assert "SECRET123" not in str(sent_url) and "ACCESS" not in str(sent_url)
    assert json.loads(calls[0].kwargs["data"]) == {"Parameter": {}}
    assert answer.status == 200 and answer.body == {"RecordCount": 0}
    assert answer.method == "POST"


def test_session_sends_both_key_headers() -> None:
    async def go() -> dict[str, str]:
        async with make_session(CREDS) as session:
            return dict(session.headers)

    headers = asyncio.run(go())
    assert headers["x-LSQ-AccessKey"] == "u$rACCESS"
    assert headers["x-LSQ-SecretKey"] == "SECRET123"


def test_error_envelope_is_parsed() -> None:
    body = {
        "Status": "Error",
        "ExceptionType": "MXInvalidInputException",
        "ExceptionMessage": "Invalid email",
    }
    answer, _ = call({}, status=500, payload=body)
    assert answer.status == 500 and answer.body == body


def test_non_json_body_keeps_the_text() -> None:
    answer, _ = call({}, status=502, body="<html>Bad gateway</html>")
    assert answer.body is None and "Bad gateway" in answer.text


def test_connection_refused_was_not_sent() -> None:
    error, _ = call(
        {},
        exception=aiohttp.ClientConnectorError(
            connection_key=SimpleNamespace(ssl=True, host="x", port=443),  # type: ignore[arg-type]
            os_error=OSError(111, "refused"),
        ),
    )
    assert isinstance(error, TransportError) and error.maybe_sent is False


@pytest.mark.parametrize("exc", [aiohttp.ServerDisconnectedError(), TimeoutError()])
def test_lost_answer_may_have_been_sent(exc: BaseException) -> None:
    error, _ = call({}, exception=exc)
    assert isinstance(error, TransportError) and error.maybe_sent is True


def test_credentials_never_show_in_repr() -> None:
    assert "SECRET123" not in repr(CREDS) and "ACCESS" not in repr(CREDS)
    assert "SECRET123" not in str(CREDS)


def test_credentials_from_env() -> None:
    creds = credentials_from_env({"LSQ_ACCESS_KEY": "u$raaaaaa", "LSQ_SECRET_KEY": "bbbbbbbb"})
    assert creds.secrets() == ("u$raaaaaa", "bbbbbbbb")
    with pytest.raises(ConfigError, match="LSQ_SECRET_KEY not set"):
        credentials_from_env({"LSQ_ACCESS_KEY": "u$raaaaaa"})


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, "https://api.leadsquared.com"),
        ("api-in21.leadsquared.com", "https://api-in21.leadsquared.com"),
        ("https://api-us11.leadsquared.com/", "https://api-us11.leadsquared.com"),
        ("http://127.0.0.1:8787", "http://127.0.0.1:8787"),
        ("http://localhost:1", "http://localhost:1"),
        ("http://[::1]:9", "http://[::1]:9"),
    ],
)
def test_base_url(given: str | None, expected: str) -> None:
    assert base_url(given) == expected


@pytest.mark.parametrize(
    "bad", ["http://api.leadsquared.com", "ftp://x", "http://10.0.0.1", "https://x.com/?a=1"]
)
def test_base_url_refuses(bad: str) -> None:
    with pytest.raises(ConfigError, match="--host"):
        base_url(bad)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_never_followed(status: int) -> None:
    """Following would re-send the key headers to the other host (and a 302 would turn the
    POST into a GET whose answer is recorded as the row's activity)."""
    other = "http://other.example/v2/ProspectActivity.svc/CreateCustom"

    async def go():
        async with make_session(CREDS) as session:
            return await LeadSquaredClient(session, BASE).create_lead_and_activity({})

    with aioresponses() as mocked:
        mocked.post(URL, status=status, headers={"Location": other})
        mocked.post(other, payload={"Status": "Success", "Message": {"Id": "theirs"}})
        mocked.get(other, payload={"Status": "Success", "Message": {"Id": "theirs"}})
        answer = asyncio.run(go())
        assert [str(url) for _, url in mocked.requests] == [URL]  # nothing went to `other`
    assert answer.status == status and answer.location == other


def test_a_relative_redirect_is_reported_as_an_absolute_url() -> None:
    async def go():
        async with make_session(CREDS) as session:
            client = LeadSquaredClient(session, BASE)
            return await client.get("/v2/x"), client.refused_redirect

    with aioresponses() as mocked:
        mocked.get(BASE + "/v2/x", status=302, headers={"Location": "/login?next=/v2/x"})
        answer, remembered = asyncio.run(go())
    assert answer.location == BASE + "/login?next=/v2/x" == remembered


def test_answers_are_read_up_to_1_mib() -> None:
    from importer.leadsquared.client import MAX_BODY

    assert MAX_BODY == 1024 * 1024


@pytest.mark.parametrize("announced", [False, True])  # chunked, or a Content-Length
def test_a_body_over_the_cap_is_a_lost_answer_not_memory(announced: bool) -> None:
    """Unbounded, a hostile server could stream gigabytes into memory; the call went out
    (and was answered), so it may have been processed: maybe_sent."""
    from importer.leadsquared.classify import Kind
    from importer.sending.pool import _lost

    async def go(cap: int):
        async with make_session(CREDS) as session:
            return await LeadSquaredClient(session, BASE, max_body=cap).create_lead_and_activity({})

    text = json.dumps({"Status": "Success", "Message": {"Id": "x" * 80}})
    headers = {"Content-Length": str(len(text))} if announced else {}
    with aioresponses() as mocked:
        mocked.post(URL, body=text, headers=headers, repeat=True)
        assert asyncio.run(go(len(text))).body["Status"] == "Success"  # at the cap: read
        with pytest.raises(TransportError) as info:
            asyncio.run(go(len(text) - 1))
    error = info.value
    assert error.maybe_sent and error.name == "AnswerTooLarge"
    outcome = _lost(error)
    assert outcome.kind is Kind.AMBIGUOUS and outcome.error_type == "AnswerTooLarge"
    assert f"larger than {len(text) - 1} bytes" in outcome.error_message


@pytest.mark.parametrize("depth", [600, 100_000])  # past what the scrubbing walk / json allow
@pytest.mark.parametrize(("status", "kind"), [(200, "ambiguous"), (500, "transient")])
def test_a_deeply_nested_json_answer_is_an_unreadable_body_not_an_internal_error(
    depth: int, status: int, kind: str
) -> None:
    """Before: json.loads (100,000 levels) or the walk that hides the keys in parsed values
    (600 levels) raised RecursionError: exit 70 mid-run. Now the body is unreadable, and
    the classify rules say what that means: for a 2xx, the call may have been processed."""
    from importer.leadsquared.classify import classify

    nested = '{"Status": "Success", "Message": {"Id": "x"}, "Padding": '
    nested += "[" * depth + "]" * depth + "}"
    answer, _ = call({}, status=status, body=nested)
    assert answer.status == status and answer.body is None
    assert answer.text.startswith('{"Status": "Success"') and len(answer.text) <= 500
    outcome = classify(answer)
    assert outcome.kind.value == kind
    if status == 200:
        assert "nested too deeply" in outcome.error_message


def _compressed(data: bytes, coding: str) -> bytes:
    import gzip
    import zlib

    if coding == "gzip":
        return gzip.compress(data)
    if coding == "deflate":  # zlib-wrapped, as RFC 9110 says
        return zlib.compress(data)
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)  # raw deflate, as some servers send
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize("coding", ["gzip", "deflate", "raw deflate"])
def test_a_compressed_answer_is_read_and_one_that_expands_past_the_cap_is_too_large(
    coding: str,
) -> None:
    """Before: aiohttp decompressed the body before the cap was counted, so a few hundred kB
    of gzip took up to what they expand to (aiohttp 3.13 stops at 32 MiB per chunk, older
    versions not at all). Now the raw body is read up to the cap and decompressed no further
    than the cap: over it, the answer is too large, like an uncompressed one."""
    from importer.leadsquared.classify import Kind
    from importer.sending.pool import _lost

    ok = json.dumps({"Status": "Success", "Message": {"Id": "x" * 80}}).encode()
    header = "deflate" if coding == "raw deflate" else coding

    async def go(cap: int):
        async with make_session(CREDS) as session:
            return await LeadSquaredClient(session, BASE, max_body=cap).create_lead_and_activity({})

    with aioresponses() as mocked:
        mocked.post(
            URL, body=_compressed(ok, coding), headers={"Content-Encoding": header}, repeat=True
        )
        assert asyncio.run(go(len(ok))).body["Message"]["Id"] == "x" * 80  # at the cap
        with pytest.raises(TransportError) as info:
            asyncio.run(go(len(ok) - 1))
        (_, _), [request, *_] = next(iter(mocked.requests.items()))
    assert request.kwargs["auto_decompress"] is False
    assert request.kwargs["headers"]["Accept-Encoding"] == "gzip, deflate"
    error = info.value
    assert error.maybe_sent and error.name == "AnswerTooLarge"
    outcome = _lost(error)
    assert outcome.kind is Kind.AMBIGUOUS
    assert f"larger than {len(ok) - 1} bytes once decompressed" in outcome.error_message


@pytest.mark.parametrize(
    ("coding", "body", "says"),
    [
        ("gzip", b"not gzip at all", "does not decompress"),
        ("br", b"\x8b\x02\x80", "'br'"),  # never asked for (lsq-import asks gzip, deflate)
    ],
)
def test_an_answer_in_a_bad_or_unasked_encoding_is_a_lost_answer(
    coding: str, body: bytes, says: str
) -> None:
    async def go():
        async with make_session(CREDS) as session:
            return await LeadSquaredClient(session, BASE).create_lead_and_activity({})

    with aioresponses() as mocked:
        mocked.post(URL, status=200, body=body, headers={"Content-Encoding": coding})
        with pytest.raises(TransportError) as info:
            asyncio.run(go())
    error = info.value
    assert error.maybe_sent
    assert error.name == "ClientPayloadError" and says in error.detail


def test_a_lone_surrogate_in_an_answer_is_replaced_not_an_internal_error() -> None:
    """``"\\udc80"`` is valid JSON but cannot be written as UTF-8: the results line, the log
    and the summary failed with UnicodeEncodeError (exit 70)."""
    from importer.leadsquared.client import _parse_json

    body = _parse_json('{"ExceptionMessage": "bad \\udc80 text", "Ok": "\\ud83d\\ude00"}')
    assert body == {"ExceptionMessage": "bad ? text", "Ok": "\U0001f600"}


def test_a_body_travels_as_the_dry_run_prints_it() -> None:
    """Compact JSON, non-ASCII as UTF-8: the bytes ``run --dry-run`` shows are the bytes sent."""
    body = {"LeadDetails": [{"Attribute": "LastName", "Value": "Müller"}], "Activity": {"A": 1}}
    _, mocked = call(body, status=200, payload={"Status": "Success", "Message": {"Id": "x"}})
    sent = next(iter(mocked.requests.values()))[0].kwargs["data"]
    printed = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode(body)
    assert sent == printed.encode("utf-8")
