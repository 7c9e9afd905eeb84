"""OpenAI-compatible chat completions with tools: OpenAI, vLLM, Ollama, other vendors."""

from __future__ import annotations

import json
import time
from typing import Any, Literal

import openai

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

_STOP: dict[str, Literal["end_turn", "tool_use", "max_tokens", "refusal"]] = {
    "stop": "end_turn", "tool_calls": "tool_use", "function_call": "tool_use", "length": "max_tokens",
    "content_filter": "refusal",
}


def request_body(request: ModelRequest, model: str, max_tokens: int) -> dict[str, Any]:
    # Providers cache the longest repeated prefix by themselves; keeping the stable blocks first
    # (as the roles do) is what makes that work.
    messages: list[dict[str, Any]] = [{"role": "system", "content": request.system}]
    for message in request.messages:
        texts = [b.text for b in message.content if isinstance(b, TextBlock) and b.text]
        calls = [b for b in message.content if isinstance(b, ToolCall)]
        results = [b for b in message.content if isinstance(b, ToolResult)]
        if message.role == "assistant":
            item: dict[str, Any] = {"role": "assistant", "content": "\n\n".join(texts) or None}
            if calls:
                item["tool_calls"] = [{"id": c.id, "type": "function",
                                       "function": {"name": c.name, "arguments": json.dumps(c.input)}} for c in calls]
            messages.append(item)
            continue
        for result in results:
            content = ("ERROR: " if result.is_error else "") + (result.content or "(no output)")
            messages.append({"role": "tool", "tool_call_id": result.tool_use_id, "content": content})
        if texts:
            messages.append({"role": "user", "content": "\n\n".join(texts)})
    body: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": max_tokens}
    if request.tools:
        body["tools"] = [{"type": "function", "function": {"name": t.name, "description": t.description,
                                                            "parameters": t.input_schema}} for t in request.tools]
        body["tool_choice"] = ({"type": "function", "function": {"name": request.tool_choice}}
                               if request.tool_choice else "auto")
    return body


class OpenAICompatModel:
    def __init__(self, model: str, *, api_key: str, base_url: str | None, settings: ProviderConfig, price: Price):
        self.model = model
        self.name = f"openai:{model}"
        self.price = price
        self.max_tokens = settings.max_output_tokens
        self.client = openai.OpenAI(api_key=api_key, base_url=base_url, max_retries=settings.max_retries,
                                    timeout=settings.timeout_seconds)

    def complete(self, request: ModelRequest) -> ModelReply:
        started = time.monotonic()
        try:
            response = self.client.chat.completions.create(**request_body(request, self.model, self.max_tokens))
        except openai.APIStatusError as exc:
            raise ModelError(f"openai-compatible API error {exc.status_code}: {exc.message}") from None
        except openai.APIError as exc:
            raise ModelError(f"openai-compatible API unreachable: {exc}") from None
        usage = response.usage
        cached = 0
        if usage is not None and usage.prompt_tokens_details is not None:
            cached = usage.prompt_tokens_details.cached_tokens or 0
        prompt = usage.prompt_tokens if usage else 0
        result = Usage(input_tokens=prompt - cached, output_tokens=usage.completion_tokens if usage else 0,
                       cache_read_tokens=cached)
        cost = cost_usd(self.price, input_tokens=result.input_tokens, output_tokens=result.output_tokens,
                        cache_write=0, cache_read=cached)

        def rejected(message: str) -> ModelError:
            # The provider answered and billed: the ledger charges the reply loopbot cannot use.
            return ModelError(message, usage=result, cost_usd=cost)

        if not response.choices:
            raise rejected("the reply had no choices")
        choice = response.choices[0]
        blocks: list[TextBlock | ToolCall] = []
        if choice.message.content:
            blocks.append(TextBlock(text=choice.message.content))
        for call in choice.message.tool_calls or []:
            function = getattr(call, "function", None)
            if function is None:
                raise rejected("malformed tool call: not a function call")
            try:
                arguments = json.loads(function.arguments or "{}")
            except json.JSONDecodeError as exc:
                raise rejected(f"malformed tool call {function.name!r}: arguments are not JSON ({exc})") from None
            if not isinstance(arguments, dict):
                raise rejected(f"malformed tool call {function.name!r}: arguments are not an object")
            blocks.append(ToolCall(id=call.id, name=function.name, input=arguments))
        return ModelReply(
            message=Message(role="assistant", content=list(blocks)),
            stop_reason=_STOP.get(choice.finish_reason or "stop", "end_turn"),
            usage=result, model=response.model or self.model, seconds=time.monotonic() - started,
            cost_usd=cost,
        )
