"""Pacing of an installation's content-creating writes, through the database so every worker and
replica shares it. GitHub's secondary limits for content creation: at least a second between
writes, at most 80 a minute and 500 an hour; a Retry-After or secondary-limit answer blocks
writes until it has passed. A writer reserves a slot (a time) and waits until then."""

from __future__ import annotations

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from loopbot.app.db import pacing, pacing_writes

SPACING_SECONDS = 1.0
PER_MINUTE = 80
PER_HOUR = 500


def earliest(writes: list[float], start: float) -> float:
    """The first time ≥ start a write fits the minute and hour limits, given sorted `writes` (pure)."""
    at = start
    while True:
        minute = [w for w in writes if w > at - 60]
        hour = [w for w in writes if w > at - 3600]
        if len(minute) >= PER_MINUTE:
            at = minute[len(minute) - PER_MINUTE] + 60  # when the oldest write that must go has gone
        elif len(hour) >= PER_HOUR:
            at = hour[len(hour) - PER_HOUR] + 3600
        else:
            return at


def reserve(conn: Connection, installation_id: int, now: float, max_wait: float | None = None) -> float:
    """The earliest time ≥ now a write fits all three limits; recorded, so the next one is after it.
    A slot further than `max_wait` ahead is returned but not taken (the caller requeues its job
    rather than hold a worker). Runs in the caller's write transaction (the pacing row is locked).

    `next_write_at` is kept at the first time a further write would fit: the queue claims no job
    of the installation before then (queue.claim), so jobs waiting for the budget stay queued,
    most urgent first, instead of waking together and asking GitHub again."""
    row = _locked_row(conn, installation_id)
    conn.execute(delete(pacing_writes).where(pacing_writes.c.installation_id == installation_id,
                                             pacing_writes.c.at <= now - 3600))
    writes = sorted(conn.scalars(select(pacing_writes.c.at).where(pacing_writes.c.installation_id == installation_id)))
    at = earliest(writes, max(now, row[0], row[1]))
    if max_wait is not None and at - now > max_wait:
        return at
    conn.execute(insert(pacing_writes).values(installation_id=installation_id, at=at))
    following = earliest(sorted([*writes, at]), at + SPACING_SECONDS)
    conn.execute(update(pacing).where(pacing.c.installation_id == installation_id)
                 .values(next_write_at=following))
    return at


def block(conn: Connection, installation_id: int, until: float) -> None:
    """GitHub said wait (Retry-After, a secondary limit): no write for this installation before `until`."""
    row = _locked_row(conn, installation_id)
    if until > row[1]:
        conn.execute(update(pacing).where(pacing.c.installation_id == installation_id).values(blocked_until=until))


def _locked_row(conn: Connection, installation_id: int) -> tuple[float, float]:
    query = select(pacing.c.next_write_at, pacing.c.blocked_until).where(pacing.c.installation_id == installation_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    # Created once, race-free (ON CONFLICT DO NOTHING on both databases), then locked.
    upsert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    conn.execute(upsert(pacing).values(installation_id=installation_id, next_write_at=0.0, blocked_until=0.0)
                 .on_conflict_do_nothing(index_elements=[pacing.c.installation_id]))
    row = conn.execute(query).first()
    assert row is not None
    return float(row[0]), float(row[1])
