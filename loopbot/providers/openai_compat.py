"""OpenAI-compatible chat completions with tools: OpenAI, vLLM, Ollama, other vendors.

Rules that shape each request: OpenAI's own models take `max_completion_tokens` (the reasoning
models refuse `max_tokens`), compatible servers take `max_tokens`; a refusal arrives as
`message.refusal` or `finish_reason: content_filter`; some local servers write tool calls as JSON
text in `content` (read as calls here), and a model profiled `tool_protocol: text` is never sent
`tools` at all: the tools and the call format are described in the system prompt instead.
"""

from __future__ import annotations

import json
import time
from typing import Any, Literal

import openai
from openai.types.chat import ChatCompletion

from loopbot.agents.base import Upstream
from loopbot.config import ProviderConfig
from loopbot.core.textcalls import PROTOCOL, parse_text_calls, render_call
from loopbot.messages import (
    Block,
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
from loopbot.providers.profiles import ModelProfile

_STOP: dict[str, Literal["end_turn", "tool_use", "max_tokens", "refusal"]] = {
    "stop": "end_turn", "tool_calls": "tool_use", "function_call": "tool_use", "length": "max_tokens",
    "content_filter": "refusal",
}


def _text_tools(request: ModelRequest) -> str:
    lines = [PROTOCOL, "", "Tools:"]
    for tool in request.tools:
        lines.append(f"- {tool.name}: {tool.description}\n  input schema: {json.dumps(tool.input_schema)}")
    if request.tool_choice:
        lines.append(f"\nAnswer by calling {request.tool_choice}.")
    return "\n".join(lines)


def request_body(request: ModelRequest, model: str, max_tokens: int, profile: ModelProfile | None = None
                 ) -> dict[str, Any]:
    # Providers cache the longest repeated prefix by themselves; keeping the stable blocks first
    # (as the roles do) is what makes that work.
    text_protocol = profile is not None and profile.tool_protocol == "text"
    system = request.system + ("\n\n" + _text_tools(request) if text_protocol and request.tools else "")
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}]
    for message in request.messages:
        texts = [b.text for b in message.content if isinstance(b, TextBlock) and b.text]
        calls = [b for b in message.content if isinstance(b, ToolCall)]
        results = [b for b in message.content if isinstance(b, ToolResult)]
        if message.role == "assistant":
            if text_protocol:
                texts += [render_call(c.name, c.input) for c in calls]
                messages.append({"role": "assistant", "content": "\n\n".join(texts) or "(no reply)"})
                continue
            item: dict[str, Any] = {"role": "assistant", "content": "\n\n".join(texts) or None}
            if calls:
                item["tool_calls"] = [{"id": c.id, "type": "function",
                                       "function": {"name": c.name, "arguments": json.dumps(c.input)}} for c in calls]
            messages.append(item)
            continue
        if text_protocol:
            parts = [("ERROR from " if r.is_error else "Result of ") + f"call {r.tool_use_id}:\n{r.content or '(no output)'}"
                     for r in results]
            messages.append({"role": "user", "content": "\n\n".join(parts + texts)})
            continue
        for result in results:
            content = ("ERROR: " if result.is_error else "") + (result.content or "(no output)")
            messages.append({"role": "tool", "tool_call_id": result.tool_use_id, "content": content})
        if texts:
            messages.append({"role": "user", "content": "\n\n".join(texts)})
    param = profile.max_tokens_param if profile is not None else "max_tokens"
    body: dict[str, Any] = {"model": model, "messages": messages, param: max_tokens}
    if request.tools and not text_protocol:
        body["tools"] = [{"type": "function", "function": {"name": t.name, "description": t.description,
                                                            "parameters": t.input_schema}} for t in request.tools]
        forced = request.tool_choice is not None and (profile is None or profile.forced_tool_choice)
        body["tool_choice"] = {"type": "function", "function": {"name": request.tool_choice}} if forced else "auto"
    return body


