"""The App's database: one SQLAlchemy Core schema for SQLite (WAL, the default) and PostgreSQL,
created by numbered migrations recorded in `schema_migrations`.

SQLAlchemy Core rather than psycopg with a thin repository: one code path for both databases
(queries are built once, the dialect renders them), SQLite needs no server for a small install,
and the only dialect-specific part is how a worker claims a job (see queue.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Engine,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    insert,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from loopbot.errors import InputError, Problem

BUSY_TIMEOUT_SECONDS = 30.0

metadata = MetaData()

migrations_table = Table(
    "schema_migrations", metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("applied_at", Float, nullable=False),
)

deliveries = Table(
    "deliveries", metadata,
    Column("id", Integer, primary_key=True),
    Column("delivery_id", String(100), nullable=False, unique=True),  # X-GitHub-Delivery: the dedupe key
    Column("event", String(100), nullable=False),
    Column("action", String(100)),
    Column("installation_id", Integer),
    Column("repo", String(300)),
    Column("body", LargeBinary, nullable=False),
    Column("received_at", Float, nullable=False),
    Column("outcome", String(20), nullable=False),  # queued|routed|ignored|refused|failed|dead
    Column("detail", Text, nullable=False, default=""),
)

jobs = Table(
    "jobs", metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(20), nullable=False),  # delivery|command
    Column("priority", Integer, nullable=False),  # rank: lower is claimed first (queue.PRIORITIES)
    Column("repo", String(300), nullable=False, default=""),
    Column("key", String(320), nullable=False, default=""),  # the plan: repo#issue ("" for none)
    Column("installation_id", Integer),
    Column("payload", Text, nullable=False, default="{}"),  # JSON: what the job carries
    Column("state", String(10), nullable=False),  # pending|running|done|dead
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_at", Float, nullable=False),
    Column("last_error", Text, nullable=False, default=""),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("claimed_by", String(200)),
    Column("lease_until", Float),
    Column("dedupe", String(300), unique=True),  # one job per delivery (or per reconciler round)
    Index("jobs_claim", "state", "priority", "next_at"),
    Index("jobs_repo_running", "repo", "state"),
    Index("jobs_key", "key", "state"),
)

loops = Table(
    "loops", metadata,
    Column("id", Integer, primary_key=True),
    Column("repo", String(300), nullable=False),
    Column("issue", Integer, nullable=False),
    Column("installation_id", Integer),
    Column("ref", String(300), nullable=False, default=""),  # the default branch a dispatch runs on
    Column("run_id", String(300), nullable=False, default=""),
    # dispatched|queued|running|success|failed|stopped|blocked (see registry.STATUSES)
    Column("status", String(20), nullable=False),
    Column("heartbeat_at", Float),
    Column("cost_usd", Float, nullable=False, default=0.0),
    Column("workflow_run_id", Integer),
    Column("workflow_run_done", Boolean, nullable=False, default=False),
    Column("dispatched_at", Float),
    Column("updated_at", Float, nullable=False),
    Column("resumes", Integer, nullable=False, default=0),  # automatic resumes by the reconciler
    Column("detail", Text, nullable=False, default=""),
    UniqueConstraint("repo", "issue", name="loops_plan"),
)

costs = Table(
    "loop_costs", metadata,  # the cost a loop reported, by day: the status page's chart
    Column("repo", String(300), primary_key=True),
    Column("day", String(10), primary_key=True),
    Column("usd", Float, nullable=False, default=0.0),
)

dispatches = Table(
    "dispatches", metadata,
    Column("id", Integer, primary_key=True),
    Column("repo", String(300), nullable=False),
    Column("issue", Integer, nullable=False),
    Column("key", String(300), nullable=False),  # the delivery id, or the job's key for reconciler resumes
    Column("command", String(20), nullable=False),
    Column("state", String(10), nullable=False),  # pending (about to be sent) | sent
    Column("created_at", Float, nullable=False),
    Column("sent_at", Float),
    UniqueConstraint("repo", "issue", "key", name="dispatches_once"),
)

pacing = Table(
    "pacing", metadata,  # one row per installation: the lock and the spacing of its writes
    Column("installation_id", Integer, primary_key=True, autoincrement=False),
    Column("next_write_at", Float, nullable=False, default=0.0),
    Column("blocked_until", Float, nullable=False, default=0.0),  # a Retry-After or secondary limit
)

pacing_writes = Table(
    "pacing_writes", metadata,  # when each content-creating write was (or is scheduled to be) sent
    Column("id", Integer, primary_key=True),
    Column("installation_id", Integer, nullable=False),
    Column("at", Float, nullable=False),
    Index("pacing_writes_at", "installation_id", "at"),
)

installations = Table(
    "installations", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("account", String(200), nullable=False, default=""),
    Column("suspended", Boolean, nullable=False, default=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("updated_at", Float, nullable=False),
)

repositories = Table(
    "repositories", metadata,
    Column("full_name", String(300), primary_key=True),
    Column("installation_id", Integer, nullable=False),
    Column("updated_at", Float, nullable=False),
)

Migration = Callable[[Connection], None]


def _v1(conn: Connection) -> None:
    metadata.create_all(conn, tables=[deliveries, jobs, loops, costs, dispatches, pacing, pacing_writes,
                                      installations, repositories])


# Applied in order, each once; a new schema change is a new entry at the end, never an edit.
MIGRATIONS: Sequence[tuple[int, Migration]] = ((1, _v1),)
LATEST = MIGRATIONS[-1][0]


def connect(url: str) -> Engine:
    """An engine for `url`: sqlite:///path (WAL, busy timeout, BEGIN IMMEDIATE for writes) or
    postgresql+psycopg://…. A bad URL is a clear error."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise _bad_url(url, str(exc)) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise _bad_url(url, "an SQLite database must be a file (sqlite:///path/to/app.db): workers share it")
        engine = create_engine(parsed, connect_args={"timeout": BUSY_TIMEOUT_SECONDS, "check_same_thread": False})
        _sqlite_transactions(engine)
        return engine
    if backend == "postgresql":
        try:
            return create_engine(parsed, pool_pre_ping=True, pool_size=8, max_overflow=8)
        except ImportError as exc:
            raise _bad_url(url, f"the PostgreSQL driver is missing ({exc}): install loopbot[app]") from None
    raise _bad_url(url, f"{backend} is not supported: use sqlite:///path or postgresql+psycopg://…")


