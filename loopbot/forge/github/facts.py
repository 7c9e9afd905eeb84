"""The router's facts that GitHub answers (permissions, loop PRs, issue bodies, comments), each
fetched at most once. The Action and the App add how they read the loop's state."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from loopbot.core.route import UNKNOWN, LoopPr
from loopbot.forge.github.forge import GitHubForge, PermissionUnknown


@dataclass
class ForgeFacts:
    forge: GitHubForge
    # Not constructor arguments, so the Action's and the App's facts can add their own fields.
    problems: list[str] = field(default_factory=list, init=False)  # permission lookups that failed
    _prs: list[LoopPr] | None = field(default=None, init=False)
    _bodies: dict[int, str] = field(default_factory=dict, init=False)
    _comments: dict[int, list[Mapping[str, Any]]] = field(default_factory=dict, init=False)

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
