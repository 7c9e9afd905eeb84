import json
import sqlite3

import pytest

from loopbot.config import Config
from loopbot.core.state import Snapshot
from loopbot.errors import StateError
from loopbot.goal import parse_goal
from loopbot.session import Paths, create_run
from loopbot.store.sqlite import SqliteStore


@pytest.fixture
def state(kv_repo):
    repo, _ = kv_repo
    goal = parse_goal("id: t\ngoal: g\nacceptance:\n  - run: 'true'\n", "g.yaml")
    return create_run(goal, "g.yaml", repo, paths=Paths.for_repo(repo), model="scripted:x", config=Config())


def test_roundtrip_and_steps(tmp_path, state):
    store = SqliteStore(tmp_path / "db.sqlite")
    store.save(state, "created")
    state.steps_completed = 1
    state.spend.model_calls = 4
    state.best = Snapshot(sha="abc", score=0.5, iteration=1)
    store.save(state, "baseline")
    loaded = store.load(state.run_id)
    assert loaded == state
    assert store.steps(state.run_id) == [(0, "created"), (1, "baseline")]
    assert [s.run_id for s in store.list_runs()] == [state.run_id]


def test_other_schema_version_is_a_clear_error(tmp_path, state):
    path = tmp_path / "db.sqlite"
    store = SqliteStore(path)
    store.save(state, "created")
    data = json.loads(state.model_dump_json())
    data["schema_version"] = 99
    with sqlite3.connect(path) as db:
        db.execute("UPDATE runs SET state = ?", (json.dumps(data),))
    with pytest.raises(StateError, match="schema version 99"):
        store.load(state.run_id)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE runs SET state = ?", ('{"schema_version": 1, "run_id": 5}',))
    with pytest.raises(StateError, match="does not validate"):
        store.load(state.run_id)


def test_cancel_flag(tmp_path, state):
    store = SqliteStore(tmp_path / "db.sqlite")
    store.save(state, "created")
    assert not store.cancel_requested(state.run_id)
    store.request_cancel(state.run_id)
    store.save(state, "again")  # a checkpoint must not clear a pending cancel
    assert store.cancel_requested(state.run_id)
    with pytest.raises(StateError):
        store.request_cancel("nope")


def test_a_run_owned_by_a_live_process_is_not_resumed_twice(tmp_path, state):
    import os
    import socket
    import subprocess

    from loopbot.errors import InputError
    from loopbot.session import Paths, load_for_resume

    paths = Paths(tmp_path / "state")
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        SqliteStore(paths.db, owner=f"{socket.gethostname()}:{sleeper.pid}").save(state, "created")
        with pytest.raises(InputError, match="still in progress"):
            load_for_resume(paths, state.run_id)
    finally:
        sleeper.kill()
        sleeper.wait()
    # Its owner is dead now (killed, like a SIGKILLed runner): resuming is allowed.
    assert load_for_resume(paths, state.run_id).run_id == state.run_id
    assert SqliteStore(paths.db, owner=f"{socket.gethostname()}:{os.getpid()}").live_owner(state.run_id) is None
