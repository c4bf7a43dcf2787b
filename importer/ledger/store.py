"""The ledger: what lsq-import has imported into one account, in a SQLite database.

One row per activity, keyed by its fingerprint (:mod:`importer.ledger.fingerprint`):

* **claimed**: a process (``claimant``) is about to send it, or sent it and has no answer yet.
  The claim is committed (WAL, ``synchronous=FULL``) before the call leaves, so a second
  process, whatever its results file, never sends the same activity at once; it holds the
  source of the attempt (input, row, results file, row token) so that a claim left by a dead
  process can be looked up in LeadSquared like an ``unknown`` row.
* **imported**: it exists in LeadSquared, with its activity and lead ids, when, and the input
  file and row it came from. A row with the same fingerprint is skipped as already imported.

A row is also held back while another live process has a claim on the same lead (its lead
key): rows of one lead are never in flight in two processes at once, as the worker pool keeps
them apart within one. A claim is **held** while its process lives (same host: the process id
and start time; another host: a heartbeat younger than the lease), **stale** once it died.
Whoever meets a stale claim takes it over (the source is kept) and settles it: looked up, then
marked imported or sent.

Every method is synchronous and may wait on the disk: the import calls them from a thread.
A kill -9 at any point leaves the database consistent: each change is one transaction.
"""

from __future__ import annotations

import contextlib
import csv
import enum
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..exceptions import LedgerError
from .claimant import Claimant

