"""The one seam every GitHub request passes: the allow-list, and pacing of writes."""

from __future__ import annotations

import json
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
class RequestPolicy:
    base_url: str
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    min_write_interval: float = MIN_WRITE_INTERVAL
    sent: list[tuple[str, str]] = field(default_factory=list)
    _last_write: float | None = None

    def relative_path(self, url: httpx.URL) -> str:
        prefix = urlsplit(self.base_url).path.rstrip("/")
        path = url.path
        if path.endswith("/graphql"):
            return "/graphql"  # api.github.com/graphql, and <host>/api/graphql on Enterprise Server
        return path[len(prefix):] if prefix and path.startswith(prefix) else path

    def __call__(self, request: httpx.Request) -> None:
        path = self.relative_path(request.url)
        operation = operation_for(request.method, path)
        if operation is None:
            raise ForbiddenOperation(f"GitHub operation not allowed: {request.method} {path}")
        if operation == "/graphql":
            query = json.loads(request.content or b"{}").get("query", "")
            name = graphql_operation(query)
            if name is None:
                raise ForbiddenOperation("GraphQL operation not allowed")
            operation = f"graphql:{name}"
        if request.method != "GET":
            # Secondary rate limits punish bursts of writes: keep them at least a second apart.
            now = self.clock()
            if self._last_write is not None and now - self._last_write < self.min_write_interval:
                self.sleep(self.min_write_interval - (now - self._last_write))
                now = self.clock()
            self._last_write = now
        self.sent.append((request.method, operation))
