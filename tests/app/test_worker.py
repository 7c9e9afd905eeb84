"""The worker: deliveries routed by loopbot's router with facts from the (fake) GitHub, commands
dispatched once, refusals and status as comments, installation and workflow_run events, and the
reconciler's bounded resume, then blocked. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from typing import Any

import pytest
from sqlalchemy import func, select

from loopbot.app import registry
from loopbot.app.db import jobs
from loopbot.app.queue import PRIORITIES
from loopbot.app.reconcile import ReconcilePolicy, reconcile
from loopbot.app.settings import AppSettings
from loopbot.app.store import AppStore, Delivery
from loopbot.app.worker import Processor, Workers
from loopbot.testing import FakeClock
from tests.app.helpers import World, world
from tests.github.conftest import example, ttl_plan_body

REPO = "acme/kvstore"


@pytest.fixture
def w(database_url: str) -> World:
    made = world(database_url, permissions={"alice": "write", "eve": "read"})
    yield made
    assert made.fake.violations == []


def processor(w: World) -> Processor:
    return Processor(w.store, w.app, w.dispatcher)


def _reconciler_jobs(store: AppStore) -> int:
    """Pending jobs of the reconciler's priority other than dashboard renders."""
    with store.read() as conn:
        return int(conn.scalar(select(func.count()).select_from(jobs).where(
            jobs.c.state == "pending", jobs.c.priority == PRIORITIES["reconcile"], jobs.c.kind != "dashboard")) or 0)


def drain(p: Processor, worker: str = "w") -> int:
    """Carry out every due job; a job held only by its installation's write pacing (due, but not
    claimable before the next slot) gets its second: the fake clock moves on. Returns how many
    jobs were carried out besides the dashboard renders (which any registry change schedules)."""
    claimed: list[str] = []
    claim = p.store.claim

    def counting(*args: Any, **kwargs: Any) -> Any:
        job = claim(*args, **kwargs)
        if job is not None:
            claimed.append(job.kind)
        return job

    p.store.claim = counting
    try:
        for _ in range(1000):
            if p.run(worker, per_repo=2):
                continue
            due, now = p.store.next_due(), p.store.now()
            if due is None or due > now + 5:
                # nothing, or a job that waits for longer (e.g. for App credentials)
                return sum(1 for kind in claimed if kind != "dashboard")
            assert isinstance(p.store.clock, FakeClock)
            p.store.clock.advance(max(due - now, 0.001))
    finally:
        del p.store.claim
    raise AssertionError("jobs never ran")


def deliver(store: AppStore, event: str, payload: dict[str, Any], delivery_id: str) -> str:
    payload.setdefault("installation", {"id": 42})
    payload["repository"] = {**payload.get("repository", {}), "full_name": REPO, "default_branch": "main"}
    assert store.accept_delivery(Delivery(delivery_id, event, payload.get("action"), 42, REPO,
                                          json.dumps(payload).encode(), store.now()))
    return delivery_id


def labeled(w: World, login: str = "alice") -> tuple[int, dict[str, Any]]:
    number = w.fake.add_issue("TTL", ttl_plan_body())
    payload = example("issues", "labeled")
    payload["issue"].update({"number": number, "body": ttl_plan_body(), "labels": []})
    payload["issue"].pop("pull_request", None)
    payload["label"]["name"] = "loopbot:run"
    payload["sender"] = {"login": login, "type": "User", "id": 1}
    return number, payload


def comment(number: int, body: str, login: str) -> dict[str, Any]:
    payload = example("issue_comment", "created")
    payload["issue"].update({"number": number, "body": ttl_plan_body()})
    payload["issue"].pop("pull_request", None)
    payload["comment"].update({"body": body, "user": {"login": login, "type": "User", "id": 2}, "id": 555})
    return payload


def outcome(store: AppStore, delivery_id: str) -> tuple[str, str]:
    found = store.delivery(delivery_id)
    assert found is not None
    return found[1].outcome, found[1].detail


