"""The ledger in PostgreSQL: one ledger (and one quota) for every host that imports into an
account (team mode, docs/team.md).

``--ledger postgresql://user@host/db`` (or ``$LSQ_LEDGER``) names it; ``?schema=NAME`` in the
URL picks the schema its tables live in (default ``lsq_import``). The password comes from
``$PGPASSWORD`` or ``~/.pgpass`` (libpq's own ways), never from the command line; where the
URL holds one, lsq-import never shows it.

The same :class:`importer.ledger.store.Ledger`, over another connection: every write is one
transaction that first takes a transaction-scoped advisory lock of the schema, so that the
claims of all hosts are decided one transaction at a time, as SQLite's ``BEGIN IMMEDIATE``
does on one machine (the fingerprint's primary key is the backstop: two claims of one
activity can never both commit). Claims are committed with ``synchronous_commit`` on, before
any call leaves; marks and releases with it off (lost in a crash of the database server, they
leave claims, settled by lookup). A claimant on another host is alive while its heartbeat,
written on the database's clock and read against it, is younger than the lease: the hosts'
clocks need not agree.

The schema is created and migrated by lsq-import: ``schema_version`` holds one row per
migration applied (:data:`MIGRATIONS`); a newer schema than this lsq-import knows is refused.
"""

from __future__ import annotations

import contextlib
import logging
import urllib.parse
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ..exceptions import LedgerError
from .store import SCHEMA_VERSION, Ledger, utc_text

if TYPE_CHECKING:
    import psycopg

    from ..sending.pacer import SharedSchedule

logger = logging.getLogger("lsq_import")

DEFAULT_SCHEMA = "lsq_import"
LOCK_SPACE = 0x4C5351  # "LSQ": the first key of lsq-import's advisory locks

MIGRATIONS: list[str] = [
    # 1: the tables of the SQLite ledger (store.py), and the shared slot schedule.
    """
    CREATE TABLE sources(id BIGSERIAL PRIMARY KEY, path TEXT NOT NULL UNIQUE);
    CREATE TABLE claimants(
        id BIGSERIAL PRIMARY KEY,
        host TEXT NOT NULL,
        pid BIGINT NOT NULL,
        start BIGINT NOT NULL,
        started_at TEXT NOT NULL,
        heartbeat DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE activities(
        fingerprint BYTEA PRIMARY KEY,
        lead_key TEXT NOT NULL,
        activity_id TEXT,
        lead_id TEXT,
        imported_at TEXT,
        input BIGINT,
        row BIGINT,
        claimant BIGINT,
        claim_input BIGINT,
        claim_row BIGINT,
        claim_results BIGINT,
        claim_token TEXT,
        lead_digest BYTEA,
        claim_lead_digest BYTEA
    );
    CREATE INDEX activities_lead ON activities(lead_key);
    CREATE INDEX activities_input ON activities(input);
    CREATE INDEX activities_claimant ON activities(claimant) WHERE claimant IS NOT NULL;
    CREATE TABLE pacing(
        kind TEXT PRIMARY KEY,
        rate INTEGER NOT NULL,
        per DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE pacing_slots(
        kind TEXT NOT NULL,
        slot INTEGER NOT NULL,
        reopens DOUBLE PRECISION NOT NULL,
        taken_at DOUBLE PRECISION,
        host TEXT,
        pid BIGINT,
        start BIGINT,
        PRIMARY KEY (kind, slot)
    );
    """,
]
assert len(MIGRATIONS) == SCHEMA_VERSION


def _split(url: str) -> tuple[str, str, list[str]]:
    """``(scheme://, the rest before the query, the query's items as written)``, by string:
    urllib would turn libpq's ``postgresql:///db`` into ``postgresql:/db`` and cannot parse
    a host list (``h1:5432,h2:5432``)."""
    text = url.strip()
    scheme, _, rest = text.partition("://")
    rest, _, query = rest.partition("?")
    return f"{scheme}://", rest, [item for item in query.split("&") if item]


