"""Injected faults over HTTP: what each answers, what it creates, and that a seed repeats them."""

from __future__ import annotations

import asyncio
import contextlib
import json

import aiohttp
import pytest

from importer.leadsquared.classify import ApiResponse, Kind, classify
from importer.sandbox import FaultConfig, Sandbox

from .helpers import AUTH, CREATE, FakeClock, body, post, run


def classify_reply(status: int, text: str) -> Kind:
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested_200
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


def test_redirect_points_at_the_other_loopback_name_and_records_what_arrives_there() -> None:
    seen: list[tuple[int, str]] = []

    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        async with s.post(CREATE, json=body(), headers=AUTH, allow_redirects=False) as r:
            seen.append((r.status, r.headers["Location"]))
        assert sandbox.redirected == []
        # What the fault rehearses: a client that follows takes the keys to the target,
        # which answers a success with an Id that is no activity.
        async with s.post(CREATE, json=body(), headers=AUTH) as r:
            assert r.status == 200 and r.url.host == "localhost"
            assert (await r.json())["Message"]["Id"] == "not-a-leadsquared-activity"

    sandbox = run(fn, faults=FaultConfig(redirect=1.0))
    status, location = seen[0]
    port = sandbox.base_url.rsplit(":", 1)[1]
    assert status == 302
    assert location == f"http://localhost:{port}/_sandbox/redirected{CREATE}"
    assert [(c.fault, c.http_status, c.metered) for c in sandbox.calls] == [
        ("redirect", 302, False)
    ] * 2
    assert sandbox.activities == [] and sandbox.leads == {}
    [arrival] = sandbox.redirected
    assert (arrival.method, arrival.path, arrival.carried_keys, arrival.body_bytes) == (
        "GET",  # a 302 turns the POST into a GET: the body stays behind, the keys don't
        "/_sandbox/redirected" + CREATE,
        True,
        0,
    )
    assert sandbox.snapshot()["redirected"][0]["carried_keys"] is True
    sandbox.reset()
    assert sandbox.redirected == []


def test_echo_headers_answers_an_mx_error_quoting_the_request_headers_keys_included() -> None:
    replies: list[tuple[int, dict]] = []

    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        keys = {"x-LSQ-AccessKey": "u$rECHOACCESS", "x-LSQ-SecretKey": "ECHOSECRET"}
        replies.append(await post(s, body(), headers=keys))

    sandbox = run(
        fn,
        access_key="u$rECHOACCESS",
        secret_key="ECHOSECRET",
        faults=FaultConfig(echo_headers=1.0),
    )
    [(status, data)] = replies
    assert status == 500 and data["ExceptionType"] == "MXInvalidInputException"
    message = data["ExceptionMessage"]
    assert "x-LSQ-AccessKey: u$rECHOACCESS" in message
    assert "x-LSQ-SecretKey: ECHOSECRET" in message
    assert classify_reply(status, json.dumps(data)) is Kind.PERMANENT
    assert [(c.fault, c.metered, c.activity_id) for c in sandbox.calls] == [
        ("echo_headers", True, "")
    ]
    assert sandbox.activities == []


def nested_too_deeply(text: str) -> bool:
    """nested_200's body: a success with a 100,000-level Padding, which json cannot parse."""
    from importer.sandbox.faults import NESTED_BODY_DEPTH

    if "[" * NESTED_BODY_DEPTH + "]" * NESTED_BODY_DEPTH not in text:
        return False
    try:
        json.loads(text)
    except RecursionError:
        return True
    return False


def test_echo_encoded_echoes_the_headers_in_a_new_disguise_each_call() -> None:
    import base64

    from importer.sandbox.server import ECHO_DISGUISES

    replies: list[tuple[int, dict]] = []
    keys = {"x-LSQ-AccessKey": "u$rECHOACCESS", "x-LSQ-SecretKey": "ECHOSECRET"}

    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        for _ in ECHO_DISGUISES:
            replies.append(await post(s, body(), headers=keys))

    sandbox = run(
        fn,
        access_key="u$rECHOACCESS",
        secret_key="ECHOSECRET",
        faults=FaultConfig(echo_encoded=1.0),
    )
    decoded = []
    for (status, data), how in zip(replies, ECHO_DISGUISES, strict=True):
        assert status == 500 and data["ExceptionType"] == "MXInvalidInputException"
        assert classify_reply(status, json.dumps(data)) is Kind.PERMANENT
        head, shown = data["ExceptionMessage"].split(f"({how}): ", 1)
        assert "ECHOSECRET" not in shown and "u$rECHOACCESS" not in shown  # not as they are
        if how.endswith("base64"):
            shown = base64.b64decode(shown, altchars=b"-_" if how.startswith("url") else None)
            shown = shown.decode()
        elif how == "hex":
            shown = bytes.fromhex(shown).decode()
        elif how == "html entities":
            import html

            shown = html.unescape(shown)
        elif how == "json escapes":
            shown = json.loads(f'"{shown}"')
        else:
            shown = shown.replace("\n", "")
        decoded.append(shown)
    assert all("x-LSQ-SecretKey: ECHOSECRET" in shown for shown in decoded)  # yet all there
    assert all("x-LSQ-AccessKey: u$rECHOACCESS" in shown for shown in decoded)
    assert [(c.fault, c.metered, c.activity_id) for c in sandbox.calls] == [
        ("echo_encoded", True, "")
    ] * len(ECHO_DISGUISES)
    assert sandbox.activities == []


