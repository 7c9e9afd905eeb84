"""The router's facts, answered from GitHub and the loop's state branch, each fetched at most once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopbot.core.decide import reopenable
from loopbot.core.route import UNKNOWN, LatestRun, LoopPr, approval_key
from loopbot.core.state import LoopState, Status
from loopbot.forge.github.forge import GitHubForge, PermissionUnknown
from loopbot.store.git_state import GitStateStore


def state_store(checkout: Path, remote: str, plan: int, **kwargs: Any) -> GitStateStore:
    return GitStateStore(checkout, remote, f"loop/state-{plan}", **kwargs)


@dataclass
class GitHubFacts:
    forge: GitHubForge
    checkout: Path
    remote: str = "origin"  # push.remote: where the loop's state lives
    problems: list[str] = field(default_factory=list)  # permission lookups that failed, said in the log
    _prs: list[LoopPr] | None = None
    _bodies: dict[int, str] = field(default_factory=dict)
    _comments: dict[int, list[Mapping[str, Any]]] = field(default_factory=dict)
    _states: dict[int, LoopState | None] = field(default_factory=dict)

    def permission(self, login: str) -> str:
        try:
            return self.forge.permission(login)
        except PermissionUnknown as exc:
            self.problems.append(str(exc))
            return UNKNOWN

    def loop_prs(self) -> Sequence[LoopPr]:
        if self._prs is None:
            self._prs = [LoopPr(int(p["number"]), str(p["head"]["ref"]), str(p.get("created_at") or ""))
                         for p in self.forge.loop_prs()]
        return self._prs

    def issue_body(self, number: int) -> str:
        if number not in self._bodies:
            self._bodies[number] = self.forge.issue(number).body
        return self._bodies[number]

    def comments(self, number: int) -> Sequence[Mapping[str, Any]]:
        if number not in self._comments:
            self._comments[number] = list(self.forge.comments(number))
        return self._comments[number]

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
