"""What the agent proxy forwards, and what it charges, when the agent is not a friendly CLI: a
stream that asks for no usage, an answer whose usage cannot be read, an endpoint the proxy does
not know, headers that describe the machine, and more model calls than a session's turn limit."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from loopbot.agents.base import PLACEHOLDER_KEY, Api, Upstream
from loopbot.agents.proxy import AgentProxy, ProxyCall
from loopbot.core.context import approx_tokens
from loopbot.core.redact import Redactor
from loopbot.providers.profiles import lookup
from loopbot.testing.replay import Cassette, Exchange, Fault, ReplayServer
from loopbot.testing.sockets import short_socket_dir

REAL_KEY = "sk-proj-" + "realforwardkey" * 3
CHAT_MODEL, CLAUDE = "gpt-4.1", "claude-sonnet-4-5"
ANSWER = "APPROACH: fix the operator.\n" + "The sum was a difference. " * 8
PROMPT = [{"role": "user", "content": "fix calc.py " * 300}]
WORKTREE = "/workspace/kvstore-loop-7"  # a path a hostile header could carry

# The client runs in its own process, as the agent does: pytest-socket refuses this process a
# unix-socket connect (it allows only loopback hosts). It sends each request in turn.
CLIENT = """
import json, sys, httpx
sock, requests = sys.argv[1], json.loads(sys.argv[2])
answers = []
with httpx.Client(transport=httpx.HTTPTransport(uds=sock), timeout=30) as client:
    for method, path, body, headers in requests:
        answer = client.request(method, "http://sandbox" + path, content=body.encode() if body else None,
                                headers=headers)
        answers.append({"status": answer.status_code, "headers": dict(answer.headers), "text": answer.text})
