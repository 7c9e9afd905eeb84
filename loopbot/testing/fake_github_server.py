"""The contract-checked FakeGitHub over real loopback HTTP, for a `loopbot serve` subprocess.

FakeGitHub is an httpx MockTransport handler, which only a client in the same process can use; a
served App in another process reaches it through `GITHUB_API_URL=<server.url>`. Requests are handed
to the fake one at a time (it keeps plain dicts), from a threading HTTP server.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

import httpx

from loopbot.serverthread import serving_thread
from loopbot.testing.fake_github import FakeGitHub

# Hop-by-hop or recomputed headers: the server writes its own.
_SKIP = {"content-length", "transfer-encoding", "connection", "content-encoding"}


class FakeGitHubServer:
    """`with FakeGitHubServer(fake) as server: env["GITHUB_API_URL"] = server.url`."""

    def __init__(self, fake: FakeGitHub, host: str = "127.0.0.1"):
        self.fake, self.host = fake, host
        self.lock = threading.Lock()  # hold it to read the fake's state while the server runs
        self.errors: list[str] = []  # requests the fake itself failed on (its bugs, not the client's)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None, "the server is not running"
        return f"http://{self.host}:{self._httpd.server_address[1]}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as api.github.com

            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                request = httpx.Request(self.command, f"http://{outer.host}{self.path}",
                                        headers=dict(self.headers.items()), content=body)
                try:
                    with outer.lock:
                        response = outer.fake.handle(request)
                except Exception as exc:  # a fake's bug is a 500 the client sees, not a dropped connection
                    outer.errors.append(f"{self.command} {self.path}: {type(exc).__name__}: {exc}")
                    response = httpx.Response(500, json={"message": f"fake GitHub failed: {exc}"})
                content = response.read()
                self.send_response(response.status_code)
                for name, value in response.headers.items():
                    if name.lower() not in _SKIP:
                        self.send_header(name, value)
                self.send_header("content-length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _answer

            def log_message(self, format: str, *args: object) -> None:
                pass  # the fake's own log holds every request

        return Handler

    def __enter__(self) -> FakeGitHubServer:
        self._httpd = ThreadingHTTPServer((self.host, 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = serving_thread(self._httpd, name="fake-github")
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        assert self._httpd is not None and self._thread is not None
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)
