"""Connecting: host and keys from arguments, the environment or an env file; a throwaway
sandbox; the one message for a refused run."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from importer.exceptions import ConfigError
from importer.leadsquared import Endpoint, connect, refused_message, resolve_endpoint
from importer.leadsquared.client import ACTIVITY_TYPES_PATH
from importer.settings import Credentials

KEYS = {"LSQ_ACCESS_KEY": "u$rkey-0001", "LSQ_SECRET_KEY": "secret-0002"}


def test_host_and_keys_come_from_the_environment_unless_given() -> None:
    found = resolve_endpoint(environ={**KEYS, "LSQ_HOST": "api-in21.leadsquared.com"})
    assert found.url == "https://api-in21.leadsquared.com"
    assert found.credentials == Credentials("u$rkey-0001", "secret-0002")
    given = resolve_endpoint(host="api-us11.leadsquared.com", environ=KEYS)
    assert given.url == "https://api-us11.leadsquared.com"
    assert "secret" not in repr(given)


def test_an_env_file_overrides_the_environment(tmp_path: Path) -> None:
    env_file = tmp_path / "lsq.env"
    env_file.write_text("LSQ_ACCESS_KEY=fromfile\nLSQ_SECRET_KEY=filesecret\n")
    env_file.chmod(0o600)
    found = resolve_endpoint(env_file=env_file, environ=KEYS)
    assert found.credentials == Credentials("fromfile", "filesecret")


def test_missing_keys_are_refused_with_what_to_do() -> None:
    with pytest.raises(ConfigError, match="LSQ_ACCESS_KEY and LSQ_SECRET_KEY not set"):
        resolve_endpoint(environ={})


def test_a_sandbox_endpoint_needs_no_keys_and_starts_a_local_server() -> None:
    endpoint = resolve_endpoint(sandbox=True, environ={})
    assert endpoint.is_sandbox and endpoint == Endpoint(None)

    async def main() -> tuple[str, int]:
        async with connect(endpoint, rate=10, per=1.0) as client:
            answer = await client.get(ACTIVITY_TYPES_PATH)
            return client.base_url, answer.status

    url, status = asyncio.run(main())
    assert url.startswith("http://127.0.0.1:") and status == 200


@pytest.mark.parametrize("shares", [True, False])
def test_the_throwaway_sandbox_takes_the_bulk_limits_it_is_given(shares: bool) -> None:
    from importer.leadsquared.client import BULK_LEADS_PATH, CREATE_PATH

    endpoint = resolve_endpoint(sandbox=True, environ={})

    def one_lead(n: int) -> list[list[dict[str, str]]]:
        return [[{"Attribute": "EmailAddress", "Value": f"c{n}@example.com"}]]

    async def main() -> list[tuple[int, object]]:
        async with connect(
            endpoint, rate=2, per=30.0, bulk_rate=2, bulk_per=60.0, bulk_shares_limit=shares
        ) as client:
            answers = [await client.post(BULK_LEADS_PATH, one_lead(n)) for n in range(3)]
            single = {
                "LeadDetails": [
                    {"Attribute": "EmailAddress", "Value": "s@example.com"},
                    {"Attribute": "SearchBy", "Value": "EmailAddress"},
                ],
                "Activity": {"ActivityEvent": 105},
            }
            answers.append(await client.post(CREATE_PATH, single))
            return [(a.status, a.body) for a in answers]

    answers = asyncio.run(main())
    assert [status for status, _ in answers[:2]] == [200, 200]
    status, data = answers[2]
    assert status == 429 and isinstance(data, dict)
    # The bulk window (2 in 60 s) refused it; its own message names that limit.
    assert data["ExceptionMessage"] == "API calls exceeded the limit of 2 in 60 second(s)"
    # Sharing, the two bulk calls filled the ordinary window (2 in 30 s) as well.
    assert answers[3][0] == (429 if shares else 200)


def test_refused_message_names_the_host_and_what_to_check() -> None:
    keys = refused_message(401, "https://api.leadsquared.com", "MXUnAuthorizedAccessException")
    assert keys.startswith("LeadSquared refused the keys at https://api.leadsquared.com")
    assert "MXUnAuthorizedAccessException" in keys and "LSQ_ACCESS_KEY" in keys
    path = refused_message(404, "https://x.example")
    assert "answered HTTP 404" in path and "check --host" in path


@pytest.mark.parametrize("bad", ["abc\r\nX-Injected: 1", "abc\n", "\rabc", "ab\x00c", "a\tb"])
@pytest.mark.parametrize("variable", ["LSQ_ACCESS_KEY", "LSQ_SECRET_KEY"])
def test_a_key_that_cannot_be_a_header_is_refused_naming_the_variable(
    variable: str, bad: str
) -> None:
    # Whitespace around a key is stripped (a pasted newline at the end is harmless); inside
    # it, a CR/LF would split the header, so it is refused before anything is sent.
    key = "KEYHEAD" + bad + "KEYTAIL"
    with pytest.raises(ConfigError) as info:
        resolve_endpoint(environ={**KEYS, variable: key})
    message = str(info.value)
    assert "\n" not in message and variable in message
    assert "KEYHEAD" not in message and "KEYTAIL" not in message


@pytest.mark.parametrize(
    ("bad", "what"),
    [
        ("\udc85", "a byte that is not UTF-8"),  # a raw 0x85 byte in the environment
        ("\x85", "a line break"),  # NEL, U+0085
        ("\u2028", "a line break"),  # LINE SEPARATOR
        ("\u2029", "a line break"),
        ("\x0b", "a line break"),
        (" ", "a space"),
        ("\u00a0", "a character that is not ASCII (U+00A0)"),  # a no-break space from a web page
        ("\u200b", "a character that is not ASCII (U+200B)"),  # zero-width space
        ("é", "a character that is not ASCII (U+00E9)"),
    ],
)
@pytest.mark.parametrize("variable", ["LSQ_ACCESS_KEY", "LSQ_SECRET_KEY"])
def test_a_key_that_is_not_printable_ascii_is_refused_naming_the_variable(
    variable: str, bad: str, what: str
) -> None:
    """Before: a raw 0x85 byte (a surrogate escape once read) stopped the run with a
    UnicodeEncodeError, exit 70; U+2028, U+0085 and other non-ASCII characters were sent
    (and refused as wrong keys, exit 3). A key is printable ASCII without spaces."""
    key = "KEYHEAD" + bad + "KEYTAIL"
    with pytest.raises(ConfigError) as info:
        resolve_endpoint(environ={**KEYS, variable: key})
    message = str(info.value)
    assert message.startswith(f"{variable} contains {what} at position 8: "), message
    assert len(message.splitlines()) == 1 and "KEYHEAD" not in message and "KEYTAIL" not in message


@pytest.mark.parametrize("short", ["x", "Zq7", "1234567"])
@pytest.mark.parametrize("variable", ["LSQ_ACCESS_KEY", "LSQ_SECRET_KEY"])
def test_a_key_too_short_to_be_a_leadsquared_key_is_refused(variable: str, short: str) -> None:
    """Before: a one-character secret was accepted, and then scrubbed out of every word of the
    server's messages. LeadSquared's keys are dozens of characters long."""
    with pytest.raises(ConfigError) as info:
        resolve_endpoint(environ={**KEYS, variable: short})
    message = str(info.value)
    assert message.startswith(f"{variable} is shorter than 8 characters"), message
    assert short not in message.replace("8 characters", "")
    assert resolve_endpoint(environ={**KEYS, variable: "12345678"}).credentials is not None


@pytest.mark.parametrize("separator", ["\u2028", "\x85"])
def test_an_env_file_key_with_a_unicode_line_separator_is_refused_naming_file_and_line(
    tmp_path: Path, separator: str
) -> None:
    """Before: the file was split at U+2028/U+0085 as if they ended a line, so the key was cut
    and its rest read as a setting ("expected NAME=value" at a line the file does not have).
    Now the line is the key's, and the key is refused naming the file, line and variable."""
    env_file = tmp_path / "lsq.env"
    env_file.write_text(
        f"LSQ_ACCESS_KEY=fromfile-key\nLSQ_SECRET_KEY=KEYHEAD{separator}KEYTAIL\n",
        encoding="utf-8",
    )
    env_file.chmod(0o600)
    with pytest.raises(ConfigError) as info:
        resolve_endpoint(env_file=env_file, environ={})
    message = str(info.value)
    assert message.startswith(
        f"{env_file}: line 2: LSQ_SECRET_KEY contains a line break at position 8"
    ), message
    assert "KEYHEAD" not in message and "KEYTAIL" not in message
    env_file.write_bytes(b"LSQ_ACCESS_KEY=fromfile-key\nLSQ_SECRET_KEY=KEYHEAD\x85KEYTAIL\n")
    with pytest.raises(ConfigError, match="the settings file is not UTF-8 text"):
        resolve_endpoint(env_file=env_file, environ={})


