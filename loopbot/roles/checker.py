"""The checker: a fresh-context review of the diff against the goal. Never sees the maker's reasoning."""

from __future__ import annotations

from collections.abc import Mapping

from loopbot.core.state import CheckerVerdict, Verdict
from loopbot.goal import Goal
from loopbot.messages import Message, ModelRequest, TextBlock, ToolSpec
from loopbot.prompts import render
from loopbot.roles import Gate
from loopbot.roles.review import ask_for_verdict

DIFF_LIMIT_CHARS = 60_000
# The runner's change view is already trimmed per file (loopbot.core.diffview); this only bounds a
# pathological one (hundreds of source files at their floor).
CHANGE_VIEW_CEILING = 4 * DIFF_LIMIT_CHARS

VERDICT_TOOL = ToolSpec(
    name="verdict",
    description="Your review decision.",
    input_schema={
        "type": "object",
        "properties": {
            "decision": {"type": "string", "enum": ["APPROVE", "REJECT"],
                         "description": "APPROVE only if the change achieves the goal without gaming the checks"},
            "reasons": {"type": "array", "items": {"type": "string"},
                        "description": "concrete reasons, with file and line where you can"},
        },
        "required": ["decision", "reasons"],
        "additionalProperties": False,
    },
)


def trim_diff(diff: str, limit: int = DIFF_LIMIT_CHARS) -> str:
    if len(diff) <= limit:
        return diff
    half = limit // 2
    return diff[:half] + f"\n[… {len(diff) - limit} characters of diff omitted …]\n" + diff[-half:]


def run_checker(gate: Gate, goal: Goal, diff: str, verdicts: list[Verdict], *, iteration: int,
                overrides: Mapping[str, str] | None = None) -> CheckerVerdict:
    request = ModelRequest(
        role="checker",
        system=render("checker_system.md.j2", overrides=overrides),
        messages=[Message(role="user", content=[TextBlock(
            text=render("checker_user.md.j2", overrides=overrides, goal=goal, verdicts=verdicts, diff=trim_diff(diff, CHANGE_VIEW_CEILING)))])],
        tools=[VERDICT_TOOL],
        tool_choice="verdict",
        iteration=iteration,
    )
    # Validated against the schema: only APPROVE or REJECT, reasons a list of strings. A reviewer
    # that gives no such verdict raises ReviewerUnavailable; it never becomes a REJECT.
    verdict = ask_for_verdict(gate, request, VERDICT_TOOL)
    return CheckerVerdict(decision=verdict["decision"], reasons=[str(r) for r in verdict["reasons"]])
