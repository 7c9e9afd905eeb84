"""The one seam every GitHub request passes: the allow-list, and pacing of writes.

GitHub asks for at least a second between requests that create content, per account and
repository, whoever sends them: the pacing is held per repository (API address + owner/repo) in
a registry shared by every forge in the process, not per forge."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from loopbot.errors import LoopbotError
from loopbot.forge.github.operations import graphql_operation, operation_for

MIN_WRITE_INTERVAL = 1.0


class ForbiddenOperation(LoopbotError):
    """A request outside the allow-list: refused before it leaves the process."""


@dataclass
class _Pace:
    clock: Callable[[], float]
    last: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


_PACES: dict[tuple[str, str], _Pace] = {}
_PACES_LOCK = threading.Lock()


def _pace(api_url: str, repository: str, clock: Callable[[], float]) -> _Pace:
    """The repository's pacing, shared by every policy in the process that uses the same clock
    (a different clock is another timeline, as in tests: its readings cannot be compared)."""
    key = (api_url.rstrip("/").lower(), repository.lower())
    with _PACES_LOCK:
        pace = _PACES.get(key)
        if pace is None or pace.clock != clock:  # == : a bound method is made anew on each access
            pace = _PACES[key] = _Pace(clock)
        return pace


@dataclass
class RequestPolicy:
    base_url: str
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    min_write_interval: float = MIN_WRITE_INTERVAL
    sent: list[tuple[str, str]] = field(default_factory=list)
    # owner/repo the forge serves; requests naming no repository (GraphQL) are paced with it.
    repository: str = ""

    def relative_path(self, url: httpx.URL) -> str:
        prefix = urlsplit(self.base_url).path.rstrip("/")
        path = url.path
        if path.endswith("/graphql"):
            return "/graphql"  # api.github.com/graphql, and <host>/api/graphql on Enterprise Server
        return path[len(prefix):] if prefix and path.startswith(prefix) else path

    def _repository_of(self, path: str) -> str:
        parts = path.split("/")
        if len(parts) > 3 and parts[1] == "repos":
            return f"{parts[2]}/{parts[3]}"
        return self.repository

    def __call__(self, request: httpx.Request) -> None:
        path = self.relative_path(request.url)
        operation = operation_for(request.method, path)
        if operation is None:
            raise ForbiddenOperation(f"GitHub operation not allowed: {request.method} {path}")
        if operation == "/graphql":
            try:
                query = json.loads(request.content or b"{}").get("query", "")
            except (ValueError, AttributeError):
                query = None
            name = graphql_operation(query) if isinstance(query, str) else None
            if name is None:
                raise ForbiddenOperation("GraphQL operation not allowed")
            operation = f"graphql:{name}"
        if request.method != "GET":
            self._pace_write(self._repository_of(path))
        self.sent.append((request.method, operation))

    def _pace_write(self, repository: str) -> None:
        # Secondary rate limits punish bursts of writes: keep them at least a second apart, per
        # repository across every forge in the process (the lock queues concurrent writers).
        pace = _pace(self.base_url, repository, self.clock)
        with pace.lock:
            now = self.clock()
            if pace.last is not None and 0 <= now - pace.last < self.min_write_interval:
                self.sleep(self.min_write_interval - (now - pace.last))
                now = self.clock()
            pace.last = now
