"""The kill and fault harness: `loopbot` killed at every step boundary and at random moments (the
pid or its whole process group, inside git plumbing too), resumed, and compared with an
uninterrupted run; two resumes at once; signals; starts that fail; git debris; store faults.

Chains run in parallel threads (each one a chain of real subprocesses). Random kill times come
from a seed printed with every failure (LOOPBOT_KILL_SEED reproduces a run). Long soaks and the
10,000-file repository are in bench/kill_matrix.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from loopbot.examples import KVSTORE
from loopbot.statepaths import Paths
from loopbot.store.sqlite import SqliteStore
from loopbot.testing.killharness import Case, chain, clean_env, loopbot_argv
from loopbot.workspace.git import git


def _env() -> dict[str, str]:
    return clean_env()


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(loopbot_argv(*args), env={**_env(), **(env or {})}, capture_output=True, text=True,
                          timeout=300)

WORKERS = 3
SEED = int(os.environ.get("LOOPBOT_KILL_SEED", str(int(time.time()))))


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, object], int, int]:
    case = Case(tmp_path_factory.mktemp("reference"))
    done = subprocess.run(case.run_argv(), env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    steps = int(case.state().steps_completed)
    assert steps >= 15
    outcome = case.outcome()
    assert outcome["status"] == "success" and outcome["clean_clone_failures"] == []
    return outcome, steps, case.delivered_calls()


def test_sigkill_after_every_step_then_resume_matches_an_uninterrupted_run(tmp_path, reference):
    """One chain kills every step boundary in turn: the run dies after step 1, its resume after
    step 2, and so on, and the last resume finishes. Each boundary is resumed from exactly once, at a
    cost of one run rather than one run per boundary; the independent matrix (a kill at step k, then
    one resume to the end, for every k) is `python bench/kill_matrix.py --every-step`."""
    expected, steps, delivered_uninterrupted = reference
    case = Case(tmp_path / "chain")
    argv = case.run_argv()
    for step in range(1, steps + 1):
        killed = subprocess.run(argv, env={**_env(), "LOOPBOT_FAULT_KILL_AFTER_STEP": str(step)},
                                capture_output=True, text=True, timeout=300)
        assert killed.returncode == -signal.SIGKILL, (step, killed.stdout, killed.stderr)
        assert case.state().steps_completed == step, f"killed after step {step}"
        argv = case.resume_argv()
    resumed = subprocess.run(argv, env=_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, (resumed.stdout, resumed.stderr)
    assert case.outcome() == expected
    # Every reply the model delivered is in the ledger, and none was asked for twice.
    assert case.state().spend.model_calls == case.delivered_calls() == delivered_uninterrupted


def test_sigkill_at_random_moments_of_the_pid_or_the_group(tmp_path, reference):
    """Kills land anywhere: mid-model-call, mid-evaluation, inside git plumbing, before the first
    checkpoint. Every chain ends as the uninterrupted run did, and the ledger counts every reply
    but at most the one in flight at each kill."""
    expected, _, _ = reference
    rng = random.Random(SEED)
    # Four chains a run (a new seed each time); bench/kill_matrix.py runs twenty on a large repo.
    plans = [[(rng.uniform(0.3, 3.5), rng.random() < 0.5) for _ in range(rng.choice((1, 2, 3)))] for _ in range(4)]

    def one(index: int) -> tuple[int, tuple[dict[str, object], int, int, list[str]]]:
        return index, chain(Case(tmp_path / f"r{index}"), plans[index])

    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(one, range(len(plans))))
    for index, (got, spent, delivered, debris) in results:
        where = f"seed {SEED}, chain {index}, kills {plans[index]}"
        assert got == expected, where
        assert delivered - len(plans[index]) <= spent <= delivered, (where, spent, delivered)
        assert debris == [], (where, debris)


def test_two_resumes_at_once_exactly_one_runs(tmp_path, reference):
    expected, _, _ = reference
    case = Case(tmp_path / "c")
    killed = subprocess.run(case.run_argv(), env={**_env(), "LOOPBOT_FAULT_KILL_AFTER_STEP": "3"},
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL
    before = case.delivered_calls()
    procs = [subprocess.Popen(case.resume_argv(), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stdout.read() if p.stdout else "", p.stderr.read() if p.stderr else "")
               for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, _, err in results if code == 2)
    assert "is being run by" in loser and "Traceback" not in loser
    assert case.outcome() == expected
    # One owner: the model was asked exactly what one uninterrupted run asks, and the ledger agrees.
    assert case.delivered_calls() == reference[2] == case.state().spend.model_calls
    assert case.delivered_calls() > before


def test_git_lock_files_left_by_a_kill_are_repaired_by_resume(tmp_path, reference):
    expected, _, _ = reference
    case = Case(tmp_path / "c")
    killed = subprocess.run(case.run_argv(), env={**_env(), "LOOPBOT_FAULT_KILL_AFTER_STEP": "4"},
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL
    state = case.state()
    admin = case.repo / ".git" / "worktrees" / Path(state.worktree).name
    for lock in (admin / "index.lock", admin / "HEAD.lock", case.repo / ".git" / "refs" / "heads" / f"{state.branch}.lock"):
        lock.parent.mkdir(parents=True, exist_ok=True)
        lock.write_text("")
    resumed = cli("resume", state.run_id, "--repo", str(case.repo), "--quiet")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert case.outcome() == expected


def test_a_deleted_worktree_is_recreated_at_the_checkpoint(tmp_path, reference):
    import shutil

    expected, _, _ = reference
    case = Case(tmp_path / "c")
    killed = subprocess.run(case.run_argv(), env={**_env(), "LOOPBOT_FAULT_KILL_AFTER_STEP": "6"},
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL
    shutil.rmtree(case.state().worktree)
    resumed = cli("resume", case.run_id(), "--repo", str(case.repo), "--quiet")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert case.outcome() == expected


# -- signals ------------------------------------------------------------------------------------

def _slow_goal(root: Path, flag: Path) -> Path:
    """The demo goal with a check that hangs while `flag` exists (the flag lives in .git, which the
    sandbox sees read-only)."""
    goal = yaml.safe_load((KVSTORE / "goal.yaml").read_text())
    goal["acceptance"].append({"run": f"test ! -e {flag} || sleep 120"})
    path = root / "slow-goal.yaml"
    path.write_text(yaml.safe_dump(goal))
    return path


def _wait_for_process(marker: str, proc: subprocess.Popen[str]) -> None:
    """Until a process with `marker` in its command line runs (polling /proc), or `proc` ends."""
    while proc.poll() is None:
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                if marker in cmdline.read_bytes().decode(errors="replace"):
                    return
            except OSError:
                continue
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=0.05)
    raise AssertionError(f"{marker!r} never ran: {proc.stdout.read() if proc.stdout else ''}")


def _held_run(tmp_path: Path) -> tuple[Case, Path, subprocess.Popen[str]]:
    """A run started with the hanging check, returned once that check is running."""
    root = tmp_path / "c"
    root.mkdir()
    case = Case(root)
    flag = case.repo / ".git" / "slow-flag"
    flag.write_text("")
    case.goal = _slow_goal(root, flag)
    proc = subprocess.Popen(case.run_argv(), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The marker names this test's own flag: a dying command of an earlier test must not match.
    _wait_for_process(f"{flag} || sleep 120", proc)
    return case, flag, proc


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_within_seconds_and_the_run_resumes_to_success(tmp_path, signum):
    case, flag, proc = _held_run(tmp_path)
    sent = time.monotonic()
    proc.send_signal(signum)
    code = proc.wait(timeout=60)
    took = time.monotonic() - sent
    out, err = proc.stdout.read() if proc.stdout else "", proc.stderr.read() if proc.stderr else ""
    assert code == 3, out + err
    assert took < 10, took
    assert "SUSPENDED CANCELLED" in out and "Traceback" not in out + err
    assert "loopbot resume" in out
    state = case.state()
    assert state.suspended is not None and not state.finished

    flag.unlink()
    resumed = cli("resume", state.run_id, "--repo", str(case.repo), "--quiet")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert case.state().status.value == "success"
    assert case.state().spend.model_calls == case.delivered_calls()


def test_a_second_signal_exits_at_once_and_the_run_stays_resumable(tmp_path):
    case, flag, proc = _held_run(tmp_path)
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=60)
    assert code in (3, 128 + signal.SIGTERM), proc.stderr.read() if proc.stderr else ""
    flag.unlink()
    resumed = cli("resume", case.run_id(), "--repo", str(case.repo), "--quiet")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr


# -- starts that fail leave nothing -------------------------------------------------------------

def _nothing_made(repo: Path) -> None:
    root = Paths.for_repo(repo).root
    assert not (root / "worktrees").exists() or not list((root / "worktrees").iterdir())
    assert git(repo, "for-each-ref", "refs/heads/loop/").stdout == ""
    if Paths.for_repo(repo).db.exists():
        store = SqliteStore(Paths.for_repo(repo).db)
        assert store.run_ids() == [] and store.branches() == []
        store.close()


@pytest.mark.parametrize(("extra", "env", "expected"), [
    (["--model", "anthropic:claude-sonnet-5"], {"ANTHROPIC_API_KEY": ""}, "ANTHROPIC_API_KEY is not set"),
    (["--model", "anthropic:claude-unpriced-9"], {"ANTHROPIC_API_KEY": "x"}, "unknown anthropic model"),
    (["--model", "scripted:/nonexistent/script.yaml"], {}, "no such file"),
    (["--model", "scripted:{script}", "--remote", "upstream"], {}, "remote 'upstream' does not exist"),
    (["--model", "scripted:{script}", "--config", "/nonexistent/loopbot.yml"], {}, "no such config file"),
])
def test_a_start_that_fails_exits_2_and_leaves_nothing_behind(tmp_path, extra, env, expected):
    case = Case(tmp_path / "c")
    args = [a.replace("{script}", str(case.script)) for a in extra]
    result = cli("run", str(KVSTORE / "goal.yaml"), "--repo", str(case.repo), *args, "--quiet", env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr
    _nothing_made(case.repo)


def test_a_remote_with_a_relative_path_is_the_one_the_user_means(tmp_path):
    case = Case(tmp_path / "c")
    git(case.repo, "remote", "set-url", "origin", os.path.relpath(case.origin, case.repo))
    result = cli("run", str(KVSTORE / "goal.yaml"), "--repo", str(case.repo), "--model", f"scripted:{case.script}",
                 "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    assert case.state().branch in git(case.origin, "branch", "--list", "loop/*").stdout
    git(case.repo, "remote", "set-url", "origin", "../nowhere.git")
    again = cli("run", str(KVSTORE / "goal.yaml"), "--repo", str(case.repo), "--model", f"scripted:{case.script}")
    assert again.returncode == 2 and "does not exist" in again.stderr


def test_a_rejected_push_exits_3_and_resume_pushes(tmp_path):
    case = Case(tmp_path / "c")
    hook = case.origin / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'protected by policy' >&2\nexit 1\n")
    hook.chmod(0o755)
    result = subprocess.run(case.run_argv(), env=_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "PUSH_PENDING" in result.stdout and "protected by policy" in result.stdout
    hook.unlink()
    again = cli("resume", case.run_id(), "--repo", str(case.repo), "--quiet")
    assert again.returncode == 0, again.stdout + again.stderr
    assert case.state().branch in git(case.origin, "branch", "--list", "loop/*").stdout
    assert cli("resume", case.run_id(), "--repo", str(case.repo)).stdout.startswith(f"run {case.run_id()} already finished")


# -- store faults, cleanup, abandon -------------------------------------------------------------

def test_a_damaged_database_is_a_clear_error_naming_the_file(tmp_path):
    case = Case(tmp_path / "c")
    db = Paths.for_repo(case.repo).db
    db.parent.mkdir(parents=True, exist_ok=True)
    db.write_bytes(b"overwritten by something else entirely " * 4)
    for args in (("status", "--repo", str(case.repo)),
                 ("run", str(KVSTORE / "goal.yaml"), "--repo", str(case.repo), "--model", f"scripted:{case.script}"),
                 ("resume", "x", "--repo", str(case.repo))):
        result = cli(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert str(db) in result.stderr and "move it aside" in result.stderr and "Traceback" not in result.stderr


def test_abandon_and_gc_remove_a_dead_runs_worktree_and_branch(tmp_path):
    case = Case(tmp_path / "c")
    killed = subprocess.run(case.run_argv(), env={**_env(), "LOOPBOT_FAULT_KILL_AFTER_STEP": "2"},
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL
    state = case.state()
    stray = Paths.for_repo(case.repo).root / "worktrees" / "left-by-an-old-version"
    stray.mkdir()
    listing = json.loads(cli("status", "--repo", str(case.repo), "--json").stdout)
    assert (listing["branch"], listing["status"], listing["phase"]) == (state.branch, "running", "guard")
    dry = cli("gc", "--repo", str(case.repo), "--dry-run")
    assert "left-by-an-old-version" in dry.stdout and state.run_id not in dry.stdout  # resumable: kept
    assert cli("abandon", state.run_id, "--repo", str(case.repo)).returncode == 0
    assert cli("resume", state.run_id, "--repo", str(case.repo)).returncode == 1  # final now
    cleaned = cli("gc", "--repo", str(case.repo))
    assert cleaned.returncode == 0, cleaned.stderr
    assert not Path(state.worktree).exists() and not stray.exists()
    assert git(case.repo, "for-each-ref", "refs/heads/loop/").stdout == ""
    # Idempotent for this repository (scratch directories of other tests' killed processes, run
    # in parallel, may still be swept: they are machine-wide).
    again = cli("gc", "--repo", str(case.repo)).stdout
    assert "worktree" not in again and "branch" not in again


def test_status_json_reports_a_suspension(tmp_path):
    case = Case(tmp_path / "c")
    hook = case.origin / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\nexit 1\n")
    hook.chmod(0o755)
    assert subprocess.run(case.run_argv(), env=_env(), capture_output=True, timeout=300).returncode == 3
    record = json.loads(cli("status", "--repo", str(case.repo), "--json").stdout)
    assert record["suspended"] == "PUSH_PENDING" and record["status"] == "success"


def test_loopbot_stop_suspends_a_run_mid_step(tmp_path):
    case, flag, proc = _held_run(tmp_path)
    assert cli("stop", case.run_id(), "--repo", str(case.repo)).returncode == 0
    sent = time.monotonic()
    code = proc.wait(timeout=60)
    assert code == 3 and time.monotonic() - sent < 15, proc.stdout.read() if proc.stdout else ""
    assert case.state().suspended is not None
    flag.unlink()
    resumed = cli("resume", case.run_id(), "--repo", str(case.repo), "--quiet")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
