"""Rows for the App's store as the workers would leave them (loops and their cost), for tests of
what the web side shows. Written through the store's own tables, on whichever database it is."""

from __future__ import annotations

from sqlalchemy import insert

from loopbot.app import db
from loopbot.app.store import AppStore


def seed_loop(store: AppStore, repo: str, issue: int, status: str, *, cost_usd: float = 0.0,
              updated_at: float = 0.0, run_id: str = "", workflow_run_id: int | None = None,
              detail: str = "", installation_id: int | None = 42) -> int:
    with store.write() as conn:
        result = conn.execute(insert(db.loops).values(
            repo=repo, issue=issue, installation_id=installation_id, run_id=run_id, status=status,
            cost_usd=cost_usd, workflow_run_id=workflow_run_id, updated_at=updated_at, detail=detail,
            heartbeat_at=updated_at or None))
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])


def seed_cost(store: AppStore, repo: str, day: str, usd: float) -> None:
    with store.write() as conn:
        conn.execute(insert(db.costs).values(repo=repo, day=day, usd=usd))
