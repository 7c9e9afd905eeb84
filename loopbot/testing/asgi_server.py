"""A real uvicorn serving an ASGI app on loopback, in a thread, on a free port (for tests)."""

from __future__ import annotations

import socket
import threading
from types import TracebackType
from typing import Any

import uvicorn


class AsgiServer:
    """`with AsgiServer(app) as server: httpx.get(server.url + "/healthz")`. Runs the app's lifespan;
    leaving the block shuts uvicorn down gracefully (the lifespan's shutdown runs)."""

    def __init__(self, app: Any, host: str = "127.0.0.1", *, startup_timeout: float = 10.0):
        self.app, self.host, self.startup_timeout = app, host, startup_timeout
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> AsgiServer:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((self.host, 0))
        self.port = self._socket.getsockname()[1]
        config = uvicorn.Config(self.app, log_config=None, lifespan="on", access_log=False,
                                timeout_graceful_shutdown=5)
        self._server = uvicorn.Server(config)
        started = threading.Event()
        server = self._server

        def run() -> None:
            try:
                server.run(sockets=[self._socket] if self._socket else None)
            finally:
                started.set()  # a server that failed to start does not keep the test waiting

        self._thread = threading.Thread(target=run, name=f"uvicorn:{self.port}", daemon=True)
        self._thread.start()
        # uvicorn sets `started` once it accepts connections; wait on that, bounded.
        while not server.started and self._thread.is_alive():
            started.wait(0.005)
        if not server.started:
            raise RuntimeError("uvicorn did not start (see the log)")
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        assert self._server is not None and self._thread is not None
        self._server.should_exit = True
        self._thread.join(timeout=15)
        if self._socket is not None:
            self._socket.close()
