"""The job queue's rules and its claim, on one database connection.

Priorities: security > incident > routine (webhook-born) > reconcile (the reconciler's own jobs).
A claim takes the most urgent due job whose repository is under its concurrency limit and whose
plan (repo#issue) has no running job; a running job whose lease ran out (its worker died) is due
again. On SQLite the claim runs in a BEGIN IMMEDIATE transaction (one writer at a time); on
PostgreSQL it reads candidates FOR UPDATE SKIP LOCKED, and holds a transaction-scoped advisory
lock on the candidate's repository while it checks the limits, so two replicas never both admit
a job over the limit."""

from __future__ import annotations

import json
import random
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select, text, update
from sqlalchemy.sql import ColumnElement

from loopbot.app.db import installations, jobs, pacing

PRIORITIES: Mapping[str, int] = {"security": 0, "incident": 1, "routine": 2, "reconcile": 3}
PRIORITY_NAMES: Mapping[int, str] = {rank: name for name, rank in PRIORITIES.items()}
STATES = ("pending", "running", "done", "dead")

LEASE_SECONDS = 300.0
MAX_ATTEMPTS = 6
BACKOFF_BASE_SECONDS = 5.0
BACKOFF_CAP_SECONDS = 30 * 60.0
CANDIDATES = 20  # looked at per claim; a busy repository's jobs never hide another's


@dataclass(frozen=True)
class Claimed:
    id: int
    kind: str
    priority: int
    repo: str
    key: str
    installation_id: int | None
    payload: dict[str, Any]
    attempts: int  # including this one


def backoff_seconds(attempts: int, rng: random.Random) -> float:
    """The wait after failed attempt number `attempts`: exponential, capped, with full jitter in
    its upper half, so jobs that failed together do not come back together."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempts - 1))
    return float(ceiling / 2 + rng.random() * ceiling / 2)


def _due(now: float) -> ColumnElement[bool]:
    return or_(and_(jobs.c.state == "pending", jobs.c.next_at <= now),
               and_(jobs.c.state == "running", jobs.c.lease_until < now))


def _installation_active(now: float) -> ColumnElement[bool]:
    """Not suspended or deleted, and allowed to write now: a job that may write waits in the queue
    while its installation's write budget is spent (pacing.py), rather than bounce off it."""
    suspended = select(installations.c.id).where(
        installations.c.id == jobs.c.installation_id,
        or_(installations.c.suspended.is_(True), installations.c.deleted.is_(True)))
    paced = select(pacing.c.installation_id).where(
        pacing.c.installation_id == jobs.c.installation_id,
        or_(pacing.c.next_write_at > now, pacing.c.blocked_until > now))
    return and_(~suspended.exists(), ~paced.exists())


def claim(conn: Connection, *, worker: str, now: float, per_repo: int,
          lease_seconds: float = LEASE_SECONDS) -> Claimed | None:
    """Take one job for `worker`, in the caller's (write) transaction."""
    postgres = conn.dialect.name == "postgresql"
    running = jobs.alias("running")
    busy_plan = select(running.c.id).where(
        running.c.state == "running", running.c.key == jobs.c.key, running.c.id != jobs.c.id)
    repo_running = select(func.count()).select_from(running).where(
        running.c.state == "running", running.c.lease_until >= now, running.c.repo == jobs.c.repo,
        running.c.id != jobs.c.id).scalar_subquery()
    candidates = (select(jobs.c.id, jobs.c.repo).where(
        _due(now), _installation_active(now), or_(jobs.c.key == "", ~busy_plan.exists()),
        or_(jobs.c.repo == "", repo_running < per_repo))
        .order_by(jobs.c.priority, jobs.c.id).limit(CANDIDATES))
    if postgres:
        candidates = candidates.with_for_update(skip_locked=True, of=jobs)
    for job_id, repo in conn.execute(candidates).all():
        if postgres and repo:
            # Checked again under the repository's lock: the candidate query's snapshot cannot see
            # a job another replica claimed a moment ago and has not committed yet.
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": zlib.crc32(repo.encode())})
            still = select(jobs.c.id).where(
                jobs.c.id == job_id, _due(now), or_(jobs.c.key == "", ~busy_plan.exists()),
                or_(jobs.c.repo == "", repo_running < per_repo))
            if conn.execute(still).first() is None:
                continue
        row = conn.execute(
            update(jobs).where(jobs.c.id == job_id, _due(now))
            .values(state="running", claimed_by=worker, lease_until=now + lease_seconds,
                    attempts=jobs.c.attempts + 1, updated_at=now)
            .returning(jobs.c.id, jobs.c.kind, jobs.c.priority, jobs.c.repo, jobs.c.key,
                       jobs.c.installation_id, jobs.c.payload, jobs.c.attempts)).first()
        if row is not None:
            return Claimed(row.id, row.kind, row.priority, row.repo, row.key, row.installation_id,
                           json.loads(row.payload), row.attempts)
    return None


def finish(conn: Connection, job_id: int, worker: str, now: float) -> bool:
    """Done. False when the job is no longer this worker's (its lease ran out and it was re-claimed)."""
    done = conn.execute(update(jobs).where(jobs.c.id == job_id, jobs.c.claimed_by == worker,
                                           jobs.c.state == "running")
                        .values(state="done", lease_until=None, updated_at=now))
    return done.rowcount == 1


def fail(conn: Connection, job_id: int, worker: str, error: str, now: float, rng: random.Random, *,
         max_attempts: int = MAX_ATTEMPTS, retry_at: float | None = None) -> str | None:
    """A failed attempt: back to pending after a backoff (or at `retry_at`, e.g. a rate limit's
    reset), or dead after `max_attempts`. Returns the new state, None if the job is not this worker's."""
    row = conn.execute(select(jobs.c.attempts).where(
        jobs.c.id == job_id, jobs.c.claimed_by == worker, jobs.c.state == "running")).first()
    if row is None:
        return None
    dead = row.attempts >= max_attempts
    state = "dead" if dead else "pending"
    next_at = now if dead else max(now + backoff_seconds(row.attempts, rng), retry_at or 0.0)
    conn.execute(update(jobs).where(jobs.c.id == job_id).values(
        state=state, next_at=next_at, last_error=error[:4000], lease_until=None, updated_at=now))
    return state


def release(conn: Connection, job_id: int, worker: str, at: float, now: float) -> bool:
    """Put a job back, not counted as an attempt (it could not start yet, e.g. no App credentials)."""
    done = conn.execute(update(jobs).where(jobs.c.id == job_id, jobs.c.claimed_by == worker,
                                           jobs.c.state == "running")
                        .values(state="pending", next_at=at, lease_until=None,
                                attempts=jobs.c.attempts - 1, updated_at=now))
    return done.rowcount == 1


def extend(conn: Connection, job_id: int, worker: str, now: float, lease_seconds: float = LEASE_SECONDS) -> bool:
    """Keep a long job's lease (False: it is no longer ours; stop working on it)."""
    done = conn.execute(update(jobs).where(jobs.c.id == job_id, jobs.c.claimed_by == worker,
                                           jobs.c.state == "running")
                        .values(lease_until=now + lease_seconds, updated_at=now))
    return done.rowcount == 1
