"""Team mode when the database goes away: the run stops before its next call (exit 4), one
line says why, nothing written is lost, and the next run (the database back) posts every
activity once."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from .. import postgres_server
from ..conftest import read_results
from ..test_faults import _command, _env, final_lines, wait_until, write_input


@pytest.fixture
def own_cluster() -> Iterator[postgres_server.Cluster]:
    """A PostgreSQL server of this test's own, to stop and start (see tests/conftest.py's
    postgres_server for when it is skipped)."""
    try:
        with postgres_server.cluster() as made:
            yield made
    except postgres_server.Unavailable as exc:
        if os.environ.get(postgres_server.ENV_REQUIRED):
            pytest.fail(f"PostgreSQL required but: {exc}")
        pytest.skip(f"no PostgreSQL server: {exc}")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes")
def test_the_database_stopping_mid_run_stops_the_run_and_loses_nothing(
    faulty_sandbox, tmp_path: Path, own_cluster: postgres_server.Cluster
) -> None:
    source = tmp_path / "leads.csv"
    write_input(source, rows=300, keys=300)
    runner = faulty_sandbox("latency=0.01")
    results = tmp_path / "r.csv"
    command = [*_command(source, results, runner.sandbox.base_url), "--ledger", own_cluster.url]
    proc = subprocess.Popen(
        command, env=_env(), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    wait_until(lambda: final_lines(results) >= 40 or proc.poll() is not None, "progress")
    assert proc.poll() is None, "the run finished before the database stopped"
    own_cluster.stop()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 4, (out, err)
    assert "Traceback" not in err, err
    assert own_cluster.url.split("@")[1] in err and "ledger" in err, err
    landed_then = len(runner.snapshot()["activities"])
    assert 30 <= landed_then < 285
    # Nothing written is lost: every success line is an activity that landed.
    ids = {a["Id"] for a in runner.snapshot()["activities"]}
    before = read_results(results)
    done = {line["row"]: line["activity_id"] for line in before if line["status"] == "success"}
    assert set(done.values()) <= ids and len(done) >= 30

    own_cluster.start()
    again = subprocess.run(command, env=_env(), cwd=tmp_path, capture_output=True, text=True)
    assert again.returncode == 1, again.stdout + again.stderr  # 1: the refused rows
    snapshot = runner.snapshot()
    notes = Counter(a["ActivityNote"] for a in snapshot["activities"])
    lines = read_results(results)
    assert sorted(int(line["row"]) for line in lines) == list(range(2, 302))
    statuses = Counter(line["status"] for line in lines)
    # write_input: every 37th row invalid, every 41st refused by the sandbox (failed).
    assert statuses == {"success": 285, "invalid": 8, "failed": 7}, statuses
    assert len(snapshot["activities"]) == 285 and max(notes.values()) == 1
    # What the first run wrote stays as it was.
    for line in lines:
        if line["row"] in done:
            assert line["activity_id"] == done[line["row"]]
