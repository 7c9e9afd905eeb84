"""SQLite store: the latest state per run, a row per completed step, the spend ledger, the lease.

Every fault of the database file itself (read-only directory, disk full, not a database) is a
StoreError naming the path and what to do: the CLI prints it and exits 2, never a traceback.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from loopbot.core.andon import Lesson
from loopbot.core.budgets import Charge, Spend
from loopbot.core.redact import NO_SECRETS
from loopbot.core.state import LoopState, load_state
from loopbot.errors import LeaseHeld, LeaseLost, StateError, StoreError

# A lease not renewed for this long belongs to nobody; the heartbeat renews it three times as often.
LEASE_SECONDS = 15.0

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
CREATE TABLE IF NOT EXISTS lesson_runs (
    repo TEXT NOT NULL,
    text TEXT NOT NULL,
    run_id TEXT NOT NULL,
    PRIMARY KEY (repo, text, run_id)
);
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    step TEXT NOT NULL,
    iteration INTEGER NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE IF NOT EXISTS spend (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    role TEXT NOT NULL,
    model TEXT NOT NULL,
    iteration INTEGER NOT NULL,
    turn INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    cache_read_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    seconds REAL NOT NULL,
    accepted INTEGER NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE IF NOT EXISTS branches (
    branch TEXT NOT NULL,
    repo TEXT NOT NULL,
    run_id TEXT NOT NULL,
    worktree TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (repo, branch)
);
"""
# Columns added after the first release; a database from then is brought up to date on open.
_ADDED_COLUMNS = {"runs": [("lease_expires", "REAL NOT NULL DEFAULT 0")]}


def new_owner_tag() -> str:
    """host:pid:nonce — the nonce tells a reused pid from the process that took the lease."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


def pid_alive(pid: int) -> bool:
    """Is process `pid` on this host still there?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_alive(owner: str) -> bool:
    """False only when the owner is provably gone: a process on this host that no longer exists."""
    parts = owner.split(":")
    if len(parts) < 2 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return True  # another host: only the lease's expiry can tell
    return pid_alive(int(parts[1]))


def _fault(path: Path, exc: BaseException) -> StoreError:
    text = str(exc)
    if isinstance(exc, sqlite3.DatabaseError) and ("not a database" in text or "malformed" in text):
        advice = f"the file is damaged: move it aside (mv {path} {path}.corrupt) and loopbot starts a new one"
    elif "readonly" in text or "read-only" in text or isinstance(exc, PermissionError):
        advice = "the state directory is not writable: fix its permissions or pass --state-dir"
    elif "disk is full" in text or "No space" in text:
        advice = "the disk is full: free space, then `loopbot resume`"
    elif "locked" in text:
        advice = "another process holds the database locked; try again when it has finished its step"
    else:
        advice = "check the file and its directory, or pass --state-dir"
    return StoreError(f"loopbot's database {path}: {text}; {advice}")


