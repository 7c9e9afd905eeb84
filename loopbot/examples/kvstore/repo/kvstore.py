"""A small in-memory key-value store."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class KVStore:
    """Keys map to values. The clock is injectable so time-based behaviour can be tested."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._data: dict[str, Any] = {}

    def set(self, key: str, value: Any) -> None:
        self._data[key] = value

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def exists(self, key: str) -> bool:
        return key in self._data

    def delete(self, key: str) -> bool:
        return self._data.pop(key, None) is not None

    def keys(self) -> list[str]:
        return sorted(self._data)

    def __len__(self) -> int:
        return len(self._data)