print(json.dumps(answers))
"""


class Ledger:
    def __init__(self) -> None:
        self.calls: list[ProxyCall] = []

    def admit(self) -> str | None:
        return None

    def charge(self, call: ProxyCall) -> None:
        self.calls.append(call)


@dataclass
class Proxied:
    """One proxy in front of one replay server; `send` runs a client process against it."""

    api: Api
    exchanges: list[Exchange]
    max_calls: int | None = None
    ledger: Ledger = field(default_factory=Ledger)
    records: list[dict[str, Any]] = field(default_factory=list)
    server: ReplayServer | None = None

    def send(self, *requests: tuple[str, str, dict[str, Any] | None, dict[str, str]]) -> list[dict[str, Any]]:
        with short_socket_dir() as folder:
            return self._send(folder, requests)

    def _send(self, folder: Path, requests: tuple[tuple[str, str, dict[str, Any] | None, dict[str, str]], ...]
              ) -> list[dict[str, Any]]:
        self.server = ReplayServer(Cassette(api_key=REAL_KEY, exchanges=self.exchanges))
        sent = [[method, path, json.dumps(body) if body is not None else "",
                 {"content-type": "application/json", **headers}] for method, path, body, headers in requests]
        with self.server:
            base = self.server.url + ("/v1" if self.api == "openai" else "")
            price = lookup(self.api, CHAT_MODEL if self.api == "openai" else CLAUDE).price
            upstream = Upstream(self.api, base, REAL_KEY, price)
            with AgentProxy(folder / "p.sock", upstream, self.ledger, self.records.append, Redactor([REAL_KEY]),
                            max_calls=self.max_calls):
                done = subprocess.run([sys.executable, "-c", CLIENT, str(folder / "p.sock"), json.dumps(sent)],
                                      capture_output=True, text=True, timeout=60, check=True)
        answers: list[dict[str, Any]] = json.loads(done.stdout)
        return answers


@pytest.fixture
def openai_headers() -> Iterator[dict[str, str]]:
    yield {"authorization": f"Bearer {PLACEHOLDER_KEY}"}


def chunks_of(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[5:]) for line in text.splitlines()
            if line.startswith("data:") and line[5:].strip() != "[DONE]"]


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": CHAT_MODEL, "messages": PROMPT, **extra}


# -- 1. a stream that asks for no usage is charged what the server billed ------------------------

@pytest.mark.parametrize("asked", [False, True])
def test_a_stream_is_charged_what_the_server_billed_whether_or_not_it_asked_for_usage(asked, openai_headers):
    proxied = Proxied("openai", [Exchange(api="openai", response={"message": {"content": ANSWER}})])
    body = chat(stream=True, **({"stream_options": {"include_usage": True}} if asked else {}))
    [answer] = proxied.send(("POST", "/v1/chat/completions", body, openai_headers))
    assert answer["status"] == 200
    assert proxied.server is not None
    [received] = proxied.server.received
    # The proxy asked the server for the usage chunk, so the server billed and told it.
    assert received.body["stream_options"] == {"include_usage": True}
    served = received.usage or {}
    [call] = proxied.ledger.calls
    assert call.usage.input_tokens + call.usage.cache_read_tokens == served["prompt_tokens"] > 200
    assert call.usage.output_tokens == served["completion_tokens"] > 0 and call.cost_usd > 0
    # The client gets the stream it asked for: the usage-only chunk only when it asked for it.
    chunks = chunks_of(answer["text"])
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == ANSWER and answer["text"].rstrip().endswith("data: [DONE]")
    usage_chunks = [c for c in chunks if not c["choices"]]
    assert usage_chunks == ([{**usage_chunks[0], "usage": served}] if asked else [])


# -- 2. an answer whose usage cannot be read is charged an estimate, never zero ------------------

def _cut(events: list[dict[str, Any]], *, named: bool = False) -> str:
    return "".join((f"event: {e['type']}\n" if named else "") + f"data: {json.dumps(e)}\n\n" for e in events)


CUT = {
    # A Messages stream cut after its first text: message_start's input count, no message_delta.
    "anthropic stream cut": ("anthropic", "/v1/messages", {"model": CLAUDE, "max_tokens": 3000, "stream": True,
                                                           "messages": PROMPT},
                             Fault(status=200, content_type="text/event-stream", body=_cut([
                                 {"type": "message_start", "message": {"id": "m", "type": "message", "role": "assistant",
                                                                       "model": CLAUDE, "content": [],
                                                                       "usage": {"input_tokens": 3, "output_tokens": 1}}},
                                 {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                                 {"type": "content_block_delta", "index": 0,
                                  "delta": {"type": "text_delta", "text": ANSWER}}], named=True))),
    # A chat stream with no usage chunk (a server that ignores stream_options), no [DONE].
    "chat stream without usage": ("openai", "/v1/chat/completions", chat(stream=True, max_completion_tokens=3000),
                                  Fault(status=200, content_type="text/event-stream", body=_cut([
                                      {"id": "c", "object": "chat.completion.chunk", "model": CHAT_MODEL,
                                       "choices": [{"index": 0, "delta": {"content": ANSWER}, "finish_reason": None}]}]))),
    # A Responses stream cut before response.completed.
    "responses stream cut": ("openai", "/v1/responses", {"model": CHAT_MODEL, "input": "fix calc.py " * 300,
                                                         "stream": True, "max_output_tokens": 3000},
                             Fault(status=200, content_type="text/event-stream", body=_cut([
                                 {"type": "response.created", "response": {"id": "r", "status": "in_progress"}},
                                 {"type": "response.output_text.delta", "delta": ANSWER}]))),
    # A JSON answer with no usage field.
    "chat JSON without usage": ("openai", "/v1/chat/completions", chat(max_completion_tokens=3000),
                                Fault(status=200, body=json.dumps({
                                    "id": "c", "object": "chat.completion", "model": CHAT_MODEL,
                                    "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER},
                                                 "finish_reason": "stop"}]}))),
}


@pytest.mark.parametrize("case", list(CUT))
def test_an_answer_whose_usage_cannot_be_read_is_charged_a_conservative_estimate(case):
    api, path, body, fault = CUT[case]
    headers = {"authorization": f"Bearer {PLACEHOLDER_KEY}"} if api == "openai" else {
        "x-api-key": PLACEHOLDER_KEY, "anthropic-version": "2023-06-01"}
    proxied = Proxied(api, [Exchange(api="responses" if path.endswith("/responses") else api, fault=fault)])
    [answer] = proxied.send(("POST", path, body, headers))
    assert answer["status"] == 200 and ANSWER[:20] in answer["text"].replace("\\n", "\n")
    [call] = proxied.ledger.calls
    # The whole request as input, the output it asked room for: at least what it could have cost.
    assert call.usage.input_tokens >= approx_tokens(json.dumps(body)) > 800
    assert call.usage.output_tokens == 3000 and call.cost_usd > 0
    [entry] = proxied.records
    assert "usage not read" in entry["estimated"] and entry["usage"]["output_tokens"] == 3000


def test_a_stream_without_a_limit_asked_is_charged_at_least_its_streamed_text():
    cut = CUT["chat stream without usage"]
    body = chat(stream=True)
    proxied = Proxied("openai", [Exchange(api="openai", fault=cut[3])])
    proxied.send(("POST", "/v1/chat/completions", body, {"authorization": f"Bearer {PLACEHOLDER_KEY}"}))
    [call] = proxied.ledger.calls
    assert call.usage.input_tokens >= approx_tokens(json.dumps(body))
    assert call.usage.output_tokens >= approx_tokens(ANSWER) > 0


# -- 3. endpoints the proxy does not know are refused, never forwarded --------------------------

@pytest.mark.parametrize(("api", "method", "path"), [
    ("anthropic", "POST", "/v1/messages/batches"),  # billed, and not read by the proxy
    ("anthropic", "POST", "/v1/complete"),
    ("anthropic", "POST", "/v1/chat/completions"),  # the other API's path
    ("openai", "POST", "/v1/completions"),
    ("openai", "POST", "/v1/embeddings"),
    ("openai", "POST", "/v1/batches"),
    ("openai", "GET", "/v1/files"),
    ("openai", "POST", "/v1/messages"),
])
def test_an_endpoint_the_proxy_does_not_know_is_refused_without_forwarding(api, method, path):
    headers = {"authorization": f"Bearer {PLACEHOLDER_KEY}"} if api == "openai" else {
        "x-api-key": PLACEHOLDER_KEY, "anthropic-version": "2023-06-01"}
    proxied = Proxied(api, [])
    [answer] = proxied.send((method, path, {"model": CHAT_MODEL, "input": "x"} if method == "POST" else None, headers))
    assert answer["status"] == 404 and "loopbot proxy" in json.loads(answer["text"])["error"]["message"]
    assert proxied.server is not None and proxied.server.received == [] and proxied.server.lookups == []
    assert proxied.ledger.calls == [] and proxied.records[-1]["refused"].startswith("unknown endpoint")


def test_the_endpoints_the_clis_use_still_pass(openai_headers):
    anthropic = {"x-api-key": PLACEHOLDER_KEY, "anthropic-version": "2023-06-01"}
    proxied = Proxied("anthropic", [Exchange(api="anthropic", response={"content": [{"type": "text", "text": "hi"}]})])
    answers = proxied.send(("HEAD", "/", None, anthropic), ("GET", f"/v1/models/{CLAUDE}", None, anthropic),
                           ("POST", "/v1/messages/count_tokens?beta=true", {"model": CLAUDE, "messages": PROMPT}, anthropic),
                           ("POST", "/v1/messages?beta=true", {"model": CLAUDE, "max_tokens": 100, "messages": PROMPT},
                            anthropic))
    assert [a["status"] for a in answers] == [200, 200, 200, 200] and len(proxied.ledger.calls) == 1
    proxied = Proxied("openai", [Exchange(api="responses", response={"output": [{"type": "message", "content": "hi"}]})])
    answers = proxied.send(("GET", "/v1/models", None, openai_headers),
                           ("POST", "/v1/responses", {"model": CHAT_MODEL, "input": "hi"}, openai_headers))
    assert [a["status"] for a in answers] == [200, 200] and len(proxied.ledger.calls) == 1


# -- 4. only the headers the APIs need go upstream ----------------------------------------------

def test_only_allowed_headers_reach_the_provider_and_none_names_the_machine(openai_headers):
    machine = {
        "x-codex-turn-metadata": json.dumps({"installation_id": "1f0c", "cwd": WORKTREE, "git_head": "abc123",
                                             "sandbox": "danger-full-access"}),
        "x-codex-beta-features": "x", "session_id": "019a-session", "originator": "codex_exec",
        "x-stainless-os": "Linux", "x-stainless-arch": "x64", "x-stainless-runtime-version": "v20.20.2",
        "openai-organization": "org-theirs", "x-forwarded-for": "10.0.0.7", "cookie": "a=b",
        "user-agent": f"codex_exec/0.171.0 (Debian 12; x86_64) xterm-256color (cwd {WORKTREE})",
        "openai-beta": "responses=experimental", "accept": "text/event-stream",
    }
    proxied = Proxied("openai", [Exchange(api="responses", response={"output": [{"type": "message", "content": "hi"}]})])
    [answer] = proxied.send(("POST", "/v1/responses", {"model": CHAT_MODEL, "input": "hi", "stream": True},
                             {**openai_headers, **machine}))
    assert answer["status"] == 200
    assert proxied.server is not None
    [received] = proxied.server.received
    sent = received.headers
    assert set(sent) <= {"host", "connection", "content-type", "content-length", "accept", "accept-encoding", "authorization",
                         "user-agent", "openai-beta"}
    assert sent["authorization"] == f"Bearer {REAL_KEY}" and sent["openai-beta"] == "responses=experimental"
    assert sent["user-agent"] == "codex_exec/0.171.0"  # the client's name and version, nothing of the machine
    assert not any(WORKTREE in value or "Debian" in value for value in sent.values())


# -- 5. a session's turn limit, for CLIs that have none of their own ----------------------------

def test_the_call_after_a_sessions_turn_limit_is_refused_before_forwarding(openai_headers):
    reply = Exchange(api="openai", response={"message": {"content": ANSWER}}, times=3)
    proxied = Proxied("openai", [reply], max_calls=2)
    call = ("POST", "/v1/chat/completions", chat(stream=True), openai_headers)
    answers = proxied.send(call, ("GET", "/v1/models", None, openai_headers), call, call)
    # A models lookup is no turn; the third model call is refused as the API refuses, not retried.
    assert [a["status"] for a in answers] == [200, 200, 200, 400]
    assert answers[3]["headers"]["x-should-retry"] == "false"
    error = json.loads(answers[3]["text"])["error"]
    assert error["type"] == "invalid_request_error" and "turn limit of 2 model calls" in error["message"]
    assert proxied.server is not None and len(proxied.server.received) == 2 and len(proxied.ledger.calls) == 2
    assert "turn limit" in proxied.records[-1]["refused"]


SDK_CLIENT = """
import sys, httpx, openai
client = openai.OpenAI(api_key=sys.argv[2], base_url="http://sandbox/v1", max_retries=0,
                       http_client=httpx.Client(transport=httpx.HTTPTransport(uds=sys.argv[1])))
