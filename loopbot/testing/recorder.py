"""Recording new exchanges: a loopback proxy to the real API that writes what it saw as a cassette.

    loopbot replay record --upstream https://api.anthropic.com --out my.yaml
    ANTHROPIC_BASE_URL=http://127.0.0.1:PORT loopbot run goal.yaml --model anthropic:claude-sonnet-5

Request headers (API keys) are forwarded, never written; only replies and a matcher are kept.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from loopbot.testing.replay import Cassette, Exchange, LoopbackServer, Match, _summary

FORWARDED_HEADERS = ("content-type", "x-api-key", "authorization", "anthropic-version", "anthropic-beta",
                     "openai-organization", "openai-project")


def _matcher(system: str) -> Match:
    first_line = next((line.strip() for line in system.splitlines() if line.strip()), "")
    return Match(system_contains=first_line[:80] or None)


class RecordingProxy(LoopbackServer):
    def __init__(self, upstream: str, out: Path, *, port: int = 0):
        self.upstream = upstream.rstrip("/")
        self.out = out
        self.cassette = Cassette()
        super().__init__(self._handler(), port)

    def _record(self, api: str, body: dict[str, Any], reply: dict[str, Any]) -> None:
        system, _ = _summary(api, body)
        if api == "anthropic":
            response = {"content": reply.get("content", []), "stop_reason": reply.get("stop_reason", "end_turn")}
        else:
            choice = (reply.get("choices") or [{}])[0]
            message = {k: v for k, v in choice.get("message", {}).items() if k in ("content", "tool_calls")}
            response = {"message": message, "finish_reason": choice.get("finish_reason", "stop")}
        with self._lock:
            self.cassette.exchanges.append(Exchange(api=api, match=_matcher(system), response=response))
            self.cassette.dump(self.out)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                # The models API (loopbot's preflight): forwarded, never recorded.
                self._forward("GET", None)

            def do_POST(self) -> None:
                self._forward("POST", self.rfile.read(int(self.headers.get("content-length", "0"))))

            def _forward(self, method: str, raw: bytes | None) -> None:
                headers = {k: v for k, v in self.headers.items() if k.lower() in FORWARDED_HEADERS}
                request = urllib.request.Request(proxy.upstream + self.path, data=raw, headers=headers, method=method)
                try:
                    with urllib.request.urlopen(request, timeout=600) as upstream:
                        status, data = upstream.status, upstream.read()
                        reply_headers = dict(upstream.headers.items())
                except urllib.error.HTTPError as exc:
                    status, data, reply_headers = exc.code, exc.read(), dict(exc.headers.items())
                except urllib.error.URLError as exc:
                    status, data, reply_headers = 502, json.dumps({"error": {"message": str(exc.reason)}}).encode(), {}
                api = "anthropic" if self.path.rstrip("/").endswith("/messages") else "openai"
                if status == 200 and raw is not None:
                    proxy._record(api, json.loads(raw or b"{}"), json.loads(data or b"{}"))
                self.send_response(status)
                for key in ("content-type", "retry-after", "retry-after-ms", "x-should-retry", "request-id"):
                    if key in {k.lower() for k in reply_headers}:
                        value = next(v for k, v in reply_headers.items() if k.lower() == key)
                        self.send_header(key, value)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