def test_an_env_file_with_crlf_line_endings_is_fine_but_a_bad_key_in_it_is_named(
    tmp_path: Path,
) -> None:
    env_file = tmp_path / "lsq.env"
    env_file.write_bytes(b"LSQ_ACCESS_KEY=fromfile\r\nLSQ_SECRET_KEY=filesecret\r\n")
    env_file.chmod(0o600)
    found = resolve_endpoint(env_file=env_file, environ={})
    assert found.credentials == Credentials("fromfile", "filesecret")
    env_file.write_bytes(b"LSQ_ACCESS_KEY=fromfile\nLSQ_SECRET_KEY=file\x1bsecret\n")
    with pytest.raises(
        ConfigError, match=r"lsq\.env: line 2: LSQ_SECRET_KEY contains a control character"
    ):
        resolve_endpoint(env_file=env_file, environ={})


def test_credentials_given_in_code_are_checked_too() -> None:
    with pytest.raises(ConfigError, match="^the secret key contains a line break") as info:
        Credentials("u$rkey-0001", "secret-0002\r\nX-Injected: 1")
    assert "X-Injected" not in str(info.value)
    with pytest.raises(ConfigError, match="^the access key"):
        Credentials("u$r\nkey-0001", "secret-0002")
    with pytest.raises(ConfigError, match="^the secret key is shorter than 8 characters"):
        Credentials("u$rkey-0001", "s3cr3t")


