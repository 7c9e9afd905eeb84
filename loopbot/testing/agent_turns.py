"""Replay exchanges that answer an agent CLI with its own tool calls (Claude Code's Read, Write,
Edit, Bash: the names and input shapes its first request lists), and the kvstore story's fix as
an agent writes it. The CLI runs them; the replay server only answers."""

from __future__ import annotations

import itertools
from typing import Any

from loopbot.testing.replay import Exchange, Match

_ids = itertools.count(1)

# kvstore.py with lazy TTL expiry: what the demo's third iteration arrives at, written whole.
KVSTORE_WITH_TTL = '''"""A small in-memory key-value store."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class KVStore:
    """Keys map to values. The clock is injectable so time-based behaviour can be tested."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._data: dict[str, Any] = {}
        self._expires: dict[str, float] = {}

    def set(self, key: str, value: Any, ttl_seconds: float | None = None) -> None:
        if ttl_seconds is not None and ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        self._data[key] = value
        if ttl_seconds is None:
            self._expires.pop(key, None)
        else:
            self._expires[key] = self._clock() + ttl_seconds

    def _expired(self, key: str) -> bool:
        """True if the key had a TTL that has passed; the entry is dropped on first sight."""
        deadline = self._expires.get(key)
        if deadline is None or self._clock() < deadline:
            return False
        self._data.pop(key, None)
        self._expires.pop(key, None)
        return True

    def get(self, key: str, default: Any = None) -> Any:
        if self._expired(key):
            return default
        return self._data.get(key, default)

    def exists(self, key: str) -> bool:
        return not self._expired(key) and key in self._data

    def delete(self, key: str) -> bool:
        if self._expired(key):
            return False
        self._expires.pop(key, None)
        return self._data.pop(key, None) is not None

    def keys(self) -> list[str]:
        return sorted(k for k in list(self._data) if not self._expired(k))

    def __len__(self) -> int:
        return len(self.keys())
'''


# A first step that is not enough: expiry stored by set() but never enforced (the demo's first iteration).
KVSTORE_TTL_STORED = KVSTORE_WITH_TTL.split("    def _expired", 1)[0] + '''    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def exists(self, key: str) -> bool:
        return key in self._data

    def delete(self, key: str) -> bool:
        return self._data.pop(key, None) is not None

    def keys(self) -> list[str]:
        return sorted(self._data)

    def __len__(self) -> int:
        return len(self._data)
'''


def tool_use(name: str, **arguments: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": f"toolu_replay_{next(_ids):04d}", "name": name, "input": arguments}


def read(path: str) -> dict[str, Any]:
    return tool_use("Read", file_path=path)


def write(path: str, content: str) -> dict[str, Any]:
    return tool_use("Write", file_path=path, content=content)


def edit(path: str, old: str, new: str) -> dict[str, Any]:
    return tool_use("Edit", file_path=path, old_string=old, new_string=new)


def bash(command: str, description: str = "Run a command") -> dict[str, Any]:
    return tool_use("Bash", command=command, description=description)


def turn(*calls: dict[str, Any], text: str = "", after: str | None = None) -> Exchange:
    """One model reply: optional text, then tool calls (stop_reason tool_use), or text alone
    (end_turn, the session's final message). `after`: answer only a request whose messages
    contain this text (a tool result the previous turn produced)."""
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    content += list(calls)
    return Exchange(api="anthropic", match=Match(text_contains=after),
                    response={"content": content, "stop_reason": "tool_use" if calls else "end_turn"})