def _key(item: str) -> str:
    return urllib.parse.unquote_plus(item.partition("=")[0])


def parse(url: str) -> tuple[str, str, str]:
    """``(conninfo for libpq, schema, the URL as shown: without its password)``."""
    scheme, rest, query = _split(url)
    schema = DEFAULT_SCHEMA
    kept = []
    for item in query:
        if _key(item) == "schema":
            schema = urllib.parse.unquote_plus(item.partition("=")[2])
        else:
            kept.append(item)
    if (
        not schema
        or len(schema) > 63
        or not (schema[0].isalpha() or schema[0] == "_")
        or not all(c.isalnum() or c == "_" for c in schema)
    ):
        raise LedgerError(
            f"ledger {shown_url(url)}: schema {schema!r} is not a schema name (letters, digits, "
            "underscores, up to 63)"
        )
    conninfo = scheme + rest + ("?" + "&".join(kept) if kept else "")
    return conninfo, schema, shown_url(url)


def shown_url(url: str) -> str:
    """``url`` without a password (for messages, summaries and logs): neither the one of
    ``user:password@`` nor a ``password``/``sslpassword`` query parameter."""
    scheme, rest, query = _split(url)
    netloc, slash, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    netloc = f"{userinfo.partition(':')[0]}@{hosts}" if at else hosts
    kept = [item for item in query if _key(item) not in ("password", "sslpassword")]
    return scheme + netloc + slash + path + ("?" + "&".join(kept) if kept else "")


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise LedgerError(
            "a PostgreSQL ledger needs psycopg 3: pip install 'lsq-import[postgres]'"
        ) from None
    return psycopg


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0].strip() if text else type(exc).__name__


def why(exc: BaseException) -> str:
    """What to do about a database error, in a few words."""
    psycopg = _psycopg()
    text = first_line(exc)
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        if "for database" in text:
            text += "; CREATE on the database is needed to create the schema: or create it for "
            text += "this user (CREATE SCHEMA <schema> AUTHORIZATION <user>)"
        return f"the database user lacks a privilege ({text}): see docs/team.md, privileges"
    if isinstance(exc, psycopg.OperationalError):
        return f"cannot be reached ({text})"
    return f"cannot be used ({text})"


def connect(conninfo: str, schema: str) -> psycopg.Connection[Any]:
    """A connection (autocommit) whose search path is the ledger's schema."""
    psycopg = _psycopg()
    from psycopg import sql

    conn = psycopg.connect(
        conninfo, autocommit=True, connect_timeout=10, application_name="lsq-import"
    )
    conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
    return conn


