"""The repository's memory on its loop/memory branch: lessons and run records survive runners,
racing writers both land, a replayed finish counts once, secrets never reach it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from loopbot.core.andon import Lesson, Level
from loopbot.errors import StateError
from loopbot.store.git_memory import GitMemory
from loopbot.store.sqlite import SqliteStore
from loopbot.workspace.git import git


@pytest.fixture
def origin(tmp_path) -> Path:
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    return bare


def runner(tmp_path: Path, origin: Path, name: str) -> Path:
    """A fresh runner's checkout: a clone with nothing of loopbot's but what origin holds."""
    checkout = tmp_path / name
    subprocess.run(["git", "clone", "--quiet", str(origin), str(checkout)], check=True, capture_output=True)
    return checkout


SCOPE = Lesson("Stay in scope: edit only src/.", Level.L2_AUTO_DETECT, "guard")
TESTS = Lesson("Run the tests before done.", Level.L1_POKA_YOKE, "evaluator")


def test_lessons_reach_a_fresh_runner(tmp_path, origin):
    GitMemory(runner(tmp_path, origin, "one"), "origin").add_lessons([SCOPE], "run-1")
    later = GitMemory(runner(tmp_path, origin, "two"), "origin")
    assert later.lessons() == ["[L2 auto-detect] Stay in scope: edit only src/."]


def test_two_runners_finishing_at_once_both_keep_their_lessons(tmp_path, origin):
    first = GitMemory(runner(tmp_path, origin, "one"), "origin")

    class Racing(GitMemory):
        raced = False

        def fetch(self) -> bool:
            found = super().fetch()
            if not self.raced:  # the other runner pushes between this one's fetch and push
                self.raced = True
                first.add_lessons([SCOPE], "run-1")
            return found

    Racing(runner(tmp_path, origin, "two"), "origin").add_lessons([TESTS], "run-2")
    texts = GitMemory(runner(tmp_path, origin, "three"), "origin").lessons()
    assert texts == ["[L1 poka-yoke] Run the tests before done.", "[L2 auto-detect] Stay in scope: edit only src/."]


def test_a_replayed_finish_counts_once_and_ranks_as_the_local_store_does(tmp_path, origin):
    memory = GitMemory(runner(tmp_path, origin, "one"), "origin")
    local = SqliteStore(tmp_path / "state.db")
    for store in (memory, local):
        args = [] if store is memory else ["repo"]
        for run_id in ("run-1", "run-1", "run-2"):
            store.add_lessons(*args, [SCOPE], run_id)
        store.add_lessons(*args, [TESTS], "run-3")
    assert memory.lessons() == local.lessons("repo")
    assert memory.lessons()[1] == "[L2 auto-detect] Stay in scope: edit only src/. (seen 2x)"


def test_run_records_round_trip_and_odd_run_ids_are_refused(tmp_path, origin):
    memory = GitMemory(runner(tmp_path, origin, "one"), "origin")
    memory.record_run("kvstore-ttl-3-1796195300", {"report.md": "# Report\n", "incident.md": "# Incident\n",
                                                    "../../evil.md": "x"})
    assert GitMemory(runner(tmp_path, origin, "two"), "origin").runs() == {
        "kvstore-ttl-3-1796195300": {"report.md": "# Report\n", "incident.md": "# Incident\n"}}
    for bad in ("../x", "a/b", "", ".hidden"):
        with pytest.raises(StateError):
            memory.record_run(bad, {"report.md": "x"})


def test_secrets_never_reach_the_memory(tmp_path, origin):
    secret = "sk-ant-" + "Q" * 40
    memory = GitMemory(runner(tmp_path, origin, "one"), "origin", redact=lambda text: text.replace(secret, "[redacted]"))
    memory.add_lessons([Lesson(f"never print {secret}", Level.L3_DOCUMENT, "x")], "run-1")
    memory.record_run("run-1", {"report.md": f"key {secret}"})
    dump = git(origin, "log", "-p", "--all").stdout
    assert secret not in dump and "[redacted]" in dump


def test_the_github_state_store_keeps_lessons_in_the_repositorys_memory(tmp_path, origin):
    from loopbot.store.git_state import GitStateStore

    GitStateStore(runner(tmp_path, origin, "one"), "origin", "loop/state-3").add_lessons("any", [SCOPE], "run-1")
    other_plan = GitStateStore(runner(tmp_path, origin, "two"), "origin", "loop/state-9")
    assert other_plan.lessons("/home/runner/work/x") == ["[L2 auto-detect] Stay in scope: edit only src/."]


def _git_calls_of_one_write(memory: GitMemory, monkeypatch, run_id: str) -> int:
    import loopbot.store.git_memory as module

    calls = [0]
    real = module.git

    def counting(*args, **kwargs):
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "git", counting)
    memory.record_run(run_id, {"report.md": f"# {run_id}\n", "incident.md": "# Incident\n"})
    monkeypatch.setattr(module, "git", real)
    return calls[0]


def test_a_write_costs_the_same_however_many_records_the_memory_holds(tmp_path, origin, monkeypatch):
    """Incremental: the new tree is the previous one with only the changed paths, so a write neither
    reads nor hashes the records it does not change (bench/memory_write.py times it)."""
    memory = GitMemory(runner(tmp_path, origin, "one"), "origin")
    memory.add_lessons([SCOPE], "run-0")
    first = _git_calls_of_one_write(memory, monkeypatch, "run-1")
    for n in range(2, 12):
        memory.record_run(f"run-{n}", {"report.md": f"# run-{n}\n"})
    before = git(origin, "ls-tree", "-r", "loop/memory").stdout.splitlines()
    assert _git_calls_of_one_write(memory, monkeypatch, "run-12") == first
    after = git(origin, "ls-tree", "-r", "loop/memory").stdout.splitlines()
    # Every earlier entry is kept as it was (the same blob), and only the new run's records are added.
    assert set(before) <= set(after) and len(after) == len(before) + 2
    assert GitMemory(runner(tmp_path, origin, "two"), "origin").runs()["run-12"]["report.md"] == "# run-12\n"
    assert GitMemory(runner(tmp_path, origin, "three"), "origin").lessons() == [
        "[L2 auto-detect] Stay in scope: edit only src/."]