if TYPE_CHECKING:
    from ..sending.pacer import SharedSchedule

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sources(id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS claimants(
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: a dead claimant's claims stay its
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    start INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    heartbeat REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS activities(
    fingerprint BLOB PRIMARY KEY,
    lead_key TEXT NOT NULL,
    activity_id TEXT,
    lead_id TEXT,
    imported_at TEXT,
    input INTEGER,
    row INTEGER,
    claimant INTEGER,
    claim_input INTEGER,
    claim_row INTEGER,
    claim_results INTEGER,
    claim_token TEXT,
    lead_digest BLOB,
    claim_lead_digest BLOB
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS activities_lead ON activities(lead_key);
CREATE INDEX IF NOT EXISTS activities_input ON activities(input);
CREATE INDEX IF NOT EXISTS activities_claimant ON activities(claimant)
    WHERE claimant IS NOT NULL;
"""


def utc_text(when: float | None = None) -> str:
    """UTC as the ledger keeps it: ``YYYY-MM-DD HH:MM:SS``."""
    moment = datetime.fromtimestamp(time.time() if when is None else when, UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


class _Foreign(sqlite3.DatabaseError):
    """Not a ledger this lsq-import can use (said as it is)."""


def _why(exc: BaseException) -> str:
    """What to do about an SQLite error, in a few words."""
    if isinstance(exc, _Foreign):
        return str(exc)
    text = str(exc)
    lower = text.lower()
    if "not a database" in lower or "malformed" in lower:
        return (
            f"not an lsq-import ledger, or damaged ({text}): restore it from its backup or "
            "name another file"
        )
    if "readonly" in lower or "unable to open" in lower or "permission" in lower:
        return f"cannot be written ({text}): check the file's and its folder's permissions"
    if "disk" in lower or "full" in lower or "i/o" in lower:
        return f"cannot be written ({text}): free disk space, then run again"
    return f"cannot be used ({text})"


class ClaimState(enum.Enum):
    CLAIMED = "claimed"
    """Ours now: send it."""
    IMPORTED = "imported"
    """Imported already (``entry`` says when, from where): skip it."""
    HELD = "held"
    """Another live claim (another process, or another row of this run): ask again later."""
    STALE = "stale"
    """A dead process's claim, taken over: settle it (``previous`` is what that one sent)."""


@dataclass(frozen=True)
class Intent:
    """A row about to be sent: its fingerprint and where it comes from."""

    fingerprint: bytes
    lead_key: str
    input: str
    row: int
    results: str
    token: str = ""
    lead_digest: bytes | None = None
    """``options.dedupe: payload``: the lead attributes' digest; an imported activity whose
    import had other lead attributes is claimed again (sent), not skipped."""


@dataclass(frozen=True)
class Entry:
    """An activity in the ledger, as ``ledger show`` and a skipped row's reason tell it."""

    fingerprint: bytes
    lead_key: str
    state: str
    activity_id: str = ""
    lead_id: str = ""
    imported_at: str = ""
    input: str = ""
    row: int = 0
    holder: str = ""

    def reason(self) -> str:
        """Why a row with this fingerprint is skipped."""
        return (
            f"already imported {self.imported_at} UTC from {self.input} row {self.row} "
            f"(activity {self.activity_id or 'id not known'})"
        )


@dataclass(frozen=True)
class Claim:
    state: ClaimState
    intent: Intent
    entry: Entry | None = None
    """IMPORTED: the import; HELD: who holds it (``entry.holder``)."""
    previous: Intent | None = None
    """STALE: the dead process's attempt (its input, row, results file and token)."""


@dataclass(frozen=True)
class Imported:
    """An activity that exists: mark it imported, from ``intent``'s input and row."""

    intent: Intent
    activity_id: str
    lead_id: str


class Ledger:
    """The SQLite ledger at ``path`` (created with its folder if missing)."""

    def __init__(self, connection: sqlite3.Connection, path: Path, lease: float) -> None:
        self._db = connection
        self.path = path
        self.lease = lease
        self._lock = threading.Lock()
        self._sources: dict[str, int] = {}
        self._paths: dict[int, str] = {}
        self.claimant = Claimant.this_process()
        self._me = 0
        self._durable = True
        self._others = True

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, lease: float = 600.0) -> Ledger:
        """Open (or create) the ledger; raises LedgerError (one line) if it cannot be.
        :attr:`created` says whether this call created it."""
        where = Path(path)
        if where.is_dir():
            raise LedgerError(f"ledger {where}: is a folder; name a file in it (ledger.sqlite)")
        existed = where.exists() and where.stat().st_size > 0
        try:
            where.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(where, timeout=60.0, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise LedgerError(f"ledger {where}: cannot be opened ({_why(exc)})") from None
        ledger = cls(db, where, lease)
        ledger.created = not existed
        try:
            ledger._setup()
        except sqlite3.DatabaseError as exc:
            db.close()
            raise LedgerError(f"ledger {where}: {_why(exc)}") from None
        return ledger

    created: bool = False
    """Whether :meth:`open` made a new, empty ledger (nothing imported is known to it)."""

    def _setup(self) -> None:
        db = self._db
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables and "meta" not in tables:
            raise _Foreign(
                "is a SQLite database of something else (it has no lsq-import tables): "
                "name another file"
            )
        db.executescript(_SCHEMA)  # idempotent: IF NOT EXISTS throughout
        with self._transaction():
            found = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if found is None:
                db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            elif int(found[0]) > SCHEMA_VERSION:
                raise _Foreign(
                    f"schema version {found[0]} is newer than this lsq-import's "
                    f"({SCHEMA_VERSION}): upgrade lsq-import"
                )
            me = self.claimant
            cursor = db.execute(
                "INSERT INTO claimants(host, pid, start, started_at, heartbeat) "
                "VALUES (?, ?, ?, ?, ?)",
                (me.host, me.pid, me.start, utc_text(), time.time()),
            )
            self._me = int(cursor.lastrowid or 0)

    @contextlib.contextmanager
    def _transaction(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction. ``durable``: on disk when it returns (claims); otherwise
        (marks, releases, heartbeats) it may wait for the next durable commit or checkpoint:
        lost to a power cut, such a change leaves a claim, which is settled by lookup."""
        with self._lock:
            if durable != self._durable:
                self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
                self._durable = durable
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        """Leave the ledger: this process's claimant entry goes (claims it still holds are
        then stale, and settled by the next process that meets them)."""
        if self._me:
            with contextlib.suppress(*self.errors), self._transaction() as db:
                db.execute("DELETE FROM claimants WHERE id=?", (self._me,))
        self._db.close()

    errors: tuple[type[BaseException], ...] = (sqlite3.Error, OSError)
    """What this backend raises when it cannot be read or written."""

    def _now(self, db: Any) -> float:
        """The time claimants' heartbeats are measured on (wall clock, seconds)."""
        return time.time()

    def _size(self) -> int:
        files = (self.path, Path(f"{self.path}-wal"))
        return sum(p.stat().st_size for p in files if p.exists())

    def shared_schedule(self, kind: str, rate: int, per: float) -> SharedSchedule:
        """The account's slot schedule for calls of ``kind`` ("calls" or "bulk"), shared
        with the other processes on this ledger (see :mod:`importer.ledger.pacing`)."""
        from .pacing import SharedSlots

        return SharedSlots(f"{self.path}.pacing-{kind}", rate, per)

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- sources ----------------------------------------------------------------------------

    def _source(self, db: sqlite3.Connection, path: str) -> int:
        found = self._sources.get(path)
        if found is None:
            db.execute("INSERT INTO sources(path) VALUES (?) ON CONFLICT DO NOTHING", (path,))
            found = int(db.execute("SELECT id FROM sources WHERE path=?", (path,)).fetchone()[0])
            self._sources[path] = found
        return found

    def _path(self, db: sqlite3.Connection, source: int | None) -> str:
        if source is None:
            return ""
        found = self._paths.get(source)
        if found is None:
            row = db.execute("SELECT path FROM sources WHERE id=?", (source,)).fetchone()
            found = row[0] if row else ""
            self._paths[source] = found
        return found

    # ---- claims ------------------------------------------------------------------------------

    def _holder(self, db: sqlite3.Connection, claimant: int, cache: dict[int, str]) -> str:
        """'' when ``claimant`` is dead (or gone), else how to name it."""
        if claimant in cache:
            return cache[claimant]
        row = db.execute(
            "SELECT host, pid, start, heartbeat FROM claimants WHERE id=?", (claimant,)
        ).fetchone()
        name = ""
        if row is not None:
            who = Claimant(row[0], int(row[1]), int(row[2]))
            if who.alive(float(row[3]), self.lease, clock=lambda: self._now(db)):
                name = str(who)
        cache[claimant] = name
        return name

    def claim(self, intents: Sequence[Intent], *, reimport: bool = False) -> list[Claim]:
        """Claim each intent in one transaction (committed to disk before this returns)."""
        out: list[Claim] = []
        alive: dict[int, str] = {}
        with self._transaction() as db:
            # Rows of a lead another process holds are held back; with no other claims at all
            # (one process at a time, the usual case) no row needs that check.
            others = db.execute(
                "SELECT 1 FROM activities WHERE claimant IS NOT NULL AND claimant != ? LIMIT 1",
                (self._me,),
            ).fetchone()
            self._others = others is not None
            for intent in intents:
                out.append(self._claim_one(db, intent, reimport, alive))
        return out

    def _claim_one(
        self, db: sqlite3.Connection, intent: Intent, reimport: bool, alive: dict[int, str]
    ) -> Claim:
        found = db.execute(
            "SELECT claimant, imported_at, activity_id, lead_id, input, row, claim_input, "
            "claim_row, claim_results, claim_token, lead_digest FROM activities "
            "WHERE fingerprint=?",
            (intent.fingerprint,),
        ).fetchone()
        mine = (
            self._source(db, intent.input),
            intent.row,
            self._source(db, intent.results),
            intent.token,
            intent.lead_digest,
        )
        if found is None or found[0] is None or found[0] != self._me:
            busy = self._lead_busy(db, intent, alive)
            imported_skip = (
                found is not None
                and found[0] is None
                and not reimport
                and not (
                    intent.lead_digest is not None
                    and found[10] is not None
                    and intent.lead_digest != found[10]
                )
            )
            if busy and not imported_skip:
                return Claim(
                    ClaimState.HELD,
                    intent,
                    Entry(intent.fingerprint, intent.lead_key, "claimed", holder=busy),
                )
        if found is None:
            db.execute(
                "INSERT INTO activities(fingerprint, lead_key, claimant, claim_input, "
                "claim_row, claim_results, claim_token, claim_lead_digest) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (intent.fingerprint, intent.lead_key, self._me, *mine),
            )
            return Claim(ClaimState.CLAIMED, intent)
        claimant, imported_at, activity_id, lead_id, source, row = found[:6]
        if claimant is None:
            # An import made in another mode kept no lead digest: taken as unchanged (sending
            # it again would post its activity twice).
            changed = (
                intent.lead_digest is not None
                and found[10] is not None
                and intent.lead_digest != found[10]
            )
            if not (reimport or changed):
                entry = Entry(
                    intent.fingerprint,
                    intent.lead_key,
                    "imported",
                    activity_id or "",
                    lead_id or "",
                    imported_at or "",
                    self._path(db, source),
                    int(row or 0),
                )
                return Claim(ClaimState.IMPORTED, intent, entry)
            self._take(db, intent, mine)
            return Claim(ClaimState.CLAIMED, intent)
        if claimant == self._me:
            if (found[8], found[7]) == (mine[2], mine[1]):
                return Claim(ClaimState.CLAIMED, intent)  # this very row, sent again
            holder = "another row of this run"
            return Claim(
                ClaimState.HELD,
                intent,
                Entry(intent.fingerprint, intent.lead_key, "claimed", holder=holder),
            )
        holder = self._holder(db, int(claimant), alive)
        if holder:
            return Claim(
                ClaimState.HELD,
                intent,
                Entry(intent.fingerprint, intent.lead_key, "claimed", holder=holder),
            )
        previous = Intent(
            intent.fingerprint,
            intent.lead_key,
            self._path(db, found[6]),
            int(found[7] or 0),
            self._path(db, found[8]),
            found[9] or "",
        )
        # Taken over with the dead process's source kept: if this process dies too before it
        # settles the claim, the next one looks up what was really sent.
        db.execute(
            "UPDATE activities SET claimant=? WHERE fingerprint=?",
            (self._me, intent.fingerprint),
        )
        return Claim(ClaimState.STALE, intent, previous=previous)

    def _lead_busy(self, db: sqlite3.Connection, intent: Intent, alive: dict[int, str]) -> str:
        """Who else (alive) has a claim on the same lead, '' if nobody: rows of one lead are
        never in flight in two processes at once (two upserts of a new lead can make two)."""
        if not self._others:
            return ""
        for (claimant,) in db.execute(
            "SELECT DISTINCT claimant FROM activities WHERE lead_key=? AND claimant IS NOT NULL "
            "AND claimant != ?",
            (intent.lead_key, self._me),
        ):
            holder = self._holder(db, int(claimant), alive)
            if holder:
                return f"{holder} (a row of the same lead)"
        return ""

    def _take(self, db: sqlite3.Connection, intent: Intent, mine: tuple[Any, ...]) -> None:
        db.execute(
            "UPDATE activities SET claimant=?, claim_input=?, claim_row=?, claim_results=?, "
            "claim_token=?, claim_lead_digest=? WHERE fingerprint=?",
            (self._me, *mine, intent.fingerprint),
        )

    def retarget(self, intents: Sequence[Intent]) -> None:
        """Claims this process took over and found never landed: they now hold this
        process's attempt (its source and token), before it is sent."""
        with self._transaction() as db:
            for intent in intents:
                mine = (
                    self._source(db, intent.input),
                    intent.row,
                    self._source(db, intent.results),
                    intent.token,
                    intent.lead_digest,
                )
                self._take(db, intent, mine)

    def mark_imported(self, items: Sequence[Imported]) -> None:
        """These activities exist in LeadSquared: imported, whoever claimed them."""
        now = utc_text()
        with self._transaction(durable=False) as db:
            rows = [
                (
                    item.intent.fingerprint,
                    item.intent.lead_key,
                    item.activity_id,
                    item.lead_id,
                    now,
                    self._source(db, item.intent.input),
                    item.intent.row,
                    item.intent.lead_digest,
                )
                for item in items
            ]
            db.executemany(
                "INSERT INTO activities(fingerprint, lead_key, activity_id, lead_id, "
                "imported_at, input, row, lead_digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(fingerprint) DO UPDATE SET activity_id=excluded.activity_id, "
                "lead_id=excluded.lead_id, imported_at=excluded.imported_at, "
                "input=excluded.input, row=excluded.row, "
                "lead_digest=coalesce(excluded.lead_digest, activities.lead_digest), "
                "claimant=NULL, "
                "claim_input=NULL, claim_row=NULL, claim_results=NULL, claim_token=NULL, "
                "claim_lead_digest=NULL",
                rows,
            )

    def release(self, fingerprints: Sequence[bytes]) -> None:
        """This process's claims on rows that did not land (refused, invalid, never sent): an
        activity imported before (a --reimport) stays imported."""
        with self._transaction(durable=False) as db:
            for fp in fingerprints:
                db.execute(
                    "DELETE FROM activities WHERE fingerprint=? AND claimant=? "
                    "AND imported_at IS NULL",
                    (fp, self._me),
                )
                db.execute(
                    "UPDATE activities SET claimant=NULL, claim_input=NULL, claim_row=NULL, "
                    "claim_results=NULL, claim_token=NULL, claim_lead_digest=NULL "
                    "WHERE fingerprint=? AND claimant=?",
                    (fp, self._me),
                )

    def heartbeat(self) -> None:
        """This process is alive (for claims seen from other hosts)."""
        with self._transaction(durable=False) as db:
            db.execute("UPDATE claimants SET heartbeat=? WHERE id=?", (self._now(db), self._me))

    # ---- what is in it --------------------------------------------------------------------

    def _entries(self, where: str, args: tuple[Any, ...]) -> list[Entry]:
        with self._lock:
            rows = self._db.execute(
                "SELECT fingerprint, lead_key, claimant, activity_id, lead_id, imported_at, "
                f"input, row, claim_input, claim_row FROM activities WHERE {where} "
                "ORDER BY imported_at, row",
                args,
            ).fetchall()
            alive: dict[int, str] = {}
            out = []
            for fp, key, claimant, activity, lead, at, source, row, c_source, c_row in rows:
                if claimant is None:
                    state, holder = "imported", ""
                else:
                    holder = self._holder(self._db, int(claimant), alive)
                    state = "claimed" if holder else "stale claim"
                    if at is None:
                        source, row = c_source, c_row
                out.append(
                    Entry(
                        fp,
                        key,
                        state,
                        activity or "",
                        lead or "",
                        at or "",
                        self._path(self._db, source),
                        int(row or 0),
                        holder,
                    )
                )
            return out

    def lookup(self, fingerprint: bytes) -> Entry | None:
        found = self._entries("fingerprint=?", (fingerprint,))
        return found[0] if found else None

    def show(self, key: str) -> list[Entry]:
        """What the ledger holds for the lead whose SearchBy value is ``key``."""
        from .fingerprint import lead_key

        return self._entries("lead_key=?", (lead_key(key),))

    def stats(self) -> dict[str, Any]:
        with self._lock:
            db = self._db
            imported, claimed = db.execute(
                "SELECT count(*) FILTER (WHERE claimant IS NULL), "
                "count(*) FILTER (WHERE claimant IS NOT NULL) FROM activities"
            ).fetchone()
            first, last = db.execute(
                "SELECT min(imported_at), max(imported_at) FROM activities"
            ).fetchone()
            leads = db.execute("SELECT count(DISTINCT lead_key) FROM activities").fetchone()[0]
            inputs = db.execute(
                "SELECT count(DISTINCT input) FROM activities WHERE input IS NOT NULL"
            ).fetchone()[0]
        size = self._size()
        return {
            "path": str(self.path),
            "imported": imported,
            "claimed": claimed,
            "leads": leads,
            "inputs": inputs,
            "first_import": first or "",
            "last_import": last or "",
            "bytes": size,
        }

    def inputs(self) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT path FROM sources WHERE id IN (SELECT DISTINCT input FROM activities)"
            ).fetchall()
        return [r[0] for r in rows]

    def forget(self, *, input: str | None = None, before: str | None = None) -> int:
        """Delete imported activities from ``input`` (a path as recorded) and/or imported
        before ``before`` (UTC ``YYYY-MM-DD[ HH:MM:SS]``): rows with those activities are
        sent again by the next run. Claims are never forgotten. Returns how many went."""
        clauses, args = ["claimant IS NULL"], []
        if input is not None:
            clauses.append("input = (SELECT id FROM sources WHERE path=?)")
            args.append(input)
        if before is not None:
            clauses.append("imported_at < ?")
            args.append(before)
        with self._transaction() as db:
            cursor = db.execute(f"DELETE FROM activities WHERE {' AND '.join(clauses)}", args)
            return cursor.rowcount

    def export(self, out: IO[str]) -> int:
        """Every activity as CSV; returns the number of rows written."""
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(
            [
                "fingerprint",
                "lead_key",
                "state",
                "activity_id",
                "lead_id",
                "imported_at",
                "input",
                "row",
            ]
        )
        count = 0
        with self._lock:
            cursor = self._db.execute(
                "SELECT a.fingerprint, a.lead_key, a.claimant, a.activity_id, a.lead_id, "
                "a.imported_at, s.path, a.row FROM activities a "
                "LEFT JOIN sources s ON s.id = coalesce(a.input, a.claim_input) "
                "ORDER BY a.imported_at, a.row"
            )
            for fp, key, claimant, activity, lead, at, path, row in cursor:
                state = "imported" if claimant is None else "claimed"
                writer.writerow([fp.hex(), key, state, activity, lead, at, path, row])
                count += 1
        return count


def open_ledger(
    location: str | os.PathLike[str], *, lease: float = 600.0, create: bool = True
) -> Ledger:
    """The ledger at ``location``: a ``postgresql://`` URL (team mode, see
    :mod:`importer.ledger.postgres`; ``create``: make its schema if missing, else
    LedgerError) or an SQLite file."""
    from .location import is_url

    if is_url(location):
        from .postgres import PostgresLedger

        return PostgresLedger.open(os.fspath(location), lease=lease, create=create)
    return Ledger.open(location, lease=lease)
