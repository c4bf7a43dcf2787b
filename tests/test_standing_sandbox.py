"""A standing sandbox (``lsq-import sandbox``) on this machine: its well-known keys without
exporting them, and messages for missing keys that say what is at the --host given."""

from __future__ import annotations

import http.server
import importlib
import json
import os
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from importer.cli import cli
from importer.sandbox import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY

from .conftest import EXAMPLE_MAPPING, ROOT, read_results

# The module, not the function importer.leadsquared exports under the same name.
connect = importlib.import_module("importer.leadsquared.connect")
NO_KEYS = {"LSQ_ACCESS_KEY": "", "LSQ_SECRET_KEY": "", "LSQ_HOST": ""}


def run_at(host: str, source: Path, results: Path, env: dict[str, str] | None = None):
    args = ["run", source, "-m", EXAMPLE_MAPPING, "--results", results, "--host", host]
    args += ["--rate", "100", "--per", "1"]
    return CliRunner().invoke(cli, [str(a) for a in args], env={**NO_KEYS, **(env or {})})


def test_a_standing_sandbox_is_used_with_its_well_known_keys_and_says_so(
    tmp_path: Path, sample_rows, sandbox_thread
) -> None:
    sandbox = sandbox_thread(rate=100, per=1.0)  # the default keys, as `lsq-import sandbox`
    results = tmp_path / "r.csv"
    env = {k: v for k, v in os.environ.items() if k not in NO_KEYS}
    done = subprocess.run(
        [sys.executable, "-m", "importer", "run", str(sample_rows(3)), "-m", str(EXAMPLE_MAPPING)]
        + ["--results", str(results), "--host", sandbox.base_url, "--rate", "100", "--per", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr.splitlines() == [
        "lsq-import: WARNING: LSQ_ACCESS_KEY and LSQ_SECRET_KEY not set: using the well-known "
        f"keys of the lsq-import sandbox at {sandbox.base_url}"
    ]
    assert [line["status"] for line in read_results(results)] == ["success"] * 3
    assert len(sandbox.activities) == 3


def test_a_standing_sandbox_with_its_own_keys_asks_for_those(
    tmp_path: Path, sample_rows, sandbox_thread
) -> None:
    sandbox = sandbox_thread(rate=100, per=1.0, access_key="own-access-1", secret_key="own-sec-1")
    result = run_at(sandbox.base_url, sample_rows(2), tmp_path / "r.csv")
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == (
        "Error: LSQ_ACCESS_KEY and LSQ_SECRET_KEY not set: the lsq-import sandbox at "
        f"{sandbox.base_url} was started with its own keys; export the same ones here"
    )
    assert sandbox.calls == []  # the question is not an API call: nothing was sent


def test_nothing_listening_at_a_loopback_host_is_said_without_suggesting_sandbox(
    tmp_path: Path, sample_rows
) -> None:
    import socket

    with socket.socket() as probe:  # a port that was free a moment ago, now closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run_at(f"http://127.0.0.1:{port}", sample_rows(2), tmp_path / "r.csv")
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert message.count("\n") == 0 and "--sandbox" not in message, message
    assert "no lsq-import sandbox answers" in message and "nothing listens" in message
    assert f"lsq-import sandbox --port {port}" in message


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Some other local server: it answers JSON that is not a sandbox's, and records what it
    was sent."""

    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:
        self.seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
        body = json.dumps({"service": "something else", "well_known_keys": True}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def other_server() -> Iterator[tuple[str, list[dict[str, str]]]]:
    _Recorder.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder.seen
    finally:
        server.shutdown()
        server.server_close()


def test_another_local_server_gets_no_key_and_the_message_says_what_it_is(
    tmp_path: Path, sample_rows, other_server
) -> None:
    url, seen = other_server
    result = run_at(url, sample_rows(2), tmp_path / "r.csv")
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert "is not an lsq-import sandbox's" in message and "--sandbox" not in message, message
    assert [request["path"] for request in seen] == ["/_sandbox/info"]
    assert not any(k.startswith("x-lsq") for request in seen for k in request)


def test_one_key_set_for_a_loopback_host_asks_for_the_other(
    tmp_path: Path, sample_rows, sandbox_thread
) -> None:
    sandbox = sandbox_thread(rate=100, per=1.0)
    result = run_at(
        sandbox.base_url, sample_rows(2), tmp_path / "r.csv", {"LSQ_ACCESS_KEY": DEFAULT_ACCESS_KEY}
    )
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert message.startswith("Error: LSQ_SECRET_KEY not set: LSQ_ACCESS_KEY is set"), message
    assert "--sandbox" not in message and sandbox.calls == []


@pytest.mark.parametrize(
    "host",
    [
        "api-in21.leadsquared.com",
        "https://127.0.0.1:8787",  # not how the sandbox listens: never asked
        "https://localhost:8787",
    ],
)
def test_the_well_known_keys_are_never_tried_beyond_a_plain_http_loopback_address(
    tmp_path: Path, sample_rows, monkeypatch, host: str
) -> None:
    def must_not_ask(url: str, timeout: float = 0) -> tuple[bool | None, str]:
        raise AssertionError(f"asked {url}")

    monkeypatch.setattr(connect, "standing_sandbox", must_not_ask)
    result = run_at(host, sample_rows(2), tmp_path / "r.csv")
    assert result.exit_code == 2, result.output
    assert "LSQ_ACCESS_KEY and LSQ_SECRET_KEY not set" in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:8787", True),
        ("http://127.5.6.7:8787", True),
        ("http://[::1]:8787", True),
        ("http://localhost:8787", True),
        ("https://127.0.0.1:8787", False),
        ("http://10.0.0.1:8787", False),
        ("http://localhost.example.com", False),
        ("http://127.0.0.1.nip.io", False),
        ("http://127.0.0.1:99999", False),
    ],
)
def test_only_plain_http_loopback_counts_as_this_machine(url: str, local: bool) -> None:
    assert connect._on_this_machine(url) is local


@pytest.mark.parametrize("own_keys", [False, True])
def test_the_sandbox_says_what_it_is_and_never_its_keys(sandbox_thread, own_keys: bool) -> None:
    keys = {"access_key": "own-access-1", "secret_key": "own-sec-1"} if own_keys else {}
    sandbox = sandbox_thread(**keys)
    with urllib.request.urlopen(sandbox.base_url + "/_sandbox/info", timeout=10) as answer:
        text = answer.read().decode()
    assert json.loads(text) == {
        "service": "lsq-import sandbox",
        "well_known_keys": not own_keys,
        "limits": {
            "rate": 25,
            "per": 5.0,
            "bulk_rate": 1,
            "bulk_per": 5.0,
            "bulk_shares_limit": True,
        },
    }
    for key in (DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY, "own-access-1", "own-sec-1"):
        assert key not in text
    assert sandbox.calls == []  # not an API call: not recorded, not rate-limited
    assert connect.standing_sandbox(sandbox.base_url) == (not own_keys, "")
