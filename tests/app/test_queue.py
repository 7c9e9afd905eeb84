"""The App's queue, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import itertools
import json
import random
import threading
from collections import Counter

import pytest

from loopbot.app import db, queue
from loopbot.app.pacing import PER_HOUR, PER_MINUTE
from loopbot.app.store import AppStore, Delivery
from loopbot.testing import FakeClock


def _store(url: str, clock: FakeClock | None = None) -> AppStore:
    return AppStore.open(url, clock=clock or FakeClock(), rng=random.Random(7))


def _delivery(delivery_id: str, *, repo: str = "o/r", issue: int = 3, labels: tuple[str, ...] = (),
              event: str = "issue_comment", received_at: float = 0.0) -> Delivery:
    body = {"action": "created", "repository": {"full_name": repo},
            "issue": {"number": issue, "labels": [{"name": name} for name in labels]}}
    return Delivery(delivery_id, event, "created", 1, repo, json.dumps(body).encode(), received_at)


def test_a_delivery_is_kept_once_with_its_job(database_url: str) -> None:
    store = _store(database_url)
    assert store.accept_delivery(_delivery("d-1"))
    assert not store.accept_delivery(_delivery("d-1"))  # a redelivery of the same X-GitHub-Delivery
    assert store.delivery_counts() == {("issue_comment", "queued"): 1}
    assert store.queue_depth()["routine"] == 1
    job = store.claim("w", per_repo=4)
    assert job is not None and job.kind == "delivery" and job.payload == {"delivery_id": "d-1"}
    assert job.key == "o/r#3"
    assert store.claim("w", per_repo=4) is None


def test_ready_only_once_migrated(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    bare = AppStore(url)
    ok, why = bare.ready()
    assert not ok and "migrations not applied" in why
    assert db.migrate(bare.engine, 0.0) == [db.LATEST]
    assert db.migrate(bare.engine, 0.0) == []  # idempotent
    assert bare.ready() == (True, "")


def test_an_unsupported_url_is_a_clear_error() -> None:
    from loopbot.errors import InputError

    with pytest.raises(InputError, match="must be a file"):
        AppStore.open("sqlite://")
    with pytest.raises(InputError, match="not supported"):
        AppStore.open("mysql://u@h/db")


def test_security_before_incident_before_routine_before_reconciler(database_url: str) -> None:
    store = _store(database_url)
    store.enqueue("command", "reconcile", "o/a", 1, {})
    store.accept_delivery(_delivery("routine", repo="o/b"))
    store.accept_delivery(_delivery("incident", repo="o/c", labels=("incident",)))
    store.accept_delivery(_delivery("security", repo="o/d", event="dependabot_alert"))
    store.accept_delivery(_delivery("labelled", repo="o/e", labels=("Security",)))
    order = []
    while (job := store.claim("w", per_repo=4)) is not None:
        order.append(job.repo)
    assert order == ["o/d", "o/e", "o/c", "o/b", "o/a"]


def test_the_per_repository_limit_holds_in_the_claim(database_url: str) -> None:
    store = _store(database_url)
    for issue in (1, 2, 3):
        store.enqueue("command", "routine", "o/busy", issue, {})
    store.enqueue("command", "routine", "o/other", 1, {})
    first, second, third = (store.claim("w", per_repo=2) for _ in range(3))
    assert first and second and third
    assert [first.repo, second.repo, third.repo] == ["o/busy", "o/busy", "o/other"]
    assert store.claim("w", per_repo=2) is None  # o/busy is at its limit
    assert store.finish(first.id, "w")
    again = store.claim("w", per_repo=2)
    assert again is not None and again.key == "o/busy#3"


def test_one_running_job_per_plan(database_url: str) -> None:
    store = _store(database_url)
    a = store.enqueue("command", "routine", "o/r", 5, {"n": 1})
    b = store.enqueue("command", "security", "o/r", 5, {"n": 2})
    first = store.claim("w", per_repo=10)
    assert first is not None and first.id == b  # the more urgent one
    assert store.claim("w", per_repo=10) is None  # same plan: waits
    store.finish(first.id, "w")
    second = store.claim("w", per_repo=10)
    assert second is not None and second.id == a


def test_backoff_then_dead_letter(database_url: str) -> None:
    clock = FakeClock()
    store = _store(database_url, clock)
    job_id = store.enqueue("command", "routine", "o/r", 1, {})
    waits = []
    for attempt in range(1, 4):
        job = store.claim("w", per_repo=1)
        assert job is not None and job.id == job_id and job.attempts == attempt
        assert store.fail(job_id, "w", f"boom {attempt}", max_attempts=3) == ("dead" if attempt == 3 else "pending")
        row = store.job(job_id)
        assert row is not None and row.last_error == f"boom {attempt}"
        if attempt < 3:
            wait = row.next_at - clock.wall()
            ceiling = queue.BACKOFF_BASE_SECONDS * 2 ** (attempt - 1)
            assert ceiling / 2 <= wait <= ceiling
            waits.append(wait)
            assert store.claim("w", per_repo=1) is None  # not before its time
            clock.advance(wait)
    assert waits[1] > waits[0]
    dead = store.dead_letters()
    assert [(d.id, d.state, d.attempts) for d in dead] == [(job_id, "dead", 3)]
    clock.advance(10**6)
    assert store.claim("w", per_repo=1) is None


def test_a_dead_workers_job_is_claimed_again_after_its_lease(database_url: str) -> None:
    clock = FakeClock()
    store = _store(database_url, clock)
    job_id = store.enqueue("command", "routine", "o/r", 1, {})
    assert store.claim("dead-worker", per_repo=1, lease_seconds=30) is not None
    clock.advance(29)
    assert store.claim("w2", per_repo=1) is None
    clock.advance(2)
    taken = store.claim("w2", per_repo=1)
    assert taken is not None and taken.id == job_id and taken.attempts == 2
    assert not store.finish(job_id, "dead-worker")  # came back to life: no longer its job
    assert store.finish(job_id, "w2")


def test_a_suspended_installations_jobs_wait(database_url: str) -> None:
    from loopbot.app import registry

    store = _store(database_url)
    registry.installation(store, 9, "acme", suspended=True)
    store.enqueue("command", "routine", "acme/r", 1, {}, installation_id=9)
    assert store.claim("w", per_repo=1) is None
    registry.installation(store, 9, "acme", suspended=False)
    assert store.claim("w", per_repo=1) is not None


def test_two_workers_never_take_the_same_job(database_url: str) -> None:
    seed = _store(database_url)
    ids = [seed.enqueue("command", "routine", f"o/r{n % 7}", n, {}) for n in range(60)]
    taken: Counter[int] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(2)

    def work(name: str) -> None:
        store = _store(database_url)
        start.wait()
        while (job := store.claim(name, per_repo=3)) is not None:
            with lock:
                taken[job.id] += 1
            assert store.finish(job.id, name)
        store.close()

    threads = [threading.Thread(target=work, args=(f"w{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken) == sorted(ids) and set(taken.values()) == {1}


def test_concurrent_claims_respect_the_repository_limit(database_url: str) -> None:
    seed = _store(database_url)
    for issue in range(8):
        seed.enqueue("command", "routine", "o/one", issue, {})
    claimed: list[int] = []
    start = threading.Barrier(4)

    def work(name: str) -> None:
        store = _store(database_url)
        start.wait()
        job = store.claim(name, per_repo=1)
        if job is not None:
            claimed.append(job.id)
        store.close()

    threads = [threading.Thread(target=work, args=(f"w{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(claimed) == 1


def test_a_dispatch_is_recorded_once(database_url: str) -> None:
    store = _store(database_url)
    assert store.begin_dispatch("o/r", 3, "delivery-1", "run") == "new"
    assert store.begin_dispatch("o/r", 3, "delivery-1", "run") == "pending"  # begun, maybe sent
    store.dispatch_sent("o/r", 3, "delivery-1")
    assert store.begin_dispatch("o/r", 3, "delivery-1", "run") == "sent"
    assert store.begin_dispatch("o/r", 4, "delivery-1", "run") == "new"  # another plan
    assert store.dispatch_count("o/r", 3) == 1


def test_pacing_is_shared_by_two_stores_on_one_database(database_url: str) -> None:
    clock = FakeClock()
    one, two = _store(database_url, clock), _store(database_url, clock)
    slots = []
    for n in range(PER_MINUTE + 20):
        slots.append((one if n % 2 else two).reserve_write(42))
        clock.advance(0.25)  # asked for four times a second: far faster than allowed
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(slots))
    for first in slots:
        assert sum(first <= s < first + 60 for s in slots) <= PER_MINUTE
    assert one.reserve_write(7) == clock.wall()  # another installation is not held up


def test_pacing_keeps_the_hourly_limit_and_a_block(database_url: str) -> None:
    clock = FakeClock()
    store = _store(database_url, clock)
    engine = store.engine
    # The hour's budget already spent in the last half hour (rows as earlier writes left them).
    with engine.begin() as conn:
        conn.execute(db.pacing_writes.insert(), [{"installation_id": 5, "at": clock.wall() - 1800 + n}
                                                 for n in range(PER_HOUR)])
    at = store.reserve_write(5)
    assert at == clock.wall() - 1800 + 3600  # when the oldest of them is an hour old
    store.block_writes(6, clock.wall() + 120)  # Retry-After: 120
    assert store.reserve_write(6) == clock.wall() + 120


def test_old_deliveries_and_finished_jobs_are_pruned_but_queued_ones_and_dead_letters_kept(database_url: str) -> None:
    clock = FakeClock()
    store = _store(database_url, clock)
    for name in ("done", "waiting", "dead"):
        store.accept_delivery(_delivery(name, repo=f"o/{name}", received_at=clock.wall()))
    while (job := store.claim("w", per_repo=1)) is not None:
        if job.repo == "o/done":
            store.finish(job.id, "w")
            store.set_outcome("done", "routed")
        elif job.repo == "o/dead":
            store.fail(job.id, "w", "boom", max_attempts=1)
            store.set_outcome("dead", "dead")
        else:
            store.release(job.id, "w", clock.wall() + 10**6)  # still waiting (e.g. no credentials)
    clock.advance(100)
    assert store.prune(clock.wall() - 50) == 2
    assert [d.delivery_id for d in store.recent_deliveries()] == ["waiting"]
    assert len(store.dead_letters()) == 1 and store.queue_depth()["routine"] == 1


def test_an_installation_out_of_write_budget_has_its_jobs_wait_in_the_queue_most_urgent_first(database_url: str) -> None:
    clock = FakeClock()
    store = _store(database_url, clock)
    store.enqueue("command", "routine", "o/a", 1, {}, installation_id=5)
    store.enqueue("command", "routine", "o/b", 1, {}, installation_id=6)  # another installation
    assert store.reserve_write(5) == clock.wall()  # a write was just sent for installation 5
    security = store.enqueue("command", "security", "o/c", 1, {}, installation_id=5)
    taken = store.claim("w", per_repo=5)
    assert taken is not None and taken.repo == "o/b"  # installation 5 waits its second
    assert store.claim("w", per_repo=5) is None
    assert store.next_due() == clock.wall() + 1.0  # when installation 5 may write again
    clock.advance(1.0)
    first = store.claim("w", per_repo=5)
    assert first is not None and first.id == security
