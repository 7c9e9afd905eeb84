"""The router's facts for the App, answered from GitHub's API with an installation token (the App
has no checkout): permissions, loop PRs, issue bodies and comments through loopbot's forge, the
loop's state and the repository's config read from their branches (a commit's tree, then the
file's blob: the contents API stays outside the allow-list). Each fetched at most once a job."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from githubkit import GitHub

from loopbot.app.dispatch import GitHubAnswered, call
from loopbot.config import CONFIG_PATH, Config, parse_config
from loopbot.core.decide import reopenable
from loopbot.core.route import LatestRun, approval_key
from loopbot.core.state import LoopState, Status, SuspendReason, load_state
from loopbot.errors import LoopbotError, StateError
from loopbot.forge.github.facts import ForgeFacts
from loopbot.store.git_state import STATE_FILE


def state_branch(plan: int) -> str:
    return f"loop/state-{plan}"  # where the Action keeps a plan's state (loopbot.action.facts)


@dataclass(frozen=True)
class BranchFile:
    text: str
    committed_at: float  # the branch head's commit time: a state branch's last checkpoint


@dataclass
class BranchReader:
    """Files of a branch's newest commit, through the git data API."""

    github: GitHub[Any]
    repo: str

    def read(self, branch: str, path: str) -> BranchFile | None:
        owner, name = self.repo.split("/", 1)
        try:
            commits: Any = call(lambda: self.github.rest.repos.list_commits(owner, name, sha=branch, per_page=1)).json()
        except GitHubAnswered as exc:
            if exc.status in (404, 409):  # no such branch; an empty repository
                return None
            raise
        if not commits:
            return None
        commit = commits[0]["commit"]
        when = datetime.fromisoformat(str(commit["committer"]["date"]).replace("Z", "+00:00")).timestamp()
        sha = str(commit["tree"]["sha"])
        *folders, leaf = path.split("/")
        for part in [*folders, leaf]:
            tree: Any = call(partial(self.github.rest.git.get_tree, owner, name, sha)).json()
            entry = next((e for e in tree.get("tree", []) if e.get("path") == part), None)
            if entry is None or (entry.get("type") == "tree") == (part == leaf):
                return None
            sha = str(entry["sha"])
        blob: Any = call(lambda: self.github.rest.git.get_blob(owner, name, sha)).json()
        raw = base64.b64decode(blob["content"]) if blob.get("encoding") == "base64" else str(blob["content"]).encode()
        return BranchFile(raw.decode("utf-8", errors="replace"), when)


def config_of(reader: BranchReader, default_branch: str) -> Config:
    """The trusted config: the default branch's .github/loopbot.yml, defaults when there is none."""
    found = reader.read(default_branch, CONFIG_PATH)
    return parse_config(found.text, f"{default_branch}:{CONFIG_PATH}") if found else Config()


def registry_status(state: LoopState) -> str:
    """What the registry calls a loop in this state."""
    if state.finished:
        return "success" if state.status == Status.SUCCESS else "stopped"
    if state.suspended is not None:
        # A writer's /loop stop is final until a writer resumes; an error or a pending push is not.
        return "stopped" if state.suspended.reason == SuspendReason.CANCELLED else "suspended"
    return "running"


@dataclass
class AppFacts(ForgeFacts):
    reader: BranchReader
    _states: dict[int, tuple[LoopState, float] | None] = field(default_factory=dict, init=False)

    def state(self, plan: int) -> tuple[LoopState, float] | None:
        """The plan's newest state and when it was checkpointed; None before any run."""
        if plan not in self._states:
            found = self.reader.read(state_branch(plan), STATE_FILE)
            if found is None:
                self._states[plan] = None
            else:
                try:
                    self._states[plan] = (load_state(json.loads(found.text)), found.committed_at)
                except (ValueError, StateError) as exc:
                    raise LoopbotError(f"the state on {state_branch(plan)} cannot be read: {exc}") from None
        return self._states[plan]

    def latest(self, plan: int) -> LatestRun | None:
        held = self.state(plan)
        if held is None:
            return None
        state = held[0]
        return LatestRun(run_id=state.run_id, finished=state.finished, success=state.status == Status.SUCCESS,
                         approved=approval_key(state.goal), trigger=state.trigger, reopenable=reopenable(state),
                         published=state.published)