stream = client.chat.completions.create(model=sys.argv[3], messages=[{"role": "user", "content": "fix calc.py " * 300}],
                                        stream=True)
# A naive client: every chunk's first choice, as many scripts read a stream.
print("".join(chunk.choices[0].delta.content or "" for chunk in stream))
"""


def test_the_openai_sdk_reads_the_stream_it_asked_for_and_the_call_is_charged(socket_dir: Path):
    ledger = Ledger()
    folder = socket_dir
    cassette = Cassette(api_key=REAL_KEY, exchanges=[Exchange(api="openai", response={"message": {"content": ANSWER}})])
    with ReplayServer(cassette) as server:
        upstream = Upstream("openai", server.url + "/v1", REAL_KEY, lookup("openai", CHAT_MODEL).price)
        with AgentProxy(folder / "p.sock", upstream, ledger, lambda entry: None, Redactor([REAL_KEY])):
            done = subprocess.run([sys.executable, "-c", SDK_CLIENT, str(folder / "p.sock"), PLACEHOLDER_KEY, CHAT_MODEL],
                                  capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.rstrip("\n") == ANSWER.rstrip("\n")
    [call] = ledger.calls
    assert call.usage.input_tokens + call.usage.cache_read_tokens == (server.received[0].usage or {})["prompt_tokens"]
