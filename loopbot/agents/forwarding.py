"""What the agent proxy forwards (pure, no I/O): the endpoints it understands, the request headers
the providers need, the body changes that make usage readable, and the charge for an answer
whose usage could not be read.

Only endpoints the proxy can bill are forwarded: any other (a batch API, embeddings, files, the
other provider's paths) would be a model call the budget never sees, or a way out it does not need.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from loopbot.agents.base import Api
from loopbot.core.context import CHARS_PER_TOKEN, approx_tokens
from loopbot.messages import Usage

Kind = Literal["messages", "chat", "responses", "count_tokens", "models", "probe"]
_MODEL_ID = r"[A-Za-z0-9._:@-]{1,200}"


@dataclass(frozen=True)
class Route:
    kind: Kind

    @property
    def billed(self) -> bool:
        return self.kind in ("messages", "chat", "responses")


# (api, method, bare path) -> route. Claude Code HEADs its base URL before its first call.
_ROUTES: list[tuple[Api, str, re.Pattern[str], Kind]] = [
    ("anthropic", "POST", re.compile(r"/v1/messages"), "messages"),
    ("anthropic", "POST", re.compile(r"/v1/messages/count_tokens"), "count_tokens"),
    ("openai", "POST", re.compile(r"/v1/chat/completions"), "chat"),
    ("openai", "POST", re.compile(r"/v1/responses"), "responses"),
    *((api, "GET", re.compile(rf"/v1/models(/{_MODEL_ID})?"), "models") for api in ("anthropic", "openai")),
    *((api, "HEAD", re.compile(r"/"), "probe") for api in ("anthropic", "openai")),
]


def route_for(api: Api, method: str, path: str) -> Route | None:
    """The route of a request the proxy forwards to an `api` provider, or None (refused)."""
    bare = path.split("?", 1)[0] or "/"
    for route_api, route_method, pattern, kind in _ROUTES:
        if route_api == api and route_method == method and pattern.fullmatch(bare):
            return Route(kind)
    return None


# Request headers the APIs need (content negotiation, API version and beta features); everything
# else the CLIs send stays here: Codex's x-codex-turn-metadata (installation id, worktree path,
# git HEAD, sandbox mode), session and originator ids, the SDKs' x-stainless-* (OS, architecture,
# runtime version, none needed by either provider), cookies, forwarding hops and organisation picks.
_ALLOWED = {"content-type", "accept", "anthropic-version", "anthropic-beta", "openai-beta"}
_PRODUCT = re.compile(r"[A-Za-z0-9._-]{1,64}/[A-Za-z0-9._+-]{1,64}")


def forwarded_headers(headers: dict[str, str]) -> dict[str, str]:
    """The client's headers as sent upstream (the proxy adds the key). user-agent keeps only its
    first product token (`codex_exec/0.171.0`): the provider sees which client, not which machine."""
    kept = {key.lower(): value for key, value in headers.items() if key.lower() in _ALLOWED}
    agent = next((value for key, value in headers.items() if key.lower() == "user-agent"), "")
    first = agent.split(" ", 1)[0]
    kept["user-agent"] = first if _PRODUCT.fullmatch(first) else "loopbot-proxy"
    return kept


@dataclass(frozen=True)
class Prepared:
    body: bytes
    parsed: dict[str, Any]
    # The proxy asked for the usage chunk the client did not: take it out of the client's stream.
    strip_usage_chunk: bool = False


def prepare(route: Route, body: bytes) -> Prepared | str:
    """A billed call's body as forwarded, or why it is refused (the APIs take a JSON object only).
    A streamed chat completion asks for its usage (stream_options.include_usage): without it the
    stream carries none, and the call could not be charged what it cost."""
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        return "a model call's body must be a JSON object"
    if route.kind != "chat" or parsed.get("stream") is not True:
        return Prepared(body, parsed)
    options = parsed.get("stream_options")
    options = options if isinstance(options, dict) else {}
    if options.get("include_usage") is True:
        return Prepared(body, parsed)
    changed = {**parsed, "stream_options": {**options, "include_usage": True}}
    return Prepared(json.dumps(changed).encode(), changed, strip_usage_chunk=True)


def estimate(read: Usage, request: dict[str, Any], request_text: str, answer_bytes: int) -> Usage:
    """A conservative charge for an answer whose usage was not read (a stream cut off, a missing
    usage field): the whole request as uncached input, and as output the room it asked for or the
    answer's length, whichever is more; never less than what was read."""
    limits = [request.get(k) for k in ("max_tokens", "max_completion_tokens", "max_output_tokens")]
    asked = max((v for v in limits if isinstance(v, int) and v > 0), default=0)
    streamed = (answer_bytes + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN
    read_input = read.input_tokens + read.cache_read_tokens + read.cache_write_tokens
    return Usage(input_tokens=max(read_input, approx_tokens(request_text)),
                 output_tokens=max(read.output_tokens, asked, streamed))


class UsageChunkFilter:
    """Takes the usage-only chunk (no choices) out of a chat completion stream, event by event,
    for a client that did not ask for it: a client reading choices[0] of every chunk breaks on it."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> bytes:
        self._buffer += chunk
        out = bytearray()
        while True:
            found = re.search(rb"\r?\n\r?\n", self._buffer)
            if found is None:
                return bytes(out)
            event, self._buffer = self._buffer[:found.end()], self._buffer[found.end():]
            if not _usage_only(event):
                out += event

    def finish(self) -> bytes:
        rest, self._buffer = self._buffer, b""
        return b"" if _usage_only(rest) else rest


def _usage_only(event: bytes) -> bool:
    for line in event.splitlines():
        if line.startswith(b"data:"):
            try:
                data = json.loads(line[5:])
            except ValueError:
                return False
            return isinstance(data, dict) and data.get("choices") == [] and isinstance(data.get("usage"), dict)
    return False
