"""Two runners on one plan, outside any concurrency group (another workflow, a manual dispatch, the
App): the plan's state ref holds a lease (run id, runner, heartbeat) taken by compare-and-swap; a
second runner finds it held and is busy, a stale one is taken over, and every state push is checked
against the lease, so a fenced-out runner's writes are refused and the other's state is unharmed.
Real clones against one bare origin, and the same over real smart HTTP."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from loopbot.config import Config
from loopbot.core.budgets import Charge
from loopbot.core.lease import LEASE_SECONDS
from loopbot.core.state import LoopState, Phase, Status
from loopbot.errors import LeaseHeld, LeaseLost
from loopbot.goal import parse_goal
from loopbot.session import create_run
from loopbot.statepaths import Paths
from loopbot.store.git_state import LEASE_FILE, GitStateStore, LeaseBusy
from loopbot.testing.git_http import serve
from loopbot.workspace.git import git

BRANCH = "loop/state-7"
REF = f"refs/heads/{BRANCH}"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@contextmanager
def served(tmp_path: Path, how: str) -> Iterator[str]:
    """Where the runners clone from: the bare origin's path, or its smart-HTTP address."""
    bare = tmp_path / "served" / "origin.git"
    bare.parent.mkdir()
    seed = tmp_path / "seed"
    git(tmp_path, "init", "-q", "-b", "main", str(seed))
    (seed / "README.md").write_text("hello\n")
    git(seed, "add", "README.md")
    git(seed, "commit", "-qm", "first")
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(seed, "push", "-q", str(bare), "main")
    if how == "file":
        yield str(bare)
        return
    with serve(bare.parent, require_auth=False) as server:
        yield f"{server.url}/origin.git"


def runner(tmp_path: Path, url: str, name: str, clock: Clock) -> GitStateStore:
    checkout = tmp_path / name
    subprocess.run(["git", "clone", "-q", url, str(checkout)], check=True, capture_output=True)
    return GitStateStore(checkout, "origin", BRANCH, runner=f"runner {name}", clock=clock)


def a_state(store: GitStateStore) -> LoopState:
    goal = parse_goal("id: t\ngoal: g\nacceptance:\n  - run: 'true'\n", "g.yaml")
    return create_run(goal, "g.yaml", store.repo, paths=Paths(store.repo.parent / "state"), model="scripted:x",
                      config=Config(), run_id="t-7-1")


def remote_tip(url: str) -> str:
    listed = subprocess.run(["git", "ls-remote", url, REF], capture_output=True, text=True, check=True).stdout
    return listed.split()[0] if listed else ""


def remote_state(url: str, tmp_path: Path) -> tuple[LoopState, str]:
    """The state and lease as origin has them, read by a third clone."""
    reader = tmp_path / f"reader{len(list(tmp_path.glob('reader*')))}"
    subprocess.run(["git", "clone", "-q", url, str(reader)], check=True, capture_output=True)
    git(reader, "fetch", "-q", "origin", f"+{REF}:{REF}")
    state = LoopState.model_validate_json(git(reader, "show", f"{REF}:state.json").stdout)
    lease = git(reader, "show", f"{REF}:{LEASE_FILE}", check=False)
    return state, lease.stdout if lease.returncode == 0 else ""


@pytest.fixture(params=["file", "http"])
def origin(request, tmp_path) -> Iterator[str]:
    with served(tmp_path, request.param) as url:
        yield url


def test_a_second_runner_finds_the_lease_held_and_is_busy(tmp_path, origin, clock):
    a, b = runner(tmp_path, origin, "a", clock), runner(tmp_path, origin, "b", clock)
    state = a_state(a)
    a.create(state)
    before = remote_tip(origin)
    clock.now += LEASE_SECONDS - 1  # one second short of stale

    with pytest.raises(LeaseBusy) as busy:
        b.claim(state.run_id)  # /loop resume from another workflow
    assert isinstance(busy.value, LeaseHeld) and busy.value.status == "busy"
    assert "runner a" in str(busy.value) and state.run_id in str(busy.value) and "/loop stop" in str(busy.value)
    other = a_state(b).model_copy(update={"run_id": "t-7-2"})
    with pytest.raises(LeaseBusy):
        b.create(other)  # a new run on the same plan: the same answer
    assert remote_tip(origin) == before  # B wrote nothing


