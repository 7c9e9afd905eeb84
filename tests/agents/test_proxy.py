"""The agent proxy on its unix socket, in front of the replay server: the key swap, the budget
refusal before forwarding, streamed usage, and what it records."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loopbot.agents.base import PLACEHOLDER_KEY, Upstream
from loopbot.agents.proxy import AgentProxy, ProxyCall
from loopbot.core.redact import Redactor
from loopbot.providers.profiles import lookup
from loopbot.testing.agent_turns import bash, turn
from loopbot.testing.replay import Cassette, Exchange, Fault, ReplayServer

REAL_KEY = "sk-ant-api03-" + "realproxykey" * 3
MODEL = "claude-sonnet-4-5"
BODY = {"model": MODEL, "max_tokens": 2000, "stream": True, "messages": [{"role": "user", "content": "go " * 400}]}
HEADERS = {"anthropic-version": "2023-06-01", "x-api-key": PLACEHOLDER_KEY}


class Ledger:
    def __init__(self, refuse: str | None = None):
        self.refuse = refuse
        self.calls: list[ProxyCall] = []

    def admit(self) -> str | None:
        return self.refuse

    def charge(self, call: ProxyCall) -> None:
        self.calls.append(call)


@pytest.fixture
def proxied(socket_dir: Path) -> Iterator[Any]:
    def start(ledger: Ledger, times: int = 1) -> Any:
        replay = ReplayServer(Cassette(api_key=REAL_KEY, exchanges=[
            turn(bash("python3 -m unittest -q"), text="APPROACH: run the tests.")] * times))
        folder = socket_dir
        records: list[dict[str, Any]] = []
        return replay, folder, records

    yield start


# The client runs in its own process, as the agent does: pytest-socket refuses this process a
# unix-socket connect (it allows only loopback hosts).
CLIENT = """
import json, sys, httpx
sock, body, headers = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
with httpx.Client(transport=httpx.HTTPTransport(uds=sock)) as client:
    answer = client.post("http://sandbox/v1/messages?beta=true", content=body, headers=headers)
print(json.dumps({"status": answer.status_code, "headers": dict(answer.headers), "text": answer.text}))
"""


def serve(replay: ReplayServer, folder: Path, records: list[dict[str, Any]], ledger: Ledger,
          headers: dict[str, str]) -> dict[str, Any]:
    with replay:
        upstream = Upstream("anthropic", replay.url, REAL_KEY, lookup("anthropic", MODEL).price)
        with AgentProxy(folder / "p.sock", upstream, ledger, records.append, Redactor([REAL_KEY])):
            done = subprocess.run([sys.executable, "-c", CLIENT, str(folder / "p.sock"), json.dumps(BODY),
                                   json.dumps({**headers, "content-type": "application/json"})],
                                  capture_output=True, text=True, timeout=60, check=True)
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def test_the_placeholder_is_swapped_for_the_real_key_and_the_stream_passes_with_its_usage(proxied):
    ledger = Ledger()
    replay, folder, records = proxied(ledger)
    answer = serve(replay, folder, records, ledger, HEADERS)
    assert answer["status"] == 200 and answer["headers"]["content-type"].startswith("text/event-stream")
    events = [json.loads(line[5:]) for line in answer["text"].splitlines() if line.startswith("data:")]
    assert events[0]["type"] == "message_start" and events[-1]["type"] == "message_stop"
    billed = replay.received[0].usage
    assert billed is not None and len(ledger.calls) == 1
    call = ledger.calls[0]
    # Input from message_start, output from message_delta: as the server billed them.
    assert call.usage.input_tokens == billed["input_tokens"] > 0
    assert call.usage.output_tokens == billed["output_tokens"] > 1
    assert call.cost_usd > 0 and call.stop_reason == "tool_use"
    assert [c.name for c in call.tool_calls] == ["Bash"] and call.tool_calls[0].input["command"].startswith("python3")
    assert call.text == "APPROACH: run the tests."
    # The record holds the exchange, never the real key (the replay server took only it).
    assert REAL_KEY not in json.dumps(records) and records[-1]["usage"]["output_tokens"] == billed["output_tokens"]


def test_another_key_is_refused_and_nothing_is_forwarded(proxied):
    ledger = Ledger()
    replay, folder, records = proxied(ledger)
    answer = serve(replay, folder, records, ledger, {**HEADERS, "x-api-key": "sk-ant-x" * 4})
    assert answer["status"] == 401 and replay.received == [] and ledger.calls == []


def test_a_spent_budget_is_refused_before_forwarding_with_an_error_the_sdk_does_not_retry(proxied):
    ledger = Ledger(refuse="the cost_usd budget is used up")
    replay, folder, records = proxied(ledger)
    answer = serve(replay, folder, records, ledger, HEADERS)
    assert answer["status"] == 400 and answer["headers"]["x-should-retry"] == "false"
    assert json.loads(answer["text"])["error"]["type"] == "invalid_request_error"
    assert "cost_usd budget is used up" in json.loads(answer["text"])["error"]["message"]
    assert replay.received == [] and ledger.calls == [] and records[-1]["refused"]


# The agent reads the stream and says so after the first bytes, then goes on reading until the
# answer ends or fails; it is killed, as the sandbox kills it at its wall limit, or left reading.
READER = """
import sys, httpx
sock, body = sys.argv[1], sys.argv[2]
headers = {"anthropic-version": "2023-06-01", "x-api-key": sys.argv[3], "content-type": "application/json"}
with httpx.Client(transport=httpx.HTTPTransport(uds=sock), timeout=60) as client:
    with client.stream("POST", "http://sandbox/v1/messages", content=body, headers=headers) as answer:
        try:
            for _ in answer.iter_bytes():
                print("streaming", flush=True)
        except httpx.HTTPError:
            print("cut", flush=True)