def test_refused_message_for_a_redirect_names_its_target_and_why_it_stops() -> None:
    said = refused_message(
        302, "https://api.leadsquared.com", redirect_to="http://other.example/v2/x?k=1"
    )
    assert said == (
        "https://api.leadsquared.com answered HTTP 302 redirecting to http://other.example/v2/x:"
        " lsq-import never follows redirects with your keys; check --host"
        " (e.g. api-in21.leadsquared.com)"
    )
    assert "another address" in refused_message(307, "https://api.leadsquared.com")


def test_preflight_stops_at_a_redirect_naming_its_target() -> None:
    from aioresponses import aioresponses

    from importer.exceptions import FatalApiError
    from importer.leadsquared.client import LEAD_METADATA_PATH, LeadSquaredClient, make_session
    from importer.mapping import load_mapping
    from importer.preflight import preflight

    from ..conftest import EXAMPLE_MAPPING

    base = "https://api-in21.leadsquared.com"
    target = "https://login.example/sso"

    async def main() -> None:
        async with make_session(Credentials("u$rkey-0001", "secret-0002")) as session:
            await preflight(LeadSquaredClient(session, base), load_mapping(EXAMPLE_MAPPING))

    with aioresponses() as mocked:
        for path in (ACTIVITY_TYPES_PATH, LEAD_METADATA_PATH):
            mocked.get(base + path, status=302, headers={"Location": target}, repeat=True)
        mocked.get(target, payload=[], repeat=True)
        with pytest.raises(FatalApiError) as info:
            asyncio.run(main())
        assert all(not str(url).startswith(target) for _, url in mocked.requests)
    message = str(info.value)
    assert "\n" not in message and "redirecting to https://login.example/sso" in message
    assert "never follows redirects" in message


def test_preflight_still_retries_a_metadata_get_whose_200_it_cannot_read() -> None:
    """The AMBIGUOUS rule for unreadable 2xx answers is for POSTs; a GET is safe to repeat,
    so the preflight keeps treating an HTML 200 as transient and tries again."""
    import re

    from aioresponses import CallbackResult, aioresponses

    from importer.leadsquared.client import LeadSquaredClient, make_session
    from importer.mapping import load_mapping
    from importer.preflight import preflight
    from importer.sandbox import SandboxAccount

    from ..conftest import EXAMPLE_MAPPING

    base = "https://api-in21.leadsquared.com"
    account = SandboxAccount()
    tries: dict[str, int] = {}

    def answer(url, **kwargs) -> CallbackResult:
        path = url.path.lower()
        tries[path] = tries.get(path, 0) + 1
        if tries[path] == 1:
            return CallbackResult(status=200, body="<html>maintenance</html>")
        if path.endswith("activitytypes.get"):
            return CallbackResult(payload=account.get_activity_types())
        if path.endswith("leadsmetadata.get"):
            return CallbackResult(payload=account.get_leads_metadata())
        return CallbackResult(payload=account.get_activity_setting(url.query["code"]))

    async def no_sleep(_: float) -> None:
        return None

    async def main():
        async with make_session(Credentials("u$rkey-0001", "secret-0002")) as session:
            client = LeadSquaredClient(session, base)
            return await preflight(client, load_mapping(EXAMPLE_MAPPING), sleep=no_sleep)

    with aioresponses() as mocked:
        mocked.get(re.compile(re.escape(base) + r"/v2/.*"), callback=answer, repeat=True)
        report = asyncio.run(main())
    assert report.event == 105 and report.lead_fields_checked > 0
    assert tries and set(tries.values()) == {2}  # each GET: the HTML 200, then the data


@pytest.mark.parametrize("kind", ["device", "pipe", "huge"])
def test_an_env_file_that_is_not_a_small_regular_file_is_refused_at_once(
    tmp_path, kind: str
) -> None:
    """``--env-file /dev/zero`` read until memory ran out; a FIFO hung the run."""
    import os

    from importer.exceptions import ConfigError
    from importer.settings import read_env_file

    if kind == "device":
        path = "/dev/zero"
    elif kind == "pipe":
        path = str(tmp_path / "fifo")
        os.mkfifo(path)
    else:
        path = str(tmp_path / "big.env")
        (tmp_path / "big.env").write_text("# x\n" * 100_000)
        (tmp_path / "big.env").chmod(0o600)
    with pytest.raises(ConfigError, match="not a regular file|larger than 64 KiB") as refused:
        read_env_file(path)
    assert "readable by other users" not in str(refused.value)
