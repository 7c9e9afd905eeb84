"""The host-side model proxy an agent CLI reaches from inside the sandbox (through relay.py).

It listens on a unix socket that loopbot binds into the sandbox, and for each request:
refuses a key other than PLACEHOLDER_KEY, and an endpoint it does not understand (forwarding.py);
asks the session's turn limit and the budget before any model call is forwarded (a refusal is an
API-shaped 400 the CLI stops on); swaps in the real key and keeps only the headers the provider
needs; forwards to the configured provider; streams the answer back as it comes (SSE passed
through); reads the call's usage from the answer (streamed message_start/message_delta, the
chat stream's usage chunk, which it asks for, response.completed, or the JSON body) and charges
it, or a conservative estimate when it cannot be read; and records the exchange, redacted. The
real key lives only in this process.

Model calls are serialised: the budget is asked with everything before it charged, so a session
overshoots `max_cost_usd` by one call at most, as the built-in maker does. When the session ends
(the agent killed at its wall limit) the answers still streaming are cut and charged, with an
estimate where their usage was not seen, before the proxy's `with` block is left.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Protocol

import httpx

from loopbot.agents.base import PLACEHOLDER_KEY, Api, Upstream
from loopbot.agents.forwarding import (
    Prepared,
    Route,
    UsageChunkFilter,
    estimate,
    forwarded_headers,
    prepare,
    route_for,
)
from loopbot.messages import ToolCall, ToolResult, Usage
from loopbot.providers import cost_usd
from loopbot.serverthread import serving_thread

# Hop-by-hop and per-connection headers of the answer, not passed back.
_DROP_RESPONSE = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}
BODY_LIMIT = 32 * 1024 * 1024
RECORD_BYTES = 200_000  # one recorded request or response body, at most


@dataclass(frozen=True)
class ProxyCall:
    """One model call the proxy forwarded: the ledger's figures, and for the transcript the reply
    (text, tool calls, stop reason) and the tool results the request carried back."""

    model: str
    status: int
    usage: Usage
    cost_usd: float
    seconds: float
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    stop_reason: str = ""
    results: tuple[ToolResult, ...] = ()
    error: str | None = None


class Billing(Protocol):
    """The runner's budget, asked from the proxy's threads (one model call at a time)."""

    def admit(self) -> str | None:
        """None to forward the next model call; else why it is refused (a budget used up)."""
        ...

    def charge(self, call: ProxyCall) -> None:
        """Record an answered call in the spend ledger."""
        ...


Record = Callable[[dict[str, Any]], None]


@dataclass
class UsageReader:
    """The usage of one answer, read from its bytes as they stream past (or from a JSON body)."""

    api: Api
    streamed: bool
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    stop_reason: str = ""
    error: str | None = None
    # The answer's final usage was seen (message_delta, the usage chunk, response.completed, a
    # JSON body's usage); message_start alone gives only the input side.
    complete: bool = False
    seen: int = 0  # bytes of the answer
    # Anthropic content blocks by index: text, or a tool call with its streamed JSON.
    blocks: dict[int, dict[str, Any]] = field(default_factory=dict)
    _buffer: bytes = b""
    _body: bytearray = field(default_factory=bytearray)

    def text(self) -> str:
        return "".join(b.get("text", "") for _, b in sorted(self.blocks.items()) if b.get("type") == "text")

    def tool_calls(self) -> tuple[ToolCall, ...]:
        calls = []
        for _, block in sorted(self.blocks.items()):
            if block.get("type") != "tool_use":
                continue
            arguments: Any = block.get("input")
            if arguments is None:
                try:
                    arguments = json.loads(block.get("json") or "{}")
                except ValueError:
                    arguments = {"unreadable": block.get("json", "")}
            calls.append(ToolCall(id=str(block.get("id", "")), name=str(block.get("name", "")),
                                  input=arguments if isinstance(arguments, dict) else {"value": arguments}))
        return tuple(calls)

    def feed(self, chunk: bytes) -> None:
        self.seen += len(chunk)
        if not self.streamed:
            if len(self._body) < BODY_LIMIT:
                self._body += chunk
            return
        self._buffer += chunk
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            line = line.strip()
            if line.startswith(b"data:"):
                self._event(line[5:].strip())

    def finish(self) -> Usage:
        if self.streamed:
            if self._buffer.strip().startswith(b"data:"):
                self._event(self._buffer.strip()[5:].strip())
        else:
            with contextlib.suppress(ValueError):
                self._take(json.loads(bytes(self._body) or b"{}"))
        return self.usage

    def _event(self, data: bytes) -> None:
        if data == b"[DONE]":
            return
        try:
            event = json.loads(data)
        except ValueError:
            return
        if isinstance(event, dict):
            self._take(event)

    def _take(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "message_start":  # Anthropic stream: input side, and the first output count
            message = event.get("message") or {}
            self.model = str(message.get("model") or self.model)
            self._anthropic(message.get("usage") or {})
        elif kind == "content_block_start":
            self.blocks[int(event.get("index", 0))] = dict(event.get("content_block") or {})
        elif kind == "content_block_delta":
            block = self.blocks.setdefault(int(event.get("index", 0)), {})
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta":
                block["text"] = block.get("text", "") + str(delta.get("text", ""))
            elif delta.get("type") == "input_json_delta":
                block.pop("input", None)  # the start's {} placeholder: the deltas are the input
                block["json"] = block.get("json", "") + str(delta.get("partial_json", ""))
        elif kind == "message_delta":  # Anthropic stream: cumulative output (and input, when given)
            self.stop_reason = str((event.get("delta") or {}).get("stop_reason") or self.stop_reason)
            self.complete = self.complete or isinstance(event.get("usage"), dict)
            self._anthropic(event.get("usage") or {})
        elif kind == "error":
            self.error = str((event.get("error") or {}).get("message") or event)
        elif kind in ("response.completed", "response.incomplete", "response.failed"):  # OpenAI Responses
            response = event.get("response") or {}
            self.model = str(response.get("model") or self.model)
            self.complete = isinstance(response.get("usage"), dict)
            self._openai(response.get("usage") or {})
        elif kind == "message":  # an Anthropic JSON reply
            self.model = str(event.get("model") or self.model)
            self.stop_reason = str(event.get("stop_reason") or "")
            self.blocks = {i: dict(b) for i, b in enumerate(event.get("content") or []) if isinstance(b, dict)}
            self.complete = isinstance(event.get("usage"), dict)
            self._anthropic(event.get("usage") or {})
        elif isinstance(event.get("usage"), dict):  # OpenAI chat (JSON or the stream's last chunk)
            self.model = str(event.get("model") or self.model)
            self.complete = True
            self._openai(event["usage"])

    def _anthropic(self, usage: dict[str, Any]) -> None:
        def number(key: str, old: int) -> int:
            value = usage.get(key)
            return int(value) if isinstance(value, int) else old

        self.usage = Usage(input_tokens=number("input_tokens", self.usage.input_tokens),
                           output_tokens=number("output_tokens", self.usage.output_tokens),
                           cache_write_tokens=number("cache_creation_input_tokens", self.usage.cache_write_tokens),
                           cache_read_tokens=number("cache_read_input_tokens", self.usage.cache_read_tokens))

    def _openai(self, usage: dict[str, Any]) -> None:
        prompt = usage.get("prompt_tokens", usage.get("input_tokens", 0)) or 0
        completion = usage.get("completion_tokens", usage.get("output_tokens", 0)) or 0
        details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or {}
        cached = (details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
        self.usage = Usage(input_tokens=int(prompt) - int(cached), output_tokens=int(completion),
                           cache_read_tokens=int(cached))


def refusal(api: Api, message: str, *, status: int = 400, code: str = "budget_exhausted") -> tuple[int, dict[str, Any]]:
    """An error the CLI's SDK reads as final (a 4xx, no retry), in the API's own shape."""
    if api == "anthropic":
        kind = "not_found_error" if status == 404 else "invalid_request_error"
        return status, {"type": "error", "error": {"type": kind, "message": message}}
    return status, {"error": {"message": message, "type": "invalid_request_error", "code": code}}


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A handler's exception is a bug: it goes to threading.excepthook like any thread's, where
        # a test sees it, rather than printed aside by socketserver. A client that went away (its
        # process ended with an answer unread: the socket resets, or a write finds it closed) is
        # not one; its call is charged by the handler's own accounting. Only those two: any other
        # connection error would come from the proxy's own side, and is a bug.
        error = sys.exception()
        if error is not None and not isinstance(error, (ConnectionResetError, BrokenPipeError)):
            raise error


@dataclass(eq=False)  # one flight is itself only: kept in a set by identity
class _Flight:
    """One forwarded request, from its send to its charge, which is made once: by its thread, or
    by the session's end for a thread still stuck on the provider."""

    method: str
    path: str
    prepared: Prepared
    billed: bool
    started: float
    reader: UsageReader
    kept: bytearray = field(default_factory=bytearray)  # the answer's first bytes, for the record
    status: int | None = None  # the answer's, once its headers came
    unreachable: str | None = None  # the provider was not reached: nothing to charge
    response: httpx.Response | None = None
    aborted: bool = False
    settled: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def abort(self) -> None:
        """Cut the answer's stream: a shutdown wakes the thread blocked reading it (a close from
        another thread does not)."""
        self.aborted = True
        stream = self.response.extensions.get("network_stream") if self.response is not None else None
        upstream = stream.get_extra_info("socket") if stream is not None else None
        if isinstance(upstream, socket.socket):
            with contextlib.suppress(OSError):
                upstream.shutdown(socket.SHUT_RDWR)


