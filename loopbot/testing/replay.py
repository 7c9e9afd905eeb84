"""A loopback server that speaks the Anthropic Messages API and OpenAI's chat and Responses APIs, replaying
recorded exchanges (a cassette) and injecting faults. The real SDKs talk to it over HTTP.

It holds requests to the APIs' contracts (a request the real API would refuse gets a 400), and
it computes usage itself, including prompt caching as the APIs do it: a cached prefix is read
back only when it is byte-identical and long enough, so the figures measure whether loopbot's
requests are cache-friendly, not what a recording happened to say.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import select
import socket
import threading
import weakref
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field

from loopbot.core.context import approx_tokens
from loopbot.providers.profiles import UnknownModel, known, lookup
from loopbot.serverthread import serving_thread
from loopbot.testing import anthropic_stream, openai_stream
from loopbot.yamlfile import Limits, parse_yaml, read_yaml_file

MIN_CACHEABLE_TOKENS = 1024  # below this, a cache breakpoint is ignored (as by the APIs)
LOOKBACK = 20  # block boundaries before a breakpoint that the Messages API checks for cache hits
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Match(_Strict):
    """Which requests an exchange answers; empty matches any request of its API."""

    system_contains: str | None = None
    text_contains: str | None = None

    def fits(self, system: str, text: str) -> bool:
        return (self.system_contains is None or self.system_contains in system) and (
            self.text_contains is None or self.text_contains in text)


class Fault(_Strict):
    status: int | None = Field(None, description="an HTTP error status, e.g. 429, 529, 500")
    retry_after: float | None = None
    drop: bool = Field(False, description="close the connection without answering")
    body: str | None = Field(None, description="answer with this text verbatim (an HTML error page, a bad JSON)")
    content_type: str = "application/json"
    stall_after_bytes: int | None = Field(None, ge=0, description=(
        "send the answer's first bytes (the exchange's response, or `body`), then hold it open until "
        "`release()` or the client goes away: a stream still running when the session ends"))


class Exchange(_Strict):
    api: Literal["anthropic", "openai", "responses"]
    match: Match = Field(default_factory=Match)
    fault: Fault | None = None
    # Anthropic: {content: [...], stop_reason}; OpenAI: {message: {...}, finish_reason};
    # Responses: {output: [items], status} (message, function_call, custom_tool_call items; ids filled in).
    response: dict[str, Any] | None = None
    times: int = Field(1, ge=1, description="how many requests this exchange answers")


class Cassette(_Strict):
    exchanges: list[Exchange] = Field(default_factory=list)
    # A local OpenAI-compatible server answers for any model name; the vendors' APIs do not.
    any_model: bool = False
    context_window: int | None = Field(None, description="every model's context window, to test overflows")
    api_key: str | None = Field(None, description=(
        "the only key the server accepts (401 for any other, as the APIs answer); unset: any key"))

    @classmethod
    def load(cls, path: Path) -> Cassette:
        limits = Limits(max_bytes=64 * 1024 * 1024, max_nodes=5_000_000)
        data, _ = parse_yaml(read_yaml_file(path, limits=limits), str(path), limits)
        return cls.model_validate(data or {})

    def dump(self, path: Path) -> None:
        path.write_text(yaml.safe_dump(self.model_dump(exclude_defaults=True), sort_keys=False, width=120),
                        encoding="utf-8")


class ContractError(Exception):
    def __init__(self, message: str, status: int = 400, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status = status
        self.kind = kind


# -- per-model rules, as the vendors document them --------------------------------------------

@dataclass(frozen=True)
class ModelRules:
    thinking: bool
    forced_tool_choice: bool
    max_output_tokens: int
    context_window: int
    max_tokens_param: str


def rules_for(api: str, model: str, cassette: Cassette) -> ModelRules | None:
    """The documented rules for `model` (loopbot.providers.profiles holds the vendors' figures),
    or None for a model the API does not serve (404), unless the cassette is a local server."""
    try:
        profile = lookup("anthropic" if api == "anthropic" else "openai", model)
    except UnknownModel:
        if not cassette.any_model:
            return None
        profile = None
    window = cassette.context_window
    if profile is None:
        return ModelRules(thinking=False, forced_tool_choice=True, max_output_tokens=1_000_000,
                          context_window=window or 1_000_000, max_tokens_param="max_tokens")
    return ModelRules(thinking=profile.thinking == "adaptive", forced_tool_choice=profile.forced_tool_choice,
                      max_output_tokens=profile.max_output_tokens, context_window=window or profile.context_window,
                      max_tokens_param=profile.max_tokens_param)


def check_anthropic_model(body: dict[str, Any], rules: ModelRules, issued: dict[str, list[dict[str, Any]]]) -> None:
    if body["max_tokens"] > rules.max_output_tokens:
        raise ContractError(f"max_tokens: {body['max_tokens']} > {rules.max_output_tokens}, which is the maximum "
                            f"allowed number of output tokens for {body['model']}")
    choice = body.get("tool_choice") or {}
    if rules.thinking and choice.get("type") in ("any", "tool"):
        raise ContractError("Thinking may not be enabled when tool_choice forces tool use.")
    if rules.thinking:
        for index, message in enumerate(body["messages"]):
            if message["role"] != "assistant" or not isinstance(message["content"], list):
                continue
            blocks = message["content"]
            for block in blocks:
                thoughts = issued.get(block.get("id", "")) if block.get("type") == "tool_use" else None
                if thoughts is None:
                    continue
                lead = [{k: v for k, v in b.items() if k != "cache_control"} for b in blocks[:len(thoughts)]]
                if not lead or lead[0].get("type") not in ("thinking", "redacted_thinking"):
                    found = blocks[0].get("type") if blocks else "nothing"
                    raise ContractError(
                        f"messages.{index}.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
                        f"`{found}`. When `thinking` is enabled, a final `assistant` message must start with a "
                        "thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We "
                        "recommend you include thinking blocks from previous turns.")
                if lead != thoughts:
                    raise ContractError(f"messages.{index}.content.0: Invalid `signature` in `thinking` block")
    tokens = approx_tokens(_json(body.get("tools", [])) + _json(body.get("system", "")) + _json(body["messages"]))
    if tokens > rules.context_window:
        raise ContractError(f"prompt is too long: {tokens} tokens > {rules.context_window} maximum")


def check_openai_model(body: dict[str, Any], rules: ModelRules) -> None:
    if rules.max_tokens_param == "max_completion_tokens" and "max_tokens" in body:
        raise ContractError("Unsupported parameter: 'max_tokens' is not supported with this model. "
                            "Use 'max_completion_tokens' instead.")
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if isinstance(limit, int) and limit > rules.max_output_tokens:
        raise ContractError(f"max_tokens is too large: {limit}. This model supports at most "
                            f"{rules.max_output_tokens} completion tokens, whereas you provided {limit}.")
    tokens = approx_tokens(_json(body.get("tools", [])) + _json(body["messages"]))
    if tokens > rules.context_window:
        raise ContractError(f"This model's maximum context length is {rules.context_window} tokens. However, your "
                            f"messages resulted in {tokens} tokens. Please reduce the length of the messages.")


# -- prompt caching, as the APIs do it ---------------------------------------------------------

@dataclass
class PromptCache:
    seen: set[str] = field(default_factory=set)
    prompts: list[str] = field(default_factory=list)
    # Every cache write (entry key, tokens paid to write it, who wrote it) and the keys ever read:
    # a write never read is waste (the write costs 1.25x input for nothing).
    writes: list[tuple[str, int, str]] = field(default_factory=list)
    read_keys: set[str] = field(default_factory=set)

    def waste(self, writer: str | None = None) -> int:
        """Tokens written to the cache (by `writer`, or anyone) that no request ever read."""
        return sum(tokens for key, tokens, who in self.writes
                   if key not in self.read_keys and (writer is None or who == writer))

    def anthropic(self, segments: list[tuple[str, bool]], writer: str = "") -> tuple[int, int, int]:
        """(uncached input, cache write, cache read) for a request cut into (json, breakpoint) segments.

        As the API does it: entries are written at breakpoints; a read is the longest cached prefix
        ending at a breakpoint or at one of the LOOKBACK block boundaries before a breakpoint.
        """
        digest = hashlib.sha256()
        used = 0
        boundaries: list[tuple[int, str]] = []
        for text, _ in segments:
            digest.update(text.encode())
            used += approx_tokens(text)
            boundaries.append((used, digest.hexdigest()))
        read = 0
        read_key = ""
        written: list[tuple[int, str]] = []
        for index, (_, breakpoint) in enumerate(segments):
            if not breakpoint:
                continue
            for tokens, key in boundaries[max(0, index - LOOKBACK): index + 1]:
                if key in self.seen and tokens >= MIN_CACHEABLE_TOKENS and tokens > read:
                    read, read_key = tokens, key
            if boundaries[index][0] >= MIN_CACHEABLE_TOKENS:
                written.append(boundaries[index])
        write = max((tokens for tokens, _ in written), default=read) - read
        if read_key:
            # A read serves every entry on its prefix, not only the one it ended at.
            self.read_keys.update(key for tokens, key in boundaries if tokens <= read)
        fresh_writes = [(tokens, key) for tokens, key in written if key not in self.seen and tokens > read]
        previous = read
        for tokens, key in sorted(fresh_writes):
            self.writes.append((key, tokens - previous, writer))
            previous = tokens
        self.seen.update(key for _, key in written)
        return used - read - max(write, 0), max(write, 0), read

    def openai(self, prompt: str) -> tuple[int, int]:
        """(prompt tokens, cached tokens): the longest prefix shared with an earlier prompt, counted
        in 128-token steps from 1024 tokens on (OpenAI's automatic prompt caching)."""
        shared = max((_common_prefix(prompt, earlier) for earlier in self.prompts), default=0)
        self.prompts.append(prompt)
        cached = (approx_tokens(prompt[:shared]) // 128) * 128 if shared else 0
        return approx_tokens(prompt), cached if cached >= MIN_CACHEABLE_TOKENS else 0


def _common_prefix(a: str, b: str) -> int:
    limit = min(len(a), len(b))
    low, high = 0, limit
    while low < high:  # binary search on prefix equality: fast for long prompts
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


# -- contracts ---------------------------------------------------------------------------------

def check_anthropic(body: dict[str, Any], headers: dict[str, str]) -> None:
    if not headers.get("x-api-key") and not headers.get("authorization"):
        raise ContractError("missing x-api-key")
    if not headers.get("anthropic-version"):
        raise ContractError("missing anthropic-version header")
    if not isinstance(body.get("model"), str) or not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        raise ContractError("model and a positive max_tokens are required")
    thinking = body.get("thinking") or {}
    if thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            raise ContractError("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
        if budget >= body["max_tokens"]:
            raise ContractError("`max_tokens` must be greater than `thinking.budget_tokens`")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or messages[0].get("role") != "user":
        raise ContractError("messages must be a non-empty list starting with a user message")
    breakpoints = 0
    tool_names = [t.get("name") for t in body.get("tools", [])]
    if len(set(tool_names)) != len(tool_names) or not all(isinstance(n, str) and _TOOL_NAME.match(n) for n in tool_names):
        raise ContractError("tool names must be unique and match ^[a-zA-Z0-9_-]{1,64}$")
    breakpoints += sum(1 for t in body.get("tools", []) if "cache_control" in t)
    system = body.get("system", [])
    if isinstance(system, list):
        breakpoints += sum(1 for b in system if "cache_control" in b)
    pending: set[str] = set()
    for index, message in enumerate(messages):
        if index and message["role"] == messages[index - 1]["role"]:
            raise ContractError("roles must alternate between user and assistant")
        content = message["content"]
        blocks = content if isinstance(content, list) else [{"type": "text", "text": content}]
        if not blocks:
            raise ContractError(f"messages.{index}: content must not be empty")
        results = {b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"}
        if pending and results != pending:
            raise ContractError(f"messages.{index}: every tool_use needs its tool_result right after it")
        pending = set()
        for block in blocks:
            kind = block.get("type")
            if kind == "text" and not block.get("text"):
                raise ContractError(f"messages.{index}: text content blocks must be non-empty")
            if kind == "tool_use":
                pending.add(block["id"])
            if kind not in ("text", "tool_use", "tool_result", "image", "document", "thinking"):
                raise ContractError(f"messages.{index}: unknown block type {kind!r}")
            breakpoints += "cache_control" in block
    if breakpoints > 4:
        raise ContractError(f"A maximum of 4 blocks with cache_control may be provided. Found {breakpoints}.")


def request_key(headers: dict[str, str]) -> str:
    """The API key a request carries: Anthropic's x-api-key, or a bearer token (OpenAI, Anthropic OAuth)."""
    bearer = headers.get("authorization", "")
    return headers.get("x-api-key") or (bearer[7:] if bearer.startswith("Bearer ") else "")


def check_key(api: str, headers: dict[str, str], cassette: Cassette) -> None:
    if cassette.api_key is not None and request_key(headers) != cassette.api_key:
        if api == "anthropic":
            raise ContractError("invalid x-api-key", 401, "authentication_error")
        raise ContractError("Incorrect API key provided. You can find your API key at "
                            "https://platform.openai.com/account/api-keys.", 401, "invalid_request_error")


def check_openai(body: dict[str, Any], headers: dict[str, str]) -> None:
    if not headers.get("authorization", "").startswith("Bearer "):
        raise ContractError("missing bearer authorization")
    messages = body.get("messages")
    if not isinstance(body.get("model"), str) or not isinstance(messages, list) or not messages:
        raise ContractError("model and messages are required")
    if "stream_options" in body and body.get("stream") is not True:
        raise ContractError("The 'stream_options' parameter is only allowed when 'stream' is enabled.")
    pending: set[str] = set()
    for index, message in enumerate(messages):
        role = message.get("role")
        if role == "tool":
            if message.get("tool_call_id") not in pending:
                raise ContractError(f"messages.{index}: a tool message must answer a preceding tool_call")
            pending.discard(message["tool_call_id"])
            continue
        if pending:
            raise ContractError(f"messages.{index}: tool_calls must be answered before the next message")
        if role == "assistant":
            calls = message.get("tool_calls") or []
            if any(not isinstance(c.get("id"), str) or not c["id"] for c in calls):
                raise ContractError(f"messages.{index}.tool_calls: every call needs a string id")
            pending = {c["id"] for c in calls}


_RESPONSES_ITEMS = ("message", "function_call", "function_call_output", "custom_tool_call",
                    "custom_tool_call_output", "reasoning", "item_reference")
_CALLS = {"function_call": "function_call_output", "custom_tool_call": "custom_tool_call_output"}


def check_responses(body: dict[str, Any], headers: dict[str, str], stored: set[str]) -> None:
    """POST /v1/responses as the API takes it; `stored` holds the ids of responses kept (store)."""
    if not headers.get("authorization", "").startswith("Bearer "):
        raise ContractError("missing bearer authorization")
    if not isinstance(body.get("model"), str):
        raise ContractError("Missing required parameter: 'model'.")
    previous = body.get("previous_response_id")
    if previous is not None and previous not in stored:
        raise ContractError(f"Previous response with id '{previous}' not found.", 404)
    given = body.get("input")
    if given is None and previous is None:
        raise ContractError("Missing required parameter: 'input'.")
    if "stream_options" in body and body.get("stream") is not True:
        raise ContractError("The 'stream_options' parameter is only allowed when 'stream' is enabled.")
    limit = body.get("max_output_tokens")
    if limit is not None and (not isinstance(limit, int) or limit < 16):
        raise ContractError(f"Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, "
                            f"but got {limit} instead.")
    names = [t.get("name") for t in body.get("tools", []) if t.get("type") in ("function", "custom")]
    if len(set(names)) != len(names) or not all(isinstance(n, str) and _TOOL_NAME.match(n) for n in names):
        raise ContractError("Invalid 'tools': tool names must be unique and match ^[a-zA-Z0-9_-]{1,64}$")
    if body.get("tool_choice") == "required" and not body.get("tools"):
        raise ContractError("Tool choice 'required' must be specified with 'tools' parameter.")
    items = [{"type": "message", "role": "user", "content": given}] if isinstance(given, str) else given or []
    if not isinstance(items, list):
        raise ContractError("Invalid type for 'input': expected a string or an array of input items.")
    calls: dict[str, str] = {}  # call_id -> the output item type that must answer it
    answered: set[str] = set()
    for index, item in enumerate(items):
        kind = item.get("type", "message")  # an item with a role and no type is a message
        if kind not in _RESPONSES_ITEMS:
            raise ContractError(f"Invalid value: '{kind}'. Supported values are: "
                                + ", ".join(f"'{k}'" for k in _RESPONSES_ITEMS) + f". (input[{index}].type)")
        if kind == "message" and item.get("role") not in ("user", "assistant", "system", "developer"):
            raise ContractError(f"Invalid value: '{item.get('role')}'. Supported values are: 'assistant', "
                                f"'system', 'developer', and 'user'. (input[{index}].role)")
        if kind in _CALLS:
            calls[str(item.get("call_id"))] = _CALLS[kind]
        elif kind in _CALLS.values():
            call_id = str(item.get("call_id"))
            if calls.get(call_id) != kind:
                raise ContractError(f"No tool call found for {kind.replace('_', ' ')} with call_id {call_id}.")
            answered.add(call_id)
        elif kind == "reasoning" and body.get("store") is False and not item.get("encrypted_content"):
            raise ContractError(f"Item with id '{item.get('id')}' not found. Items are not persisted when "
                                "`store` is set to false. Try again with `store` set to true, or remove this "
                                "item from your input.", 404)
    missing = [call_id for call_id in calls if call_id not in answered]
    if missing:
        raise ContractError(f"No tool output found for function call {missing[0]}.")


def check_responses_model(body: dict[str, Any], rules: ModelRules) -> None:
    limit = body.get("max_output_tokens")
    if isinstance(limit, int) and limit > rules.max_output_tokens:
        raise ContractError(f"max_output_tokens is too large: {limit}. This model supports at most "
                            f"{rules.max_output_tokens} output tokens, whereas you provided {limit}.")
    tokens = approx_tokens(_json(body.get("instructions", "")) + _json(body.get("tools", []))
                           + _json(body.get("input", "")))
    if tokens > rules.context_window:
        raise ContractError(f"Your input exceeds the context window of this model ({tokens} tokens > "
                            f"{rules.context_window}). Please adjust your input and try again.",
                            kind="context_length_exceeded")


# -- the models API (what loopbot's preflight asks) ---------------------------------------------

def models_answer(api: str, path: str, cassette: Cassette) -> tuple[int, dict[str, Any]]:
    """GET /v1/models and GET /v1/models/{id}, in each API's own shape; a model the API does not
    serve is a 404 (a local server, `any_model`, serves every id but lists only the known ones)."""
    parts = path.split("?", 1)[0].rstrip("/").split("/")
    if "models" not in parts:
        return 404, _error(api, "not_found_error", f"no such endpoint {path}")
    rest = parts[parts.index("models") + 1:]
    if not rest:
        listed = [_model_object(api, name) for name in known(api)]
        if api == "anthropic":
            return 200, {"data": listed, "has_more": False, "first_id": listed[0]["id"] if listed else None,
                         "last_id": listed[-1]["id"] if listed else None}
        return 200, {"object": "list", "data": listed}
    model = "/".join(rest)
    if rules_for(api, model, cassette) is None:
        if api == "anthropic":
            return 404, _error(api, "not_found_error", f"model: {model}")
        return 404, {"error": {"message": f"The model '{model}' does not exist or you do not have access to it.",
                               "type": "invalid_request_error", "param": None, "code": "model_not_found"}}
    return 200, _model_object(api, model)


def _model_object(api: str, model: str) -> dict[str, Any]:
    if api == "anthropic":
        return {"type": "model", "id": model, "display_name": model, "created_at": "2025-01-01T00:00:00Z"}
    return {"id": model, "object": "model", "created": 1_700_000_000, "owned_by": "replay"}


# -- the server --------------------------------------------------------------------------------

@dataclass
class Received:
    api: str
    body: dict[str, Any]
    status: int
    usage: dict[str, Any] | None = None
    # As the request came (header names lower-cased): what a proxy in front forwarded.
    headers: dict[str, str] = field(default_factory=dict)
    path: str = ""


class LoopbackServer:
    """An HTTP server on 127.0.0.1 in a thread; `with` starts and stops it."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], port: int = 0):
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._thread = serving_thread(self._server)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class ReplayServer(LoopbackServer):
    """`with ReplayServer(cassette) as server:` then point a base URL at `server.url`."""

    def __init__(self, cassette: Cassette, *, port: int = 0):
        self.cassette = cassette
        # tool_use ids of replies sent with thinking blocks -> those blocks, which must come back.
        self.issued_thinking: dict[str, list[dict[str, Any]]] = {}
        self.remaining = [e.model_copy() for e in cassette.exchanges]
        self.received: list[Received] = []
        # GET requests (the models API), as (api, path, status): kept apart from the model calls.
        self.lookups: list[tuple[str, str, int]] = []
        self.misses: list[str] = []
        self.cache = PromptCache()
        self.stored_responses: set[str] = set()  # Responses API ids kept (store), for previous_response_id
        # A stalled answer is held (stall_after_bytes) on a pipe that `release` makes readable for
        # good; `stalled` is set as one is held, before its first bytes reach the client: a test waits on
        # it, not on a clock.
        self.stalled = threading.Event()
        self._wake, self._go = os.pipe()
        self._released = False
        for fd in (self._wake, self._go):
            weakref.finalize(self, os.close, fd)  # handler threads hold the server while they wait
        super().__init__(self._handler(), port)

    def release(self) -> None:
        """Let every stalled answer finish, and any stalled later."""
        with self._lock:
            if not self._released:
                self._released = True
                os.write(self._go, b"go")

    def __exit__(self, *exc: object) -> None:
        self.release()
        super().__exit__(*exc)

    def _hold(self, connection: socket.socket) -> bool:
        """Block until released (True) or the client closes its end or sends more (False)."""
        ready, _, _ = select.select([connection.fileno(), self._wake], [], [])
        return self._wake in ready

    def _take(self, api: str, system: str, text: str) -> Exchange | None:
        with self._lock:
            for exchange in self.remaining:
                if exchange.api == api and exchange.match.fits(system, text):
                    exchange.times -= 1
                    if exchange.times == 0:
                        self.remaining.remove(exchange)
                    return exchange
        return None

    def think(self, response: dict[str, Any]) -> dict[str, Any]:
        """A thinking model's reply starts with a signed thinking block (the recording's, or one
        made here); the blocks are remembered by the reply's tool_use ids, to be asked back."""
        content = list(response.get("content", []))
        if not content or content[0].get("type") not in ("thinking", "redacted_thinking"):
            text = "Considering the request before answering."
            signature = hashlib.sha256(_json(content).encode()).hexdigest()
            content.insert(0, {"type": "thinking", "thinking": text, "signature": signature})
        thoughts = [b for b in content if b.get("type") in ("thinking", "redacted_thinking")]
        lead = content[:len(thoughts)] if content[:len(thoughts)] == thoughts else thoughts[:1]
        with self._lock:
            for block in content:
                if block.get("type") == "tool_use":
                    self.issued_thinking[block["id"]] = lead
        return {**response, "content": content}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None,
                      stall: int | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self._write(data, stall)

            def _send_stream(self, data: bytes, stall: int | None = None) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream; charset=utf-8")
                self.send_header("cache-control", "no-cache")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self._write(data, stall)

            def _write(self, data: bytes, stall: int | None) -> None:
                """The answer's bytes; a stalled one sends the rest only once released."""
                if stall is None:
                    self.wfile.write(data)
                    return
                # Set before the first bytes go out (wfile is unbuffered): a client that has read
                # them finds it set.
                server.stalled.set()
                self.wfile.write(data[:stall])
                self.wfile.flush()
                if server._hold(self.connection):
                    self.wfile.write(data[stall:])
                else:
                    self.close_connection = True

            def do_HEAD(self) -> None:
                # Claude Code asks HEAD / of its base URL before its first call (a reachability check).
                with server._lock:
                    server.lookups.append(("anthropic", f"HEAD {self.path}", 200))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def _count_tokens(self, body: dict[str, Any], headers: dict[str, str]) -> None:
                """POST /v1/messages/count_tokens: the prompt's tokens as the server counts them; not billed."""
                try:
                    check_key("anthropic", headers, server.cassette)
                    if not isinstance(body.get("model"), str) or not isinstance(body.get("messages"), list):
                        raise ContractError("model and messages are required")
                    if rules_for("anthropic", body["model"], server.cassette) is None:
                        raise ContractError(f"model: {body['model']}", 404, "not_found_error")
                except ContractError as exc:
                    self._send(exc.status, _error("anthropic", exc.kind, str(exc)))
                    return
                counted = _json(body.get("tools", [])) + _json(body.get("system", "")) + _json(body["messages"])
                with server._lock:
                    server.lookups.append(("anthropic", self.path, 200))
                self._send(200, {"input_tokens": approx_tokens(counted)})

            def do_GET(self) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                # Both APIs have GET /v1/models[/{id}]: the SDK's headers say which one is asked.
                api = "anthropic" if "anthropic-version" in headers else "openai"
                try:
                    check_key(api, headers, server.cassette)
                    if not request_key(headers):
                        raise ContractError("missing x-api-key" if api == "anthropic" else "missing bearer "
                                            "authorization", 401, "authentication_error")
                    status, payload = models_answer(api, self.path, server.cassette)
                except ContractError as exc:
                    status, payload = exc.status, _error(api, exc.kind, str(exc))
                with server._lock:
                    server.lookups.append((api, self.path, status))
                self._send(status, payload)

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                headers = {k.lower(): v for k, v in self.headers.items()}
                bare = self.path.split("?", 1)[0].rstrip("/")
                if bare.endswith("/messages/count_tokens"):
                    self._count_tokens(body, headers)
                    return
                api = "anthropic" if bare.endswith("/messages") else (
                    "openai" if bare.endswith("/chat/completions") else (
                        "responses" if bare.endswith("/responses") else ""))
                if not api:
                    self._send(404, {"error": {"message": f"no such endpoint {self.path}"}})
                    return
                try:
                    check_key(api, headers, server.cassette)
                    if api == "responses":
                        check_responses(body, headers, server.stored_responses)
                    else:
                        (check_anthropic if api == "anthropic" else check_openai)(body, headers)
                    rules = rules_for(api, str(body.get("model")), server.cassette)
                    if rules is None:
                        raise ContractError(f"model: {body.get('model')}", 404, "not_found_error")
                    if api == "anthropic":
                        check_anthropic_model(body, rules, server.issued_thinking)
                    elif api == "responses":
                        check_responses_model(body, rules)
                    else:
                        check_openai_model(body, rules)
                except ContractError as exc:
                    server.received.append(Received(api, body, exc.status, headers=headers, path=self.path))
                    self._send(exc.status, _error(api, exc.kind, str(exc)))
                    return
                system, text = _summary(api, body)
                exchange = server._take(api, system, text)
                if exchange is None:
                    server.misses.append(f"{api}: {system[:60]!r} / {text[-120:]!r}")
                    server.received.append(Received(api, body, 500, headers=headers, path=self.path))
                    self._send(500, _error(api, "api_error", "replay: no recorded exchange matches this request"),
                               {"x-should-retry": "false"})
                    return
                fault = exchange.fault
                stall = fault.stall_after_bytes if fault is not None else None
                if fault is not None and (fault.status, fault.body, fault.drop) == (None, None, False):
                    fault = None  # only a stall: the recorded answer, held part way
                if fault is not None:
                    status = fault.status or (200 if fault.body is not None else 500)
                    server.received.append(Received(api, body, 0 if fault.drop else status, headers=headers, path=self.path))
                    if fault.drop:
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                    if fault.body is not None:
                        data = fault.body.encode()
                        self.send_response(fault.status or 200)
                        self.send_header("content-type", fault.content_type)
                        self.send_header("content-length", str(len(data)))
                        self.end_headers()
                        self._write(data, stall)
                        return
                    extra = {"retry-after": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
                    kind = {429: "rate_limit_error", 529: "overloaded_error"}.get(fault.status or 500, "api_error")
                    self._send(fault.status or 500, _error(api, kind, f"injected {fault.status}"), extra)
                    return
                assert exchange.response is not None
                response = exchange.response
                if api == "anthropic" and rules.thinking:
                    response = server.think(response)
                if api == "responses":
                    payload = _responses_reply(server.cache, body, response)
                    if body.get("store", True):
                        server.stored_responses.add(payload["id"])
                else:
                    payload = (_anthropic_reply if api == "anthropic" else _openai_reply)(server.cache, body, response)
                server.received.append(Received(api, body, 200, payload["usage"], headers=headers, path=self.path))
                if body.get("stream") is True:
                    self._send_stream(anthropic_stream.message_sse(payload) if api == "anthropic"
                                      else _openai_stream(api, body, payload), stall)
                    return
                self._send(200, payload, stall=stall)

        return Handler


def _error(api: str, kind: str, message: str) -> dict[str, Any]:
    if api == "anthropic":
        return {"type": "error", "error": {"type": kind, "message": message}}
    return {"error": {"message": message, "type": kind, "code": None}}


def _summary(api: str, body: dict[str, Any]) -> tuple[str, str]:
    """The system prompt and all message text, for matching."""
    if api == "responses":
        return _responses_summary(body)
    if api == "anthropic":
        system = body.get("system", "")
        system_text = system if isinstance(system, str) else " ".join(b.get("text", "") for b in system)
        texts = []
        for message in body["messages"]:
            content = message["content"]
            for block in content if isinstance(content, list) else [{"type": "text", "text": content}]:
                texts.append(block.get("text") or str(block.get("content", "")))
        return system_text, "\n".join(texts)
    messages = body["messages"]
    system_text = " ".join(m.get("content") or "" for m in messages if m["role"] == "system")
    return system_text, "\n".join(m.get("content") or "" for m in messages if m["role"] != "system")


def _role_of(body: dict[str, Any]) -> str:
    from loopbot.testing.cassettes import ROLE_MARKERS

    system, _ = _summary("anthropic", body)
    return next((role for role, marker in ROLE_MARKERS.items() if marker in system), "")


def _anthropic_reply(cache: PromptCache, body: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    def segment(block: dict[str, Any], **extra: Any) -> tuple[str, bool]:
        # The cached content is the block itself; where the marker sits does not change it.
        content = {k: v for k, v in block.items() if k != "cache_control"}
        return _json({**content, **extra}), "cache_control" in block

    segments = [segment(t) for t in body.get("tools", [])]
    system = body.get("system", [])
    segments += [segment(b) for b in (system if isinstance(system, list) else [{"type": "text", "text": system}])]
    for message in body["messages"]:
        content = message["content"]
        blocks = content if isinstance(content, list) else [{"type": "text", "text": content}]
        segments += [segment(b, role=message["role"]) for b in blocks]
    fresh, write, read = cache.anthropic(segments, writer=_role_of(body))
    content = response.get("content", [])
    return {
        "id": f"msg_replay_{hashlib.sha1(_json(body).encode()).hexdigest()[:20]}",
        "type": "message", "role": "assistant", "model": body["model"], "content": content,
        "stop_reason": response.get("stop_reason", "end_turn"), "stop_sequence": None,
        "usage": {"input_tokens": fresh, "output_tokens": max(1, approx_tokens(_json(content))),
                  "cache_creation_input_tokens": write, "cache_read_input_tokens": read},
    }


def _openai_reply(cache: PromptCache, body: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    # Tool definitions lead the prompt (they are rendered into its system part), then the messages.
    prompt, cached = cache.openai(_json(body.get("tools", [])) + "".join(_json(m) for m in body["messages"]))
    message = {"role": "assistant", "content": None, **response.get("message", {})}
    completion = max(1, approx_tokens(_json(message)))
    return {
        "id": f"chatcmpl-replay-{hashlib.sha1(_json(body).encode()).hexdigest()[:20]}",
        "object": "chat.completion", "created": 1_700_000_000, "model": body["model"],
        "choices": [{"index": 0, "message": message, "finish_reason": response.get("finish_reason", "stop"),
                     "logprobs": None}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
                  "prompt_tokens_details": {"cached_tokens": cached}},
    }


# -- the Responses API and OpenAI streaming --------------------------------------------------------

def _responses_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    given = body.get("input")
    return [{"type": "message", "role": "user", "content": given}] if isinstance(given, str) else list(given or [])


def _responses_summary(body: dict[str, Any]) -> tuple[str, str]:
    """Instructions and system/developer messages; then user and assistant text and tool outputs."""
    system = [str(body.get("instructions") or "")]
    texts: list[str] = []
    for item in _responses_items(body):
        kind = item.get("type", "message")
        if kind == "message":
            content = item.get("content")
            text = content if isinstance(content, str) else " ".join(
                str(part.get("text", "")) for part in content or [] if isinstance(part, dict))
            (system if item.get("role") in ("system", "developer") else texts).append(text)
        elif kind.endswith("_output"):
            output = item.get("output")
            texts.append(output if isinstance(output, str) else _json(output))
    return " ".join(t for t in system if t), "\n".join(texts)


_ITEM_PREFIX = {"message": "msg", "function_call": "fc", "custom_tool_call": "ctc", "reasoning": "rs"}


def _responses_reply(cache: PromptCache, body: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    digest = hashlib.sha1(_json(body).encode()).hexdigest()[:20]
    output: list[dict[str, Any]] = []
    for number, item in enumerate(response.get("output", [])):
        kind = item["type"]
        filled = {"id": f"{_ITEM_PREFIX.get(kind, 'item')}_replay_{digest}_{number}", **item}
        if kind == "message":
            content = item.get("content", [])
            parts = [{"type": "output_text", "text": content}] if isinstance(content, str) else content
            filled.update(role="assistant", status="completed",
                          content=[{"annotations": [], "logprobs": [], **part} for part in parts])
        elif kind in ("function_call", "custom_tool_call"):
            filled.setdefault("call_id", f"call_replay_{digest}_{number}")
            if kind == "function_call":
                filled.setdefault("status", "completed")
        output.append(filled)
    # Tools lead the prompt as in the chat API, then instructions and the input items.
    prompt, cached = cache.openai(_json(body.get("tools", [])) + _json(body.get("instructions") or "")
                                  + "".join(_json(i) for i in _responses_items(body)))
    completion = max(1, approx_tokens(_json(output)))
    status = response.get("status", "completed")
    return {
        "id": f"resp_replay_{digest}", "object": "response", "created_at": 1_700_000_000, "status": status,
        "error": None, "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": body.get("instructions"), "max_output_tokens": body.get("max_output_tokens"),
        "model": body["model"], "output": output, "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": body.get("reasoning") or {"effort": None, "summary": None}, "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0), "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools", []),
        "top_p": body.get("top_p", 1.0), "truncation": body.get("truncation", "disabled"),
        "metadata": body.get("metadata") or {}, "user": None,
        "usage": {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": cached},
                  "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": prompt + completion},
    }


def _openai_stream(api: str, body: dict[str, Any], payload: dict[str, Any]) -> bytes:
    if api == "responses":
        return openai_stream.events_sse(openai_stream.response_events(payload))
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    return openai_stream.chat_sse(openai_stream.chat_chunks(payload, include_usage=include_usage))
