import json
import sqlite3

import pytest

from loopbot.config import Config
from loopbot.core.budgets import Charge
from loopbot.core.state import Snapshot
from loopbot.errors import LeaseHeld, LeaseLost, StateError, StoreError
from loopbot.goal import parse_goal
from loopbot.session import create_run
from loopbot.statepaths import Paths
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
    import socket
    import subprocess

    from loopbot.errors import InputError
    from loopbot.session import load_for_resume
    from loopbot.statepaths import Paths

    paths = Paths(tmp_path / "state")
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        owner = f"{socket.gethostname()}:{sleeper.pid}:abc"
        store = SqliteStore(paths.db, owner=owner)
        store.create(state)
        store.close()  # the heartbeat stops; the lease is still live for its 30 s
        with pytest.raises(InputError, match=f"being run by {owner}"):
            load_for_resume(paths, state.run_id)
        with pytest.raises(LeaseHeld):
            SqliteStore(paths.db).claim(state.run_id)
    finally:
        sleeper.kill()
        sleeper.wait()
    # Its owner is dead now (killed, like a SIGKILLed runner): resuming is allowed.
    assert load_for_resume(paths, state.run_id).run_id == state.run_id
    taker = SqliteStore(paths.db)
    taker.claim(state.run_id)
    assert taker.live_owner(state.run_id) is None
    assert SqliteStore(paths.db).live_owner(state.run_id) == taker.owner
    taker.close()


def test_claim_is_one_compare_and_swap_among_many_processes(tmp_path, state):
    """Eight processes claim one run at the same moment: exactly one wins."""
    import subprocess
    import sys

    db = tmp_path / "db.sqlite"
    first = SqliteStore(db, owner="elsewhere:1:dead")  # a lease on another host, already expired
    first.create(state)
    first.close()
    with sqlite3.connect(db) as raw:
        raw.execute("UPDATE runs SET lease_expires = 0")
    script = (
        "import signal, sys\n"
        "from loopbot.store.sqlite import SqliteStore\n"
        "from loopbot.errors import LeaseHeld\n"
        "store = SqliteStore(__import__('pathlib').Path(sys.argv[1]))\n"
        "sys.stdin.read()\n"  # all start together
        "try:\n"
        "    store.claim(sys.argv[2]); print('won', flush=True); signal.pause()\n"
        "except LeaseHeld:\n"
        "    print('lost', flush=True)\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(db), state.run_id], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(8)]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.close()
    try:
        # The winner stays alive (its lease live) until every claimant has answered.
        results = [proc.stdout.readline().strip() for proc in procs if proc.stdout is not None]
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    assert sorted(results) == ["lost"] * 7 + ["won"], results


def test_a_lease_taken_over_makes_the_old_owner_write_nothing(tmp_path, state):
    db = tmp_path / "db.sqlite"
    old = SqliteStore(db, owner="elsewhere:1:old")
    old.create(state)
    with sqlite3.connect(db) as raw:
        raw.execute("UPDATE runs SET lease_expires = 0")  # its heartbeat stopped: a hung machine
    new = SqliteStore(db)
    new.claim(state.run_id)
    state.steps_completed = 5
    with pytest.raises(LeaseLost, match=new.owner):
        old.save(state, "baseline")
    assert new.load(state.run_id).steps_completed == 0
    old.close()
    new.close()


def test_a_stale_owner_cannot_overwrite_a_run_another_process_finished(tmp_path, state):
    from loopbot.core.state import Phase

    db = tmp_path / "db.sqlite"
    old = SqliteStore(db, owner="elsewhere:1:old")
    old.create(state)
    with sqlite3.connect(db) as raw:
        raw.execute("UPDATE runs SET lease_expires = 0")  # the old owner hung; its lease lapsed
    new = SqliteStore(db)
    new.claim(state.run_id)
    done = state.model_copy(update={"phase": Phase.DONE, "steps_completed": 9})
    new.save(done, "finish")  # final: the lease is released
    with pytest.raises(LeaseLost):
        old.save(state.model_copy(update={"steps_completed": 3}), "make")
    assert new.load(state.run_id).steps_completed == 9
    old.close()
    new.close()


def test_spend_ledger_sums_every_call_rejected_ones_included(tmp_path, state):
    store = SqliteStore(tmp_path / "db.sqlite")
    store.create(state)
    assert store.spent(state.run_id) is None
    store.record_spend(state.run_id, Charge(role="maker", model="m", input_tokens=100, output_tokens=10,
                                            cost_usd=0.5, seconds=1.0))
    store.record_spend(state.run_id, Charge(role="maker", model="m", input_tokens=7, output_tokens=3,
                                            cost_usd=0.25, seconds=1.0, accepted=False))
    total = store.spent(state.run_id)
    assert total is not None
    assert (total.model_calls, total.input_tokens, total.output_tokens, total.cost_usd) == (2, 107, 13, 0.75)
    store.close()


def test_a_replayed_finish_counts_a_lesson_once_per_run(tmp_path, state):
    from loopbot.core.andon import Lesson, Level

    store = SqliteStore(tmp_path / "db.sqlite")
    lesson = Lesson("Stay in scope.", Level.L2_AUTO_DETECT, "guard")
    store.add_lessons("repo", [lesson], "run-1")
    store.add_lessons("repo", [lesson], "run-1")  # the finish step, replayed after a kill
    assert store.lessons("repo") == ["[L2 auto-detect] Stay in scope."]
    store.add_lessons("repo", [lesson], "run-2")
    assert store.lessons("repo") == ["[L2 auto-detect] Stay in scope. (seen 2x)"]
    store.close()


@pytest.mark.parametrize(("damage", "expected"), [
    ("garbage", "move it aside"),
    ("readonly", "not writable"),
    ("not_a_dir", "pass --state-dir"),
])
def test_store_faults_are_clear_errors_naming_the_path(tmp_path, state, damage, expected):
    import os

    directory = tmp_path / "state"
    directory.mkdir()
    db = directory / "loopbot.db"
    if damage == "not_a_dir":
        (directory / "file").write_text("x")
        db = directory / "file" / "loopbot.db"
    elif damage == "garbage":
        db.write_bytes(b"this is not a database, but it is 100 bytes long " * 2)
    else:
        os.chmod(directory, 0o500)
        if os.geteuid() == 0:
            pytest.skip("root writes through a read-only directory")
    try:
        with pytest.raises(StoreError, match=expected) as caught:
            SqliteStore(db)
        assert str(db) in str(caught.value)
    finally:
        os.chmod(directory, 0o700)