class AgentProxy:
    """`with AgentProxy(socket_path, upstream, billing, record):` serves until the block ends."""

    def __init__(self, socket_path: Path, upstream: Upstream, billing: Billing, record: Record,
                 redact: Callable[[str], str], *, timeout_seconds: float = 600.0, max_calls: int | None = None,
                 settle_seconds: float = 10.0):
        self.socket_path = socket_path
        # Model calls one session may make (its turn limit; Codex and aider have no flag for it).
        self.max_calls = max_calls
        self.upstream = upstream
        self.billing = billing
        self.record = record
        self.redact = redact
        self.refused: list[str] = []
        self.calls = 0
        self._serial = threading.Lock()
        # The requests being forwarded, and whether the session is ending (no new ones).
        self._state = threading.Lock()
        self._flights: set[_Flight] = set()
        self._closing = self._closed = False
        # How long the end waits for a call its abort could not cut (one stuck before its answer).
        self.settle_seconds = settle_seconds
        self._client = httpx.Client(timeout=httpx.Timeout(timeout_seconds, connect=30.0))
        if socket_path.exists():
            socket_path.unlink()
        self._server = _UnixHTTPServer(str(socket_path), self._handler())
        os.chmod(socket_path, 0o600)
        self._thread = serving_thread(self._server)

    def __enter__(self) -> AgentProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        # The agent is gone, its calls may not be: cut the answers still streaming, then wait for
        # the call in flight to be charged, so the ledger and `calls` are whole when the session
        # is read (its request threads are daemons, and a late charge would race the runner's).
        with self._state:
            self._closing = True
            flights = list(self._flights)
        for flight in flights:
            flight.abort()
        self._server.shutdown()
        if self._serial.acquire(timeout=self.settle_seconds):
            self._serial.release()
        else:
            for flight in flights:  # one the abort could not cut (no answer yet): its estimate, now
                self._settle(flight, finished=False)
        self._closed = True  # the record may be closed once this returns
        self._server.server_close()
        self._client.close()
        self.socket_path.unlink(missing_ok=True)

    def _note(self, entry: dict[str, Any]) -> None:
        if not self._closed:
            self.record(json.loads(self.redact(json.dumps(entry))))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def address_string(self) -> str:  # a unix socket has no client address
                return "sandbox"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                proxy._serve(self)

            def do_POST(self) -> None:
                proxy._serve(self)

            def do_HEAD(self) -> None:
                proxy._serve(self)

            def do_PUT(self) -> None:
                proxy._serve(self)

            def do_DELETE(self) -> None:
                proxy._serve(self)

        return Handler

    # -- one request ------------------------------------------------------------------------
    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        method, path = handler.command, handler.path
        length = int(handler.headers.get("content-length") or 0)
        if length > BODY_LIMIT:
            self._reply(handler, 413, {"error": {"message": "request too large"}})
            return
        body = handler.rfile.read(length) if length else b""
        headers = forwarded_headers(dict(handler.headers.items()))
        sent_key = handler.headers.get("x-api-key") or handler.headers.get("authorization", "").removeprefix("Bearer ")
        if sent_key and sent_key.strip() != PLACEHOLDER_KEY:
            # Only the placeholder loopbot gave the agent: a key it found elsewhere is not used.
            self._reply(handler, 401, {"type": "error", "error": {
                "type": "authentication_error", "message": "loopbot proxy: unknown key"}})
            return
        if self.upstream.api == "anthropic":
            headers["x-api-key"] = self.upstream.api_key
        else:
            headers["authorization"] = f"Bearer {self.upstream.api_key}"
        headers["accept-encoding"] = "identity"  # usage is read from the bytes as they pass
        route = route_for(self.upstream.api, method, path)
        if route is None:
            self._refuse(handler, method, path, body, f"unknown endpoint {method} {path.split('?', 1)[0]}",
                         status=404, code="unknown_url", note=False)
            return
        if not route.billed:
            self._forward(handler, method, path, headers, Prepared(body, {}), route=route)
            return
        prepared = prepare(route, body)
        if isinstance(prepared, str):
            self._refuse(handler, method, path, body, prepared, code="invalid_request", note=False)
            return
        with self._serial:
            if self._closing:
                self._refuse(handler, method, path, body, "the session is over", code="session_over", note=False)
                return
            if self.max_calls is not None and self.calls >= self.max_calls:
                self._refuse(handler, method, path, body,
                             f"this session's turn limit of {self.max_calls} model calls is reached", code="turn_limit")
                return
            reason = self.billing.admit()
            if reason is not None:
                self._refuse(handler, method, path, body, reason)
                return
            self._forward(handler, method, path, headers, prepared, route=route)

    def _refuse(self, handler: BaseHTTPRequestHandler, method: str, path: str, body: bytes, reason: str, *,
                status: int = 400, code: str = "budget_exhausted", note: bool = True) -> None:
        """Answer without forwarding. `note`: a refusal that ends the session (a budget, the turn
        limit), which its report names; a bad request is only recorded."""
        if note:
            self.refused.append(reason)
        status, payload = refusal(self.upstream.api, f"loopbot proxy: {reason}" if not note else
                                  f"loopbot: {reason}; no further model calls", status=status, code=code)
        self._note({"t": round(time.time(), 3), "method": method, "path": path, "status": status,
                    "refused": reason, "request": _shown(body)})
        self._reply(handler, status, payload, {"x-should-retry": "false"})

    def _forward(self, handler: BaseHTTPRequestHandler, method: str, path: str, headers: dict[str, str],
                 prepared: Prepared, *, route: Route) -> None:
        flight = _Flight(method, path, prepared, route.billed, time.monotonic(),
                         UsageReader(self.upstream.api, streamed=prepared.parsed.get("stream") is True))
        with self._state:
            self._flights.add(flight)
        try:
            self._stream(handler, flight, headers)
        finally:
            with self._state:
                self._flights.discard(flight)
            self._settle(flight, finished=True)

    def _stream(self, handler: BaseHTTPRequestHandler, flight: _Flight, headers: dict[str, str]) -> None:
        """Send the request and pass the answer back as it comes, reading its usage on the way."""
        reader = flight.reader
        strip = UsageChunkFilter() if flight.prepared.strip_usage_chunk else None
        try:
            request = self._client.build_request(flight.method, self.upstream.url(flight.path), headers=headers,
                                                 content=flight.prepared.body)
            response = self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            flight.unreachable = type(exc).__name__
            self._reply(handler, 502, {"type": "error", "error": {
                "type": "api_error", "message": f"loopbot proxy: provider unreachable: {flight.unreachable}"}})
            return
        with self._state:
            flight.response, closing = response, self._closing
        if closing:
            flight.abort()  # the session ended as the answer began: cut it, charge what came
        try:
            flight.status = response.status_code
            handler.send_response(response.status_code)
            for key, value in response.headers.items():
                if key.lower() not in _DROP_RESPONSE:
                    handler.send_header(key, value)
            chunked = flight.method != "HEAD"
            if chunked:
                handler.send_header("transfer-encoding", "chunked")
            handler.end_headers()
            if response.headers.get("content-type", "").startswith("text/event-stream"):
                reader.streamed = True  # read as the answer came, whatever the request said
            for chunk in _chunks(response):
                reader.feed(chunk)
                if len(flight.kept) < RECORD_BYTES:
                    flight.kept += chunk[:RECORD_BYTES - len(flight.kept)]
                shown = strip.feed(chunk) if strip is not None else chunk
                if chunked and shown:
                    handler.wfile.write(f"{len(shown):x}\r\n".encode() + shown + b"\r\n")
                    handler.wfile.flush()
            if flight.aborted:
                raise httpx.ReadError("the session ended mid-answer")  # no end: the agent sees it cut
            rest = strip.finish() if strip is not None else b""
            if chunked and rest:
                handler.wfile.write(f"{len(rest):x}\r\n".encode() + rest + b"\r\n")
            if chunked:
                handler.wfile.write(b"0\r\n\r\n")
                handler.wfile.flush()
        except (OSError, httpx.HTTPError):
            # The agent went away mid-answer, the provider's stream broke, or the session ended and
            # cut it: the call is still billed, and the agent's connection is not reused.
            handler.close_connection = True
        finally:
            response.close()

    def _settle(self, flight: _Flight, *, finished: bool) -> None:
        """Charge a forwarded call and record it, once: by its thread when the answer is done
        (`finished`), or at the session's end for a thread still stuck on the provider."""
        with flight.lock:
            if flight.settled:
                return
            flight.settled = True
            reader, body = flight.reader, flight.prepared.body
            seconds = time.monotonic() - flight.started
            if flight.unreachable is not None:
                self._note({"t": round(time.time(), 3), "method": flight.method, "path": flight.path,
                            "status": 502, "error": flight.unreachable, "request": _shown(body)})
                return
            # 0: no answer yet when the session ended (the provider may still bill it).
            status = flight.status or 0
            # Only a finished thread reads its reader's end: a stuck one may still be feeding it.
            usage = reader.finish() if finished else reader.usage
            entry: dict[str, Any] = {"t": round(time.time(), 3), "method": flight.method, "path": flight.path,
                                     "status": status, "seconds": round(seconds, 3), "request": _shown(body),
                                     "response": flight.kept.decode("utf-8", "replace")}
            if flight.billed:
                self.calls += 1
                if status < 400 and not (finished and reader.complete):
                    # Never zero for an answer the provider billed: a hostile client, a cut stream.
                    usage = estimate(usage, flight.prepared.parsed, body.decode("utf-8", "replace"), reader.seen)
                    entry["estimated"] = ("usage not read from the answer: charged the request's size as input "
                                          "and the larger of the output room asked for and the answer's length")
                cost = 0.0
                if self.upstream.price is not None:
                    cost = cost_usd(self.upstream.price, input_tokens=usage.input_tokens,
                                    output_tokens=usage.output_tokens, cache_write=usage.cache_write_tokens,
                                    cache_read=usage.cache_read_tokens)
                entry.update(usage=usage.model_dump(), cost_usd=cost)
                if status < 400 or usage.input_tokens or usage.output_tokens:
                    kept = flight.kept
                    error = reader.error or (None if status < 400 else f"HTTP {status}: {kept[:300].decode('utf-8', 'replace')}")
                    self.billing.charge(ProxyCall(
                        model=reader.model or _model_of(body), status=status, usage=usage, cost_usd=cost,
                        seconds=seconds, text=reader.text(), tool_calls=reader.tool_calls(),
                        stop_reason=reader.stop_reason, results=_tool_results(body), error=error))
            self._note(entry)

    @staticmethod
    def _reply(handler: BaseHTTPRequestHandler, status: int, payload: dict[str, Any],
               headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("content-type", "application/json")
        handler.send_header("content-length", str(len(data)))
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)


