"""Cancellation: set once (from a signal handler or `loopbot stop`), it kills running commands and
abandons an in-flight model call at once, instead of waiting for the step to end."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")


class Interrupted(Exception):
    """The step was abandoned because the run was cancelled."""


class Cancellation:
    def __init__(self) -> None:
        self._event = threading.Event()
        # Re-entrant: a signal handler runs in the main thread, possibly while it is registering.
        self._lock = threading.RLock()
        self._callbacks: dict[int, Callable[[], None]] = {}
        self._next = 0
        self.reason = ""

    def is_set(self) -> bool:
        return self._event.is_set()

    def set(self, reason: str = "cancelled") -> None:
        with self._lock:
            if not self._event.is_set():
                self.reason = reason
            self._event.set()
            callbacks = list(self._callbacks.values())
        for callback in callbacks:
            callback()

    def wait(self, timeout: float) -> bool:
        """Block until cancelled or `timeout` passes; True when cancelled."""
        return self._event.wait(timeout)

    def clear(self) -> None:
        self._event.clear()
        self.reason = ""

    @contextmanager
    def on_cancel(self, callback: Callable[[], None]) -> Iterator[None]:
        """Call `callback` when cancelled during the block (at once if already cancelled)."""
        with self._lock:
            key = self._next
            self._next += 1
            self._callbacks[key] = callback
            already = self._event.is_set()
        if already:
            callback()
        try:
            yield
        finally:
            with self._lock:
                self._callbacks.pop(key, None)

    def call(self, work: Callable[[], T]) -> T:
        """Run `work` in a helper thread; Interrupted as soon as the run is cancelled.

        A blocking SDK call cannot be interrupted from outside, so it is abandoned: the daemon
        thread ends with the process, and the loop carries on from its last checkpoint.
        """
        if self.is_set():
            raise Interrupted(self.reason)
        results: list[T] = []
        errors: list[BaseException] = []
        done = threading.Event()

        def run() -> None:
            try:
                results.append(work())
            except BaseException as exc:
                errors.append(exc)
            finally:
                done.set()

        threading.Thread(target=run, name="model-call", daemon=True).start()
        with self.on_cancel(done.set):
            done.wait()
        if errors:
            raise errors[0]
        if not results:
            raise Interrupted(self.reason)
        return results[0]