def test_a_stale_lease_is_taken_over_and_the_old_runner_is_fenced_out(tmp_path, origin, clock):
    a, b = runner(tmp_path, origin, "a", clock), runner(tmp_path, origin, "b", clock)
    state = a_state(a)
    a.create(state)
    a.save(state.model_copy(update={"steps_completed": 1}), "baseline")
    clock.now += LEASE_SECONDS + 1  # A stalls (a lost network, a frozen runner): its lease goes stale

    b.claim(state.run_id)
    taken = b.load(state.run_id).model_copy(update={"steps_completed": 2})
    b.save(taken, "maker")
    b.record_spend(state.run_id, Charge(role="maker", model="m", cost_usd=0.5))

    # A wakes up and goes on writing: every write is refused, none lands.
    with pytest.raises(LeaseLost, match="runner b"):
        a.record_spend(state.run_id, Charge(role="maker", model="m", cost_usd=9.0))
    with pytest.raises(LeaseLost):
        a.save(state.model_copy(update={"steps_completed": 2, "status": Status.STOPPED}), "maker")
    with pytest.raises(LeaseLost):
        a.save(state.model_copy(update={"steps_completed": 3}), "check")  # it stays fenced out
    remote, lease = remote_state(origin, tmp_path)
    assert remote.steps_completed == 2 and remote.status == taken.status and "runner b" in lease
    fresh = runner(tmp_path, origin, "c", clock)
    assert fresh.latest() is not None and fresh.spent(state.run_id).cost_usd == 0.5  # A's bill never landed


def test_a_runner_that_renews_its_heartbeat_keeps_the_lease(tmp_path, origin, clock):
    a, b = runner(tmp_path, origin, "a", clock), runner(tmp_path, origin, "b", clock)
    state = a_state(a)
    a.create(state)
    clock.now += LEASE_SECONDS - 100
    a.renew()  # the heartbeat (a long evaluator command runs meanwhile: no checkpoint for minutes)
    clock.now += LEASE_SECONDS - 100
    with pytest.raises(LeaseBusy):
        b.claim(state.run_id)
    clock.now += 200
    b.claim(state.run_id)  # now it is stale
    with pytest.raises(LeaseLost):
        a.renew()


def test_a_finished_or_suspended_run_frees_the_lease_at_once(tmp_path, origin, clock):
    a, b = runner(tmp_path, origin, "a", clock), runner(tmp_path, origin, "b", clock)
    state = a_state(a)
    a.create(state)
    a.save(state.model_copy(update={"status": Status.SUCCESS, "phase": Phase.DONE, "steps_completed": 5}),
           "finish")
    _, lease = remote_state(origin, tmp_path)
    assert lease == ""
    b.claim(state.run_id)  # no wait: `/loop resume` after a stop or a budget runs at once
    b.save(b.load(state.run_id), "published")


def test_two_runners_claiming_at_once_one_wins(tmp_path, origin, clock):
    a = runner(tmp_path, origin, "a", clock)
    state = a_state(a)
    a.create(state)
    a.release(state.run_id)
    b = runner(tmp_path, origin, "b", clock)

    class Racing(GitStateStore):
        raced = False

        def fetch(self) -> bool:
            found = super().fetch()
            if not Racing.raced:  # A claims between B's fetch and B's push
                Racing.raced = True
                a.claim(state.run_id)
            return found

    racer = Racing(b.repo, "origin", BRANCH, runner="runner b", clock=clock)
    with pytest.raises(LeaseBusy, match="runner a"):
        racer.claim(state.run_id)
    a.save(state.model_copy(update={"steps_completed": 1}), "baseline")  # A's lease is intact


