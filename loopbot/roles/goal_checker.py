"""The goal-checker: MET / NOT MET from objective evidence; a model only for criteria no command decides."""

from __future__ import annotations

from collections.abc import Mapping

from loopbot.core.state import CriterionResult, GoalCheck, Verdict
from loopbot.goal import Goal
from loopbot.messages import Message, ModelRequest, TextBlock, ToolSpec
from loopbot.ports import ModelError
from loopbot.prompts import render
from loopbot.roles import Gate
from loopbot.roles.checker import CHANGE_VIEW_CEILING, trim_diff

GOAL_VERDICT_TOOL = ToolSpec(
    name="goal_verdict",
    description="One entry per criterion, in order.",
    input_schema={
        "type": "object",
        "properties": {
            "criteria": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"met": {"type": "boolean"}, "evidence": {"type": "string"}},
                    "required": ["met", "evidence"],
                },
            }
        },
        "required": ["criteria"],
        "additionalProperties": False,
    },
)


def run_goal_checker(gate: Gate, goal: Goal, diff: str, verdicts: list[Verdict], *, iteration: int,
                    overrides: Mapping[str, str] | None = None) -> GoalCheck:
    objective_met = bool(verdicts) and all(v.passed for v in verdicts)
    if not objective_met:
        failed = ", ".join(v.name for v in verdicts if not v.passed)
        return GoalCheck(met=False, objective_met=False, summary=f"objective checks failed: {failed}")
    if not goal.criteria:
        return GoalCheck(met=True, objective_met=True, summary="every objective check passed")
    request = ModelRequest(
        role="goal_checker",
        system=render("goal_checker_system.md.j2", overrides=overrides),
        messages=[Message(role="user", content=[TextBlock(
            text=render("goal_checker_user.md.j2", overrides=overrides, goal=goal, criteria=goal.criteria, verdicts=verdicts,
                        diff=trim_diff(diff, CHANGE_VIEW_CEILING)))])],
        tools=[GOAL_VERDICT_TOOL],
        tool_choice="goal_verdict",
        iteration=iteration,
    )
    unreadable = [CriterionResult(criterion=c.criterion, met=False, evidence="goal-checker reply unreadable")
                  for c in goal.criteria]
    try:
        reply = gate(request)
    except ModelError as exc:
        return GoalCheck(met=False, objective_met=True, criteria=unreadable, summary=f"goal-checker unavailable: {exc}")
    results = unreadable
    for call in reply.message.tool_calls:
        items = call.input.get("criteria") if call.name == "goal_verdict" else None
        if isinstance(items, list) and len(items) == len(goal.criteria):
            results = [
                # Only a JSON true is met: "false", "no" or 1 from a sloppy reply must not pass the goal.
                CriterionResult(criterion=c.criterion, met=isinstance(item, dict) and item.get("met") is True,
                                evidence=str(item.get("evidence", "")) if isinstance(item, dict) else "")
                for c, item in zip(goal.criteria, items, strict=True)
            ]
            break
    met = all(r.met for r in results)
    summary = "every criterion met" if met else f"{sum(not r.met for r in results)} criteria not met"
    return GoalCheck(met=met, objective_met=True, criteria=results, summary=summary)
