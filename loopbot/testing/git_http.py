"""A real git smart-HTTP server on loopback: `git http-backend` behind a WSGI server, recording
which credentials each push carried. Tests see what GitHub would: the Authorization header of
every receive-pack, per ref pushed."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from loopbot.serverthread import serving_thread

BACKEND = Path(subprocess.run(["git", "--exec-path"], capture_output=True, text=True, check=True).stdout.strip())


@dataclass
class Push:
    user: str
    password: str
    refs: list[str]


@dataclass
class GitHttpServer:
    root: Path  # holds the bare repositories, served as /<name>.git
    pushes: list[Push] = field(default_factory=list)
    url: str = ""
    require_auth: bool = True  # as GitHub: a push without credentials is a 401

    def app(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        user, password = _basic(environ.get("HTTP_AUTHORIZATION", ""))
        pushing = environ.get("PATH_INFO", "").endswith("/git-receive-pack")
        if pushing and not user and self.require_auth:
            start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="git"')])
            return [b"credentials required\n"]
        env = {"GIT_PROJECT_ROOT": str(self.root), "GIT_HTTP_EXPORT_ALL": "1", "PATH_INFO": environ["PATH_INFO"],
               "REQUEST_METHOD": environ["REQUEST_METHOD"], "QUERY_STRING": environ.get("QUERY_STRING", ""),
               "CONTENT_TYPE": environ.get("CONTENT_TYPE", ""), "CONTENT_LENGTH": str(len(body)),
               "REMOTE_USER": user or "anonymous", "REMOTE_ADDR": "127.0.0.1",
               "HTTP_CONTENT_ENCODING": environ.get("HTTP_CONTENT_ENCODING", ""),
               "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.receivepack", "GIT_CONFIG_VALUE_0": "true"}
        if pushing:
            self.pushes.append(Push(user, password, _pushed_refs(body)))
        done = subprocess.run([str(BACKEND / "git-http-backend")], input=body, env=env, capture_output=True, check=False)
        head, _, payload = done.stdout.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = done.stdout.partition(b"\n\n")
        headers = [tuple(line.split(": ", 1)) for line in head.decode().splitlines() if ": " in line]
        status = next((value for key, value in headers if key.lower() == "status"), "200 OK")
        start_response(status, [(k, v) for k, v in headers if k.lower() != "status"])
        return [payload]


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read the recorded pushes, not a request log."""


def _basic(header: str) -> tuple[str, str]:
    if not header.lower().startswith("basic "):
        return "", ""
    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    return user, password


def _pushed_refs(body: bytes) -> list[str]:
    """The refs a receive-pack request updates, from its pkt-line commands."""
    refs, at = [], 0
    while at + 4 <= len(body):
        size = int(body[at:at + 4], 16)
        if size == 0:
            break
        line = body[at + 4:at + size].split(b"\0")[0].decode(errors="replace").split()
        if len(line) >= 3:
            refs.append(line[2])
        at += size
    return refs


@contextmanager
def serve(root: Path, *, require_auth: bool = True) -> Iterator[GitHttpServer]:
    server = GitHttpServer(root, require_auth=require_auth)
    httpd = make_server("127.0.0.1", 0, server.app, server_class=WSGIServer, handler_class=_Quiet)
    server.url = f"http://127.0.0.1:{httpd.server_port}"
    thread = serving_thread(httpd)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