class _Database:
    """A psycopg connection with the calls store.py makes of an SQLite one (``?`` marks)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self._sql: dict[str, str] = {}

    def _text(self, statement: str) -> str:
        found = self._sql.get(statement)
        if found is None:
            found = self._sql[statement] = statement.replace("?", "%s")
        return found

    def execute(self, statement: str, args: Sequence[Any] = ()) -> Any:
        return self.conn.execute(self._text(statement), args)

    def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> Any:
        cursor = self.conn.cursor()
        cursor.executemany(self._text(statement), rows)
        return cursor

    def close(self) -> None:
        self.conn.close()


class PostgresLedger(Ledger):
    """The ledger in the PostgreSQL database (and schema) of ``url``."""

    schema: str = DEFAULT_SCHEMA
    _conninfo: str = ""

    @classmethod
    def open(  # type: ignore[override]
        cls, url: str, *, lease: float = 600.0, create: bool = True
    ) -> PostgresLedger:
        """Open the ledger, creating (``create``) or migrating its schema; raises
        LedgerError (one line, no password) if it cannot be."""
        conninfo, schema, shown = parse(url)
        try:
            psycopg = _psycopg()
        except LedgerError as exc:
            raise LedgerError(f"ledger {shown}: {exc}") from None
        try:
            conn = connect(conninfo, schema)
        except psycopg.Error as exc:
            raise LedgerError(f"ledger {shown}: {why(exc)}") from None
        ledger = cls(_Database(conn), shown, lease)  # type: ignore[arg-type]
        ledger.schema = schema
        ledger._conninfo = conninfo
        try:
            ledger._prepare(create)
        except psycopg.Error as exc:
            conn.close()
            raise LedgerError(f"ledger {shown}: {why(exc)}") from None
        except LedgerError:
            conn.close()
            raise
        return ledger

    @property
    def errors(self) -> tuple[type[BaseException], ...]:  # type: ignore[override]
        return (_psycopg().Error, OSError)

    def _lock_key(self) -> tuple[int, str]:
        return LOCK_SPACE, self.schema

    def _prepare(self, create: bool) -> None:
        from psycopg import sql

        with self._transaction() as db:
            # Under the schema's advisory lock (its key is the name: it exists before the
            # schema does), so that two hosts opening a new ledger at once create it once.
            exists = db.execute(
                "SELECT 1 FROM pg_namespace WHERE nspname = ?", (self.schema,)
            ).fetchone()
            if exists is None:
                if not create:
                    raise LedgerError(
                        f"ledger {self.path}: does not exist (no import has used it yet: "
                        f"schema {self.schema} is not in the database)"
                    )
                db.conn.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
                )
            version_table = db.execute(
                "SELECT to_regclass(quote_ident(?) || '.schema_version')", (self.schema,)
            ).fetchone()[0]
            if version_table is None:
                tables = db.execute(
                    "SELECT count(*) FROM pg_tables WHERE schemaname = ?", (self.schema,)
                ).fetchone()[0]
                if tables:
                    raise LedgerError(
                        f"ledger {self.path}: schema {self.schema} holds tables of something "
                        "else (no schema_version): name another with ?schema=NAME"
                    )
                if not create:
                    raise LedgerError(
                        f"ledger {self.path}: does not exist (no import has used it yet: "
                        f"schema {self.schema} has no lsq-import tables)"
                    )
                db.execute(
                    "CREATE TABLE schema_version(version INTEGER PRIMARY KEY, "
                    "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                )
            current = db.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[
                0
            ]
            if current > SCHEMA_VERSION:
                raise LedgerError(
                    f"ledger {self.path}: schema version {current} is newer than this "
                    f"lsq-import's ({SCHEMA_VERSION}): upgrade lsq-import"
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                db.conn.execute(MIGRATIONS[version - 1])
                db.execute("INSERT INTO schema_version(version) VALUES (?)", (version,))
            self.created = current == 0
            if not create:
                return  # reading it (the ledger commands): no claimant, SELECT suffices
            me = self.claimant
            self._me = int(
                db.execute(
                    "INSERT INTO claimants(host, pid, start, started_at, heartbeat) "
                    "VALUES (?, ?, ?, ?, extract(epoch FROM clock_timestamp())::float8) "
                    "RETURNING id",
                    (me.host, me.pid, me.start, utc_text()),
                ).fetchone()[0]
            )

    @contextlib.contextmanager
    def _transaction(self, durable: bool = True) -> Iterator[Any]:
        """One write transaction, after every other of this ledger's (the advisory lock);
        ``durable``: committed with ``synchronous_commit`` on."""
        conn = self._db.conn  # type: ignore[attr-defined]
        with self._lock, conn.transaction():
            conn.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(%s)), "
                "set_config('synchronous_commit', %s, true)",
                (*self._lock_key(), "on" if durable else "off"),
            )
            yield self._db

    def _now(self, db: Any) -> float:
        return float(
            db.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()[0]
        )

    def _size(self) -> int:
        with self._lock:
            found = self._db.execute(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = ? AND c.relkind = 'r'",
                (self.schema,),
            ).fetchone()
        return int(found[0])

    def shared_schedule(self, kind: str, rate: int, per: float) -> SharedSchedule:
        from .pacing import DatabaseSlots

        return DatabaseSlots(self._conninfo, self.schema, kind, rate, per, shown=str(self.path))
