"""The API boundary against a hostile or broken server, end to end over loopback sockets.

Each test runs real imports (``importer.run_import`` or the CLI) against the sandbox at
scaled limits (100 calls per 1 s) with one of the faults that rehearse an attack or a broken
proxy, and checks what the user gets: the exit code, the one-line message, the row statuses,
and what landed in the sandbox (no duplicate activity, no key sent where it must not go, no
key in any output).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from importer.cli import cli
from importer.exitcodes import ExitStatus
from importer.sandbox import FaultConfig

from .conftest import EXAMPLE_MAPPING, SANDBOX_KEYS, import_into, read_results

KEYS_ENV = {"LSQ_ACCESS_KEY": SANDBOX_KEYS.access_key, "LSQ_SECRET_KEY": SANDBOX_KEYS.secret_key}


def run_cli(*args: object, env: dict[str, str]) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


@pytest.fixture
def log_handlers() -> Iterator[None]:
    """``--log-file`` adds a handler to the process-wide ``lsq_import`` logger: remove the
    ones a test added, so later tests do not write into this test's files."""
    logger = logging.getLogger("lsq_import")
    before, level = list(logger.handlers), logger.level
    yield
    for handler in logger.handlers[:]:
        if handler not in before:
            logger.removeHandler(handler)
            handler.close()
    logger.setLevel(level)


def run_args(source: Path, results: Path, host: str, *extra: object) -> list[object]:
    """``lsq-import run`` at the scaled limits of these tests, without reconciliation: these
    tests are about what an answer alone makes of a row (``tests/reconcile`` covers what a
    lookup then makes of an ``unknown`` one)."""
    return [
        "run",
        "--no-reconcile",
        source,
        "-m",
        EXAMPLE_MAPPING,
        "--results",
        results,
        "--host",
        host,
        "--rate",
        "100",
        "--per",
        "1",
        *extra,
    ]


# --------------------------------------------------------------------------------------------
# 3. A key with a CR or LF


def test_a_key_with_a_line_break_is_a_one_line_config_error(
    sandbox_thread, sample_rows, tmp_path
) -> None:
    """Before: aiohttp's header-injection ValueError mid-run, exit 70. Now: exit 2, one line
    naming the variable, nothing sent, the key not printed."""
    sandbox = sandbox_thread(rate=100, per=1.0)
    secret = "sandbox-secret-key\r\nX-Injected: 1"
    outcome = run_cli(
        *run_args(sample_rows(3), tmp_path / "r.csv", sandbox.base_url),
        env={"LSQ_ACCESS_KEY": "sandbox-access-key", "LSQ_SECRET_KEY": secret},
    )
    assert outcome.exit_code == 2, outcome.output
    message = outcome.stderr.strip()
    assert message.count("\n") == 0 and "LSQ_SECRET_KEY" in message, message
    assert "line break" in message and "X-Injected" not in outcome.output
    assert sandbox.calls == []


@pytest.mark.parametrize(
    ("secret", "what"),
    [
        # A raw 0x85 byte in the environment reads as a surrogate escape: it was sent on and
        # ended in aiohttp's UnicodeEncodeError, exit 70.
        ("sandbox-secret-key\udc85", "a byte that is not UTF-8"),
        ("sandbox-secret\u2028key", "a line break"),  # was sent (the server said 401: exit 3)
        ("sandbox-secret\x85key", "a line break"),
        ("Zq7", "shorter than 8 characters"),  # was sent, and scrubbed out of every word
    ],
)
def test_a_key_that_is_not_printable_ascii_or_too_short_is_refused_before_anything_is_sent(
    sandbox_thread, sample_rows, tmp_path, secret, what
) -> None:
    sandbox = sandbox_thread(rate=100, per=1.0)
    outcome = run_cli(
        *run_args(sample_rows(3), tmp_path / "r.csv", sandbox.base_url),
        env={"LSQ_ACCESS_KEY": "sandbox-access-key", "LSQ_SECRET_KEY": secret},
    )
    assert outcome.exit_code == 2, outcome.output
    message = outcome.stderr.strip()
    assert message.count("\n") == 0 and "LSQ_SECRET_KEY" in message, message
    assert what in message, message
    for part in ("sandbox-secret", "Zq7"):
        assert part not in outcome.output
    assert sandbox.calls == []


# --------------------------------------------------------------------------------------------
# 1. Redirects


