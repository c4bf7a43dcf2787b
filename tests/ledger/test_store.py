"""The ledger's store: claims, imports, stale claims of dead processes, kill -9, commands;
on both backends (``ledger_at``: SQLite, PostgreSQL) but for what only an SQLite file has."""

from __future__ import annotations

import io
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from importer.exceptions import LedgerError
from importer.ledger.fingerprint import fingerprint
from importer.ledger.location import is_url
from importer.ledger.store import ClaimState, Imported, Intent, Ledger, open_ledger

from ..conftest import ROOT


def intent(n: int, *, row: int | None = None, results: str = "/r.csv", key: str = "") -> Intent:
    return Intent(
        n.to_bytes(16, "big"), key or f"lead{n}@example.com", "/in.csv", row or n, results, f"t{n}"
    )


def holder_process(location: str, *intents: int, lead: str = "") -> subprocess.Popen[str]:
    """Another process that claims ``intents`` in the ledger at ``location`` (a file or a
    PostgreSQL URL), says so, and waits."""
    code = textwrap.dedent(
        f"""
        import sys, time
        from importer.ledger.store import Intent, open_ledger
        ledger = open_ledger({location!r})
        claims = ledger.claim([
            Intent(n.to_bytes(16, "big"), {lead!r} or f"lead{{n}}@example.com", "/other.csv",
                   n, "/other.results.csv", f"other{{n}}")
            for n in {list(intents)!r}
        ])
        print(",".join(c.state.value for c in claims), flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == ",".join(["claimed"] * len(intents))
    return proc


def test_a_claim_is_the_rows_until_imported_then_every_other_row_skips(ledger_at: str) -> None:
    with open_ledger(ledger_at) as ledger:
        first = ledger.claim([intent(1), intent(2)])
        assert [c.state for c in first] == [ClaimState.CLAIMED] * 2
        # The same row again (a resend): still its own; another row of the run: held.
        again = ledger.claim([intent(1), intent(1, row=9)])
        assert [c.state for c in again] == [ClaimState.CLAIMED, ClaimState.HELD]
        ledger.mark_imported([Imported(intent(1), "A-1", "L-1")])
        ledger.release([intent(2).fingerprint])
        later = ledger.claim([intent(1, row=7, results="/other.csv"), intent(2, row=8)])
        assert later[0].state is ClaimState.IMPORTED
        assert later[0].entry is not None and later[0].entry.activity_id == "A-1"
        assert later[0].entry.reason().endswith("from /in.csv row 1 (activity A-1)")
        assert later[1].state is ClaimState.CLAIMED  # released: sendable again
        stats = ledger.stats()
        assert (stats["imported"], stats["claimed"]) == (1, 1)


def test_reimport_claims_an_imported_activity_and_a_failed_reimport_keeps_the_import(
    ledger_at: str,
) -> None:
    with open_ledger(ledger_at) as ledger:
        ledger.claim([intent(1)])
        ledger.mark_imported([Imported(intent(1), "A-1", "L-1")])
        assert ledger.claim([intent(1, row=5)], reimport=True)[0].state is ClaimState.CLAIMED
        ledger.release([intent(1).fingerprint])
        entry = ledger.lookup(intent(1).fingerprint)
        assert entry is not None and (entry.state, entry.activity_id) == ("imported", "A-1")


def test_another_live_process_holds_its_claims_and_its_leads_until_it_dies(
    ledger_at: str,
) -> None:
    other = holder_process(ledger_at, 1, 2)
    try:
        with open_ledger(ledger_at) as ledger:
            held = ledger.claim([intent(1), intent(50, key="lead2@example.com")])
            assert [c.state for c in held] == [ClaimState.HELD, ClaimState.HELD]
            assert held[0].entry is not None and f"pid {other.pid}" in held[0].entry.holder
            assert "same lead" in held[1].entry.holder  # type: ignore[union-attr]
            other.send_signal(signal.SIGKILL)
            other.wait(timeout=10)
            stale = ledger.claim([intent(1)])[0]
            # Taken over, with what the dead process sent: the run looks that up.
            assert stale.state is ClaimState.STALE and stale.previous is not None
            assert (stale.previous.input, stale.previous.row, stale.previous.token) == (
                "/other.csv",
                1,
                "other1",
            )
            # The lead of the dead process's other claim is free again.
            assert ledger.claim([intent(50, key="lead2@example.com")])[0].state is (
                ClaimState.CLAIMED
            )
    finally:
        other.kill()
        other.wait()


WRITER = """
import sys
from importer.ledger.store import Imported, Intent, open_ledger
ledger = open_ledger(sys.argv[1])
n = 0
while True:
    group = [Intent(i.to_bytes(16, "big"), f"k{i % 97}", "/in.csv", i, "/r.csv")
             for i in range(n, n + 20)]
    ledger.claim(group)
    print(n, flush=True)
    ledger.mark_imported([Imported(i, f"A{i.row}", "L") for i in group[:15]])
    ledger.release([i.fingerprint for i in group[15:18]])
    n += 20
"""


def activity_rows(location: str) -> list[tuple[object, object, object]]:
    """``(claimant, imported_at, activity_id)`` of every activity, read past the Ledger:
    straight from the SQLite file (after its integrity check) or the PostgreSQL schema."""
    if is_url(location):
        import psycopg
        from psycopg import sql

        from importer.ledger.postgres import parse

        conninfo, schema, _ = parse(location)
        with psycopg.connect(conninfo) as conn:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
            return conn.execute(
                "SELECT claimant, imported_at, activity_id FROM activities"
            ).fetchall()
    db = sqlite3.connect(location)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return db.execute("SELECT claimant, imported_at, activity_id FROM activities").fetchall()
    finally:
        db.close()


@pytest.mark.skipif(sys.platform == "win32", reason="kill -9 is POSIX")
@pytest.mark.parametrize("after", [3, 17, 40])
def test_kill_9_mid_write_leaves_the_ledger_consistent(ledger_at: str, after: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, ledger_at],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    for _ in range(after):
        proc.stdout.readline()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    rows = activity_rows(ledger_at)
    # Every activity is imported (with its id) or claimed (by the dead process: stale).
    assert rows and all((c is None) == bool(at and a) for c, at, a in rows)
    with open_ledger(ledger_at) as ledger:
        stats = ledger.stats()
        assert stats["imported"] >= 15 * (after - 1)
        claimed = [
            i for i in range(20 * (after + 2)) if ledger.lookup(i.to_bytes(16, "big")) is not None
        ]
        assert len(claimed) == len(rows)
        states = ledger.claim(
            [Intent(i.to_bytes(16, "big"), "k", "/x.csv", i, "/x.csv") for i in claimed]
        )
        assert {s.state for s in states} <= {ClaimState.IMPORTED, ClaimState.STALE}
        assert sum(s.state is ClaimState.IMPORTED for s in states) == stats["imported"]


def test_forget_by_input_or_date_and_export(ledger_at: str) -> None:
    with open_ledger(ledger_at) as ledger:
        a = [Intent(bytes([n]) * 16, f"k{n}", "/a.csv", n, "/r.csv") for n in range(1, 4)]
        b = [Intent(bytes([n]) * 16, f"k{n}", "/b.csv", n, "/r.csv") for n in range(4, 6)]
        ledger.claim(a + b)
        ledger.mark_imported([Imported(i, f"A{i.row}", "L") for i in a + b])
        out = io.StringIO()
        assert ledger.export(out) == 5 and out.getvalue().count("\n") == 6
        assert sorted(ledger.inputs()) == ["/a.csv", "/b.csv"]
        assert ledger.forget(input="/a.csv") == 3
        assert ledger.claim(a[:1])[0].state is ClaimState.CLAIMED
        assert ledger.forget(before="2000-01-01") == 0
        assert ledger.forget(before="2999-01-01") == 2  # the claim of a[0] is never forgotten
        assert ledger.stats()["claimed"] == 1


def test_not_a_ledger_is_a_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "l.sqlite"
    bad.write_bytes(b"PK\x03\x04 a zip someone named so" * 200)
    with pytest.raises(LedgerError, match=r"l\.sqlite: not an lsq-import ledger, or damaged"):
        Ledger.open(bad)
    other = tmp_path / "app.sqlite"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE t(x)")
    db.commit()
    db.close()
    with pytest.raises(LedgerError, match="a SQLite database of something else"):
        Ledger.open(other)
    db = sqlite3.connect(other)
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    assert tables == ["t"]  # left as it was
    with pytest.raises(LedgerError, match="is a folder"):
        Ledger.open(tmp_path)


def test_the_fingerprint_is_the_activity_not_the_token_nor_the_lead_attributes() -> None:
    body = {
        "LeadDetails": [
            {"Attribute": "EmailAddress", "Value": "A@x.com"},
            {"Attribute": "City", "Value": "Pune"},
            {"Attribute": "SearchBy", "Value": "EmailAddress"},
        ],
        "Activity": {
            "ActivityEvent": 105,
            "ActivityNote": "note",
            "ActivityDateTime": "2024-05-01 10:00:00",
            "Fields": [
                {"SchemaName": "mx_Custom_1", "Value": "1"},
                {"SchemaName": "mx_Custom_5", "Value": "token-a"},
            ],
        },
    }
    other = {
        **body,
        "LeadDetails": [
            {**d, "Value": "Nagpur"} if d["Attribute"] == "City" else d for d in body["LeadDetails"]
        ],  # fmt: skip
    }
    other["Activity"] = {
        **body["Activity"],
        "Fields": [{"SchemaName": "mx_Custom_5", "Value": "token-b"},
                   {"SchemaName": "mx_Custom_1", "Value": "1"}],
    }  # fmt: skip
    one = fingerprint(" a@x.com", body, token_field="mx_Custom_5")
    two = fingerprint("a@X.com", other, token_field="mx_Custom_5")
    assert one is not None and two is not None and one[0] == two[0]
    payload_one = fingerprint("a@x.com", body, dedupe="payload", token_field="mx_Custom_5")
    payload_two = fingerprint("a@x.com", other, dedupe="payload", token_field="mx_Custom_5")
    assert payload_one and payload_two and payload_one[0] == payload_two[0]
    assert payload_one[1] != payload_two[1]
    changed = {**body, "Activity": {**body["Activity"], "ActivityNote": "note 2"}}
    three = fingerprint("a@x.com", changed, token_field="mx_Custom_5")
    assert three is not None and three[0] != one[0]
    assert fingerprint("a@x.com", body, dedupe="off") is None


def test_a_lookup_in_a_large_ledger_is_indexed(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "l.sqlite") as ledger:
        plan = ledger._db.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM activities WHERE fingerprint=?", (b"x",)
        ).fetchall()
        assert any("PRIMARY KEY" in str(step) or "USING" in str(step) for step in plan), plan
        plan = ledger._db.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM activities WHERE lead_key=?", ("k",)
        ).fetchall()
        assert any("activities_lead" in str(step) for step in plan), plan
        assert time.monotonic() > 0


def test_a_new_process_never_takes_a_finished_ones_claims_for_its_own(ledger_at: str) -> None:
    """Claimant ids are never reused: a ledger opened after the last one closed (its claimant
    row gone, its unknown rows still claimed) finds those claims stale, not its own."""
    with open_ledger(ledger_at) as first:
        first.claim([intent(1)])
    with open_ledger(ledger_at) as second:
        claim = second.claim([intent(1)])[0]  # the same row of the same results file, even
        assert claim.state is ClaimState.STALE and claim.previous is not None
        assert claim.previous.token == "t1"
