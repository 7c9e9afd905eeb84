"""The checker: a fresh-context review of the diff against the goal. Never sees the maker's reasoning."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from loopbot.core.state import CheckerVerdict, Verdict
from loopbot.goal import Goal
from loopbot.messages import Message, ModelRequest, TextBlock, ToolSpec
from loopbot.ports import ModelError
from loopbot.prompts import render
from loopbot.roles import Gate

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
            "decision": {"type": "string", "enum": ["APPROVE", "REJECT"]},
            "reasons": {"type": "array", "items": {"type": "string"}},
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


def _parse(args: dict[str, Any]) -> CheckerVerdict | None:
    decision = args.get("decision")
    reasons = args.get("reasons", [])
    if decision not in ("APPROVE", "REJECT") or not isinstance(reasons, list):
        return None
    return CheckerVerdict(decision=decision, reasons=[str(r) for r in reasons])


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
    try:
        reply = gate(request)
    except ModelError as exc:
        return CheckerVerdict(decision="REJECT", reasons=[f"checker unavailable: {exc}"])
    for call in reply.message.tool_calls:
        if call.name == "verdict":
            parsed = _parse(call.input)
            if parsed is not None:
                return parsed
    # Never approve on a reply we cannot read.
    return CheckerVerdict(decision="REJECT", reasons=["the checker's reply was malformed; treated as a rejection"])