def test_a_push_that_fails_for_the_network_is_not_a_lost_lease(tmp_path, clock):
    with served(tmp_path, "file") as url:
        a = runner(tmp_path, url, "a", clock)
        state = a_state(a)
        a.create(state)
        moved = tmp_path / "moved.git"
        Path(url).rename(moved)  # origin unreachable for a moment
        a.record_spend(state.run_id, Charge(role="maker", model="m", cost_usd=0.25))  # best effort: kept locally
        Path(moved).rename(url)
        a.save(state.model_copy(update={"steps_completed": 1}), "baseline")  # carries the ledger
        fresh = runner(tmp_path, url, "c", clock)
        assert fresh.latest() is not None and fresh.spent(state.run_id).cost_usd == 0.25


def test_a_fresh_lease_whose_holders_job_ended_is_taken_and_its_holder_fenced_out(tmp_path, clock):
    with served(tmp_path, "file") as url:
        a = runner(tmp_path, url, "a", clock)
        a.job = "github-actions:101:1"
        state = a_state(a)
        a.create(state)
        asked: list[str] = []

        def ended(lease) -> bool:
            asked.append(lease.job)
            return lease.job == "github-actions:101:1"

        b = GitStateStore(tmp_path / "b-checkout", "origin", BRANCH, runner="runner b", clock=clock,
                          holder_ended=ended, job="github-actions:102:1")
        subprocess.run(["git", "clone", "-q", url, str(b.repo)], check=True, capture_output=True)
        b.claim(state.run_id)  # the lease is seconds old, but its job is over
        assert asked == ["github-actions:101:1"]
        _, lease = remote_state(url, tmp_path)
        assert "runner b" in lease and "github-actions:102:1" in lease
        with pytest.raises(LeaseLost):
            a.save(state.model_copy(update={"steps_completed": 1}), "baseline")

        c = GitStateStore(tmp_path / "c-checkout", "origin", BRANCH, runner="runner c", clock=clock,
                          holder_ended=ended)
        subprocess.run(["git", "clone", "-q", url, str(c.repo)], check=True, capture_output=True)
        with pytest.raises(LeaseBusy):
            c.claim(state.run_id)  # B's job is running: its lease holds


def test_a_push_whose_answer_was_lost_is_not_mistaken_for_another_runner(tmp_path, clock, monkeypatch):
    """The push lands but its answer is lost, and asking the remote fails too: the write is kept
    locally. The next write finds the remote at that commit of this runner's own (not the tip it
    last saw) and goes on from it, instead of calling itself fenced out."""
    import loopbot.store.git_state as git_state

    real_git = git_state.git
    faults = {"push": 0, "ls-remote": 0}

    def flaky(repo, *args, **kwargs):
        done = real_git(repo, *args, **kwargs)
        if args and args[0] in faults and faults[args[0]] > 0:
            faults[args[0]] -= 1
            return subprocess.CompletedProcess(done.args, 128, "", "fatal: the remote end hung up unexpectedly")
        return done

    with served(tmp_path, "file") as url:
        a = runner(tmp_path, url, "a", clock)
        state = a_state(a)
        a.create(state)
        monkeypatch.setattr(git_state, "git", flaky)
        faults.update({"push": 1, "ls-remote": 1})  # the push lands; both answers are lost
        a.record_spend(state.run_id, Charge(role="maker", model="m", cost_usd=0.25))
        a.save(state.model_copy(update={"steps_completed": 1}), "baseline")  # no LeaseLost
        monkeypatch.setattr(git_state, "git", real_git)
        remote, lease = remote_state(url, tmp_path)
        assert remote.steps_completed == 1 and "runner a" in lease
        fresh = runner(tmp_path, url, "c", clock)
        assert fresh.latest() is not None and fresh.spent(state.run_id).cost_usd == 0.25