@pytest.mark.parametrize(
    ("fault", "content_type", "looks"),
    [
        ("html_200", "text/html", lambda text: text.startswith("<html>")),
        ("empty_200", "application/json", lambda text: text == ""),
        (
            "truncated_200",
            "application/json",
            lambda text: text.startswith('{"Status": "Success"') and not text.endswith("}"),
        ),
        (
            "nested_200",
            "application/json",
            lambda text: text.startswith('{"Status": "Success"') and nested_too_deeply(text),
        ),
    ],
)
def test_garbled_answers_come_after_the_activity_was_created(fault, content_type, looks) -> None:
    replies: list[tuple[int, str, str]] = []

    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        for i in range(3):
            async with s.post(CREATE, json=body(f"g{i}@example.com"), headers=AUTH) as r:
                replies.append((r.status, r.content_type, await r.text()))
        # A call the account refuses gets its error, not a garbled success.
        bad = body("not-an-email")
        assert (await post(s, bad))[0] == 500

    sandbox = run(fn, rate=100, per=1.0, faults=FaultConfig(**{fault: 1.0}))
    for status, got_type, text in replies:
        assert (status, got_type) == (200, content_type) and looks(text), text
        assert classify_reply(status, text) is Kind.AMBIGUOUS  # "it may exist": never resent
    creates = sandbox.calls[:3]
    assert [(c.fault, c.http_status, c.metered) for c in creates] == [(fault, 200, True)] * 3
    assert [c.activity_id for c in creates] == [a["Id"] for a in sandbox.activities]
    assert len(sandbox.leads) == 3
    assert sandbox.calls[3].http_status == 500 and sandbox.calls[3].activity_id == ""


def test_gzip_bomb_sends_200_kb_that_expand_to_200_mib_ending_in_the_success() -> None:
    import zlib

    from importer.sandbox.faults import GZIP_BOMB_BYTES

    seen: list[tuple[int, str | None, bytes]] = []

    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        for i in range(2):  # the second answer reuses the padding made for the first
            async with s.post(
                CREATE, json=body(f"z{i}@example.com"), headers=AUTH, auto_decompress=False
            ) as r:
                seen.append((r.status, r.headers.get("Content-Encoding"), await r.read()))

    sandbox = run(fn, faults=FaultConfig(gzip_bomb=1.0))
    assert [c.fault for c in sandbox.calls] == ["gzip_bomb"] * 2
    for (status, coding, raw), activity in zip(seen, sandbox.activities, strict=True):
        assert (status, coding) == (200, "gzip") and len(raw) < 512 * 1024
        # Decompressed piece by piece (never 200 MiB at once): its size, and how it ends.
        unpacker, size, tail = zlib.decompressobj(16 + zlib.MAX_WBITS), 0, b""
        while raw:
            piece = unpacker.decompress(raw, 1 << 20)
            raw = unpacker.unconsumed_tail
            size += len(piece)
            tail = (tail + piece)[-4096:]
        assert unpacker.eof and size > GZIP_BOMB_BYTES == 200 * 1024 * 1024
        answer = json.loads(b'{"Padding": "' + tail.lstrip(b"x"))
        assert answer["Status"] == "Success" and answer["Message"]["Id"] == activity["Id"]


def test_huge_body_streams_a_2_mib_success_without_content_length_after_creating() -> None:
    from importer.sandbox.faults import HUGE_BODY_BYTES

    seen: list[tuple[int, str | None, str | None, bytes]] = []

    async def fn(sandbox: Sandbox, s: aiohttp.ClientSession) -> None:
        async with s.post(CREATE, json=body(), headers=AUTH) as r:
            seen.append(
                (
                    r.status,
                    r.headers.get("Content-Length"),
                    r.headers.get("Transfer-Encoding"),
                    await r.read(),
                )
            )

    sandbox = run(fn, faults=FaultConfig(huge_body=1.0))
    [(status, length, encoding, raw)] = seen
    assert (status, length, encoding) == (200, None, "chunked")
    assert len(raw) == HUGE_BODY_BYTES == 2 * 1024 * 1024
    # A client without a cap reads it all and finds a success: the activity exists.
    answer = json.loads(raw)
    [activity] = sandbox.activities
    assert answer["Status"] == "Success" and answer["Message"]["Id"] == activity["Id"]
    assert [(c.fault, c.http_status, c.activity_id) for c in sandbox.calls] == [
        ("huge_body", 200, activity["Id"])
    ]
