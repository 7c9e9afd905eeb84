from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from loopbot.config import Config
from loopbot.core.budgets import Spend
from loopbot.core.events import LoopEvent
from loopbot.core.state import LoopState, Status
from loopbot.examples import KVSTORE
from loopbot.examples.setup import make_example_repo
from loopbot.goal import Goal, load_goal
from loopbot.session import Session, create_run, open_session
from loopbot.statepaths import Paths
from loopbot.store.sqlite import SqliteStore
from loopbot.testing import FakeClock, ScriptedModel
from loopbot.testing.cleanclone import clean_clone_failures
from loopbot.testing.scripted import Script, load_script

# The goals' checks run `python3` hundreds of times a suite. Where a pyenv shim stands first on
# PATH (as on CI's image) each of those is a bash script that starts a dozen processes to pick a
# version, about 80 ms of CPU before Python starts, and that base interpreter's site-packages add
# ~25 ms more. The checks get the virtualenv's interpreter first, as an activated virtualenv does.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


@dataclass
class Events:
    """Collects runner events so tests can assert on what happened, in order."""

    items: list[tuple[str, int, dict[str, Any]]] = field(default_factory=list)
    spends: list[tuple[str, Spend]] = field(default_factory=list)

    def event(self, event: LoopEvent, state: LoopState) -> None:
        self.items.append((event.kind, state.iteration, event.fields()))
        self.spends.append((event.kind, state.spend.model_copy()))

    def of(self, kind: str) -> list[tuple[int, dict[str, Any]]]:
        return [(it, data) for k, it, data in self.items if k == kind]


@dataclass
class Loop:
    repo: Path
    origin: Path
    paths: Paths
    session: Session
    events: Events
    model: ScriptedModel
    clock: FakeClock

    def run(self) -> LoopState:
        self.session.store.save(self.session.state, "created")
        return self._held_to_a_clean_clone(self.session.runner.run(self.session.state))

    def _held_to_a_clean_clone(self, state: LoopState) -> LoopState:
        """Every pushed SUCCESS in the suite: a fresh clone of the branch passes the goal's checks."""
        if state.status == Status.SUCCESS and state.push is not None and state.push.pushed:
            assert clean_clone_failures(self.origin, state.branch, state.goal, state.config.commands.setup) == []
        return state

    def resume(self, observers: list[Any] | None = None) -> LoopState:
        """What `loopbot resume` does, in process: a new store and session from the stored state."""
        self.session.store.close()
        state = SqliteStore(self.paths.db).load(self.session.state.run_id)
        self.session = open_session(state, self.paths, clock=self.clock, observers=[self.events, *(observers or [])],
                                    models=dict.fromkeys(("maker", "planner", "checker", "goal_checker"), self.model),
                                    resume=True)
        return self._held_to_a_clean_clone(self.session.runner.run(state))

    def origin_file(self, branch: str, path: str) -> str:
        return subprocess.run(["git", "-C", str(self.origin), "show", f"{branch}:{path}"],
                              capture_output=True, text=True, check=True).stdout


def require_bubblewrap() -> None:
    """Sandbox tests fail in CI (which installs bubblewrap) and skip, saying why, elsewhere."""
    import shutil

    if shutil.which("bwrap") is None:
        if os.environ.get("CI"):
            pytest.fail("bubblewrap is not installed; .ci/run installs it")
        pytest.skip("bubblewrap is not installed (apt-get install bubblewrap)")


@pytest.fixture(autouse=True)
def _bubblewrap_present() -> None:
    # Every loop runs its commands in bubblewrap unless a test says sandbox: off.
    require_bubblewrap()


@pytest.fixture
def kv_repo(tmp_path: Path) -> tuple[Path, Path]:
    return make_example_repo(KVSTORE / "repo", tmp_path / "work")


@pytest.fixture
def demo_goal() -> Goal:
    return load_goal(KVSTORE / "goal.yaml")


@pytest.fixture
def demo_script() -> Script:
    return load_script(KVSTORE / "script.yaml")


@pytest.fixture
def make_loop(kv_repo: tuple[Path, Path], demo_goal: Goal):
    """Build an in-process loop on the kvstore example with a given script and goal changes."""

    def build(script: Script | dict[str, Any], *, goal: Goal | None = None, budgets: dict[str, Any] | None = None,
              config: Config | None = None, secrets: tuple[str, ...] = ()) -> Loop:
        repo, origin = kv_repo
        chosen = goal or demo_goal
        if budgets:
            chosen = chosen.model_copy(update={"budgets": chosen.budgets.model_copy(update=budgets)})
        parsed = script if isinstance(script, Script) else Script.model_validate(script)
        clock = FakeClock()
        model = ScriptedModel(parsed, clock=clock)
        paths = Paths.for_repo(repo)
        state = create_run(chosen, "goal.yaml", repo, paths=paths, model="scripted:test", config=config or Config())
        events = Events()
        session = open_session(state, paths, clock=clock, observers=[events], secrets=secrets,
                               models=dict.fromkeys(("maker", "planner", "checker", "goal_checker"), model))
        return Loop(repo, origin, paths, session, events, model, clock)

    return build
