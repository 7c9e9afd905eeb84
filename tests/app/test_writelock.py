"""The SQLite writers' turn-taking (loopbot.app.writelock): one writer at a time, and a webhook's
write (urgent: GitHub waits for its answer) goes before a worker's that queued earlier."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from loopbot.app.writelock import WriterLock


def until(condition: object, seconds: float = 10) -> bool:
    """Polls a condition (a callable) until it holds: waits for a state, not for a time."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.001)
    return False


def test_an_urgent_writer_goes_before_a_patient_one_that_waited_longer(tmp_path: Path) -> None:
    lock = WriterLock(tmp_path / "app.db")
    order: list[str] = []
    first_in, let_go = threading.Event(), threading.Event()

    def urgent_first() -> None:
        with lock.hold(urgent=True):
            order.append("urgent-1")
            first_in.set()
            let_go.wait()

    def writer(name: str, urgent: bool) -> None:
        with lock.hold(urgent=urgent):
            order.append(name)

    holder = threading.Thread(target=urgent_first)
    holder.start()
    assert first_in.wait(10)
    patient = threading.Thread(target=writer, args=("patient", False))
    patient.start()  # queued first, behind the gate the urgent writer holds
    second = threading.Thread(target=writer, args=("urgent-2", True))
    second.start()
    assert until(lambda: lock.urgent_writers == 2)  # the second urgent writer is waiting
    let_go.set()
    for thread in (holder, patient, second):
        thread.join(10)
    assert order == ["urgent-1", "urgent-2", "patient"]
    lock.close()


def test_writers_of_two_locks_on_one_database_never_overlap(tmp_path: Path) -> None:
    # Two WriterLocks on one file are two processes' views of it: the flock keeps them apart.
    locks = [WriterLock(tmp_path / "app.db"), WriterLock(tmp_path / "app.db")]
    inside, overlaps = [0], [0]
    guard = threading.Lock()

    def write(lock: WriterLock, urgent: bool) -> None:
        for _ in range(200):
            with lock.hold(urgent=urgent):
                with guard:
                    inside[0] += 1
                    overlaps[0] += inside[0] > 1
                with guard:
                    inside[0] -= 1

    threads = [threading.Thread(target=write, args=(locks[i % 2], i % 3 == 0)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert overlaps == [0]
    for lock in locks:
        lock.close()
