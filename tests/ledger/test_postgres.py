"""The PostgreSQL ledger of team mode (importer.ledger.postgres) and its shared pacing slots
(importer.ledger.pacing.DatabaseSlots): what only a database shared by hosts has.

Every test here has a schema of its own on the session's throwaway server
(``postgres_ledger``, tests/conftest.py); raw SQL goes through psycopg directly."""

from __future__ import annotations

import json
import logging
import math
import os
import random
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from importer import run_import
from importer.exceptions import LedgerError
from importer.ledger.pacing import DatabaseSlots
from importer.ledger.postgres import PostgresLedger, parse
from importer.ledger.store import SCHEMA_VERSION, ClaimState, Intent, open_ledger

from ..conftest import EXAMPLE_MAPPING, ROOT, SANDBOX_KEYS, import_into
from ..test_faults import _env
from .test_pacing import most_starts_in_window

SECRET = "s3cret"


def intent(n: int, *, key: str = "") -> Intent:
    return Intent(
        n.to_bytes(16, "big"), key or f"lead{n}@example.com", "/in.csv", n, "/r.csv", f"t{n}"
    )


def connect(url: str) -> psycopg.Connection[Any]:
    """A raw connection (autocommit) into the ledger's schema, which need not exist yet."""
    conninfo, schema, _ = parse(url)
    conn = psycopg.connect(conninfo, autocommit=True)
    conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
    return conn


@pytest.fixture
def raw(postgres_ledger: str) -> Iterator[psycopg.Connection[Any]]:
    with connect(postgres_ledger) as conn:
        yield conn


def with_password(url: str) -> str:
    assert url.startswith("postgresql://lsq@"), url
    return url.replace("postgresql://lsq@", f"postgresql://lsq:{SECRET}@", 1)


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound for a moment, then let go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def db_now(conn: psycopg.Connection[Any]) -> float:
    return float(conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()[0])


# ---- what is refused ------------------------------------------------------------------------


def test_a_schema_holding_other_tables_is_refused_and_left_as_it_was(
    postgres_ledger: str, raw: psycopg.Connection[Any]
) -> None:
    _, schema, _ = parse(postgres_ledger)
    raw.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    raw.execute("CREATE TABLE invoices(id INTEGER PRIMARY KEY, total NUMERIC)")
    with pytest.raises(LedgerError) as caught:
        open_ledger(postgres_ledger)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"ledger {postgres_ledger}: schema {schema} holds tables of")
    assert "?schema=NAME" in message
    tables = raw.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,)
    ).fetchall()
    assert tables == [("invoices",)]  # no schema_version, no ledger tables: as it was


def test_a_schema_version_newer_than_this_lsq_imports_is_refused(
    postgres_ledger: str, raw: psycopg.Connection[Any]
) -> None:
    with open_ledger(postgres_ledger) as ledger:
        ledger.claim([intent(1)])
    raw.execute("INSERT INTO schema_version(version) VALUES (%s)", (SCHEMA_VERSION + 1,))
    with pytest.raises(LedgerError) as caught:
        open_ledger(postgres_ledger)
    message = str(caught.value)
    assert "\n" not in message
    assert f"schema version {SCHEMA_VERSION + 1} is newer than this lsq-import's" in message
    assert "upgrade lsq-import" in message
    assert raw.execute("SELECT count(*) FROM activities").fetchone() == (1,)  # untouched


def test_a_new_schema_is_created_at_the_codes_version_and_reopened_as_is(
    postgres_ledger: str, raw: psycopg.Connection[Any]
) -> None:
    with open_ledger(postgres_ledger) as first:
        assert first.created
    with open_ledger(postgres_ledger) as second:
        assert not second.created
    versions = raw.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
    assert versions == [(v,) for v in range(1, SCHEMA_VERSION + 1)]
    # Closed ledgers leave no claimant behind.
    assert raw.execute("SELECT count(*) FROM claimants").fetchone() == (0,)