def test_a_writers_label_is_dispatched_once_even_when_its_worker_dies(w: World) -> None:
    number, payload = labeled(w)
    deliver(w.store, "issues", payload, "d-label")
    p = processor(w)
    job = w.store.claim("dies", per_repo=2, lease_seconds=60)
    assert job is not None
    p.handle(job)  # dispatched, then the worker dies before it marks the job done
    w.clock.advance(61)
    assert drain(p) == 1  # claimed again after the lease
    assert [r["inputs"] for r in w.fake.workflow_runs] == [{
        "issue": str(number), "command": "run", "delivery": "d-label",
        "approved": hashlib.sha256(ttl_plan_body().strip().encode()).hexdigest()}]
    assert outcome(w.store, "d-label") == ("routed", f"run dispatched for #{number} (sent before)")
    (loop,) = w.store.loops(REPO)
    assert (loop.issue, loop.status) == (number, "dispatched")


def test_a_readers_command_gets_the_routers_refusal_and_nothing_is_dispatched(w: World) -> None:
    number, _ = labeled(w)
    deliver(w.store, "issue_comment", comment(number, "/loop run", "eve"), "d-eve")
    assert drain(processor(w)) == 1
    assert w.fake.workflow_runs == []
    (said,) = w.fake.comments_on(number)
    assert "@eve" in said["body"] and "write" in said["body"]
    assert outcome(w.store, "d-eve")[0] == "refused"


def test_status_is_a_comment_and_stop_a_dispatch(w: World) -> None:
    number, _ = labeled(w)
    deliver(w.store, "issue_comment", comment(number, "/loop status", "alice"), "d-status")
    deliver(w.store, "issue_comment", comment(number, "/loop stop", "alice"), "d-stop")
    assert drain(processor(w)) == 2
    (said,) = w.fake.comments_on(number)
    assert "No loop has run for this issue yet." in said["body"]
    assert [r["inputs"]["command"] for r in w.fake.workflow_runs] == ["stop"]


def test_the_repositorys_config_is_read_from_its_default_branch(w: World) -> None:
    w.fake.set_branch("main", {".github/loopbot.yml": "labels:\n  run: go\n", "README.md": "hi\n"})
    _, payload = labeled(w)
    deliver(w.store, "issues", payload, "d-default-label")  # loopbot:run is not this repo's run label
    payload = json.loads(json.dumps(payload))
    payload["label"]["name"] = "go"
    deliver(w.store, "issues", payload, "d-go")
    assert drain(processor(w)) == 2
    assert outcome(w.store, "d-default-label")[0] == "ignored"
    assert [r["inputs"]["delivery"] for r in w.fake.workflow_runs] == ["d-go"]


def test_a_refused_dispatch_is_dead_at_once_and_the_issue_hears_why(w: World) -> None:
    w.fake.add_workflow("loopbot-run.yml", {"issue": True, "command": True})  # an old workflow
    number, payload = labeled(w)
    deliver(w.store, "issues", payload, "d-old")
    assert drain(processor(w)) == 1
    (dead,) = w.store.dead_letters()
    assert dead.attempts == 1 and "Unexpected inputs" in dead.last_error
    assert outcome(w.store, "d-old")[0] == "dead"
    (said,) = w.fake.comments_on(number)
    assert "could not start the loop" in said["body"] and "workflow_dispatch" in said["body"]


def test_without_app_credentials_deliveries_wait_and_installation_events_still_count(w: World) -> None:
    _, payload = labeled(w)
    deliver(w.store, "issues", payload, "d-waits")
    created = {"action": "created", "installation": {"id": 42, "account": {"login": "acme"}},
               "repositories": [{"full_name": REPO}]}
    deliver(w.store, "installation", created, "d-install")
    bare = Processor(w.store, None, None)
    assert drain(bare) == 2
    assert outcome(w.store, "d-waits") == ("queued", "")
    assert w.store.queue_depth()["routine"] == 1  # back in the queue, no attempt spent
    assert registry.repository_names(w.store, 42) == [REPO]
    w.clock.advance(61)
    assert drain(processor(w)) == 1 and len(w.fake.workflow_runs) == 1