class SqliteStore:
    def __init__(self, path: Path, owner: str = "", redact: Callable[[str], str] = NO_SECRETS,
                 lease_seconds: float = LEASE_SECONDS):
        self.path = path
        self.redact = redact
        # host:pid:nonce of the process running loops through this store; the lease holder's name.
        self.owner = owner or new_owner_tag()
        self.lease_seconds = lease_seconds
        self._lock = threading.Lock()
        self._heartbeats: dict[str, tuple[threading.Event, threading.Thread]] = {}
        self.lost: set[str] = set()
        # Called from the heartbeat when `loopbot stop` asked this run to stop: mid-step, not
        # only at the next step boundary.
        self.on_cancel_request: Callable[[], None] | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = self._connect()
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a checkpoint acknowledged is a checkpoint kept, even if the process is killed next.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            for table, columns in _ADDED_COLUMNS.items():
                have = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
                for name, kind in columns:
                    if name not in have:
                        self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
        except (sqlite3.Error, OSError) as exc:
            raise _fault(path, exc) from None

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)

    @contextmanager
    def _guarded(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._db
            except (sqlite3.Error, OSError) as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise _fault(self.path, exc) from None

    def close(self) -> None:
        for run_id in list(self._heartbeats):
            self._stop_heartbeat(run_id)
        self._db.close()

    # -- the lease: one owner per run --------------------------------------------------------
    def claim(self, run_id: str) -> None:
        """Take the run's lease in one transaction (compare and swap); LeaseHeld names a live owner."""
        now = time.time()
        with self._guarded() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT owner, lease_expires FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                db.execute("ROLLBACK")
                raise StateError(f"no run {run_id!r} in {self.path}")
            owner, expires = str(row[0]), float(row[1])
            if owner and owner != self.owner and expires > now and owner_alive(owner):
                db.execute("ROLLBACK")
                raise LeaseHeld(run_id, owner)
            db.execute("UPDATE runs SET owner = ?, lease_expires = ? WHERE run_id = ?",
                       (self.owner, now + self.lease_seconds, run_id))
            db.execute("COMMIT")
        self.lost.discard(run_id)
        self._start_heartbeat(run_id)

    def release(self, run_id: str) -> None:
        self._stop_heartbeat(run_id)
        with self._guarded() as db:
            db.execute("UPDATE runs SET owner = '', lease_expires = 0 WHERE run_id = ? AND owner = ?",
                       (run_id, self.owner))

    def holds(self, run_id: str) -> bool:
        return run_id not in self.lost

    def _start_heartbeat(self, run_id: str) -> None:
        if run_id in self._heartbeats:
            return
        stop = threading.Event()

        def beat() -> None:
            # Its own connection: a long write on the main one must not delay the renewal.
            db = self._connect()
            try:
                while not stop.wait(self.lease_seconds / 3):
                    try:
                        cursor = db.execute(
                            "UPDATE runs SET lease_expires = ? WHERE run_id = ? AND owner = ?",
                            (time.time() + self.lease_seconds, run_id, self.owner))
                    except sqlite3.Error:
                        continue  # a busy or full database: try again next beat; expiry decides
                    if cursor.rowcount == 0:
                        self.lost.add(run_id)
                        return
                    wanted = db.execute("SELECT cancel_requested FROM runs WHERE run_id = ?", (run_id,)).fetchone()
                    if wanted and wanted[0] and self.on_cancel_request is not None:
                        self.on_cancel_request()
            finally:
                db.close()

        thread = threading.Thread(target=beat, name=f"lease-{run_id}", daemon=True)
        self._heartbeats[run_id] = (stop, thread)
        thread.start()

    def _stop_heartbeat(self, run_id: str) -> None:
        entry = self._heartbeats.pop(run_id, None)
        if entry is not None:
            entry[0].set()
            entry[1].join(timeout=5)

    def live_owner(self, run_id: str) -> str | None:
        """Another process holding a live lease on this run, if there is one."""
        with self._guarded() as db:
            row = db.execute("SELECT owner, lease_expires FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None or not row[0] or row[0] == self.owner:
            return None
        owner, expires = str(row[0]), float(row[1])
        return owner if expires > time.time() and owner_alive(owner) else None

    # -- states ------------------------------------------------------------------------------
    def create(self, state: LoopState) -> None:
        """Record a new run, its lease taken, and the branch it will make — before anything is made."""
        now = time.time()
        payload = self.redact(state.model_dump_json())
        with self._guarded() as db:
            db.execute("BEGIN IMMEDIATE")
            if db.execute("SELECT 1 FROM runs WHERE run_id = ?", (state.run_id,)).fetchone():
                db.execute("ROLLBACK")
                raise StateError(f"a run {state.run_id!r} is already recorded in {self.path}")
            db.execute(
                """INSERT INTO runs (run_id, goal_id, repo, status, phase, iteration, cost_usd, stop_reason,
                       created_at, updated_at, owner, lease_expires, state)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (state.run_id, state.goal.id, state.repo, state.status.value, state.phase.value, state.iteration,
                 state.spend.cost_usd, None, now, now, self.owner, now + self.lease_seconds, payload))
            db.execute("INSERT OR REPLACE INTO branches (branch, repo, run_id, worktree, created_at) "
                       "VALUES (?, ?, ?, ?, ?)", (state.branch, state.repo, state.run_id, state.worktree, now))
            db.execute("INSERT OR REPLACE INTO steps (run_id, seq, step, iteration, at) VALUES (?, ?, ?, ?, ?)",
                       (state.run_id, state.steps_completed, "created", state.iteration, now))
            db.execute("COMMIT")
        self._start_heartbeat(state.run_id)

    def save(self, state: LoopState, step: str) -> None:
        """Checkpoint: only the lease holder may write (LeaseLost otherwise, also once another
        process finished the run and let the lease go). A final or suspended state frees the lease."""
        now = time.time()
        payload = self.redact(state.model_dump_json())
        final = state.finished or state.suspended is not None
        owner, expires = ("", 0.0) if final else (self.owner, now + self.lease_seconds)
        with self._guarded() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT owner FROM runs WHERE run_id = ?", (state.run_id,)).fetchone()
            if row is None:
                db.execute(
                    """INSERT INTO runs (run_id, goal_id, repo, status, phase, iteration, cost_usd, stop_reason,
                           created_at, updated_at, owner, lease_expires, state)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                    (state.run_id, state.goal.id, state.repo, state.status.value, state.phase.value,
                     state.iteration, state.spend.cost_usd, state.stop_label or None, now, now, owner, expires,
                     payload))
            elif row[0] != self.owner:
                db.execute("ROLLBACK")
                self.lost.add(state.run_id)
                raise LeaseLost(state.run_id, str(row[0]) or "another process, which has since let it go")
            else:
                db.execute(
                    """UPDATE runs SET status = ?, phase = ?, iteration = ?, cost_usd = ?, stop_reason = ?,
                           updated_at = ?, owner = ?, lease_expires = ?, state = ? WHERE run_id = ?""",
                    (state.status.value, state.phase.value, state.iteration, state.spend.cost_usd,
                     state.stop_label or None, now, owner, expires, payload, state.run_id))
            db.execute("INSERT OR REPLACE INTO steps (run_id, seq, step, iteration, at) VALUES (?, ?, ?, ?, ?)",
                       (state.run_id, state.steps_completed, step, state.iteration, now))
            db.execute("COMMIT")
        if final:
            self._stop_heartbeat(state.run_id)

    def load(self, run_id: str) -> LoopState:
        with self._guarded() as db:
            row = db.execute("SELECT state FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise StateError(f"no run {run_id!r} in {self.path}")
        try:
            data = json.loads(row[0])
        except json.JSONDecodeError as exc:
            raise StateError(f"run {run_id!r} has a corrupt state: {exc}") from None
        return load_state(data)

    def run_ids(self) -> list[str]:
        with self._guarded() as db:
            rows = db.execute("SELECT run_id FROM runs ORDER BY created_at").fetchall()
        return [str(r[0]) for r in rows]

    def list_runs(self) -> Sequence[LoopState]:
        states = []
        for run_id in self.run_ids():
            try:
                states.append(self.load(run_id))
            except StateError:
                continue  # `status` lists it as unreadable; never a crash
        return states

    def delete(self, run_id: str) -> None:
        with self._guarded() as db:
            db.execute("BEGIN IMMEDIATE")
            for table in ("runs", "steps", "spend", "branches"):
                db.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
            db.execute("COMMIT")

    def steps(self, run_id: str) -> list[tuple[int, str]]:
        with self._guarded() as db:
            rows = db.execute("SELECT seq, step FROM steps WHERE run_id = ? ORDER BY seq", (run_id,)).fetchall()
        return [(int(seq), str(step)) for seq, step in rows]

    def branches(self) -> list[tuple[str, str, str, str]]:
        """(repo, branch, run_id, worktree) of every branch loopbot recorded before making it."""
        with self._guarded() as db:
            rows = db.execute("SELECT repo, branch, run_id, worktree FROM branches ORDER BY created_at").fetchall()
        return [(str(a), str(b), str(c), str(d)) for a, b, c, d in rows]

    def forget_branch(self, repo: str, branch: str) -> None:
        with self._guarded() as db:
            db.execute("DELETE FROM branches WHERE repo = ? AND branch = ?", (repo, branch))

    # -- the spend ledger ----------------------------------------------------------------------
    def record_spend(self, run_id: str, charge: Charge) -> None:
        """One model call's usage, written before its reply is acted on (or rejected)."""
        with self._guarded() as db:
            db.execute("BEGIN IMMEDIATE")
            (seq,) = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM spend WHERE run_id = ?", (run_id,)).fetchone()
            db.execute(
                """INSERT INTO spend (run_id, seq, role, model, iteration, turn, input_tokens, output_tokens,
                       cache_write_tokens, cache_read_tokens, cost_usd, seconds, accepted, at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (run_id, seq, charge.role, charge.model, charge.iteration, charge.turn, charge.input_tokens,
                 charge.output_tokens, charge.cache_write_tokens, charge.cache_read_tokens, charge.cost_usd,
                 charge.seconds, int(charge.accepted), time.time()))
            db.execute("COMMIT")

    def spent(self, run_id: str) -> Spend | None:
        """The ledger's sum; None when this run has no ledger (calls made before it existed)."""
        with self._guarded() as db:
            rows = db.execute(
                """SELECT input_tokens, output_tokens, cache_write_tokens, cache_read_tokens, cost_usd, seconds
                   FROM spend WHERE run_id = ? ORDER BY seq""", (run_id,)).fetchall()
        if not rows:
            return None
        total = Spend()
        for inp, outp, cw, cr, cost, seconds in rows:
            total.charge(input_tokens=int(inp), output_tokens=int(outp), cache_write_tokens=int(cw),
                         cache_read_tokens=int(cr), cost_usd=float(cost), seconds=float(seconds))
        return total

    # -- lessons -------------------------------------------------------------------------------
    def add_lessons(self, repo: str, lessons: Sequence[Lesson], run_id: str = "") -> None:
        """Counted once per run: a replayed finish step never counts a stop's lesson twice."""
        now = time.time()
        with self._guarded() as db:
            db.execute("BEGIN IMMEDIATE")
            for lesson in lessons:
                text = self.redact(lesson.text)
                if run_id:
                    seen = db.execute("INSERT OR IGNORE INTO lesson_runs (repo, text, run_id) VALUES (?, ?, ?)",
                                      (repo, text, run_id))
                    if seen.rowcount == 0:
                        continue
                db.execute(
                    """INSERT INTO lessons (repo, text, level, source, count, last_seen) VALUES (?, ?, ?, ?, 1, ?)
                       ON CONFLICT(repo, text) DO UPDATE SET count = count + 1, last_seen = excluded.last_seen""",
                    (repo, text, lesson.level.value, lesson.source, now))
            db.execute("COMMIT")

    def lessons(self, repo: str, limit: int = 12) -> list[str]:
        """The lessons for prompts: strongest prevention level first, then the most repeated."""
        with self._guarded() as db:
            rows = db.execute(
                "SELECT level, text, count FROM lessons WHERE repo = ? ORDER BY level, count DESC, last_seen DESC "
                "LIMIT ?", (repo, limit)).fetchall()
        return [f"[{level}] {text}" + (f" (seen {count}x)" if count > 1 else "") for level, text, count in rows]

    # -- cancel ----------------------------------------------------------------------------------
    def request_cancel(self, run_id: str) -> None:
        with self._guarded() as db:
            cursor = db.execute("UPDATE runs SET cancel_requested = 1 WHERE run_id = ?", (run_id,))
        if cursor.rowcount == 0:
            raise StateError(f"no run {run_id!r} in {self.path}")

    def cancel_requested(self, run_id: str) -> bool:
        with self._guarded() as db:
            row = db.execute("SELECT cancel_requested FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return bool(row and row[0])

    def clear_cancel(self, run_id: str) -> None:
        with self._guarded() as db:
            db.execute("UPDATE runs SET cancel_requested = 0 WHERE run_id = ?", (run_id,))
