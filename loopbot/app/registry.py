"""The registry: installations, their repositories, and one row per plan issue's loop (status,
heartbeat, cost, workflow run), fed by installation events, `workflow_run` events, dispatches and
the loop's own state as the reconciler reads it from GitHub."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Table, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from loopbot.app.db import costs, installations, jobs, loops, repositories
from loopbot.app.store import AppStore, LoopRow

# dispatched: the App asked Actions to run it; running: a run or its state says so; suspended: the
# runner paused on an error (resumable); the rest are final.
ACTIVE = ("dispatched", "running", "suspended")
FINAL = ("success", "stopped", "blocked")
STATUSES = (*ACTIVE, *FINAL)

# The run-name of loopbot-run.yml when the App dispatches it: "loopbot <command> #<issue> [<delivery>]".
_RUN_NAME = re.compile(r"^loopbot (run|resume|retry|stop|status) #(\d+) \[([^\]]*)\]$")


def dispatched_title(title: str) -> tuple[str, int, str] | None:
    """(command, issue, delivery) of a run the App dispatched, from its display title."""
    found = _RUN_NAME.match(title.strip())
    return (found.group(1), int(found.group(2)), found.group(3)) if found else None


def _upsert(conn: Connection) -> Callable[[Table], Any]:
    """INSERT … ON CONFLICT of the connection's dialect (both have it, with the same API)."""
    return pg_insert if conn.dialect.name == "postgresql" else sqlite_insert


# -- installations ------------------------------------------------------------------------------
def installation(store: AppStore, installation_id: int, account: str, *, suspended: bool | None = None,
                 deleted: bool = False) -> None:
    now = store.now()
    with store.write() as conn:
        values: dict[str, object] = {"account": account, "deleted": deleted, "updated_at": now}
        if suspended is not None:
            values["suspended"] = suspended
        statement = _upsert(conn)(installations).values(id=installation_id, **{"suspended": False, **values})
        conn.execute(statement.on_conflict_do_update(index_elements=[installations.c.id], set_=values))
        if deleted:
            conn.execute(delete(repositories).where(repositories.c.installation_id == installation_id))
            conn.execute(update(jobs).where(jobs.c.installation_id == installation_id, jobs.c.state == "pending")
                         .values(state="dead", last_error="the installation was deleted", updated_at=now))


def add_repositories(store: AppStore, installation_id: int, names: Iterable[str]) -> None:
    now = store.now()
    with store.write() as conn:
        for name in names:
            values = {"installation_id": installation_id, "updated_at": now}
            conn.execute(_upsert(conn)(repositories).values(full_name=name, **values)
                         .on_conflict_do_update(index_elements=[repositories.c.full_name], set_=values))


def remove_repositories(store: AppStore, installation_id: int, names: Iterable[str]) -> None:
    with store.write() as conn:
        conn.execute(delete(repositories).where(repositories.c.installation_id == installation_id,
                                                repositories.c.full_name.in_(list(names))))


def repository_names(store: AppStore, installation_id: int | None = None) -> list[str]:
    query = select(repositories.c.full_name).order_by(repositories.c.full_name)
    if installation_id is not None:
        query = query.where(repositories.c.installation_id == installation_id)
    with store.read() as conn:
        return list(conn.scalars(query))


def installation_of(store: AppStore, repo: str) -> int | None:
    with store.read() as conn:
        found = conn.scalar(select(repositories.c.installation_id).where(repositories.c.full_name == repo))
    return int(found) if found is not None else None


def is_active(store: AppStore, installation_id: int) -> bool:
    with store.read() as conn:
        row = conn.execute(select(installations.c.suspended, installations.c.deleted)
                           .where(installations.c.id == installation_id)).first()
    return row is None or not (row.suspended or row.deleted)


# -- loops --------------------------------------------------------------------------------------
def _ensure(conn: Connection, repo: str, issue: int, installation_id: int | None, now: float) -> int:
    conn.execute(_upsert(conn)(loops).values(repo=repo, issue=issue, installation_id=installation_id, ref="",
                                             run_id="", status="dispatched", cost_usd=0.0, updated_at=now,
                                             resumes=0, detail="", workflow_run_done=False)
                 .on_conflict_do_nothing(index_elements=[loops.c.repo, loops.c.issue]))
    found = conn.scalar(select(loops.c.id).where(loops.c.repo == repo, loops.c.issue == issue))
    assert found is not None
    return int(found)


def dispatched(store: AppStore, repo: str, issue: int, installation_id: int | None, command: str, *,
               ref: str = "", automatic: bool = False) -> int:
    """A run/resume/retry dispatch was sent: the loop is on its way (a resume the reconciler asked
    for counts against its bound; a human's command starts the count again)."""
    now = store.now()
    with store.write() as conn:
        loop_id = _ensure(conn, repo, issue, installation_id, now)
        values: dict[str, object] = {"status": "dispatched", "dispatched_at": now, "updated_at": now,
                                     "workflow_run_done": False, "detail": f"{command} dispatched"}
        if installation_id is not None:
            values["installation_id"] = installation_id
        if ref:
            values["ref"] = ref
        if automatic:
            values["resumes"] = loops.c.resumes + 1
        else:
            values["resumes"] = 0
        conn.execute(update(loops).where(loops.c.id == loop_id).values(**values))
    schedule_dashboard(store, repo, installation_id)
    return loop_id