def test_installation_events_keep_the_registry_and_a_suspended_installation_waits(w: World) -> None:
    def event(action: str, **more: Any) -> dict[str, Any]:
        return {"action": action, "installation": {"id": 77, "account": {"login": "umbrella"}}, **more}

    p = processor(w)
    w.store.accept_delivery(Delivery("i1", "installation", "created", 77, None, json.dumps(event(
        "created", repositories=[{"full_name": "umbrella/a"}, {"full_name": "umbrella/b"}])).encode(), 0.0))
    w.store.accept_delivery(Delivery("i2", "installation_repositories", "added", 77, None, json.dumps(event(
        "added", repositories_added=[{"full_name": "umbrella/c"}],
        repositories_removed=[{"full_name": "umbrella/a"}])).encode(), 0.0))
    w.store.accept_delivery(Delivery("i3", "installation", "suspend", 77, None,
                                     json.dumps(event("suspend")).encode(), 0.0))
    assert drain(p) == 3
    assert registry.repository_names(w.store, 77) == ["umbrella/b", "umbrella/c"]
    w.fake.installation_ids.add(77)
    waiting = w.store.enqueue("command", "security", REPO, 1, {"issue": 1, "command": "stop"},
                              installation_id=77)
    assert p.run("w", per_repo=2) is False  # a suspended installation's job waits
    w.store.accept_delivery(Delivery("i4", "installation", "unsuspend", 77, None,
                                     json.dumps(event("unsuspend")).encode(), 0.0))
    assert p.run("w", per_repo=2)  # the unsuspend itself is not held
    assert p.run("w", per_repo=2)  # and now the waiting job runs (its stop is dispatched)
    assert [r["inputs"]["command"] for r in w.fake.workflow_runs] == ["stop"]
    waiting = w.store.enqueue("command", "reconcile", REPO, 2, {"issue": 2, "command": "stop"},
                              installation_id=77)
    w.store.accept_delivery(Delivery("i5", "installation", "deleted", 77, None,
                                     json.dumps(event("deleted")).encode(), 0.0))
    drain(p)
    assert registry.repository_names(w.store, 77) == []
    job = w.store.job(waiting)
    assert job is not None and (job.state, job.last_error) == ("dead", "the installation was deleted")


def test_a_workflow_run_event_names_the_loops_run(w: World) -> None:
    number, payload = labeled(w)
    deliver(w.store, "issues", payload, "d-1")
    drain(processor(w))
    run = {"action": "in_progress", "workflow_run": {"id": 9001, "display_title": f"loopbot run #{number} [d-1]",
                                                     "status": "in_progress", "conclusion": None}}
    deliver(w.store, "workflow_run", run, "d-run")
    other = {"action": "completed", "workflow_run": {"id": 9002, "display_title": "CI", "conclusion": "success"}}
    deliver(w.store, "workflow_run", other, "d-ci")
    drain(processor(w))
    (loop,) = w.store.loops(REPO)
    assert (loop.workflow_run_id, loop.status) == (9001, "running")
    assert outcome(w.store, "d-ci")[0] == "ignored"


def test_the_reconciler_resumes_a_stale_loop_a_bounded_number_of_times_then_blocks_it(w: World) -> None:
    number, payload = labeled(w)
    deliver(w.store, "issues", payload, "d-1")
    p = processor(w)
    drain(p)
    policy = ReconcilePolicy(stale_after_s=600, max_resumes=2)
    assert reconcile(w.store, policy) == []  # just dispatched: alive
    for round_ in (1, 2):
        w.clock.advance(601)
        (decision,) = reconcile(w.store, policy)
        assert decision.action == "resume" and "no heartbeat" in decision.reason
        assert _reconciler_jobs(w.store) == 1
        reconcile(w.store, policy)  # a second round before the resume is sent adds no second job
        assert _reconciler_jobs(w.store) == 1
        drain(p)
        assert [r["inputs"]["command"] for r in w.fake.workflow_runs] == ["run", *["resume"] * round_]
    w.clock.advance(601)
    (decision,) = reconcile(w.store, policy)
    assert decision.action == "blocked"
    drain(p)
    (loop,) = w.store.loops(REPO)
    assert loop.status == "blocked" and "after 2 automatic resume(s)" in loop.detail
    (said,) = w.fake.comments_on(number)
    assert "looks stuck" in said["body"] and "/loop resume" in said["body"]
    assert len(w.fake.workflow_runs) == 3
    w.clock.advance(601)
    assert reconcile(w.store, policy) == []  # blocked: a human decides


