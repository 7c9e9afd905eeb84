"""The goal-checker: MET / NOT MET from objective evidence; a model only for criteria no command decides."""

from __future__ import annotations

from collections.abc import Mapping

from loopbot.core.state import CriterionResult, GoalCheck, Verdict
from loopbot.goal import Goal
from loopbot.messages import Message, ModelRequest, TextBlock, ToolSpec
from loopbot.prompts import render
from loopbot.roles import Gate
from loopbot.roles.checker import CHANGE_VIEW_CEILING, trim_diff
from loopbot.roles.review import ask_for_verdict

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
                    "properties": {"met": {"type": "boolean", "description": "true only if the criterion holds"},
                                   "evidence": {"type": "string", "description": "what in the diff or checks shows it"}},
                    "required": ["met", "evidence"],
                },
                "description": "one entry per criterion, in the order given",
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
    # One entry per criterion, each `met` a JSON boolean: the schema says so and is enforced, so
    # "false", "no" or 1 from a sloppy reply never pass the goal; a reviewer that gives no valid
    # verdict raises ReviewerUnavailable.
    spec = GOAL_VERDICT_TOOL.model_copy(deep=True)
    spec.input_schema["properties"]["criteria"].update(minItems=len(goal.criteria), maxItems=len(goal.criteria))
    items = ask_for_verdict(gate, request.model_copy(update={"tools": [spec]}), spec)["criteria"]
    results = [CriterionResult(criterion=c.criterion, met=item["met"] is True, evidence=str(item["evidence"]))
               for c, item in zip(goal.criteria, items, strict=True)]
    met = all(r.met for r in results)
    summary = "every criterion met" if met else f"{sum(not r.met for r in results)} criteria not met"
    return GoalCheck(met=met, objective_met=True, criteria=results, summary=summary)
