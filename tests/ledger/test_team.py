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
        postgres_server.not_here(exc)


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


def test_a_sandbox_run_never_takes_the_jobs_ledger_from_the_environment(
    tmp_path: Path, postgres_ledger: str
) -> None:
    """A rehearsal with --sandbox on a worker that has the job's LSQ_LEDGER must not mark
    real rows imported; --ledger still names one for it."""
    from click.testing import CliRunner

    from importer.cli import cli
    from importer.ledger.store import open_ledger

    from ..conftest import EXAMPLE_MAPPING, SAMPLE_CSV

    base = ["run", str(SAMPLE_CSV), "-m", str(EXAMPLE_MAPPING), "--sandbox", "--limit", "3"]
    base += ["--rate", "100", "--per", "1", "--quiet"]
    runner = CliRunner()
    env = {"LSQ_LEDGER": postgres_ledger}
    result = runner.invoke(cli, [*base, "--results", str(tmp_path / "a.csv")], env=env)
    assert result.exit_code == 0, result.output
    with pytest.raises(Exception, match="does not exist"):
        open_ledger(postgres_ledger, create=False)  # never opened, never created
    named = [*base, "--results", str(tmp_path / "b.csv"), "--ledger", postgres_ledger]
    result = runner.invoke(cli, named, env=env)
    assert result.exit_code == 0, result.output
    with open_ledger(postgres_ledger, create=False) as ledger:
        assert ledger.stats()["imported"] == 3


def test_a_password_on_the_command_line_is_warned_about_without_showing_it(
    postgres_ledger: str,
) -> None:
    from click.testing import CliRunner

    from importer.cli import cli

    secret = postgres_ledger.replace("postgresql://lsq@", "postgresql://lsq:s3cret@", 1)
    result = CliRunner().invoke(cli, ["ledger", "stats", "--ledger", secret])
    assert result.exit_code == 2  # nothing imported there yet
    assert "--ledger holds a password" in result.output and "PGPASSWORD" in result.output
    assert "s3cret" not in result.output


def test_libpqs_host_less_url_and_a_read_only_role(postgres_server: str) -> None:
    """``postgresql:///db?host=…&port=…&user=…`` (libpq's own form) opens the ledger; a role
    with SELECT only can read it (ledger stats), not claim in it."""
    import psycopg
    from click.testing import CliRunner

    from importer.cli import cli
    from importer.ledger.store import Imported, Intent, open_ledger

    hostport = postgres_server.split("@", 1)[1].split("/", 1)[0]
    host, port = hostport.rsplit(":", 1)
    url = f"postgresql:///postgres?host={host}&port={port}&user=lsq&schema=hostless"
    with open_ledger(url) as ledger:
        item = Intent(b"\x01" * 16, "a@example.com", "/in.csv", 2, "/r.csv")
        ledger.claim([item])
        ledger.mark_imported([Imported(item, "A-1", "L-1")])
    with psycopg.connect(postgres_server, autocommit=True) as db:
        db.execute("CREATE ROLE reader LOGIN")
        db.execute("GRANT USAGE ON SCHEMA hostless TO reader")
        db.execute("GRANT SELECT ON ALL TABLES IN SCHEMA hostless TO reader")
    reader = url.replace("user=lsq", "user=reader")
    result = CliRunner().invoke(cli, ["ledger", "stats", "--ledger", reader])
    assert result.exit_code == 0, result.output
    assert "imported activities: 1" in result.output
    with pytest.raises(Exception, match="lacks a privilege"):
        open_ledger(reader)  # a run registers itself as a claimant: INSERT needed


def test_a_new_rate_after_a_killed_holder_is_taken_and_waits_for_its_call(
    ledger_at: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The schedule of a run killed with a slot held (another rate) is not "other processes
    sharing it": the next run goes by its own rate, its slots opening only once the dead
    call's slot would have (2 * per)."""
    import signal
    import textwrap
    import time

    from importer.ledger.store import open_ledger

    from ..conftest import ROOT

    code = textwrap.dedent(
        f"""
        from importer.ledger.store import open_ledger
        slots = open_ledger({ledger_at!r}).shared_schedule("calls", 5, 1.0)
        print(slots.take()[0], flush=True)
        import time; time.sleep(60)
        """
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "0"
    holder.send_signal(signal.SIGKILL)
    holder.wait(10)
    with open_ledger(ledger_at) as ledger, caplog.at_level("WARNING"):
        slots = ledger.shared_schedule("calls", 20, 1.0)
        assert slots.rate == 20  # type: ignore[attr-defined]
        assert "going by theirs" not in caplog.text
        index, when = slots.take()
        assert index == -1 and when - time.monotonic() > 1.5  # closed for 2 * per
