"""The kill harness shared by tests/test_kill.py and bench/kill_matrix.py: a repository with its
bare origin and a scripted model that logs every reply it delivers (the provider's side of the
bill), and chains of `loopbot` subprocesses SIGKILLed at chosen moments, then resumed to the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from loopbot.core.state import LoopState, Status
from loopbot.examples import KVSTORE
from loopbot.examples.setup import make_example_repo
from loopbot.statepaths import Paths
from loopbot.store.sqlite import SqliteStore
from loopbot.testing.cleanclone import clean_clone_failures
from loopbot.workspace.git import git


def clean_env() -> dict[str, str]:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("LOOPBOT_STATE_DIR", None)
    env.pop("LOOPBOT_FAULT_KILL_AFTER_STEP", None)
    return env


def loopbot_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "loopbot", *args]


class Case:
    """One repository with its bare origin, and a copy of the demo script that logs every reply
    it delivers (the provider's side of the bill). `filler` adds that many committed modules."""

    def __init__(self, root: Path, goal: Path = KVSTORE / "goal.yaml", filler: int = 0):
        self.repo, self.origin = make_example_repo(KVSTORE / "repo", root)
        if filler:
            add_filler(self.repo, filler)
            git(self.repo, "push", "--quiet", "origin", "HEAD")
        self.delivered = root / "delivered.jsonl"
        data = yaml.safe_load((KVSTORE / "script.yaml").read_text())
        data["delivery_log"] = str(self.delivered)
        self.script = root / "script.yaml"
        self.script.write_text(yaml.safe_dump(data))
        self.goal = goal

    def run_argv(self) -> list[str]:
        return loopbot_argv("run", str(self.goal), "--repo", str(self.repo), "--model", f"scripted:{self.script}", "--quiet")

    def resume_argv(self) -> list[str]:
        return loopbot_argv("resume", self.run_id(), "--repo", str(self.repo), "--quiet")

    def state(self) -> LoopState:
        store = SqliteStore(Paths.for_repo(self.repo).db)
        try:
            (state,) = store.list_runs()
            return state
        finally:
            store.close()

    def run_id(self) -> str:
        return str(self.state().run_id)

    def delivered_calls(self) -> int:
        return len(self.delivered.read_text().splitlines()) if self.delivered.exists() else 0

    def outcome(self) -> dict[str, object]:
        state = self.state()
        return {
            "finished": state.finished, "status": state.status, "stop": state.stop_label,
            "iterations": [(r.number, r.decision, r.kept, r.approach, r.score) for r in state.iterations],
            "memory": [(m.approach, m.files, [f.signature for f in m.failures]) for m in state.memory],
            "chunks": state.chunks_done,
            "tree": git(self.origin, "rev-parse", f"{state.branch}^{{tree}}").stdout.strip(),
            # A pushed SUCCESS must hold on a fresh clone, however often the run was killed.
            "clean_clone_failures": clean_clone_failures(self.origin, state.branch, state.goal)
            if state.status == Status.SUCCESS and state.push is not None and state.push.pushed else [],
        }

    def debris(self) -> list[str]:
        """Worktrees and loop branches besides the run's own."""
        state = self.state()
        worktrees = [p.name for p in (Paths.for_repo(self.repo).root / "worktrees").iterdir()]
        branches = git(self.repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/loop/").stdout.split()
        return [w for w in worktrees if w != state.run_id] + [b for b in branches if b != state.branch]


def kill(proc: subprocess.Popen[bytes], group: bool) -> None:
    try:
        if group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except ProcessLookupError:
        pass
    proc.wait()


def run_killed(argv: list[str], delay: float, group: bool) -> int | None:
    """Start, and SIGKILL after `delay` seconds unless it finished first; its exit code if it did."""
    proc = subprocess.Popen(argv, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        return proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        kill(proc, group)
        return None


def chain(case: Case, kills: list[tuple[float, bool]]) -> tuple[dict[str, object], int, int, list[str]]:
    """Run, killing it (and each resume) at the given times, then resume until it ends."""
    code = run_killed(case.run_argv(), *kills[0])
    if code is None and not recorded(case):
        # Killed before the run was recorded: nothing exists, so the user simply runs it again.
        worktrees = Paths.for_repo(case.repo).root / "worktrees"
        if worktrees.exists() and list(worktrees.iterdir()):
            raise AssertionError(f"a start killed before recording left {list(worktrees.iterdir())}")
        code = run_killed(case.run_argv(), 600, False)
    for delay, group in kills[1:]:
        if code is not None:
            break
        code = run_killed(case.resume_argv(), delay, group)
    resumes = 0
    while not case.state().finished:
        resumes += 1
        done = subprocess.run(case.resume_argv(), env=clean_env(), capture_output=True, text=True, timeout=600)
        if resumes > 3 or done.returncode not in (0, 1):
            raise AssertionError(f"resume {resumes} did not finish the run: {done.stdout}{done.stderr}")
    spent = case.state().spend.model_calls
    return case.outcome(), spent, case.delivered_calls(), case.debris()


def recorded(case: Case) -> bool:
    db = Paths.for_repo(case.repo).db
    if not db.exists():
        return False
    store = SqliteStore(db)
    try:
        return bool(store.run_ids())
    finally:
        store.close()




def add_filler(repo: Path, files: int) -> None:
    """A realistic surrounding codebase: modules with a few functions and a class each."""
    for i in range(files):
        path = repo / "app" / f"pkg{i // 100:03d}" / f"module_{i:05d}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f'"""Module {i}."""\n\n\nclass Handler{i}:\n    def handle(self, request):\n        return request\n\n\n'
                        f"def parse_{i}(text: str) -> str:\n    return text.strip()\n\n\ndef render_{i}(value) -> str:\n    return str(value)\n")
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "-m", "filler")
