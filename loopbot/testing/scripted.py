"""A deterministic Model that replies from a YAML script.

Replies are keyed by (role, iteration, turn), never by call order, so a run killed and resumed in
another process gets exactly the replies an uninterrupted run would have had.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from loopbot.core.context import approx_tokens
from loopbot.messages import Message, ModelReply, ModelRequest, TextBlock, ToolCall, Usage
from loopbot.ports import ModelError
from loopbot.yamlfile import Limits, parse_yaml, read_yaml_file, validate_located


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Turn(_Strict):
    text: str = ""
    tools: list[dict[str, dict[str, Any]]] = Field(default_factory=list)
    stop_reason: Literal["end_turn", "tool_use", "max_tokens"] | None = None

    @field_validator("tools")
    @classmethod
    def _one_tool_per_entry(cls, value: list[dict[str, dict[str, Any]]]) -> list[dict[str, dict[str, Any]]]:
        for entry in value:
            if len(entry) != 1:
                raise ValueError("each tools entry is one mapping: {tool_name: {arguments}}")
        return value


IterationKey = int | list[int] | Literal["*"]


class SessionScript(_Strict):
    iteration: IterationKey
    turns: list[Turn]


class CheckerScript(_Strict):
    iteration: IterationKey
    decision: Literal["APPROVE", "REJECT"]
    reasons: list[str] = Field(default_factory=list)


class CriterionScript(_Strict):
    met: bool
    evidence: str = ""


class GoalCheckerScript(_Strict):
    iteration: IterationKey
    criteria: list[CriterionScript]


class Price(_Strict):
    input_per_mtok: float = 3.0
    output_per_mtok: float = 15.0


class Script(_Strict):
    model: str = "scripted"
    price: Price = Field(default_factory=Price)
    latency_seconds: float = Field(0.0, ge=0)
    # Append one JSON line per reply, before it is returned: the "provider's bill" that kill
    # harnesses compare loopbot's spend ledger with.
    delivery_log: str | None = None
    maker: list[SessionScript] = Field(default_factory=list)
    planner: list[SessionScript] = Field(default_factory=list)
    auditor: list[SessionScript] = Field(default_factory=list)
    documenter: list[SessionScript] = Field(default_factory=list)
    checker: list[CheckerScript] = Field(default_factory=list)
    goal_checker: list[GoalCheckerScript] = Field(default_factory=list)


def load_script(path: Path) -> Script:
    # Scripts hold whole model turns: a larger cap than hand-written goals, the same bounds otherwise.
    limits = Limits(max_bytes=16 * 1024 * 1024, max_nodes=2_000_000)
    data, locations = parse_yaml(read_yaml_file(path, limits=limits), str(path), limits)
    return validate_located(Script, data, locations, str(path), kind="model script")


def pick(entries: list[Any], iteration: int) -> Any | None:
    for entry in entries:
        key = entry.iteration
        if key == iteration or (isinstance(key, list) and iteration in key):
            return entry
    return next((e for e in entries if e.iteration == "*"), None)


class ScriptedModel:
    def __init__(self, script: Script, *, clock: Any | None = None):
        self.script = script
        self.name = f"scripted:{script.model}"
        self.clock = clock  # a FakeClock to advance by latency_seconds per call
        self.requests: list[ModelRequest] = []

    @classmethod
    def from_file(cls, path: Path, *, clock: Any | None = None) -> ScriptedModel:
        return cls(load_script(path), clock=clock)

    def complete(self, request: ModelRequest) -> ModelReply:
        self.requests.append(request)
        if self.clock is not None and self.script.latency_seconds:
            self.clock.advance(self.script.latency_seconds)
        message, stop = self._reply(request)
        usage = Usage(
            input_tokens=approx_tokens(request.system + json.dumps([m.model_dump() for m in request.messages])
                                       + json.dumps([t.model_dump() for t in request.tools])),
            output_tokens=max(1, approx_tokens(message.model_dump_json())),
        )
        cost = (usage.input_tokens * self.script.price.input_per_mtok
                + usage.output_tokens * self.script.price.output_per_mtok) / 1_000_000
        if self.script.delivery_log:
            line = json.dumps({"role": request.role, "iteration": request.iteration, "turn": request.turn,
                               "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens})
            with open(self.script.delivery_log, "a", encoding="utf-8") as log:
                log.write(line + "\n")
        return ModelReply(message=message, stop_reason=stop, usage=usage, cost_usd=round(cost, 6),
                          model=self.name, seconds=self.script.latency_seconds)

    def _reply(self, request: ModelRequest) -> tuple[Message, Literal["end_turn", "tool_use", "max_tokens"]]:
        role = request.role
        if role in ("maker", "planner", "auditor", "documenter"):
            session = pick(getattr(self.script, role), request.iteration)
            if session is None:
                raise ModelError(f"script has no {role} reply for iteration {request.iteration}")
            if request.turn >= len(session.turns):
                return Message(role="assistant", content=[TextBlock(text="(script ended)")]), "end_turn"
            turn = session.turns[request.turn]
            blocks: list[Any] = [TextBlock(text=turn.text)] if turn.text else []
            for index, entry in enumerate(turn.tools):
                (name, args), = entry.items()
                blocks.append(ToolCall(id=f"call_{request.iteration}_{request.turn}_{index}", name=name, input=args))
            stop: Literal["end_turn", "tool_use", "max_tokens"] = turn.stop_reason or (
                "tool_use" if turn.tools else "end_turn")
            return Message(role="assistant", content=blocks), stop
        if role == "checker":
            verdict = pick(self.script.checker, request.iteration)
            if verdict is None:
                raise ModelError(f"script has no checker reply for iteration {request.iteration}")
            call = ToolCall(id=f"check_{request.iteration}", name="verdict",
                            input={"decision": verdict.decision, "reasons": verdict.reasons})
            return Message(role="assistant", content=[call]), "tool_use"
        if role == "goal_checker":
            judged = pick(self.script.goal_checker, request.iteration)
            if judged is None:
                raise ModelError(f"script has no goal_checker reply for iteration {request.iteration}")
            call = ToolCall(id=f"goal_{request.iteration}", name="goal_verdict",
                            input={"criteria": [c.model_dump() for c in judged.criteria]})
            return Message(role="assistant", content=[call]), "tool_use"
        raise ModelError(f"the scripted model has no replies for role {role}")
