"""The maker: a tool-using model session that edits the worktree for one iteration.

Conversation discipline, so a real model's habits never end an iteration silently: a reply
without a tool call gets reminders; `done` beside a failed call does not finish; a reply cut off
at the output limit runs nothing and asks for smaller steps; tool results are capped in bytes;
old results are elided when the conversation outgrows its budget, and once more on the API's
"prompt is too long". The worktree keeps every edit made so far whatever ends the session.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from loopbot.core.outputtail import head_and_tail
from loopbot.core.state import SpecConflict
from loopbot.messages import (
    Block,
    Message,
    ModelRequest,
    OpaqueBlock,
    Role,
    TextBlock,
    ToolCall,
    ToolResult,
)
from loopbot.ports import ModelError
from loopbot.recording import NO_RECORDER, Recorder
from loopbot.roles import Gate
from loopbot.tools.toolbox import Diagnosis, ToolBox

_APPROACH = re.compile(r"^\s*APPROACH:\s*(.+)$", re.MULTILINE | re.IGNORECASE)
FORMAT_NUDGES = 2  # replies without a tool call before the session ends
CUTOFF_RETRIES = 2  # replies cut off at max_tokens before the session ends
RESULT_BYTES = 24_000  # one tool result, head and tail kept
ELIDED = "[output elided to keep the conversation small; run the call again if you need it]"
_TOO_LONG = ("prompt is too long", "maximum context length", "context_length_exceeded", "too many tokens",
             "context window")


class OutOfCalls(ModelError):
    """The gate's refusal of a maker call whose budget is kept for the reviewers: the session
    ends and the work so far is evaluated."""


@dataclass
class MakerResult:
    approach: str = ""
    summary: str = ""
    chunks_completed: list[int] = field(default_factory=list)
    diagnosis: Diagnosis | None = None
    conflict: SpecConflict | None = None
    error: str | None = None
    calls: int = 0
    notes: list[str] = field(default_factory=list)


def cap_result(text: str, limit: int = RESULT_BYTES) -> str:
    return head_and_tail(text, limit, "[… {omitted} bytes of this output omitted; read or search for the part "
                                      "you need …]")


def _size(messages: list[Message]) -> int:
    return sum(len(b.content) if isinstance(b, ToolResult) else len(b.text) if isinstance(b, TextBlock) else 64
               for m in messages for b in m.content)


def elide_old_results(messages: list[Message], budget_chars: int, keep_last: int = 2) -> bool:
    """Replace the oldest tool results by a notice until the conversation fits `budget_chars`,
    keeping the last `keep_last` turns whole. Returns whether anything was elided. Elision only
    when over budget: each one changes the prompt's prefix, so the cache is rebuilt from there."""
    changed = False
    last = len(messages) - 2 * keep_last
    for index, message in enumerate(messages[:max(0, last)]):
        if _size(messages) <= budget_chars:
            break
        if message.role != "user":
            continue
        content: list[Block] = []
        for block in message.content:
            if isinstance(block, ToolResult) and block.content != ELIDED and len(block.content) > len(ELIDED):
                block = block.model_copy(update={"content": ELIDED})
                changed = True
            content.append(block)
        messages[index] = message.model_copy(update={"content": content})
    return changed


def _too_long(exc: ModelError) -> bool:
    text = str(exc).lower()
    return any(marker in text for marker in _TOO_LONG)


