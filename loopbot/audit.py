"""The audit loop: a strong model reviews the repository and files plans (at most 5 a run)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from loopbot.config import Config
from loopbot.context import repomap
from loopbot.core.budgets import Spend
from loopbot.core.paths import find_test_files
from loopbot.messages import ModelReply, ModelRequest, TextBlock
from loopbot.plans import MAX_CHUNKS, FiledPlan, render, triage
from loopbot.ports import Clock, Model, ModelError, PlanForge, Sandbox
from loopbot.prompts import render as render_prompt
from loopbot.roles.maker import run_session
from loopbot.tools.toolbox import ToolBox
from loopbot.workspace.git import git


@dataclass
class AuditResult:
    filed: list[FiledPlan] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (title, why)
    refused: list[str] = field(default_factory=list)  # the auditor's refused proposals, with reasons
    spend: Spend = field(default_factory=Spend)
    error: str | None = None

    @property
    def model_failed(self) -> bool:
        """Every model call failed (none was answered): the audit reviewed nothing."""
        return self.error is not None and self.spend.model_calls == 0

    def markdown(self) -> str:
        lines = ["# Audit", "", f"Filed {len(self.filed)} plan(s); model calls {self.spend.model_calls}, "
                 f"cost ${self.spend.cost_usd:.4f}.", ""]
        lines += [f"- filed: {p.title} → `{p.ref}`" for p in self.filed]
        lines += [f"- skipped: {title} — {why}" for title, why in self.skipped]
        lines += [f"- refused proposal: {why}" for why in self.refused]
        if self.error:
            lines.append(f"- stopped early: {self.error}")
        return "\n".join(lines) + "\n"


class _BudgetGate:
    """Model calls for the audit, counted and capped by the repo's budgets."""

    def __init__(self, model: Model, config: Config, spend: Spend):
        self.model, self.config, self.spend = model, config, spend

    def __call__(self, request: ModelRequest) -> ModelReply:
        budgets = self.config.budgets
        if self.spend.model_calls >= budgets.max_model_calls or self.spend.cost_usd >= budgets.max_cost_usd:
            raise ModelError("audit budget used up (max_model_calls / max_cost_usd)")
        reply = self.model.complete(request)
        reply.charge_to(self.spend)
        return reply


def audit(repo: Path, *, model: Model, config: Config, forge: PlanForge, sandbox: Sandbox, clock: Clock,
          lessons: list[str]) -> AuditResult:
    result = AuditResult()
    files = [p for p in git(repo, "ls-files", "-z").stdout.split("\0") if p]
    open_plans = [p for p in forge.plans() if p.open]
    context = render_prompt(
        "auditor_context.md.j2",
        repo_map=repomap.build(repo, files, goal_text="bugs tests docs debt", scope=["**"],
                               budget_tokens=config.execution.repo_map_tokens * 2),
        tests=find_test_files(files)[:200], commands={k: v for k, v in (("test", config.commands.test),
                                                                          ("lint", config.commands.lint)) if v},
        wiki=repomap.wiki_excerpt(repo, config.wiki.path, config.execution.wiki_tokens), lessons=lessons,
        open_plans=open_plans)
    toolbox = ToolBox(root=repo, sandbox=sandbox, mode="audit")
    session = run_session(
        _BudgetGate(model, config, result.spend), toolbox, role="auditor",
        system=render_prompt("auditor_system.md.j2", max_chunks=MAX_CHUNKS, max_plans=config.limits.max_plans_per_run),
        context=[TextBlock(text=context, cache=True)], iteration=1, max_turns=config.execution.max_turns_per_iteration)
    result.error = session.error
    result.refused = list(toolbox.refused_plans)
    accepted, skipped = triage(list(toolbox.proposals), open_plans, limit=config.limits.max_plans_per_run)
    result.skipped = [(plan.title, why) for plan, why in skipped]
    date = time.strftime("%Y-%m-%d", time.gmtime(clock.wall()))
    for plan in accepted:
        result.filed.append(forge.file_plan(plan, render(plan), date=date))
    return result


