"""A socketserver served from a daemon thread, polled often enough that shutdown() is quick:
shutdown() waits for serve_forever's next poll, socketserver's default is every 0.5 s, and the
agent proxy ends every agent session with one (the tests' loopback servers, most tests)."""

from __future__ import annotations

import socketserver
import threading

POLL_SECONDS = 0.05


def serving_thread(server: socketserver.BaseServer, name: str | None = None) -> threading.Thread:
    """A daemon thread, not yet started, that serves `server` until its shutdown()."""
    return threading.Thread(target=server.serve_forever, kwargs={"poll_interval": POLL_SECONDS}, name=name,
                            daemon=True)
