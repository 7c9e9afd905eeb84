"""One SQLite writer at a time across every process and thread on one database file, webhook
acknowledgements first.

SQLite itself lets one writer in and has the others poll: its busy handler sleeps 1, 2, 5, 10 ...
100 ms between tries, so beside a busy `loopbot worker` a webhook's commit waited hundreds of
milliseconds for a lock held a millisecond at a time, or missed every free moment. Here writers
wait in the kernel instead (flock on files beside the database), and urgent writers (ingress,
whose answer GitHub is waiting for) hold a shared "gate" while they wait and write: other writers
pass the gate exclusively before they queue, so they never get ahead of an acknowledgement that
is waiting. The workers' jobs are durable and can wait a few milliseconds; GitHub's 10 s cannot.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class WriterLock:
    def __init__(self, database: Path):
        self.path = database.with_name(database.name + ".writer")
        gate = database.with_name(database.name + ".gate")
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
        self._write_fd = os.open(self.path, flags, 0o600)
        # Two descriptors on the gate: flocks on different open files conflict, in one process too.
        self._urgent_fd, self._patient_fd = os.open(gate, flags, 0o600), os.open(gate, flags, 0o600)
        self._threads = threading.Lock()  # an flock is held per open file, not per thread
        self._urgent_count, self._urgent_mutex = 0, threading.Lock()
        self._patient_mutex = threading.Lock()

    @contextmanager
    def hold(self, urgent: bool = False) -> Iterator[None]:
        if urgent:
            self._enter_urgent()
        else:
            self._wait_for_urgent()
        try:
            with self._threads:
                fcntl.flock(self._write_fd, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(self._write_fd, fcntl.LOCK_UN)
        finally:
            if urgent:
                self._leave_urgent()

    @property
    def urgent_writers(self) -> int:
        """This process's urgent writers waiting or writing now."""
        return self._urgent_count

    def _enter_urgent(self) -> None:
        with self._urgent_mutex:
            if self._urgent_count == 0:
                fcntl.flock(self._urgent_fd, fcntl.LOCK_SH)
            self._urgent_count += 1

    def _leave_urgent(self) -> None:
        with self._urgent_mutex:
            self._urgent_count -= 1
            if self._urgent_count == 0:
                fcntl.flock(self._urgent_fd, fcntl.LOCK_UN)

    def _wait_for_urgent(self) -> None:
        """Returns once no urgent writer (of any process) is waiting or writing."""
        with self._patient_mutex:
            fcntl.flock(self._patient_fd, fcntl.LOCK_EX)
            fcntl.flock(self._patient_fd, fcntl.LOCK_UN)

    def close(self) -> None:
        for fd in (self._write_fd, self._urgent_fd, self._patient_fd):
            os.close(fd)