def _chunks(response: httpx.Response) -> Iterator[bytes]:
    # Decoded: should the provider compress anyway, the agent gets plain bytes (the header is dropped).
    yield from response.iter_bytes()


def _model_of(body: bytes) -> str:
    try:
        parsed = json.loads(body) if body else {}
    except ValueError:
        return ""
    return str(parsed.get("model", "")) if isinstance(parsed, dict) else ""


def _shown(body: bytes) -> Any:
    """A request body as recorded: parsed JSON when it is JSON, else text; capped."""
    text = body[:RECORD_BYTES].decode("utf-8", "replace")
    try:
        return json.loads(body) if len(body) <= RECORD_BYTES else text
    except ValueError:
        return text


def _tool_results(body: bytes) -> tuple[ToolResult, ...]:
    """The tool results an Anthropic request carries back (its last message's): the agent's own
    tools' outputs, for the transcript."""
    try:
        parsed = json.loads(body) if body else {}
        messages = parsed.get("messages") or []
        content = messages[-1].get("content") if messages else None
    except (ValueError, AttributeError):
        return ()
    found = []
    for block in content if isinstance(content, list) else []:
        if isinstance(block, dict) and block.get("type") == "tool_result":
            inner = block.get("content")
            text = inner if isinstance(inner, str) else "".join(
                part.get("text", "") for part in inner or [] if isinstance(part, dict))
            found.append(ToolResult(tool_use_id=str(block.get("tool_use_id", "")), content=text,
                                    is_error=bool(block.get("is_error"))))
    return tuple(found)