def test_two_hosts_creating_a_new_schema_at_the_same_moment_both_open_it(
    postgres_ledger: str, raw: psycopg.Connection[Any]
) -> None:
    """The first night of team mode: cron starts lsq-import on every host at the same minute,
    on a schema none has made yet. Another host's lsq-import is caught half-way through
    making it (its transaction, under the schema's lock, not committed yet) while this one
    opens the ledger: this one waits for it, then uses the schema it made."""
    from importer.ledger.postgres import LOCK_SPACE

    _, schema, _ = parse(postgres_ledger)
    raw.execute("BEGIN")
    raw.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (LOCK_SPACE, schema))
    raw.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    opened: list[Any] = []

    def open_it() -> None:
        try:
            open_ledger(postgres_ledger).close()
            opened.append("ok")
        except LedgerError as exc:
            opened.append(exc)

    thread = threading.Thread(target=open_it)
    thread.start()
    try:
        with connect(postgres_ledger) as watch:
            deadline = time.monotonic() + 10
            while not watch.execute(
                "SELECT 1 FROM pg_stat_activity WHERE application_name = 'lsq-import' "
                "AND wait_event_type = 'Lock'"
            ).fetchone():
                assert thread.is_alive() and time.monotonic() < deadline, opened
                time.sleep(0.02)
    finally:
        raw.execute("COMMIT")
        thread.join(30)
    assert opened == ["ok"]


def test_a_missing_schema_is_not_created_when_only_read(
    postgres_ledger: str, raw: psycopg.Connection[Any]
) -> None:
    with pytest.raises(LedgerError, match="does not exist"):
        open_ledger(postgres_ledger, create=False)
    _, schema, _ = parse(postgres_ledger)
    assert (
        raw.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() is None
    )


@pytest.mark.parametrize("name", ["1abc", "a-b", "x" * 64, ""])
def test_a_schema_that_is_not_a_name_is_refused(postgres_server: str, name: str) -> None:
    with pytest.raises(LedgerError, match="is not a schema name"):
        open_ledger(f"{postgres_server}?schema={name}")


# ---- an unreachable server, and a password that is never shown -------------------------------


def test_an_unreachable_server_is_a_one_line_error_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"postgresql://lsq:{SECRET}@127.0.0.1:{closed_port()}/postgres"
    with pytest.raises(LedgerError) as caught:
        open_ledger(url)
    message = str(caught.value)
    assert "\n" not in message and SECRET not in message
    assert message.startswith(f"ledger {url.replace(':' + SECRET, '')}: cannot be reached (")
    assert SECRET not in caplog.text


def test_a_password_in_the_urls_query_is_never_shown_either() -> None:
    """libpq takes ``?password=`` as well as ``user:password@``: the one is as secret."""
    url = f"postgresql://lsq@127.0.0.1:{closed_port()}/postgres?password={SECRET}&schema=x"
    with pytest.raises(LedgerError) as caught:
        open_ledger(url)
    assert "cannot be reached" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_a_url_of_several_hosts_with_a_password_is_a_one_line_error() -> None:
    """libpq's list of hosts (``host1:port1,host2:port2``, a primary and its standby): the
    URL shown without its password is still one line, not an internal error."""
    url = f"postgresql://lsq:{SECRET}@127.0.0.1:{closed_port()},127.0.0.1:{closed_port()}/postgres"
    with pytest.raises(LedgerError) as caught:
        open_ledger(url)
    message = str(caught.value)
    assert "cannot be reached" in message and SECRET not in message, message


