"""The router's facts, answered from GitHub and the loop's state branch, each fetched at most once."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopbot.core.decide import reopenable
from loopbot.core.route import LatestRun, approval_key
from loopbot.core.state import LoopState, Status
from loopbot.forge.github.facts import ForgeFacts
from loopbot.store.git_state import GitStateStore


def state_store(checkout: Path, remote: str, plan: int, **kwargs: Any) -> GitStateStore:
    return GitStateStore(checkout, remote, f"loop/state-{plan}", **kwargs)


@dataclass
class GitHubFacts(ForgeFacts):
    checkout: Path
    remote: str = "origin"  # push.remote: where the loop's state lives
    _states: dict[int, LoopState | None] = field(default_factory=dict, init=False)

    def state(self, plan: int) -> LoopState | None:
        """The newest run on the plan's state branch (the loop reuses it: one fetch per job)."""
        if plan not in self._states:
            self._states[plan] = state_store(self.checkout, self.remote, plan).latest()
        return self._states[plan]

    def latest(self, plan: int) -> LatestRun | None:
        state = self.state(plan)
        if state is None:
            return None
        return LatestRun(run_id=state.run_id, finished=state.finished, success=state.status == Status.SUCCESS,
                         approved=approval_key(state.goal), trigger=state.trigger, reopenable=reopenable(state),
                         published=state.published)
