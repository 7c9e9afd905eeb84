"""The reviewers' verdict protocol: one that every model accepts, parsed strictly.

A reviewer is asked for a call to its verdict tool. Models that refuse a forced tool choice get
auto (the provider decides) and the prompt's instruction; a reply that carries the verdict as
JSON text instead of a call (local servers) is read too. A reply with no valid verdict gets one
nudge. A reviewer that still gives none, refuses, or cannot be reached is unavailable: an
infrastructure stop, never a rejection and never review feedback for the maker.
"""

from __future__ import annotations

import json
from typing import Any

from loopbot.core.textcalls import parse_text_calls
from loopbot.messages import Message, ModelRequest, TextBlock, ToolResult, ToolSpec
from loopbot.ports import ModelError
from loopbot.roles import Gate

NUDGES = 1


class ReviewerUnavailable(Exception):
    """No verdict could be had from a reviewer: the run stops at this step (resumable)."""

    def __init__(self, role: str, detail: str):
        super().__init__(f"infrastructure: the {role.replace('_', '-')} is unavailable: {detail}")
        self.role = role


def _problem(spec: ToolSpec, value: Any) -> str | None:
    # Imported here: ~80 ms (python -X importtime), and only a reviewer's tool call needs it.
    from jsonschema import Draft202012Validator

    errors = sorted(Draft202012Validator(spec.input_schema).iter_errors(value), key=lambda e: list(e.path))
    if not errors:
        return None
    where = "/".join(str(p) for p in errors[0].path)
    return f"{where or 'input'}: {errors[0].message}"[:300]


def _verdict_in(reply_text: str, calls: list[tuple[str, str, dict[str, Any]]], spec: ToolSpec
                ) -> tuple[dict[str, Any] | None, str]:
    """The first valid verdict in a reply, else None and why."""
    why = f"the reply called no `{spec.name}` tool"
    candidates = [args for _, name, args in calls if name == spec.name]
    candidates += [c.input for c in parse_text_calls(reply_text, {spec.name})]
    stripped = reply_text.strip().removeprefix("```json").removeprefix("```").removesuffix("```").strip()
    if not candidates and stripped.startswith("{"):
        try:
            bare = json.loads(stripped)
        except json.JSONDecodeError:
            bare = None
        if isinstance(bare, dict):
            candidates.append(bare)  # the verdict object itself, as the prompt's fallback asks
    for args in candidates:
        problem = _problem(spec, args)
        if problem is None:
            return args, ""
        why = f"the `{spec.name}` input was invalid ({problem})"
    return None, why


def ask_for_verdict(gate: Gate, request: ModelRequest, spec: ToolSpec) -> dict[str, Any]:
    """The verdict tool's input, validated against its schema; ReviewerUnavailable otherwise."""
    messages = list(request.messages)
    why = ""
    for attempt in range(NUDGES + 1):
        try:
            reply = gate(request.model_copy(update={"messages": messages, "turn": attempt,
                                                    "single_turn": attempt == 0}))
        except ModelError as exc:
            raise ReviewerUnavailable(request.role, str(exc)) from None
        if reply.stop_reason == "refusal":
            raise ReviewerUnavailable(request.role, f"the model refused to review ({reply.message.text[:200]!r})")
        calls = [(c.id, c.name, c.input) for c in reply.message.tool_calls]
        verdict, why = _verdict_in(reply.message.text, calls, spec)
        if verdict is not None:
            return verdict
        if reply.message.content:
            messages.append(reply.message)
        nudge = (f"{why}. Answer now by calling `{spec.name}`, or with one fenced JSON block holding its input "
                 f"(schema: {json.dumps(spec.input_schema)}).")
        results = [ToolResult(tool_use_id=c_id, content=f"not a valid {spec.name}: {why}", is_error=True)
                   for c_id, _, _ in calls]
        messages.append(Message(role="user", content=[*results, TextBlock(text=nudge)]))
    raise ReviewerUnavailable(request.role, f"no valid verdict after {NUDGES} reminder: {why}")
