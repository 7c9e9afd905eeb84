"""The recorder port: where the runner and the maker tell each model turn and tool call as it
happens (the run's transcript, loopbot.transcript). Adapters implement it; the loop never reads it."""

from __future__ import annotations

from typing import Protocol

from loopbot.messages import ModelReply, ModelRequest, ToolCall, ToolResult, Usage


class Recorder(Protocol):
    """The run's transcript: each model turn and each tool call, told the moment it happens (a
    run killed halfway keeps every turn before the kill). The loop never reads it back."""

    def model_turn(self, request: ModelRequest, model: str, reply: ModelReply | None, *, seconds: float,
                   error: str | None = None, usage: Usage | None = None, cost_usd: float = 0.0) -> None:
        """One call of any role: its reply, or the error that ended it (with the bill, if any)."""
        ...

    def tool_call(self, request: ModelRequest, call: ToolCall, result: ToolResult) -> None:
        """One tool call of the reply to `request`, with what the model was told it returned."""
        ...


class NoRecorder:
    """Records nothing: audit, docs and tests that keep no transcript."""

    def model_turn(self, request: ModelRequest, model: str, reply: ModelReply | None, *, seconds: float,
                   error: str | None = None, usage: Usage | None = None, cost_usd: float = 0.0) -> None:
        return None

    def tool_call(self, request: ModelRequest, call: ToolCall, result: ToolResult) -> None:
        return None


NO_RECORDER = NoRecorder()
