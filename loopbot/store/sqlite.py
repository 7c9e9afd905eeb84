"""SQLite store: the latest state per run, plus a row per completed step (an audit trail)."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from loopbot.core.andon import Lesson
from loopbot.core.redact import NO_SECRETS
from loopbot.core.state import LoopState, load_state
from loopbot.errors import StateError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    goal_id TEXT NOT NULL,
    repo TEXT NOT NULL,
    status TEXT NOT NULL,
    phase TEXT NOT NULL,
    iteration INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    stop_reason TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    owner TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS lessons (
    repo TEXT NOT NULL,
    text TEXT NOT NULL,
    level TEXT NOT NULL,
    source TEXT NOT NULL,
    count INTEGER NOT NULL,
    last_seen REAL NOT NULL,
    PRIMARY KEY (repo, text)
);
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    step TEXT NOT NULL,
    iteration INTEGER NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (run_id, seq)
);
"""


def _alive(owner: str) -> bool:
    """Is the process named `host:pid` still running? Only decidable on this host."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SqliteStore:
    def __init__(self, path: Path, owner: str = "", redact: Callable[[str], str] = NO_SECRETS):
        self.path = path
        self.redact = redact
        # host:pid of the process running loops through this store; written with every checkpoint.
        self.owner = owner
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a checkpoint acknowledged is a checkpoint kept, even if the process is killed next.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def save(self, state: LoopState, step: str) -> None:
        now = time.time()
        payload = self.redact(state.model_dump_json())
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                """INSERT INTO runs (run_id, goal_id, repo, status, phase, iteration, cost_usd,
                       stop_reason, created_at, updated_at, owner, state)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT(run_id) DO UPDATE SET status=excluded.status, phase=excluded.phase,
                       iteration=excluded.iteration, cost_usd=excluded.cost_usd,
                       stop_reason=excluded.stop_reason, updated_at=excluded.updated_at,
                       owner=excluded.owner, state=excluded.state""",
                (state.run_id, state.goal.id, state.repo, state.status.value, state.phase.value,
                 state.iteration, state.spend.cost_usd, state.stop_label or None, now, now,
                 "" if state.finished else self.owner, payload),
            )
            self._db.execute(
                "INSERT OR REPLACE INTO steps (run_id, seq, step, iteration, at) VALUES (?, ?, ?, ?, ?)",
                (state.run_id, state.steps_completed, step, state.iteration, now),
            )
            self._db.execute("COMMIT")

    def load(self, run_id: str) -> LoopState:
        row = self._db.execute("SELECT state FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise StateError(f"no run {run_id!r} in {self.path}")
        try:
            data = json.loads(row[0])
        except json.JSONDecodeError as exc:
            raise StateError(f"run {run_id!r} has a corrupt state: {exc}") from None
        return load_state(data)

    def list_runs(self) -> Sequence[LoopState]:
        rows = self._db.execute("SELECT run_id FROM runs ORDER BY created_at").fetchall()
        states = []
        for (run_id,) in rows:
            try:
                states.append(self.load(run_id))
            except StateError:
                continue  # listed by `status` as unreadable via step_log, never a crash
        return states

    def steps(self, run_id: str) -> list[tuple[int, str]]:
        rows = self._db.execute("SELECT seq, step FROM steps WHERE run_id = ? ORDER BY seq", (run_id,))
        return [(int(seq), str(step)) for seq, step in rows.fetchall()]

    def live_owner(self, run_id: str) -> str | None:
        """The other process still working on this run, if there is one."""
        row = self._db.execute("SELECT owner FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None or not row[0] or row[0] == self.owner:
            return None
        return str(row[0]) if _alive(str(row[0])) else None

    def add_lessons(self, repo: str, lessons: Sequence[Lesson]) -> None:
        now = time.time()
        with self._db:
            for lesson in lessons:
                self._db.execute(
                    """INSERT INTO lessons (repo, text, level, source, count, last_seen) VALUES (?, ?, ?, ?, 1, ?)
                       ON CONFLICT(repo, text) DO UPDATE SET count = count + 1, last_seen = excluded.last_seen""",
                    (repo, self.redact(lesson.text), lesson.level.value, lesson.source, now))

    def lessons(self, repo: str, limit: int = 12) -> list[str]:
        """The lessons for prompts: strongest prevention level first, then the most repeated."""
        rows = self._db.execute(
            "SELECT level, text, count FROM lessons WHERE repo = ? ORDER BY level, count DESC, last_seen DESC LIMIT ?",
            (repo, limit)).fetchall()
        return [f"[{level}] {text}" + (f" (seen {count}x)" if count > 1 else "") for level, text, count in rows]

    def request_cancel(self, run_id: str) -> None:
        with self._db:
            cursor = self._db.execute("UPDATE runs SET cancel_requested = 1 WHERE run_id = ?", (run_id,))
        if cursor.rowcount == 0:
            raise StateError(f"no run {run_id!r} in {self.path}")

    def cancel_requested(self, run_id: str) -> bool:
        row = self._db.execute("SELECT cancel_requested FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return bool(row and row[0])

    def clear_cancel(self, run_id: str) -> None:
        with self._db:
            self._db.execute("UPDATE runs SET cancel_requested = 0 WHERE run_id = ?", (run_id,))
