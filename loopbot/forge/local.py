"""The local forge: plans are files under plans/, proposals are branches pushed with a written body."""

from __future__ import annotations

import re
from pathlib import Path

from loopbot.core import memory
from loopbot.errors import InputError
from loopbot.plans import FiledPlan, Plan, file_name, goal_from_markdown, read_marker, yaml_blocks


class LocalForge:
    name = "local"

    def __init__(self, repo: Path, proposals: Path, *, plans_dir: str = "plans"):
        self.repo = repo
        self.plans_dir = repo / plans_dir
        self.proposals = proposals

    def plans(self) -> list[FiledPlan]:
        found = []
        for path in sorted(self.plans_dir.glob("*.md")) if self.plans_dir.is_dir() else []:
            body = path.read_text(encoding="utf-8", errors="replace")
            marker = read_marker(body)
            if marker is None:
                continue
            title = next((line[2:].strip() for line in body.splitlines() if line.startswith("# ")), path.stem)
            goal_text, scope = "", []
            if yaml_blocks(body):
                try:
                    goal = goal_from_markdown(body, str(path))
                    goal_text, scope = goal.goal, goal.scope.allow
                except InputError:
                    pass
            found.append(FiledPlan(ref=str(path.relative_to(self.repo)), title=title, fingerprint=marker[0],
                                   open=marker[1], tokens=memory.normalise(f"{title} {goal_text}"), scope=scope))
        return found

    def file_plan(self, plan: Plan, body: str, *, date: str) -> FiledPlan:
        self.plans_dir.mkdir(parents=True, exist_ok=True)
        path = self.plans_dir / file_name(plan, date)
        counter = 2
        while path.exists():
            path = self.plans_dir / re.sub(r"\.md$", f"-{counter}.md", file_name(plan, date))
            counter += 1
        path.write_text(body, encoding="utf-8")
        return FiledPlan(ref=str(path.relative_to(self.repo)), title=plan.title, fingerprint=plan.fingerprint,
                         open=True, tokens=plan.tokens, scope=plan.scope)

    def propose(self, branch: str, title: str, body: str) -> str:
        """Locally a proposal is the pushed branch plus this description beside loopbot's state."""
        self.proposals.mkdir(parents=True, exist_ok=True)
        path = self.proposals / (branch.replace("/", "_") + ".md")
        path.write_text(f"# {title}\n\nBranch: `{branch}`\n\n{body}", encoding="utf-8")
        return str(path)