def test_a_run_with_an_unreachable_ledger_stops_before_sending_with_exit_2(
    tmp_path: Path, sample_rows, sandbox_thread
) -> None:
    box = sandbox_thread(rate=100, per=1.0)
    url = f"postgresql://lsq:{SECRET}@127.0.0.1:{closed_port()}/postgres?schema=nightly"
    done = subprocess.run(
        [
            sys.executable, "-m", "importer", "run", str(sample_rows(3)), "-m",
            str(EXAMPLE_MAPPING), "--host", box.base_url, "--ledger", url, "--quiet",
            "--results", str(tmp_path / "r.csv"), "--log-file", str(tmp_path / "run.log"),
            "--log-level", "debug",
        ],
        env=_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    # One line of error, after the warning that a password on a command line can be read.
    warning, error = done.stderr.splitlines()
    assert "--ledger holds a password" in warning and "ledger postgresql://" in error
    assert "Traceback" not in done.stderr and "cannot be reached" in done.stderr
    assert url.replace(f":{SECRET}", "") in done.stderr
    assert len(box.activities) == 0
    logged = (tmp_path / "run.log").read_text() if (tmp_path / "run.log").exists() else ""
    assert SECRET not in done.stdout + done.stderr + logged


def test_a_run_through_a_url_with_a_password_never_shows_it(
    tmp_path: Path, sample_rows, sandbox_thread, postgres_ledger: str, caplog
) -> None:
    """The throwaway server trusts loopback (the password is never asked for): the run goes
    through, and neither its summary nor its logs nor its output name the password."""
    caplog.set_level(logging.DEBUG)
    box = sandbox_thread(rate=100, per=1.0)
    secret = with_password(postgres_ledger)
    source = sample_rows(4)
    summary = import_into(box, source, tmp_path / "r.csv", ledger=secret)
    assert summary.by_status == {"success": 4}
    assert summary.ledger == postgres_ledger
    again = import_into(box, source, tmp_path / "r2.csv", ledger=secret)
    assert again.already_imported == 4 and len(box.activities) == 4
    for found in (summary, again):
        assert SECRET not in found.to_text() and SECRET not in json.dumps(found.to_dict())
    assert postgres_ledger in caplog.text  # the ledger is named (new, empty) ...
    assert SECRET not in caplog.text  # ... without its password
    # The command line: its output, debug log and JSON summary.
    log, out = tmp_path / "run.log", tmp_path / "summary.json"
    done = subprocess.run(
        [
            sys.executable, "-m", "importer", "run", str(source), "-m", str(EXAMPLE_MAPPING),
            "--host", box.base_url, "--ledger", secret, "--results", str(tmp_path / "r3.csv"),
            "--log-file", str(log), "--log-level", "debug", "--summary-json", str(out),
        ],
        env=_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["ledger"] == postgres_ledger
    assert "already imported" in done.stdout + done.stderr
    for text in (done.stdout, done.stderr, log.read_text(), out.read_text()):
        assert SECRET not in text


def test_run_import_with_an_unreachable_ledger_raises_without_the_password(
    tmp_path: Path, sample_rows, sandbox_thread, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    box = sandbox_thread(rate=100, per=1.0)
    url = f"postgresql://lsq:{SECRET}@127.0.0.1:{closed_port()}/postgres"
    with pytest.raises(LedgerError) as caught:
        run_import(
            sample_rows(2),
            EXAMPLE_MAPPING,
            results=tmp_path / "r.csv",
            host=box.base_url,
            credentials=SANDBOX_KEYS,
            ledger=url,
        )
    assert SECRET not in str(caught.value) and "cannot be reached" in str(caught.value)
    assert SECRET not in caplog.text and len(box.activities) == 0


# ---- claims of other hosts: liveness by heartbeat on the database's clock --------------------


def other_hosts_claim(raw: psycopg.Connection[Any], n: int, *, age: float) -> int:
    """A claimant on another host whose heartbeat is ``age`` seconds old (database clock),
    with a claim of ``intent(n)`` from its /other.csv row 7; its id."""
    claimant = raw.execute(
        "INSERT INTO claimants(host, pid, start, started_at, heartbeat) VALUES "
        "('other-host', 4242, 77, '2026-01-01 00:00:00', "
        "extract(epoch FROM clock_timestamp())::float8 - %s) RETURNING id",
        (age,),
    ).fetchone()[0]
    sources = [
        raw.execute(
            "INSERT INTO sources(path) VALUES (%s) ON CONFLICT (path) DO UPDATE SET path = "
            "excluded.path RETURNING id",
            (path,),
        ).fetchone()[0]
        for path in ("/other.csv", "/other.results.csv")
    ]
    mine = intent(n)
    raw.execute(
        "INSERT INTO activities(fingerprint, lead_key, claimant, claim_input, claim_row, "
        "claim_results, claim_token) VALUES (%s, %s, %s, %s, 7, %s, 'other-token')",
        (mine.fingerprint, mine.lead_key, claimant, sources[0], sources[1]),
    )
    return int(claimant)


def test_another_hosts_claim_with_an_old_heartbeat_is_stale_and_taken_over(
    postgres_ledger: str, raw: psycopg.Connection[Any]
) -> None:
    with open_ledger(postgres_ledger) as ledger:
        assert ledger.lease == 600.0
        other_hosts_claim(raw, 1, age=10000)
        entry = ledger.lookup(intent(1).fingerprint)
        assert entry is not None and entry.state == "stale claim"
        claim = ledger.claim([intent(1)])[0]
        assert claim.state is ClaimState.STALE and claim.previous is not None
        assert (claim.previous.input, claim.previous.row, claim.previous.results) == (
            "/other.csv",
            7,
            "/other.results.csv",
        )
        assert claim.previous.token == "other-token"
        # Now this process's, still with the dead one's attempt (looked up first) ...
        held = ledger.claim([intent(1)])[0]
        assert held.state is ClaimState.HELD and held.entry is not None
        assert held.entry.holder == "another row of this run"
        # ... until found never landed: retargeted, it is this row's to send.
        ledger.retarget([intent(1)])
        assert ledger.claim([intent(1)])[0].state is ClaimState.CLAIMED


def test_another_hosts_claim_with_a_fresh_heartbeat_is_held_and_so_is_its_lead(
    postgres_ledger: str, raw: psycopg.Connection[Any]
) -> None:
    with open_ledger(postgres_ledger) as ledger:
        other_hosts_claim(raw, 1, age=0)
        claims = ledger.claim([intent(1), intent(2, key=intent(1).lead_key)])
        assert [c.state for c in claims] == [ClaimState.HELD, ClaimState.HELD]
        assert claims[0].entry is not None
        assert claims[0].entry.holder.startswith("pid 4242 on other-host")
        assert "same lead" in claims[1].entry.holder  # type: ignore[union-attr]
        entry = ledger.lookup(intent(1).fingerprint)
        assert entry is not None and entry.state == "claimed"


@pytest.mark.parametrize(("age", "state"), [(590, ClaimState.HELD), (610, ClaimState.STALE)])
def test_the_lease_is_measured_on_the_database_clock(
    postgres_ledger: str, raw: psycopg.Connection[Any], age: float, state: ClaimState
) -> None:
    """Heartbeats written as the database's time minus ``age``: 600 s of lease decide it, on
    the clock they were written on (this host's is not read)."""
    with open_ledger(postgres_ledger) as ledger:
        other_hosts_claim(raw, 1, age=age)
        assert ledger.claim([intent(1)])[0].state is state


def test_the_heartbeat_is_written_on_the_database_clock(
    postgres_ledger: str, raw: psycopg.Connection[Any]
) -> None:
    with open_ledger(postgres_ledger) as ledger:
        raw.execute("UPDATE claimants SET heartbeat = 0")
        ledger.heartbeat()
        (beat,) = raw.execute("SELECT heartbeat FROM claimants").fetchone()
        assert abs(db_now(raw) - beat) < 5


# ---- two ledgers at once -------------------------------------------------------------------


def test_two_ledgers_claiming_the_same_activities_at_once_each_get_one(
    postgres_ledger: str,
) -> None:
    """Two PostgresLedger instances (two connections: as two hosts would be) claim the same
    fingerprints from two threads, group by group at the same moment: every fingerprint is
    CLAIMED by exactly one, HELD for the other."""
    ledgers = [PostgresLedger.open(postgres_ledger) for _ in range(2)]
    numbers = list(range(1, 401))
    groups = [numbers[i : i + 20] for i in range(0, len(numbers), 20)]
    barrier = threading.Barrier(2, timeout=30)
    states: list[dict[int, ClaimState]] = [{}, {}]
    errors: list[BaseException] = []

    def claimer(which: int) -> None:
        try:
            shuffle = random.Random(which)
            for group in groups:
                order = list(group)
                shuffle.shuffle(order)
                barrier.wait()
                claims = ledgers[which].claim([intent(n) for n in order])
                for n, claim in zip(order, claims, strict=True):
                    states[which][n] = claim.state
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(2)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors, errors
        for n in numbers:
            pair = {states[0][n], states[1][n]}
            assert pair == {ClaimState.CLAIMED, ClaimState.HELD}, (n, pair)
        with connect(postgres_ledger) as raw:
            rows = raw.execute("SELECT count(*), count(DISTINCT claimant) FROM activities")
            assert rows.fetchone() == (len(numbers), 2)
    finally:
        for ledger in ledgers:
            ledger.close()


# ---- the shared slot schedule in the database --------------------------------------------------


@pytest.fixture
def schedule(postgres_ledger: str) -> Iterator[Any]:
    """Make the ledger's shared slots of "calls" (``make(rate, per)``), closed afterwards."""
    made: list[Any] = []
    ledger = open_ledger(postgres_ledger)

    def make(rate: int, per: float) -> DatabaseSlots:
        slots = ledger.shared_schedule("calls", rate, per)
        assert isinstance(slots, DatabaseSlots)
        made.append(slots)
        return slots

    yield make
    for slots in made:
        slots.close()
    ledger.close()


def test_database_slots_hand_out_rate_slots_and_no_more(schedule) -> None:
    slots = schedule(3, 5.0)
    taken = [slots.take() for _ in range(3)]
    assert sorted(index for index, _ in taken) == [0, 1, 2]
    index, when = slots.take()
    assert index == -1 and when > time.monotonic()
    # Another process (another connection) of the same account finds none either.
    other = schedule(3, 5.0)
    assert other.rate == 3 and other.take()[0] == -1
    assert [(reopens, pid) for reopens, pid in slots.snapshot()] == [(math.inf, os.getpid())] * 3


def test_a_released_slot_reopens_per_later_and_an_unanswered_one_two_per_later(
    schedule, raw: psycopg.Connection[Any]
) -> None:
    per = 0.4
    slots = schedule(1, per)
    index, _ = slots.take()
    assert index == 0
    before = db_now(raw)
    slots.release(index, time.monotonic())
    reopens = slots.snapshot()[0][0]
    assert before + per <= reopens <= db_now(raw) + per + slots.margin
    waiting, when = slots.take()
    assert waiting == -1 and when >= time.monotonic() + per / 2
    deadline = time.monotonic() + 5
    while (taken := slots.take())[0] == -1:
        assert time.monotonic() < deadline, "the released slot never reopened"
        time.sleep(0.02)
    assert db_now(raw) >= reopens
    # No answer: the call may still be on its way, two windows.
    before = db_now(raw)
    slots.release(taken[0], None)
    assert slots.snapshot()[0][0] >= before + 2 * per
    assert slots.take()[0] == -1
    # Taken, nothing sent: given back as it was, free at once.
    raw.execute("UPDATE pacing_slots SET reopens = 0")
    index, reopens = slots.take()
    assert index == 0
    slots.give_back(index, reopens)
    assert slots.take()[0] == 0


def test_database_slots_of_several_processes_never_exceed_the_rate(schedule) -> None:
    """Four holders of the account's slots (a connection each, as four hosts), each wanting
    calls as fast as it can for a while: never more than ``rate`` held at once, nor started in
    any window of ``per``."""
    rate, per, calls = 3, 0.25, 10
    holders = [schedule(rate, per) for _ in range(4)]
    lock = threading.Lock()
    held = [0]
    most = [0]
    starts: list[float] = []
    errors: list[BaseException] = []

    def caller(slots: DatabaseSlots) -> None:
        try:
            for _ in range(calls):
                while True:
                    index, when = slots.take()
                    if index >= 0:
                        break
                    time.sleep(max(0.0, min(0.05, when - time.monotonic())))
                with lock:
                    starts.append(time.monotonic())
                    held[0] += 1
                    most[0] = max(most[0], held[0])
                time.sleep(0.01)  # the call
                with lock:
                    held[0] -= 1
                    answered = time.monotonic()
                slots.release(index, answered)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=caller, args=(h,)) for h in holders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert len(starts) == 4 * calls
    assert most[0] <= rate
    assert most_starts_in_window(starts, per) <= rate
    # Not vacuous: 40 calls through 3 slots of 0.25 s take more than three seconds.
    assert max(starts) - min(starts) >= (4 * calls / rate - 1) * per


def test_another_rate_goes_by_the_schedule_in_use_then_rewrites_a_free_one(
    schedule, raw: psycopg.Connection[Any], caplog: pytest.LogCaptureFixture
) -> None:
    first = schedule(2, 1.0)
    index, _ = first.take()
    second = schedule(5, 1.0)
    assert second.rate == 2 and "going by theirs" in caplog.text
    first.release(index, time.monotonic())
    raw.execute("UPDATE pacing_slots SET reopens = 0")  # the last window is over
    third = schedule(5, 1.0)
    assert third.rate == 5 and len(third.snapshot()) == 5


HOLDER = textwrap.dedent(
    """
    import sys, time
    from importer.ledger.store import open_ledger
    slots = open_ledger(sys.argv[1]).shared_schedule("calls", 2, float(sys.argv[2]))
    print(slots.take()[0], flush=True)
    time.sleep(60)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="kill -9 is POSIX")
def test_a_slot_held_by_a_dead_process_of_this_host_reopens_two_windows_later(
    schedule, postgres_ledger: str, raw: psycopg.Connection[Any]
) -> None:
    per = 0.5
    slots = schedule(2, per)
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, postgres_ledger, str(per)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        held = int(proc.stdout.readline())
        assert slots.snapshot()[held] == (math.inf, proc.pid)
        free, _ = slots.take()
        assert free == 1 - held  # the held one is not handed out
        assert slots.take()[0] == -1
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    died = db_now(raw)
    deadline = time.monotonic() + 5
    while slots.snapshot()[held][1] != 0:  # seen dead at the next look (once a second)
        assert slots.take()[0] == -1
        assert time.monotonic() < deadline, "the dead holder was never noticed"
        time.sleep(0.05)
    # Its call may still be on its way: the slot waits two windows from when it was found.
    assert slots.snapshot()[held][0] >= died + 2 * per
    assert slots.take()[0] == -1


def test_a_slot_held_on_another_host_waits_for_the_hold_limit(
    schedule, raw: psycopg.Connection[Any]
) -> None:
    """Another host's process cannot be looked at: its slot is reopened once it was taken
    longer ago than a call can last (HOLD_LIMIT), not before."""
    from importer.ledger.pacing import HOLD_LIMIT

    slots = schedule(1, 0.2)
    raw.execute(
        "UPDATE pacing_slots SET host = 'other-host', pid = 1, start = 1, "
        "taken_at = extract(epoch FROM clock_timestamp()) - 10"
    )
    slots._looked = 0.0
    assert slots.take()[0] == -1
    assert slots.snapshot()[0][1] == 1  # still held
    raw.execute(
        "UPDATE pacing_slots SET taken_at = extract(epoch FROM clock_timestamp()) - %s",
        (HOLD_LIMIT + 1,),
    )
    slots._looked = 0.0
    found = db_now(raw)
    assert slots.take()[0] == -1  # reopened, two windows from now
    reopens, pid = slots.snapshot()[0]
    assert pid == 0 and reopens >= found + 2 * 0.2


def test_the_database_lost_stops_a_take_in_one_line_and_a_release_only_warns(
    schedule, raw: psycopg.Connection[Any], caplog: pytest.LogCaptureFixture
) -> None:
    from importer.exceptions import LedgerWriteError

    slots = schedule(2, 0.2)
    index, _ = slots.take()
    raw.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = 'lsq-import' AND pid != pg_backend_pid()"
    )
    slots.release(index, time.monotonic())  # left held: reopened after the hold limit
    assert "could not be released" in caplog.text
    with pytest.raises(LedgerWriteError) as caught:
        slots.take()
    assert "\n" not in str(caught.value) and "the shared pacing cannot be" in str(caught.value)
    # Made without a server: the same, before anything is sent.
    with pytest.raises(LedgerWriteError, match="nothing was sent"):
        DatabaseSlots(
            f"postgresql://lsq:{SECRET}@127.0.0.1:{closed_port()}/postgres", "x", "calls", 2, 1.0
        )


def test_lookups_are_indexed(postgres_ledger: str, raw: psycopg.Connection[Any]) -> None:
    with open_ledger(postgres_ledger):
        pass
    raw.execute("SET enable_seqscan = off")
    plan = raw.execute(
        "EXPLAIN SELECT * FROM activities WHERE fingerprint = %s", (b"x",)
    ).fetchall()
    assert "activities_pkey" in str(plan), plan
    plan = raw.execute("EXPLAIN SELECT * FROM activities WHERE lead_key = %s", ("k",)).fetchall()
    assert "activities_lead" in str(plan), plan