def _bad_url(url: str, message: str) -> InputError:
    shown = make_url(url).render_as_string(hide_password=True) if "://" in url else url
    return InputError([Problem("LOOPBOT_DATABASE_URL", None, None, shown, message)])


def _sqlite_transactions(engine: Engine) -> None:
    """pysqlite's own transaction handling is off; SQLAlchemy's begin emits BEGIN IMMEDIATE, so a
    writer takes the database's write lock at the start (waiting up to the busy timeout) and a
    read-then-update such as a claim is atomic. Reads ask for BEGIN (deferred) and run beside it."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")  # a commit is on disk before the webhook is answered
        cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_SECONDS * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        mode = "DEFERRED" if conn.get_execution_options().get("read_only") else "IMMEDIATE"
        conn.exec_driver_sql(f"BEGIN {mode}")


def migrate(engine: Engine, now: float) -> list[int]:
    """Apply the migrations not applied yet, in order; returns those applied. Idempotent, and safe
    when two replicas start at once (the second finds them applied)."""
    applied: list[int] = []
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(7417001)"))  # one migrator at a time
        migrations_table.create(conn, checkfirst=True)
        done = set(conn.scalars(select(migrations_table.c.version)))
        for version, step in MIGRATIONS:
            if version in done:
                continue
            step(conn)
            conn.execute(insert(migrations_table).values(version=version, applied_at=now))
            applied.append(version)
    return applied


def applied_version(engine: Engine) -> int:
    with engine.connect().execution_options(read_only=True) as conn, conn.begin():
        if not engine.dialect.has_table(conn, migrations_table.name):
            return 0
        return max(conn.scalars(select(migrations_table.c.version)), default=0)