class OpenAICompatModel:
    def __init__(self, model: str, *, api_key: str, base_url: str | None, settings: ProviderConfig,
                 profile: ModelProfile):
        self.model = model
        self.name = f"openai:{model}"
        self.profile = profile
        self.price = profile.price
        self.max_tokens = min(settings.max_output_tokens, profile.max_output_tokens)
        self.client = openai.OpenAI(api_key=api_key, base_url=base_url, max_retries=settings.max_retries,
                                    timeout=settings.timeout_seconds)

    def upstream(self) -> Upstream:
        """Where an agent maker's calls go through loopbot's proxy (loopbot.agents): this model's
        endpoint, key and price."""
        return Upstream("openai", str(self.client.base_url), self.client.api_key, self.price)

    def complete(self, request: ModelRequest) -> ModelReply:
        started = time.monotonic()
        try:
            response = self.client.chat.completions.create(
                **request_body(request, self.model, self.max_tokens, self.profile))
        except openai.APIStatusError as exc:
            raise ModelError(f"openai-compatible API error {exc.status_code}: {exc.message}") from None
        except openai.APIResponseValidationError as exc:
            raise ModelError(f"openai-compatible API answered with something that is not a chat completion: {exc}"
                             ) from None
        except openai.APIError as exc:
            raise ModelError(f"openai-compatible API unreachable: {exc}") from None
        except ValueError as exc:  # a 200 whose body is not JSON
            raise ModelError(f"openai-compatible API answered with something that is not a chat completion: {exc}"
                             ) from None
        if not isinstance(response, ChatCompletion):
            # An HTML error page or a proxy's text with status 200: the SDK hands it over as is.
            raise ModelError(f"openai-compatible API answered with something that is not a chat completion: "
                             f"{str(response)[:200]!r}")
        usage = response.usage
        cached = 0
        if usage is not None and usage.prompt_tokens_details is not None:
            cached = usage.prompt_tokens_details.cached_tokens or 0
        prompt = usage.prompt_tokens if usage else 0
        result = Usage(input_tokens=max(0, prompt - cached), output_tokens=usage.completion_tokens if usage else 0,
                       cache_read_tokens=cached)
        cost = cost_usd(self.price, input_tokens=result.input_tokens, output_tokens=result.output_tokens,
                        cache_write=0, cache_read=cached)

        def rejected(message: str) -> ModelError:
            # The provider answered and billed: the ledger charges the reply loopbot cannot use.
            return ModelError(message, usage=result, cost_usd=cost)

        if not response.choices:
            raise rejected("the reply had no choices")
        choice = response.choices[0]
        if choice.message is None:
            raise rejected("the reply's choice had no message")
        blocks: list[Block] = []
        for index, call in enumerate(choice.message.tool_calls or []):
            function = getattr(call, "function", None)
            if function is None or not function.name:
                raise rejected("malformed tool call: not a function call")
            error = None
            try:
                arguments = json.loads(function.arguments or "{}")
            except json.JSONDecodeError as exc:
                arguments, error = {}, f"the arguments were not valid JSON ({exc}); send the call again"
            if not isinstance(arguments, dict):
                arguments, error = {}, "the arguments were not a JSON object; send the call again"
            # Some servers send `id: null`; the result must still answer this call and no other.
            blocks.append(ToolCall(id=call.id or f"call_{index}_{response.id or 'x'}"[:64], name=function.name,
                                   input=arguments, error=error))
        text = choice.message.content or ""
        if not blocks and text and request.tools:
            names = {t.name for t in request.tools}
            blocks += [ToolCall(id=f"textcall_{i}_{response.id or 'x'}"[:64], name=c.name, input=c.input)
                       for i, c in enumerate(parse_text_calls(text, names))]
        if text:
            blocks.insert(0, TextBlock(text=text))
        stop = _STOP.get(choice.finish_reason or "stop", "end_turn")
        if getattr(choice.message, "refusal", None):
            stop = "refusal"
            blocks.insert(0, TextBlock(text=str(choice.message.refusal)))
        elif stop == "end_turn" and any(isinstance(b, ToolCall) for b in blocks):
            stop = "tool_use"
        return ModelReply(
            message=Message(role="assistant", content=blocks),
            stop_reason=stop,
            usage=result, model=response.model or self.model, seconds=time.monotonic() - started,
            cost_usd=cost,
        )
