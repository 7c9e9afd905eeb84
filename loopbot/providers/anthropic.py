"""The Anthropic provider: Messages API with tool use, prompt caching, retries by the SDK."""

from __future__ import annotations

import time
from typing import Any, Literal

import anthropic

from loopbot.config import Price, ProviderConfig
from loopbot.messages import (
    Message,
    ModelReply,
    ModelRequest,
    TextBlock,
    ToolCall,
    ToolResult,
    Usage,
)
from loopbot.ports import ModelError
from loopbot.providers import cost_usd

MAX_BREAKPOINTS = 4  # the API's limit on cache_control blocks per request
_EPHEMERAL = {"type": "ephemeral"}
_STOP: dict[str, Literal["end_turn", "tool_use", "max_tokens", "refusal"]] = {
    "end_turn": "end_turn", "tool_use": "tool_use", "max_tokens": "max_tokens", "stop_sequence": "end_turn",
    "refusal": "refusal", "pause_turn": "end_turn", "model_context_window_exceeded": "max_tokens",
}


def request_body(request: ModelRequest, model: str, max_tokens: int) -> dict[str, Any]:
    """The Messages API body, with cache breakpoints on the stable prefix.

    Breakpoints, in prefix order: the last tool, the system prompt, every block the caller marked
    stable, and the conversation's last block (so each turn reads the previous turns from cache).
    The API allows four; the earliest marked blocks give way first.
    """
    tools = [{"name": t.name, "description": t.description, "input_schema": t.input_schema} for t in request.tools]
    messages: list[dict[str, Any]] = []
    marked: list[dict[str, Any]] = []
    for message in request.messages:
        blocks: list[dict[str, Any]] = []
        for block in message.content:
            if isinstance(block, TextBlock):
                if not block.text:
                    continue
                item: dict[str, Any] = {"type": "text", "text": block.text}
                if block.cache:
                    marked.append(item)
            elif isinstance(block, ToolCall):
                item = {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
            elif isinstance(block, ToolResult):
                item = {"type": "tool_result", "tool_use_id": block.tool_use_id, "content": block.content or "(no output)",
                        "is_error": block.is_error}
            blocks.append(item)
        if blocks:
            messages.append({"role": message.role, "content": blocks})
    if messages:
        tail = messages[-1]["content"][-1]
        if all(tail is not item for item in marked):
            marked.append(tail)
    system = [{"type": "text", "text": request.system, "cache_control": _EPHEMERAL}]
    budget = MAX_BREAKPOINTS - 1 - (1 if tools else 0)
    for item in marked[-budget:] if budget > 0 else []:
        item["cache_control"] = _EPHEMERAL
    if tools:
        tools[-1]["cache_control"] = _EPHEMERAL
    body: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "system": system, "messages": messages}
    if tools:
        body["tools"] = tools
        body["tool_choice"] = {"type": "tool", "name": request.tool_choice} if request.tool_choice else {"type": "auto"}
    return body


class AnthropicModel:
    def __init__(self, model: str, *, api_key: str, base_url: str | None, settings: ProviderConfig, price: Price):
        self.model = model
        self.name = f"anthropic:{model}"
        self.price = price
        self.max_tokens = settings.max_output_tokens
        # The SDK retries 408/409/429/5xx (529 overloaded included) and dropped connections with
        # exponential backoff, and honours retry-after / retry-after-ms.
        self.client = anthropic.Anthropic(api_key=api_key, base_url=base_url, max_retries=settings.max_retries,
                                          timeout=settings.timeout_seconds)

    def complete(self, request: ModelRequest) -> ModelReply:
        started = time.monotonic()
        try:
            response = self.client.messages.create(**request_body(request, self.model, self.max_tokens))
        except anthropic.APIStatusError as exc:
            raise ModelError(f"anthropic API error {exc.status_code}: {exc.message}") from None
        except anthropic.APIError as exc:  # connection errors and timeouts, after the SDK's retries
            raise ModelError(f"anthropic API unreachable: {exc}") from None
        usage = Usage(input_tokens=response.usage.input_tokens, output_tokens=response.usage.output_tokens,
                      cache_write_tokens=response.usage.cache_creation_input_tokens or 0,
                      cache_read_tokens=response.usage.cache_read_input_tokens or 0)
        cost = cost_usd(self.price, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                        cache_write=usage.cache_write_tokens, cache_read=usage.cache_read_tokens)
        blocks: list[TextBlock | ToolCall] = []
        for item in response.content:
            if item.type == "text":
                blocks.append(TextBlock(text=item.text))
            elif item.type == "tool_use":
                if not isinstance(item.input, dict):
                    # Billed all the same: the ledger charges the reply loopbot cannot use.
                    raise ModelError(f"malformed tool call {item.name!r}: input is not an object",
                                     usage=usage, cost_usd=cost)
                blocks.append(ToolCall(id=item.id, name=item.name, input=item.input))
        return ModelReply(
            message=Message(role="assistant", content=list(blocks)),
            stop_reason=_STOP.get(response.stop_reason or "end_turn", "end_turn"),
            usage=usage, model=response.model or self.model, seconds=time.monotonic() - started,
            cost_usd=cost,
        )