def test_a_run_that_completed_without_a_final_state_is_resumed(w: World) -> None:
    number, payload = labeled(w)
    deliver(w.store, "issues", payload, "d-1")
    p = processor(w)
    drain(p)
    registry.workflow_run(w.store, REPO, number, 5, completed=True, conclusion="failure")
    (decision,) = reconcile(w.store, ReconcilePolicy())
    assert decision.action == "resume" and "completed without a final state" in decision.reason
    seen = registry.Observed("r1", "success", w.clock.wall(), 1.5)
    # Finished after all (its events were lost): recorded, not resumed.
    registry.dispatched(w.store, REPO, number, 42, "run")
    registry.workflow_run(w.store, REPO, number, 6, completed=True, conclusion="success")
    assert reconcile(w.store, ReconcilePolicy(), observe=lambda live: seen) == []
    (loop,) = w.store.loops(REPO)
    assert (loop.status, loop.cost_usd) == ("success", 1.5)


def test_the_async_workers_carry_out_jobs_and_drain_on_stop(w: World) -> None:
    _, payload = labeled(w)
    deliver(w.store, "issues", payload, "d-async")
    settings = AppSettings(per_repo_concurrency=2, reconcile_interval_s=3600)
    workers = Workers(w.store, settings, w.app, n=2, sleep=w.dispatcher.sleep)
    ran = threading.Event()

    class Telling(Processor):
        def run(self, worker: str, per_repo: int) -> bool:
            did = super().run(worker, per_repo)
            if did:
                ran.set()
            return did

    workers.processor = Telling(w.store, w.app, w.dispatcher)

    async def scenario() -> None:
        await workers.start()
        workers.wake()
        assert await asyncio.to_thread(ran.wait, 30)
        await workers.stop(drain_seconds=30)

    asyncio.run(scenario())
    assert outcome(w.store, "d-async")[0] == "routed"
    assert len(w.fake.workflow_runs) == 1


def _state_json(tmp_path, *, finished: bool) -> str:
    """A real LoopState as the Action pushes it to loop/state-<issue>."""
    import subprocess

    from loopbot.config import Config
    from loopbot.core.state import Phase, Status
    from loopbot.goal import parse_goal
    from loopbot.session import create_run
    from loopbot.statepaths import Paths

    repo = tmp_path / "repo"
    repo.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "f").write_text("x\n")
    subprocess.run(["git", "-C", str(repo), "add", "f"], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "i"],
                   check=True)
    goal = parse_goal("id: t\ngoal: g\nacceptance:\n  - run: 'true'\n", "g.yaml")
    state = create_run(goal, "g.yaml", repo, paths=Paths(tmp_path / "state"), model="scripted:x", config=Config(),
                       run_id="t-1-1", remote=None)
    state.spend.cost_usd = 0.75
    if finished:
        state = state.model_copy(update={"phase": Phase.DONE, "status": Status.SUCCESS})
    return state.model_dump_json()


def test_status_and_the_reconciler_read_the_loops_state_from_its_branch(w: World, tmp_path) -> None:
    number, payload = labeled(w)
    deliver(w.store, "issues", payload, "d-1")
    p = processor(w)
    drain(p)
    w.fake.set_branch(f"loop/state-{number}", {"state.json": _state_json(tmp_path, finished=False)},
                      date="2023-11-14T22:30:00Z")
    deliver(w.store, "issue_comment", comment(number, "/loop status", "alice"), "d-status")
    drain(p)
    (said,) = w.fake.comments_on(number)
    assert "t-1-1" in said["body"], said["body"]
    (loop,) = w.store.loops(REPO)
    assert (loop.run_id, loop.status, loop.cost_usd) == ("t-1-1", "running", 0.75)
    assert loop.heartbeat_at == 1_700_001_000.0  # the state branch's commit time
    # It finished and its events were lost: the reconciler reads that and does not resume it.
    w.fake.set_branch(f"loop/state-{number}", {"state.json": _state_json(tmp_path / "b", finished=True)})
    w.clock.advance(10**5)
    workers = Workers(w.store, AppSettings(), w.app)
    workers.processor = p
    asyncio.run(workers.reconcile_once())
    (loop,) = w.store.loops(REPO)
    assert loop.status == "success" and _reconciler_jobs(w.store) == 0
    assert w.store.cost_by_repo(3, w.clock.wall()) == {REPO: {"2023-11-14": 0.75}}  # booked once, when seen


