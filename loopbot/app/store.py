"""The App's store: deliveries, the job queue, the loop registry, dispatch records and write
pacing, on SQLite (WAL) or PostgreSQL through one SQLAlchemy Core code path (see db.py).

The web side calls the read API and `accept_delivery`; workers call the queue, dispatch and
pacing methods. Every method is one transaction, committed before it returns."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Connection, case, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from loopbot.app import db, pacing, queue
from loopbot.app.db import costs, deliveries, dispatches, jobs, loops
from loopbot.app.db import pacing as pacing_table
from loopbot.app.queue import PRIORITIES, PRIORITY_NAMES, Claimed
from loopbot.app.writelock import WriterLock
from loopbot.clock import SystemClock
from loopbot.core import triage
from loopbot.ports import Clock

OUTCOMES = ("queued", "routed", "ignored", "refused", "failed", "dead")
COMMANDS = ("stop", "resume", "retry")
INSTALLATION_EVENTS = frozenset({"installation", "installation_repositories"})
DispatchState = Literal["new", "pending", "sent"]


@dataclass(frozen=True)
class Delivery:
    delivery_id: str
    event: str
    action: str | None
    installation_id: int | None
    repo: str | None
    body: bytes
    received_at: float


@dataclass(frozen=True)
class DeliveryRow:
    delivery_id: str
    event: str
    action: str | None
    repo: str | None
    received_at: float
    outcome: str
    detail: str


@dataclass(frozen=True)
class LoopRow:
    id: int
    repo: str
    issue: int
    run_id: str
    status: str
    heartbeat_at: float | None
    cost_usd: float
    workflow_run_id: int | None
    dispatched_at: float | None
    updated_at: float
    detail: str


@dataclass(frozen=True)
class JobRow:
    id: int
    kind: str
    priority: str
    repo: str
    key: str
    state: str
    attempts: int
    next_at: float
    last_error: str
    created_at: float


def plan_key(repo: str, issue: int | None) -> str:
    return f"{repo}#{issue}" if repo and issue is not None else ""


class AppStore:
    def __init__(self, url: str, *, clock: Clock | None = None, rng: random.Random | None = None):
        self.url = url
        self.engine = db.connect(url)
        # SQLite has one writer at a time: writers of every process queue for it in the kernel
        # rather than poll (writelock.py). PostgreSQL locks rows and needs nothing of the kind.
        database = self.engine.url.database if self.engine.dialect.name == "sqlite" else None
        self._writer_lock = WriterLock(Path(database)) if database else None
        self.clock: Clock = clock or SystemClock()
        self.rng = rng or random.Random()

    @classmethod
    def open(cls, url: str, *, clock: Clock | None = None, rng: random.Random | None = None) -> AppStore:
        store = cls(url, clock=clock, rng=rng)
        db.migrate(store.engine, store.clock.wall())
        return store

    def close(self) -> None:
        self.engine.dispose()
        if self._writer_lock is not None:
            self._writer_lock.close()

    # -- transactions -----------------------------------------------------------------------------
    @contextmanager
    def write(self, urgent: bool = False) -> Iterator[Connection]:
        """A write transaction. `urgent`: someone is waiting for it (a webhook's acknowledgement),
        so on SQLite it goes before the workers' writes (writelock.py)."""
        turn = self._writer_lock.hold(urgent) if self._writer_lock is not None else nullcontext()
        with turn, self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect().execution_options(read_only=True) as conn, conn.begin():
            yield conn

    def now(self) -> float:
        return self.clock.wall()

    # -- health -----------------------------------------------------------------------------------
    def ready(self) -> tuple[bool, str]:
        try:
            version = db.applied_version(self.engine)
        except SQLAlchemyError as exc:
            return False, f"the database is not reachable: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        if version < db.LATEST:
            return False, f"the database schema is at version {version}, not {db.LATEST}: migrations not applied"
        return True, ""

    # -- deliveries -------------------------------------------------------------------------------
    def accept_delivery(self, delivery: Delivery) -> bool:
        """The delivery and its job, committed together; False for an X-GitHub-Delivery seen before."""
        try:
            payload: Any = json.loads(delivery.body)
        except ValueError:
            payload = {}
        payload = payload if isinstance(payload, dict) else {}
        repo, number = triage.plan_key(delivery.event, payload)
        repo = delivery.repo or repo
        rank = PRIORITIES[triage.priority(delivery.event, payload)]
        try:
            with self.write(urgent=True) as conn:
                conn.execute(insert(deliveries).values(
                    delivery_id=delivery.delivery_id, event=delivery.event, action=delivery.action,
                    installation_id=delivery.installation_id, repo=repo, body=delivery.body,
                    received_at=delivery.received_at, outcome="queued", detail=""))
                # An installation's own events are never held by its suspension (unsuspend is one).
                gate = None if delivery.event in INSTALLATION_EVENTS else delivery.installation_id
                self._enqueue(conn, "delivery", rank, repo or "", plan_key(repo or "", number),
                              gate, {"delivery_id": delivery.delivery_id},
                              dedupe=f"delivery:{delivery.delivery_id}", at=delivery.received_at)
        except IntegrityError:
            return False
        return True

    def delivery(self, delivery_id: str) -> tuple[Delivery, DeliveryRow] | None:
        with self.read() as conn:
            row = conn.execute(select(deliveries).where(deliveries.c.delivery_id == delivery_id)).first()
        if row is None:
            return None
        return (Delivery(row.delivery_id, row.event, row.action, row.installation_id, row.repo, bytes(row.body),
                         row.received_at),
                DeliveryRow(row.delivery_id, row.event, row.action, row.repo, row.received_at, row.outcome,
                            row.detail))

    def set_outcome(self, delivery_id: str, outcome: str, detail: str = "") -> None:
        assert outcome in OUTCOMES, outcome
        with self.write() as conn:
            conn.execute(update(deliveries).where(deliveries.c.delivery_id == delivery_id)
                         .values(outcome=outcome, detail=detail[:2000]))

    def recent_deliveries(self, limit: int = 50) -> list[DeliveryRow]:
        with self.read() as conn:
            rows = conn.execute(select(deliveries.c.delivery_id, deliveries.c.event, deliveries.c.action,
                                       deliveries.c.repo, deliveries.c.received_at, deliveries.c.outcome,
                                       deliveries.c.detail)
                                .order_by(deliveries.c.received_at.desc(), deliveries.c.id.desc()).limit(limit)).all()
        return [DeliveryRow(*row) for row in rows]

    def delivery_counts(self) -> dict[tuple[str, str], int]:
        with self.read() as conn:
            rows = conn.execute(select(deliveries.c.event, deliveries.c.outcome, func.count())
                                .group_by(deliveries.c.event, deliveries.c.outcome)).all()
        return {(event, outcome): count for event, outcome, count in rows}

    # -- queue ------------------------------------------------------------------------------------
    def _enqueue(self, conn: Connection, kind: str, rank: int, repo: str, key: str, installation_id: int | None,
                 payload: dict[str, Any], *, dedupe: str | None, at: float | None = None) -> int:
        now = self.now()
        result = conn.execute(insert(jobs).values(
            kind=kind, priority=rank, repo=repo, key=key, installation_id=installation_id,
            payload=json.dumps(payload, sort_keys=True), state="pending", attempts=0,
            next_at=now if at is None else at, last_error="", created_at=now, updated_at=now, dedupe=dedupe)
            .returning(jobs.c.id))
        return int(result.scalar_one())

    def enqueue(self, kind: str, priority: str, repo: str, issue: int | None, payload: dict[str, Any], *,
                installation_id: int | None = None, dedupe: str | None = None, at: float | None = None) -> int | None:
        """A job, due now or `at`; None when `dedupe` names one already queued."""
        try:
            with self.write() as conn:
                return self._enqueue(conn, kind, PRIORITIES[priority], repo, plan_key(repo, issue),
                                     installation_id, payload, dedupe=dedupe, at=at)
        except IntegrityError:
            return None

    def control(self, loop_id: int, command: str, actor: str) -> int:
        """A stop, resume or retry of a registered loop, asked through the control API."""
        if command not in COMMANDS:
            raise ValueError(f"{command!r} is not one of {', '.join(COMMANDS)}")
        found = self.loop(loop_id)
        if found is None:
            raise KeyError(loop_id)
        with self.read() as conn:
            installation = conn.scalar(select(loops.c.installation_id).where(loops.c.id == loop_id))
        job = self.enqueue("command", "routine", found.repo, found.issue,
                           {"command": command, "actor": actor, "issue": found.issue, "source": "api"},
                           installation_id=installation)
        assert job is not None
        return job

    def claim(self, worker: str, *, per_repo: int, lease_seconds: float = queue.LEASE_SECONDS) -> Claimed | None:
        with self.write() as conn:
            return queue.claim(conn, worker=worker, now=self.now(), per_repo=per_repo, lease_seconds=lease_seconds)

    def finish(self, job_id: int, worker: str) -> bool:
        with self.write() as conn:
            return queue.finish(conn, job_id, worker, self.now())

    def fail(self, job_id: int, worker: str, error: str, *, max_attempts: int = queue.MAX_ATTEMPTS,
             retry_at: float | None = None) -> str | None:
        with self.write() as conn:
            return queue.fail(conn, job_id, worker, error, self.now(), self.rng, max_attempts=max_attempts,
                              retry_at=retry_at)

    def release(self, job_id: int, worker: str, at: float) -> bool:
        with self.write() as conn:
            return queue.release(conn, job_id, worker, at, self.now())

    def extend(self, job_id: int, worker: str, lease_seconds: float = queue.LEASE_SECONDS) -> bool:
        with self.write() as conn:
            return queue.extend(conn, job_id, worker, self.now(), lease_seconds)

    def prune(self, older_than: float) -> int:
        """Forget deliveries (their bodies are up to 25 MB) and finished jobs from before
        `older_than`; a delivery still queued, and dead letters, are kept. Returns deliveries removed."""
        with self.write() as conn:
            gone = conn.execute(delete(deliveries).where(deliveries.c.received_at < older_than,
                                                         deliveries.c.outcome != "queued"))
            conn.execute(delete(jobs).where(jobs.c.state == "done", jobs.c.updated_at < older_than))
        return int(gone.rowcount or 0)

    def next_due(self) -> float | None:
        """When the next job can be claimed: a pending job's time, or later while its installation's
        write budget is spent; or a running job's lease end."""
        def later(a: Any, b: Any) -> Any:
            return case((a > b, a), else_=b)

        gate = later(func.coalesce(pacing_table.c.next_write_at, 0.0), func.coalesce(pacing_table.c.blocked_until, 0.0))
        with self.read() as conn:
            pending = conn.scalar(select(func.min(later(jobs.c.next_at, gate)))
                                  .select_from(jobs.outerjoin(pacing_table,
                                                              pacing_table.c.installation_id == jobs.c.installation_id))
                                  .where(jobs.c.state == "pending"))
            leased = conn.scalar(select(func.min(jobs.c.lease_until)).where(jobs.c.state == "running"))
        due = [float(t) for t in (pending, leased) if t is not None]
        return min(due) if due else None

    def job(self, job_id: int) -> JobRow | None:
        with self.read() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
        return _job_row(row) if row is not None else None

    def queue_depth(self) -> dict[str, int]:
        with self.read() as conn:
            rows = conn.execute(select(jobs.c.priority, func.count()).where(jobs.c.state == "pending")
                                .group_by(jobs.c.priority)).all()
        depth = dict.fromkeys(PRIORITIES, 0)
        depth.update({PRIORITY_NAMES[rank]: count for rank, count in rows})
        return depth

    def dead_letters(self) -> list[JobRow]:
        with self.read() as conn:
            rows = conn.execute(select(jobs).where(jobs.c.state == "dead").order_by(jobs.c.updated_at.desc())).all()
        return [_job_row(row) for row in rows]

    # -- dispatches -------------------------------------------------------------------------------
    def begin_dispatch(self, repo: str, issue: int, key: str, command: str) -> DispatchState:
        """Record a dispatch about to be sent. "new": send it; "pending": one was begun and may
        have been sent (its worker died); "sent": it was, never send it again."""
        try:
            with self.write() as conn:
                conn.execute(insert(dispatches).values(repo=repo, issue=issue, key=key, command=command,
                                                       state="pending", created_at=self.now()))
            return "new"
        except IntegrityError:
            with self.read() as conn:
                state = conn.scalar(select(dispatches.c.state).where(
                    dispatches.c.repo == repo, dispatches.c.issue == issue, dispatches.c.key == key))
            return "sent" if state == "sent" else "pending"

    def dispatch_sent(self, repo: str, issue: int, key: str) -> None:
        with self.write() as conn:
            conn.execute(update(dispatches).where(dispatches.c.repo == repo, dispatches.c.issue == issue,
                                                  dispatches.c.key == key)
                         .values(state="sent", sent_at=self.now()))

    def dispatch_count(self, repo: str, issue: int) -> int:
        with self.read() as conn:
            return int(conn.scalar(select(func.count()).select_from(dispatches).where(
                dispatches.c.repo == repo, dispatches.c.issue == issue, dispatches.c.state == "sent")) or 0)

    # -- pacing -----------------------------------------------------------------------------------
    def reserve_write(self, installation_id: int, max_wait: float | None = None) -> float:
        """When this installation's next content-creating write may be sent (wall clock); the slot
        is taken (unless it is more than `max_wait` ahead), shared with every worker and replica."""
        with self.write() as conn:
            return pacing.reserve(conn, installation_id, self.now(), max_wait)

    def block_writes(self, installation_id: int, until: float) -> None:
        with self.write() as conn:
            pacing.block(conn, installation_id, until)

    # -- loops ------------------------------------------------------------------------------------
    def loops(self, repo: str | None = None, state: str | None = None) -> list[LoopRow]:
        query = select(*_LOOP_COLUMNS).order_by(loops.c.updated_at.desc(), loops.c.id.desc())
        if repo is not None:
            query = query.where(loops.c.repo == repo)
        if state is not None:
            query = query.where(loops.c.status == state)
        with self.read() as conn:
            return [LoopRow(*row) for row in conn.execute(query).all()]

    def loop(self, loop_id: int) -> LoopRow | None:
        with self.read() as conn:
            row = conn.execute(select(*_LOOP_COLUMNS).where(loops.c.id == loop_id)).first()
        return LoopRow(*row) if row is not None else None

    def cost_by_repo(self, days: int, now: float) -> dict[str, dict[str, float]]:
        first = (datetime.fromtimestamp(now, UTC) - timedelta(days=max(days, 1) - 1)).date().isoformat()
        with self.read() as conn:
            rows = conn.execute(select(costs.c.repo, costs.c.day, costs.c.usd).where(costs.c.day >= first)
                                .order_by(costs.c.repo, costs.c.day)).all()
        found: dict[str, dict[str, float]] = {}
        for repo, day, usd in rows:
            found.setdefault(repo, {})[day] = float(usd)
        return found


_LOOP_COLUMNS = (loops.c.id, loops.c.repo, loops.c.issue, loops.c.run_id, loops.c.status, loops.c.heartbeat_at,
                 loops.c.cost_usd, loops.c.workflow_run_id, loops.c.dispatched_at, loops.c.updated_at, loops.c.detail)


def _job_row(row: Any) -> JobRow:
    return JobRow(row.id, row.kind, PRIORITY_NAMES.get(row.priority, str(row.priority)), row.repo, row.key,
                  row.state, row.attempts, row.next_at, row.last_error, row.created_at)
