"""The Anthropic provider: Messages API with tool use, prompt caching, retries by the SDK.

Rules from the Messages API docs that shape each request:
- thinking and redacted_thinking blocks go back verbatim, first in their assistant turn;
- a model that thinks by default refuses a forced tool_choice: such a call goes out as auto, and
  the role's prompt asks for the tool;
- `pause_turn` means "send the turn back as it is to let the model continue";
- a cache breakpoint below the model's minimum cacheable prefix is never read, so none is put there.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import anthropic

from loopbot.agents.base import Upstream
from loopbot.config import ProviderConfig
from loopbot.core.context import approx_tokens
from loopbot.messages import (
    Block,
    Message,
    ModelReply,
    ModelRequest,
    OpaqueBlock,
    TextBlock,
    ToolCall,
    ToolResult,
    Usage,
)
from loopbot.ports import ModelError
from loopbot.providers import cost_usd
from loopbot.providers.profiles import ModelProfile

MAX_BREAKPOINTS = 4  # the API's limit on cache_control blocks per request
MAX_CONTINUATIONS = 3  # pause_turn replies continued within one call
_EPHEMERAL = {"type": "ephemeral"}
_OPAQUE = ("thinking", "redacted_thinking")
_STOP: dict[str, Literal["end_turn", "tool_use", "max_tokens", "refusal"]] = {
    "end_turn": "end_turn", "tool_use": "tool_use", "max_tokens": "max_tokens", "stop_sequence": "end_turn",
    "refusal": "refusal", "model_context_window_exceeded": "max_tokens",
}


def _block(block: Block, role: str) -> dict[str, Any] | None:
    if isinstance(block, TextBlock):
        return {"type": "text", "text": block.text} if block.text else None
    if isinstance(block, ToolCall):
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    if isinstance(block, ToolResult):
        return {"type": "tool_result", "tool_use_id": block.tool_use_id, "content": block.content or "(no output)",
                "is_error": block.is_error}
    # Another provider's opaque blocks mean nothing here.
    return dict(block.data) if block.provider == "anthropic" and role == "assistant" else None


def request_body(request: ModelRequest, model: str, max_tokens: int, profile: ModelProfile | None = None
                 ) -> dict[str, Any]:
    """The Messages API body, with cache breakpoints on the stable prefix.

    Breakpoints, in prefix order: the last tool and the system prompt (when that prefix is long
    enough to be cached), every block the caller marked stable, and the conversation's last
    block (so each turn reads the previous turns; not on a single-turn call). The API allows
    four; the earliest marked blocks give way first.
    """
    min_cache = profile.min_cache_tokens if profile is not None else 1024
    tools = [{"name": t.name, "description": t.description, "input_schema": t.input_schema} for t in request.tools]
    messages: list[dict[str, Any]] = []
    marked: list[dict[str, Any]] = []
    for message in request.messages:
        # In the order received: an assistant turn goes back exactly as the model wrote it.
        blocks: list[dict[str, Any]] = []
        for block in message.content:
            item = _block(block, message.role)
            if item is None:
                continue
            blocks.append(item)
            if isinstance(block, TextBlock) and block.cache:
                marked.append(item)
        if not blocks:
            continue
        if messages and messages[-1]["role"] == message.role:
            # The API combines consecutive turns of one role; so does loopbot, explicitly.
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": message.role, "content": blocks})
    if messages and not request.single_turn:
        tail = messages[-1]["content"][-1]
        if all(tail is not item for item in marked) and tail.get("type") not in _OPAQUE:
            marked.append(tail)
    system: list[dict[str, Any]] = [{"type": "text", "text": request.system}]
    prefix_tokens = approx_tokens(request.system) + sum(approx_tokens(str(t)) for t in tools)
    budget = MAX_BREAKPOINTS
    if prefix_tokens >= min_cache:
        system[0]["cache_control"] = _EPHEMERAL
        budget -= 1
        if tools:
            tools[-1]["cache_control"] = _EPHEMERAL
            budget -= 1
    for item in marked[-budget:] if budget > 0 else []:
        item["cache_control"] = _EPHEMERAL
    body: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "system": system, "messages": messages}
    if tools:
        body["tools"] = tools
        forced = request.tool_choice is not None and (profile is None or profile.forced_tool_choice)
        body["tool_choice"] = {"type": "tool", "name": request.tool_choice} if forced else {"type": "auto"}
    return body


def _content(response: Any, usage: Usage, cost: float) -> list[Block]:
    blocks: list[Block] = []
    for item in response.content:
        if item.type == "text":
            if item.text:
                blocks.append(TextBlock(text=item.text))
        elif item.type == "tool_use":
            if not isinstance(item.id, str) or not item.id:
                # Billed all the same: the ledger charges the reply loopbot cannot use.
                raise ModelError(f"malformed tool call {item.name!r}: no id", usage=usage, cost_usd=cost)
            if isinstance(item.input, dict):
                blocks.append(ToolCall(id=item.id, name=item.name, input=item.input))
            else:
                blocks.append(ToolCall(id=item.id, name=item.name, input={},
                                       error="the input was not a JSON object; send the call again"))
        else:
            # thinking, redacted_thinking and any block type loopbot does not read: kept verbatim.
            blocks.append(OpaqueBlock(provider="anthropic", data=item.model_dump(mode="json", exclude_none=True)))
    return blocks


class AnthropicModel:
    def __init__(self, model: str, *, api_key: str, base_url: str | None, settings: ProviderConfig,
                 profile: ModelProfile):
        self.model = model
        self.name = f"anthropic:{model}"
        self.profile = profile
        self.price = profile.price
        # The configured limit, never above what the model can write (the API refuses more).
        self.max_tokens = min(settings.max_output_tokens, profile.max_output_tokens)
        self.timeout = settings.timeout_seconds
        # The SDK retries 408/409/429/5xx (529 overloaded included) and dropped connections with
        # exponential backoff, and honours retry-after / retry-after-ms.
        self.client = anthropic.Anthropic(api_key=api_key, base_url=base_url, max_retries=settings.max_retries,
                                          timeout=settings.timeout_seconds)

    def _call(self, body: dict[str, Any]) -> Any:
        try:
            # An explicit timeout: without one the SDK refuses a non-streaming call whose
            # max_tokens could take over ten minutes (a 64K output limit does), before sending it.
            return self.client.messages.create(**body, timeout=self.timeout)
        except anthropic.APIStatusError as exc:
            raise ModelError(f"anthropic API error {exc.status_code}: {exc.message}") from None
        except anthropic.APIResponseValidationError as exc:
            raise ModelError(f"anthropic API answered with something that is not a Messages reply: {exc}") from None
        except anthropic.APIError as exc:  # connection errors and timeouts, after the SDK's retries
            raise ModelError(f"anthropic API unreachable: {exc}") from None
        except ValueError as exc:  # a 200 whose body is not JSON
            raise ModelError(f"anthropic API answered with something that is not a Messages reply: {exc}") from None

    def upstream(self) -> Upstream:
        """Where an agent maker's calls go through loopbot's proxy (loopbot.agents): this model's
        endpoint, key and price."""
        return Upstream("anthropic", str(self.client.base_url), self.client.api_key or "", self.price)

    def complete(self, request: ModelRequest) -> ModelReply:
        started = time.monotonic()
        body = request_body(request, self.model, self.max_tokens, self.profile)
        usage = Usage()
        cost = 0.0
        content: list[Block] = []
        stop = "end_turn"
        model = self.model
        for _ in range(MAX_CONTINUATIONS + 1):
            response = self._call(body)
            if not hasattr(response, "content") or not isinstance(response.content, list):
                raise ModelError("anthropic API answered with something that is not a Messages reply",
                                 usage=usage, cost_usd=cost)
            part = _usage(response)
            usage = _add(usage, part)
            cost += cost_usd(self.price, input_tokens=part.input_tokens, output_tokens=part.output_tokens,
                             cache_write=part.cache_write_tokens, cache_read=part.cache_read_tokens)
            content += _content(response, usage, cost)
            stop = response.stop_reason or "end_turn"
            model = response.model or model
            if stop != "pause_turn":
                break
            # A paused turn is continued by sending it back as the assistant's turn, unchanged.
            raw = [item.model_dump(mode="json", exclude_none=True) for item in response.content]
            messages = list(body["messages"])
            if messages and messages[-1]["role"] == "assistant":
                messages[-1] = {"role": "assistant", "content": messages[-1]["content"] + raw}
            else:
                messages.append({"role": "assistant", "content": raw})
            body = {**body, "messages": messages}
        else:
            stop = "max_tokens"  # still paused after the continuations: treated as cut off
        return ModelReply(
            message=Message(role="assistant", content=content),
            stop_reason=_STOP.get(stop, "end_turn"),
            usage=usage, model=model, seconds=time.monotonic() - started, cost_usd=round(cost, 8),
        )


def _usage(response: Any) -> Usage:
    u = getattr(response, "usage", None)
    if u is None:
        return Usage()
    return Usage(input_tokens=u.input_tokens or 0, output_tokens=u.output_tokens or 0,
                 cache_write_tokens=u.cache_creation_input_tokens or 0,
                 cache_read_tokens=u.cache_read_input_tokens or 0)


def _add(a: Usage, b: Usage) -> Usage:
    return Usage(input_tokens=a.input_tokens + b.input_tokens, output_tokens=a.output_tokens + b.output_tokens,
                 cache_write_tokens=a.cache_write_tokens + b.cache_write_tokens,
                 cache_read_tokens=a.cache_read_tokens + b.cache_read_tokens)