def test_a_redirect_stops_the_run_and_no_key_follows_it(
    sandbox_thread, sample_rows, tmp_path
) -> None:
    """Before: aiohttp followed the 302 with both key headers to the other host, as a GET,
    and recorded that server's fake Id as the row's activity (exit 0). Now: exit 3, one line
    naming where it pointed, and nothing arrived there."""
    sandbox = sandbox_thread(rate=100, per=1.0, faults=FaultConfig(redirect=1.0))
    results = tmp_path / "r.csv"
    outcome = run_cli(*run_args(sample_rows(5), results, sandbox.base_url), env=KEYS_ENV)
    assert outcome.exit_code == 3, outcome.output
    assert sandbox.redirected == []  # no request, so no key, reached the redirect target
    assert sandbox.activities == []
    port = sandbox.base_url.rsplit(":", 1)[1]
    stopped = [line for line in outcome.output.splitlines() if line.startswith("stopped:")]
    assert stopped == [
        f"stopped: {sandbox.base_url} answered HTTP 302 redirecting to "
        f"http://localhost:{port}/_sandbox/redirected/v2/ProspectActivity.svc/CreateCustom: "
        "lsq-import never follows redirects with your keys; check --host "
        "(e.g. api-in21.leadsquared.com)"
    ]
    lines = read_results(results)
    assert lines and {line["status"] for line in lines} == {"failed"}
    assert {line["http_status"] for line in lines} == {"302"}
    assert all(line["activity_id"] == "" for line in lines)
    assert all("redirecting to http://localhost:" in line["error_message"] for line in lines)


# --------------------------------------------------------------------------------------------
# 2. Keys echoed by the server


def test_keys_echoed_by_the_server_reach_no_output(
    sandbox_thread, sample_rows, tmp_path, capfd, log_handlers
) -> None:
    """Before: the error message with both keys went into the results file, the summary
    JSON, the debug log and the HTML report. Now each has the message with <hidden>."""
    access, secret = "u$rECHOEDACCESSKEY0001", "ECHOEDSECRETKEY0002"
    sandbox = sandbox_thread(
        rate=100,
        per=1.0,
        access_key=access,
        secret_key=secret,
        faults=FaultConfig(echo_headers=1.0),
    )
    results, summary, log, html = (
        tmp_path / name for name in ("r.csv", "summary.json", "debug.log", "report.html")
    )
    env = {"LSQ_ACCESS_KEY": access, "LSQ_SECRET_KEY": secret}
    extra = ("--summary-json", summary, "--log-file", log, "--log-level", "debug")
    ran = run_cli(*run_args(sample_rows(5), results, sandbox.base_url, *extra), env=env)
    assert ran.exit_code == 1, ran.output
    reported = run_cli("report", results, "--html", html, env={})
    assert reported.exit_code == 0, reported.output
    assert [c.fault for c in sandbox.calls if c.path.endswith("CreateCustom")] == [
        "echo_headers"
    ] * 5  # the server did echo the keys, to every row

    captured = capfd.readouterr()
    outputs = {
        "results": results.read_text(encoding="utf-8"),
        "summary json": summary.read_text(encoding="utf-8"),
        "debug log": log.read_text(encoding="utf-8"),
        "html report": html.read_text(encoding="utf-8"),
        "run output": ran.output + ran.stderr,
        "report output": reported.output + reported.stderr,
        "stdout/stderr": captured.out + captured.err,
    }
    for where, text in outputs.items():
        for key in (access, secret):
            assert key not in text, f"{where} shows a key"
    # ... yet the message is kept, with the keys hidden.
    lines = read_results(results)
    assert {line["status"] for line in lines} == {"failed"} and len(lines) == 5
    assert all(
        "x-LSQ-AccessKey: <hidden>" in line["error_message"]
        and "x-LSQ-SecretKey: <hidden>" in line["error_message"]
        for line in lines
    )
    assert "&lt;hidden&gt;" in outputs["html report"] or "<hidden>" in outputs["html report"]
    assert "<hidden>" in outputs["debug log"] and "<hidden>" in outputs["summary json"]


