"""A goal that came from GitHub (an issue body) runs inside the trusted config's limits. Pure.

The workflow's and config's budgets are ceilings: an issue may lower a budget, never raise it.
Models come from trusted files only: an issue may name a tier the config defines, never a model
spec or a `scripted:` file. `scope.protect` adds to the protected test files, never replaces them. A check's timeout is
held to the config's command timeout.
"""

from __future__ import annotations

from loopbot.config import Config
from loopbot.core.budgets import BudgetOverrides
from loopbot.errors import InputError, Problem
from loopbot.goal import Goal, MetricCheck, RunCheck


def constrain(goal: Goal, config: Config, source: str) -> Goal:
    """The goal as it may run from GitHub; InputError naming each field only trusted files may set."""
    problems: list[Problem] = []
    tiers = config.models.tiers
    for role in ("maker", "checker", "goal_checker"):
        chosen = getattr(goal.models, role)
        if chosen is not None and chosen not in tiers:
            problems.append(Problem(source, None, None, f"models.{role}", (
                f"{chosen!r} is not a tier of .github/loopbot.yml ({', '.join(sorted(tiers)) or 'none'}); "
                "a plan issue may pick a configured tier, never a model spec or a script")))
    if problems:
        raise InputError(problems)
    ceiling = config.budgets
    lowered = {name: min(value, getattr(ceiling, name))
               for name, value in goal.budgets.model_dump(exclude_none=True).items()}
    # A check's timeout is held to the config's command timeout: a runner is not the to hold.
    limit = config.commands.timeout_seconds
    checks = [c.model_copy(update={"timeout_seconds": min(c.timeout_seconds, limit)})
              if isinstance(c, (RunCheck, MetricCheck)) else c for c in goal.acceptance]
    return goal.model_copy(update={"budgets": BudgetOverrides.model_validate(lowered), "acceptance": checks})
