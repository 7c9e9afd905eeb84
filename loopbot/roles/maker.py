"""The maker: a tool-using model session that edits the worktree for one iteration."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from loopbot.core.state import SpecConflict
from loopbot.messages import Message, ModelRequest, Role, TextBlock, ToolResult
from loopbot.ports import ModelError
from loopbot.roles import Gate
from loopbot.tools.toolbox import Diagnosis, ToolBox

_APPROACH = re.compile(r"^\s*APPROACH:\s*(.+)$", re.MULTILINE | re.IGNORECASE)


@dataclass
class MakerResult:
    approach: str = ""
    summary: str = ""
    chunks_completed: list[int] = field(default_factory=list)
    diagnosis: Diagnosis | None = None
    conflict: SpecConflict | None = None
    error: str | None = None
    calls: int = 0


def run_session(
    gate: Gate,
    toolbox: ToolBox,
    *,
    role: Role,
    system: str,
    context: str | list[TextBlock],
    iteration: int,
    max_turns: int,
) -> MakerResult:
    """Run tool calls until `done` (or `diagnose` in plan mode), an error, or the turn limit."""
    result = MakerResult()
    blocks = [TextBlock(text=context)] if isinstance(context, str) else context
    messages = [Message(role="user", content=list(blocks))]
    for turn in range(max_turns):
        request = ModelRequest(role=role, system=system, messages=list(messages), tools=toolbox.specs(),
                               iteration=iteration, turn=turn)
        try:
            reply = gate(request)
        except ModelError as exc:
            result.error = f"model call failed: {exc}"
            return result
        result.calls += 1
        messages.append(reply.message)
        if not result.approach:
            found = _APPROACH.search(reply.message.text)
            if found:
                result.approach = found.group(1).strip()[:300]
        if reply.stop_reason == "max_tokens":
            result.error = "the model's reply was cut off by max_tokens"
            return result
        calls = reply.message.tool_calls
        if not calls:
            if role == "planner":
                result.error = "plan mode ended without a diagnosis"
            else:
                result.summary = reply.message.text.strip()[:2000]
            return result
        outputs = []
        finished = False
        for call in calls:
            outcome = toolbox.call(call.name, call.input)
            outputs.append(ToolResult(tool_use_id=call.id, content=outcome.content, is_error=outcome.is_error))
            if outcome.done is not None:
                result.summary = outcome.done.summary
                result.chunks_completed = outcome.done.chunks_completed
                finished = True
            if outcome.conflict is not None:
                result.conflict = outcome.conflict
                result.summary = result.summary or f"spec conflict: {outcome.conflict.check}"
                finished = True
            if outcome.diagnosis is not None:
                result.diagnosis = outcome.diagnosis
                if not result.approach:
                    result.approach = outcome.diagnosis.next_approach
                finished = True
        messages.append(Message(role="user", content=list(outputs)))
        if finished:
            return result
    if role == "planner":
        result.error = f"plan mode used {max_turns} turns without a diagnosis"
    else:
        result.summary = result.summary or f"stopped after {max_turns} turns without calling done"
    return result