def test_keys_echoed_in_a_disguise_reach_no_output_and_the_message_is_withheld(
    sandbox_thread, sample_rows, tmp_path, capfd, log_handlers
) -> None:
    """Before: the headers echoed base64- or hex-encoded, as HTML entities, as JSON escapes
    or split by a line break went into the results file, the summary JSON, the debug log and
    the HTML report as they came (the scrubber only knew the keys' plain and escaped forms).
    Now every such message is withheld whole, and the rows still fail as the MX error says."""
    from importer.leadsquared.scrub import WITHHELD, Scrubber
    from importer.sandbox.server import ECHO_DISGUISES

    access, secret = "u$rECHOEDACCESSKEY0001", "ECHOEDSECRETKEY0002"
    sandbox = sandbox_thread(
        rate=100,
        per=1.0,
        access_key=access,
        secret_key=secret,
        faults=FaultConfig(echo_encoded=1.0),
    )
    results, summary, log, html = (
        tmp_path / name for name in ("r.csv", "summary.json", "debug.log", "report.html")
    )
    rows = len(ECHO_DISGUISES)
    env = {"LSQ_ACCESS_KEY": access, "LSQ_SECRET_KEY": secret}
    extra = ("--summary-json", summary, "--log-file", log, "--log-level", "debug")
    ran = run_cli(*run_args(sample_rows(rows), results, sandbox.base_url, *extra), env=env)
    assert ran.exit_code == 1, ran.output
    reported = run_cli("report", results, "--html", html, env={})
    assert reported.exit_code == 0, reported.output
    creates = [c for c in sandbox.calls if c.path.endswith("CreateCustom")]
    assert [c.fault for c in creates] == ["echo_encoded"] * rows  # every disguise once

    captured = capfd.readouterr()
    outputs = {
        "results": results.read_text(encoding="utf-8"),
        "summary json": summary.read_text(encoding="utf-8"),
        "debug log": log.read_text(encoding="utf-8"),
        "html report": html.read_text(encoding="utf-8"),
        "run output": ran.output + ran.stderr,
        "report output": reported.output + reported.stderr,
        "stdout/stderr": captured.out + captured.err,
    }
    scrub = Scrubber((access, secret))
    for where, text in outputs.items():
        for key in (access, secret):
            for shown in (
                key,
                key.encode().hex(),
                "".join(f"&#{ord(c)};" for c in key),
                "".join(f"\\u{ord(c):04x}" for c in key),
                key[: len(key) // 2],  # the split disguise's first half
            ):
                assert shown not in text, f"{where} shows a key ({shown!r})"
        assert not scrub.shows_a_key(text), f"{where} shows a key in a disguise"
    lines = read_results(results)
    assert [line["status"] for line in lines] == ["failed"] * rows
    assert {line["error_type"] for line in lines} == {"MXInvalidInputException"}
    assert {line["error_message"] for line in lines} == {WITHHELD}
    assert "withheld" in outputs["summary json"] and "withheld" in outputs["debug log"]


# --------------------------------------------------------------------------------------------
# 5. A 2xx answer that cannot be read


@pytest.mark.parametrize("fault", ["html_200", "empty_200", "truncated_200", "nested_200"])
def test_an_unreadable_200_after_the_activity_was_created_is_never_sent_again(
    sandbox_thread, sample_rows, tmp_path, fault
) -> None:
    """Before: retried as transient, each retry creating another activity (5 rows became 25
    activities, rows 'failed'); nested_200 (JSON 100,000 levels deep) stopped the run with
    a RecursionError, exit 70. Now: each row is sent once and ends 'unknown'."""
    sandbox = sandbox_thread(rate=100, per=1.0, faults=FaultConfig(**{fault: 1.0}))
    source, results = sample_rows(5), tmp_path / "r.csv"
    summary = import_into(sandbox, source, results, reconcile=False)
    assert summary.exit_status is ExitStatus.ROWS_FAILED, summary.to_text()
    assert summary.by_status == {"unknown": 5} and summary.retries == 0
    assert len(sandbox.activities) == 5  # one each: the server did create them
    assert len(sandbox.arrivals("CreateCustom")) == 5
    lines = read_results(results)
    assert [line["status"] for line in lines] == ["unknown"] * 5
    assert all(line["http_status"] == "200" and line["attempts"] == "1" for line in lines)
    assert all("may have been processed" in line["error_message"] for line in lines)
    # The same command again leaves them alone (they are listed for a check, not resent).
    again = import_into(sandbox, source, results, reconcile=False)
    assert again.by_status == {"unknown": 5} and again.calls == 0
    assert len(sandbox.activities) == 5


# --------------------------------------------------------------------------------------------
# 15 (part). An answer larger than the cap


def test_a_huge_answer_is_not_read_whole_and_the_row_ends_unknown(
    sandbox_thread, sample_rows, tmp_path
) -> None:
    """Before: the 2 MiB body was read whole (a hostile server could stream gigabytes), and
    parsed as a success. Now: reading stops at 1 MiB, a lost answer after the call was
    processed: 'unknown', sent once."""
    sandbox = sandbox_thread(rate=100, per=1.0, faults=FaultConfig(huge_body=1.0))
    results = tmp_path / "r.csv"
    summary = import_into(sandbox, sample_rows(5), results, reconcile=False)
    assert summary.by_status == {"unknown": 5}, summary.to_text()
    assert summary.retries == 0 and len(sandbox.activities) == 5
    lines = read_results(results)
    assert {line["error_type"] for line in lines} == {"AnswerTooLarge"}
    assert all("larger than 1048576 bytes" in line["error_message"] for line in lines)


def test_a_lost_answer_names_its_cause_once_in_results_and_summary(
    sandbox_thread, sample_rows, tmp_path
) -> None:
    """Before: the results line read ``AnswerTooLarge,AnswerTooLarge: the answer body ...``
    and the summary ``5 unknown: AnswerTooLarge: AnswerTooLarge: ...`` (the message repeated
    the class name that error_type already holds). Now the name is said once."""
    sandbox = sandbox_thread(rate=100, per=1.0, faults=FaultConfig(huge_body=1.0))
    results = tmp_path / "r.csv"
    summary = import_into(sandbox, sample_rows(3), results, reconcile=False)
    lines = read_results(results)
    assert {(line["error_type"], line["error_message"]) for line in lines} == {
        ("AnswerTooLarge", "the answer body is larger than 1048576 bytes: not read")
    }
    text = summary.to_text()
    assert text.count("AnswerTooLarge") == 1, text
    assert "3 unknown: AnswerTooLarge: the answer body is larger than" in text, text


# --------------------------------------------------------------------------------------------
# A gzip bomb: a small compressed answer that expands past the cap

_BOMB_CLIENT = """
import asyncio, resource, sys
from importer.leadsquared.client import (
    ACTIVITY_TYPES_PATH, LeadSquaredClient, TransportError, make_session,
)
from importer.sandbox import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY
from importer.settings import Credentials

ROW = {
    "LeadDetails": [
        {"Attribute": "EmailAddress", "Value": "a@example.com"},
        {"Attribute": "SearchBy", "Value": "EmailAddress"},
    ],
    "Activity": {
        "ActivityEvent": 105,
        "ActivityNote": "bomb",
        "ActivityDateTime": "2024-05-01 09:30:00",
        "Fields": [],
    },
}

def peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB

async def main(url: str) -> None:
    keys = Credentials(DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY)
    async with make_session(keys) as session:
        client = LeadSquaredClient(session, url)
        await client.get(ACTIVITY_TYPES_PATH)  # warm up: no fault on metadata calls
        before = peak()
        try:
            answer = await client.create_lead_and_activity(ROW)
            said = f"answered {answer.status}"
        except TransportError as exc:
            said = exc.name
        print(said, before, peak())

asyncio.run(main(sys.argv[1]))
"""


def test_a_gzip_bomb_is_decompressed_no_further_than_the_cap(sandbox_thread) -> None:
    """Before: the 1 MiB cap counted decompressed bytes that aiohttp had already made, so the
    ~200 kB answer of gzip_bomb took tens of MiB (32 MiB per chunk in aiohttp 3.13; its
    full 200 MiB with the aiohttp 3.9-3.12 that pyproject allows). Now the client reads the
    compressed bytes and decompresses at most the cap: its peak memory hardly moves."""
    import subprocess
    import sys

    from .conftest import ROOT

    sandbox = sandbox_thread(rate=100, per=1.0, faults=FaultConfig(gzip_bomb=1.0))
    ran = subprocess.run(
        [sys.executable, "-c", _BOMB_CLIENT, sandbox.base_url],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert ran.returncode == 0, ran.stderr
    said, before, after = ran.stdout.split()
    grew = int(after) - int(before)
    assert grew < 16 * 1024 * 1024, f"peak memory grew by {grew / 2**20:.0f} MiB"
    assert said == "AnswerTooLarge"
    [call] = [c for c in sandbox.calls if c.path.endswith("CreateCustom")]
    assert call.fault == "gzip_bomb" and call.activity_id  # it was processed, then answered


def test_a_gzip_bomb_after_the_activity_was_created_leaves_the_row_unknown(
    sandbox_thread, sample_rows, tmp_path
) -> None:
    sandbox = sandbox_thread(rate=100, per=1.0, faults=FaultConfig(gzip_bomb=1.0))
    results = tmp_path / "r.csv"
    summary = import_into(sandbox, sample_rows(3), results, reconcile=False)
    assert summary.by_status == {"unknown": 3}, summary.to_text()
    assert summary.retries == 0 and len(sandbox.activities) == 3
    lines = read_results(results)
    assert {line["error_type"] for line in lines} == {"AnswerTooLarge"}
    assert all(
        "larger than 1048576 bytes once decompressed" in line["error_message"] for line in lines
    )