def test_a_repositorys_dashboard_issue_follows_its_loops_one_edit_per_minute(w: World) -> None:
    from loopbot.core.dashboard import MARKER

    number, payload = labeled(w)
    seen: list[float] = []
    p = Processor(w.store, w.app, w.dispatcher, on_dispatch=seen.append)
    deliver(w.store, "issues", payload, "d-1")
    w.clock.advance(3)
    assert drain(p) == 1
    assert len(seen) == 1 and seen[0] >= 3  # the dispatch's latency from the delivery, for /metrics
    w.clock.advance(61)  # the end of the minute: the render that the dispatch asked for is due
    drain(p)
    (board,) = [i for i in w.fake.issues.values() if MARKER in i["body"]]
    assert f"#{number}" in board["body"] and "dispatched" in board["body"]
    path = f"/repos/{REPO}/issues/{board['number']}"
    edits = w.fake.log.count(("PATCH", path))
    # Two changes in one minute: one edit, with the latest status.
    registry.workflow_run(w.store, REPO, number, 77, completed=False, conclusion=None, installation_id=42)
    registry.workflow_run(w.store, REPO, number, 77, completed=True, conclusion="failure", installation_id=42)
    w.clock.advance(61)
    drain(p)
    (again,) = [i for i in w.fake.issues.values() if MARKER in i["body"]]
    assert again["number"] == board["number"]  # edited in place, never a second one
    assert w.fake.log.count(("PATCH", path)) == edits + 1
    assert "actions/runs/77" in again["body"]


def test_a_dispatch_github_took_before_its_worker_died_is_found_past_the_first_page(w: World) -> None:
    """Killed between GitHub taking the dispatch and the record of it: the retried job looks for the
    run by the key in its title, through every page, however many runs were dispatched since."""
    _, payload = labeled(w)
    deliver(w.store, "issues", payload, "d-killed")
    p = processor(w)
    sent = w.store.dispatch_sent

    class Killed(Exception):
        pass

    def die(*args: Any, **kwargs: Any) -> None:
        raise Killed()

    w.store.dispatch_sent = die
    job = w.store.claim("dies", per_repo=2, lease_seconds=60)
    assert job is not None
    with pytest.raises(Killed):
        p.handle(job)
    del w.store.dispatch_sent
    assert w.store.dispatch_sent == sent
    for n in range(150):  # other plans' loops dispatched meanwhile, newer than ours
        w.fake.workflow_runs.append({**w.fake.workflow_runs[0], "id": 50_000 + n,
                                     "display_title": f"loopbot run #{n + 900} [d-other-{n}]",
                                     "inputs": {"delivery": f"d-other-{n}"}})
    w.clock.advance(61)
    drain(p)
    ours = [r for r in w.fake.workflow_runs if r.get("inputs", {}).get("delivery") == "d-killed"]
    assert len(ours) == 1


def test_the_dashboard_is_the_apps_own_issue_not_another_bots_with_the_marker(w: World) -> None:
    from loopbot.core.dashboard import MARKER

    # Another App on the repository (a bot too) opened an issue carrying loopbot's marker.
    other = w.fake.add_issue("loopbot dashboard", MARKER + "\nanother App's issue", author="other-app[bot]")
    w.fake.issues[other]["user"]["type"] = "Bot"
    number, payload = labeled(w)
    p = processor(w)
    deliver(w.store, "issues", payload, "d-1")
    drain(p)
    w.clock.advance(61)
    drain(p)
    boards = [i for i in w.fake.issues.values() if MARKER in i["body"]]
    (own,) = [i for i in boards if i["number"] != other]
    assert own["user"]["login"] == f"{w.fake.app_slug}[bot]" and f"#{number}" in own["body"]
    assert w.fake.issues[other]["body"] == MARKER + "\nanother App's issue"  # left alone
    assert ("PATCH", f"/repos/{REPO}/issues/{other}") not in w.fake.log