def run_session(
    gate: Gate,
    toolbox: ToolBox,
    *,
    role: Role,
    system: str,
    context: str | list[TextBlock],
    iteration: int,
    max_turns: int,
    budget_chars: int = 400_000,
    recorder: Recorder = NO_RECORDER,
) -> MakerResult:
    """Run tool calls until `done` (or `diagnose` in plan mode), an error, or the turn limit.
    Each call's result, as the model is told it, goes to `recorder` (the run's transcript)."""
    result = MakerResult()
    blocks = [TextBlock(text=context)] if isinstance(context, str) else context
    messages = [Message(role="user", content=list(blocks))]
    nudges = cutoffs = 0
    for turn in range(max_turns):
        elide_old_results(messages, budget_chars)
        request = ModelRequest(role=role, system=system, messages=list(messages), tools=toolbox.specs(),
                               iteration=iteration, turn=turn)
        try:
            reply = gate(request)
        except OutOfCalls as exc:
            result.notes.append(str(exc))
            result.summary = result.summary or f"stopped: {exc}"
            return result
        except ModelError as exc:
            if not _too_long(exc) or not elide_old_results(messages, 0, keep_last=1):
                result.error = f"model call failed: {exc}"
                return result
            result.notes.append("the prompt was too long: old tool results elided and the call made again")
            try:
                reply = gate(request.model_copy(update={"messages": list(messages)}))
            except ModelError as again:
                result.error = f"model call failed: {again}"
                return result
        result.calls += 1
        if not result.approach:
            found = _APPROACH.search(reply.message.text)
            if found:
                result.approach = found.group(1).strip()[:300]
        if reply.stop_reason == "refusal":
            result.error = f"the model refused: {reply.message.text.strip()[:300] or 'no reason given'}"
            return result
        if reply.stop_reason == "max_tokens":
            cutoffs += 1
            if cutoffs > CUTOFF_RETRIES:
                result.error = "the model's replies were cut off by max_tokens again and again"
                return result
            # Nothing of a cut-off reply runs: its last call may be incomplete. The edits made
            # by earlier turns stay in the worktree.
            kept = [b for b in reply.message.content if isinstance(b, (TextBlock, OpaqueBlock))
                    and not (isinstance(b, TextBlock) and not b.text)]
            if any(isinstance(b, TextBlock) for b in kept):
                messages.append(Message(role="assistant", content=kept))
            messages.append(Message(role="user", content=[TextBlock(text=(
                "Your last reply was cut off at the output limit, so none of it was run. Work in smaller "
                "steps: one edit per call, small search blocks, and write a large file in parts."))]))
            continue
        calls = reply.message.tool_calls
        if not calls:
            if role == "planner":
                result.error = "plan mode ended without a diagnosis"
                return result
            nudges += 1
            if nudges > FORMAT_NUDGES:
                result.summary = reply.message.text.strip()[:2000] or "ended without calling done"
                if not any(m.tool_calls for m in messages):
                    # The probe: a model that never calls a tool cannot work here as configured.
                    result.error = (f"the model answered {nudges} times and never called a tool: if it cannot "
                                    "produce tool calls, declare tool_protocol: text in its models.profiles entry")
                return result
            if reply.message.content:
                messages.append(reply.message)
            messages.append(Message(role="user", content=[TextBlock(text=(
                "Your reply had no tool call, so nothing happened. Continue by calling a tool; when the "
                "goal's current chunk is complete, call `done`."))]))
            continue
        nudges = 0
        messages.append(reply.message)
        outputs, finished = _run_calls(toolbox, calls, result)
        for call, output in zip(calls, outputs, strict=True):
            recorder.tool_call(request, call, output)
        messages.append(Message(role="user", content=list(outputs)))
        if finished:
            return result
    if role == "planner":
        result.error = f"plan mode used {max_turns} turns without a diagnosis"
    else:
        result.summary = result.summary or f"stopped after {max_turns} turns without calling done"
    return result


def _run_calls(toolbox: ToolBox, calls: list[ToolCall], result: MakerResult) -> tuple[list[ToolResult], bool]:
    """Every call of one reply, in order. A finishing call (done, spec_conflict, diagnose) counts
    only when no other call of the reply failed: the model must see the failure first."""
    outputs: list[ToolResult] = []
    finishing: list[int] = []
    failed = False
    pending = MakerResult()
    for call in calls:
        if call.error is not None:
            outputs.append(ToolResult(tool_use_id=call.id, content=f"not run: {call.error}", is_error=True))
            failed = True
            continue
        outcome = toolbox.call(call.name, call.input)
        outputs.append(ToolResult(tool_use_id=call.id, content=cap_result(outcome.content), is_error=outcome.is_error))
        failed = failed or outcome.is_error
        if outcome.done is not None:
            pending.summary = outcome.done.summary
            pending.chunks_completed = outcome.done.chunks_completed
            pending.approach = getattr(outcome.done, "approach", "") or ""
            finishing.append(len(outputs) - 1)
        if outcome.conflict is not None:
            pending.conflict = outcome.conflict
            pending.summary = pending.summary or f"spec conflict: {outcome.conflict.check}"
            finishing.append(len(outputs) - 1)
        if outcome.diagnosis is not None:
            pending.diagnosis = outcome.diagnosis
            pending.approach = pending.approach or outcome.diagnosis.next_approach
            finishing.append(len(outputs) - 1)
    if not finishing:
        return outputs, False
    if failed:
        for index in finishing:
            outputs[index] = outputs[index].model_copy(update={
                "content": "not finished: another call in this reply failed; fix that first, then finish again",
                "is_error": True})
        return outputs, False
    result.summary = pending.summary
    result.chunks_completed = pending.chunks_completed
    result.conflict = pending.conflict
    result.diagnosis = pending.diagnosis
    if pending.approach:
        result.approach = pending.approach[:300]
    return outputs, True