def workflow_run(store: AppStore, repo: str, issue: int, run_id: int, *, completed: bool, conclusion: str | None,
                 installation_id: int | None = None) -> int:
    """A workflow_run event for a run of this plan: which run it is and whether it has ended."""
    now = store.now()
    with store.write() as conn:
        loop_id = _ensure(conn, repo, issue, installation_id, now)
        values: dict[str, object] = {"workflow_run_id": run_id, "workflow_run_done": completed, "updated_at": now}
        current = conn.scalar(select(loops.c.status).where(loops.c.id == loop_id))
        if not completed and current == "dispatched":
            values["status"] = "running"
        if completed:
            values["detail"] = f"workflow run {run_id} completed ({conclusion or 'no conclusion'})"
        conn.execute(update(loops).where(loops.c.id == loop_id).values(**values))
    schedule_dashboard(store, repo, installation_id or _installation(store, loop_id))
    return loop_id


@dataclass(frozen=True)
class Observed:
    """What the loop's state branch says: its run, status, last checkpoint time and spend."""

    run_id: str
    status: str  # one of STATUSES
    heartbeat_at: float
    cost_usd: float
    detail: str = ""


def observed(store: AppStore, repo: str, issue: int, seen: Observed, installation_id: int | None = None) -> int:
    """The loop's own state, read from GitHub. Its cost's growth is booked to today."""
    now = store.now()
    day = datetime.fromtimestamp(now, UTC).date().isoformat()
    with store.write() as conn:
        loop_id = _ensure(conn, repo, issue, installation_id, now)
        row = conn.execute(select(loops.c.run_id, loops.c.cost_usd, loops.c.status).where(loops.c.id == loop_id)).one()
        earlier = row.cost_usd if row.run_id == seen.run_id else 0.0
        grown = max(0.0, seen.cost_usd - earlier)
        status = seen.status
        if row.status == "blocked" and status in ACTIVE:
            status = "blocked"  # the reconciler gave up on it; a human's command dispatches it again
        conn.execute(update(loops).where(loops.c.id == loop_id).values(
            run_id=seen.run_id, status=status, heartbeat_at=seen.heartbeat_at, cost_usd=seen.cost_usd,
            updated_at=now, detail=seen.detail or row.status))
        if grown > 0:
            values = {"usd": costs.c.usd + grown}
            conn.execute(_upsert(conn)(costs).values(repo=repo, day=day, usd=grown)
                         .on_conflict_do_update(index_elements=[costs.c.repo, costs.c.day], set_=values))
    schedule_dashboard(store, repo, installation_id or _installation(store, loop_id))
    return loop_id


def mark(store: AppStore, loop_id: int, status: str, detail: str) -> None:
    assert status in STATUSES, status
    with store.write() as conn:
        conn.execute(update(loops).where(loops.c.id == loop_id).values(status=status, detail=detail[:2000],
                                                                       updated_at=store.now()))
    with store.read() as conn:
        row = conn.execute(select(loops.c.repo, loops.c.installation_id).where(loops.c.id == loop_id)).first()
    if row is not None:
        schedule_dashboard(store, row.repo, row.installation_id)


def _installation(store: AppStore, loop_id: int) -> int | None:
    with store.read() as conn:
        found = conn.scalar(select(loops.c.installation_id).where(loops.c.id == loop_id))
    return int(found) if found is not None else None


@dataclass(frozen=True)
class Liveness:
    loop: LoopRow
    installation_id: int | None
    resumes: int
    workflow_run_done: bool


def active(store: AppStore) -> Sequence[Liveness]:
    """Loops that should be making progress, for the reconciler."""
    with store.read() as conn:
        rows = conn.execute(select(loops).where(loops.c.status.in_(ACTIVE)).order_by(loops.c.id)).all()
    return [Liveness(LoopRow(r.id, r.repo, r.issue, r.run_id, r.status, r.heartbeat_at, r.cost_usd,
                             r.workflow_run_id, r.dispatched_at, r.updated_at, r.detail),
                     r.installation_id, r.resumes, r.workflow_run_done) for r in rows]


def plan_loop(store: AppStore, repo: str, issue: int) -> tuple[int | None, str] | None:
    """(installation, default branch) the registry knows for this plan's loop."""
    with store.read() as conn:
        row = conn.execute(select(loops.c.installation_id, loops.c.ref)
                           .where(loops.c.repo == repo, loops.c.issue == issue)).first()
    return (row.installation_id, row.ref) if row is not None else None


DASHBOARD_EVERY_SECONDS = 60.0  # a repository's dashboard issue is edited at most once a minute


def schedule_dashboard(store: AppStore, repo: str, installation_id: int | None) -> None:
    """Ask for the repository's dashboard to be rendered again at the end of this minute: every
    change within the minute is one edit (the job reads the registry when it runs)."""
    if installation_id is None or "/" not in repo:
        return
    slot = int(store.now() // DASHBOARD_EVERY_SECONDS) + 1
    store.enqueue("dashboard", "reconcile", repo, None, {"repo": repo}, installation_id=installation_id,
                  dedupe=f"dashboard:{repo}:{slot}", at=slot * DASHBOARD_EVERY_SECONDS)
