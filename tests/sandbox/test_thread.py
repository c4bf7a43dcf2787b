"""Running the sandbox for sync code (SandboxThread) and from the shell (serve)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys

import aiohttp
import pytest

from importer.exceptions import ConfigError
from importer.sandbox import SandboxThread, serve

from ..conftest import ROOT
from .helpers import body, post


def test_sandbox_thread_from_sync_code() -> None:
    async def client(base_url: str) -> list[int]:
        async with aiohttp.ClientSession(base_url=base_url) as s:
            return [(await post(s, body(f"t{i}@example.com")))[0] for i in range(3)]

    runner = SandboxThread(rate=2, per=60.0)
    assert not runner.is_running
    with runner as sandbox:
        assert runner.is_running
        assert sandbox.base_url.startswith("http://127.0.0.1:")
        statuses = asyncio.run(client(sandbox.base_url))
        snap = runner.snapshot()
    assert statuses == [200, 200, 429]
    assert len(snap["activities"]) == 2 and len(sandbox.activities) == 2
    assert json.loads(json.dumps(snap)) == snap
    assert not runner.is_running
    with pytest.raises(aiohttp.ClientConnectionError):
        asyncio.run(client(sandbox.base_url))


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "example.com"])
def test_non_loopback_hosts_are_refused(host: str) -> None:
    with pytest.raises(ConfigError, match="loopback"):
        serve(host=host, port=0)
    with pytest.raises(ConfigError, match="loopback"):
        SandboxThread(host=host)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX-only")
@pytest.mark.parametrize(
    ("faults", "shown"), [("", ""), ("drop_after=0.05,seed=7", "; faults seed=7,drop_after=0.05")]
)
def test_serve_prints_one_line_and_exits_cleanly_on_ctrl_c(faults: str, shown: str) -> None:
    code = (
        "from importer.sandbox import FaultConfig, serve; "
        f"serve(port=0, rate=7, per=2.5, faults=FaultConfig.from_spec({faults!r}))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert line.startswith("LeadSquared sandbox on http://127.0.0.1:")
        assert line.endswith(
            f" (rate 7 per 2.5 s, bulk 1 per 2.5 s also counted in the rate{shown})"
            " - Ctrl-C to stop\n"
        )
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert "Traceback" not in rest and rest == ""
