"""The budget of one agent session, as the proxy asks it: the same rules as the built-in
maker's gate (loopbot.runner.Runner._gate), turned into admit/charge for calls it did not make."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from loopbot.core.budgets import Exhausted
from loopbot.messages import Block, Message, ModelReply, ModelRequest, TextBlock, ToolCall
from loopbot.recording import Recorder

if TYPE_CHECKING:
    from loopbot.agents.proxy import ProxyCall

StopReason = Literal["end_turn", "tool_use", "max_tokens", "refusal", "error"]
_STOPS: dict[str, StopReason] = {"end_turn": "end_turn", "tool_use": "tool_use", "max_tokens": "max_tokens",
                                 "refusal": "refusal", "stop_sequence": "end_turn", "pause_turn": "end_turn"}


@dataclass
class SessionBilling:
    """`hard()`: a budget used up (the loop stops). `reserved()`: a budget that could no longer
    pay this iteration's reviewers (the session ends, its work is reviewed). `charge` writes a
    call to the ledger (the runner's charge path, before anything else is told)."""

    iteration: int
    model: str
    hard: Callable[[], Exhausted | None]
    reserved: Callable[[], Exhausted | None]
    charge_call: Callable[[ModelRequest, ProxyCall], None]
    recorder: Recorder
    admitted: int = 0
    turn: int = 0
    # A budget that ended the loop, not only the session: the runner stops on it after the session.
    stopped_by: Exhausted | None = None
    _calls: dict[str, ToolCall] = field(default_factory=dict)

    def admit(self) -> str | None:
        which = self.hard()
        if which is not None:
            self.stopped_by = which
            return f"the {which.value} budget is used up"
        short = self.reserved()
        if short is not None:
            if self.admitted == 0:
                self.stopped_by = short  # as the built-in maker: no session its reviewers could not pay
            return f"the {short.value} budget left is kept for this iteration's reviewers"
        self.admitted += 1
        return None

    def charge(self, call: ProxyCall) -> None:
        request = ModelRequest(role="maker", system="", messages=[], iteration=self.iteration, turn=self.turn)
        self.turn += 1
        self.charge_call(request, call)
        content: list[Block] = [TextBlock(text=call.text)] if call.text else []
        content += call.tool_calls
        reply = ModelReply(message=Message(role="assistant", content=content),
                           stop_reason=_STOPS.get(call.stop_reason, "error"),
                           usage=call.usage, cost_usd=call.cost_usd, model=call.model, seconds=call.seconds)
        self.recorder.model_turn(request, self.model, reply if call.error is None else None, seconds=call.seconds,
                                 error=call.error, usage=call.usage, cost_usd=call.cost_usd)
        for result in call.results:
            # The outputs of the agent's own tools, as it sent them back to the model.
            asked = self._calls.get(result.tool_use_id) or ToolCall(id=result.tool_use_id, name="?")
            self.recorder.tool_call(request, asked, result)
        self._calls.update((c.id, c) for c in call.tool_calls)