"""


@pytest.mark.parametrize("agent", ["killed", "still reading"])
def test_a_call_streaming_when_the_session_ends_is_charged_before_the_proxy_is_gone(
        agent: str, monkeypatch: pytest.MonkeyPatch, socket_dir: Path) -> None:
    escaped: list[threading.ExceptHookArgs] = []
    monkeypatch.setattr(threading, "excepthook", escaped.append)
    ledger = Ledger()
    records: list[dict[str, Any]] = []
    folder = socket_dir
    # The answer's message_start and a little more, then nothing until the client goes away.
    replay = ReplayServer(Cassette(api_key=REAL_KEY, exchanges=[
        Exchange(api="anthropic", fault=Fault(stall_after_bytes=700),
                 response=turn(bash("python3 -m unittest -q"), text="APPROACH: run the tests.").response)]))
    with replay:
        upstream = Upstream("anthropic", replay.url, REAL_KEY, lookup("anthropic", MODEL).price)
        proxy = AgentProxy(folder / "p.sock", upstream, ledger, records.append, Redactor([REAL_KEY]))
        with proxy:
            reader = subprocess.Popen([sys.executable, "-c", READER, str(folder / "p.sock"), json.dumps(BODY),
                                       PLACEHOLDER_KEY], stdout=subprocess.PIPE, text=True)
            try:
                assert reader.stdout is not None and reader.stdout.readline() == "streaming\n"
                assert replay.stalled.is_set() and ledger.calls == []
                if agent == "killed":
                    reader.kill()
                    reader.wait(timeout=30)
            except BaseException:
                reader.kill()
                raise
        # The session is over: its call is in the ledger and counted, not charged later or never.
        assert proxy.calls == 1 and len(ledger.calls) == 1
    if agent == "still reading":
        out, _ = reader.communicate(timeout=30)
        assert out.splitlines()[-1] == "cut"  # an answer cut off, never one that looks complete
    [call] = ledger.calls
    billed = replay.received[0].usage
    assert billed is not None and call.usage.input_tokens >= billed["input_tokens"] > 0
    # Its usage was not seen to the end: the output room it asked for, as for any cut stream.
    asked = BODY["max_tokens"]
    assert isinstance(asked, int) and call.usage.output_tokens >= asked and call.cost_usd > 0
    assert "usage not read" in records[-1]["estimated"] and records[-1]["cost_usd"] == call.cost_usd
    assert escaped == []


# Sends one request and leaves without reading the answer: closed with unread data, the socket
# resets, and the proxy's thread, waiting for a next request on the kept-alive connection, gets
# ECONNRESET. So an SDK's client does when its process exits with the last bytes unread.
LEAVER = r"""
import socket, sys
sock = socket.socket(socket.AF_UNIX)
sock.connect(sys.argv[1])
body = sys.argv[2].encode()
sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: sandbox\r\ncontent-type: application/json\r\n"
             b"anthropic-version: 2023-06-01\r\nx-api-key: " + sys.argv[3].encode() +
             b"\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
seen = b""
while not seen.endswith(b"\r\n0\r\n\r\n"):  # the whole answer is here, looked at but not read
    seen = sock.recv(1 << 20, socket.MSG_PEEK)
    if not seen:
        sys.exit("the proxy closed the connection before its answer ended")
sock.close()
"""


def test_a_client_that_leaves_with_its_answer_unread_is_no_error_of_the_proxys(
        monkeypatch: pytest.MonkeyPatch, socket_dir: Path) -> None:
    escaped: list[threading.ExceptHookArgs] = []
    monkeypatch.setattr(threading, "excepthook", escaped.append)
    ledger = Ledger()
    replay = ReplayServer(Cassette(api_key=REAL_KEY, exchanges=[
        turn(bash("python3 -m unittest -q"), text="APPROACH: run the tests.")]))
    with replay:
        upstream = Upstream("anthropic", replay.url, REAL_KEY, lookup("anthropic", MODEL).price)
        with AgentProxy(socket_dir / "p.sock", upstream, ledger, lambda entry: None, Redactor([REAL_KEY])) as proxy:
            subprocess.run([sys.executable, "-c", LEAVER, str(socket_dir / "p.sock"), json.dumps(BODY),
                            PLACEHOLDER_KEY], check=True, timeout=60)
        assert proxy.calls == 1 and len(ledger.calls) == 1  # forwarded and charged all the same
    assert [str(e.exc_value) for e in escaped] == []
