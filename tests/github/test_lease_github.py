"""Two runners on one plan on GitHub, outside the workflow's concurrency group (another workflow, a
manual dispatch, the App): the second is busy and says so where it was asked; one that takes over a
stale lease finishes the loop, and the runner it took it from stops at its next write (status
lease_lost) without touching the other's state, branch or pull request."""

from __future__ import annotations

import pytest

from loopbot.core.state import LoopState, Status
from loopbot.forge.github.publisher import progress_marker
from loopbot.workspace.git import git
from tests.github import test_action
from tests.github.test_action import comment, labeled, run, stale_lease_clock, ttl_plan_body


@pytest.fixture(autouse=True)
def _examples(example, plan_body):
    test_action._example, test_action._plan = example, plan_body


def _outputs(actions, n: int) -> dict[str, str]:
    text = (actions.root / f"runner{n}" / "output").read_text()
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def _state(actions, issue: int) -> LoopState:
    return LoopState.model_validate_json(git(actions.origin, "show", f"loop/state-{issue}:state.json").stdout)


def test_a_second_runner_on_a_running_plan_is_busy_and_says_so(actions):
    fake = actions.fake
    issue = fake.add_issue("Add TTL", ttl_plan_body(), labels=["loopbot:plan"])
    seen: dict[str, str] = {}

    def another_runner_meanwhile(state: LoopState) -> None:
        if state.iteration == 2 and state.phase.value == "check" and not seen:
            before = len(fake.comments_on(issue))
            assert run(actions, "issue_comment", comment(issue, "/loop run", "bob")) == 0
            seen.update(actions.outputs())
            (said,) = fake.comments_on(issue)[before:]
            seen["said"] = said["body"]

    assert run(actions, "issues", labeled(issue), on_checkpoint=another_runner_meanwhile) == 0
    assert seen["status"] == "busy" and "@bob" in seen["said"] and "is being run by" in seen["said"]
    assert "/loop stop" in seen["said"]
    assert _outputs(actions, 1)["status"] == "success"  # the first runner was not disturbed
    assert len(fake.pulls) == 1 and _state(actions, issue).status == Status.SUCCESS


def test_a_runner_whose_stale_lease_was_taken_over_stops_without_harm(actions):
    fake = actions.fake
    issue = fake.add_issue("Add TTL", ttl_plan_body(), labels=["loopbot:plan"])
    taken: dict[str, object] = {}

    def stall_while_another_takes_over(state: LoopState) -> None:
        # Runner A stalls here past its lease; runner B (its clock says so) resumes the run to the end.
        if state.iteration == 2 and state.phase.value == "check" and not taken:
            taken["code"] = run(actions, "issue_comment", comment(issue, "/loop resume"), lease_clock=stale_lease_clock)
            taken["state"] = _state(actions, issue)
            pr = next(iter(fake.pulls.values()))
            taken["head"] = git(actions.origin, "rev-parse", pr["head"]["ref"]).stdout.strip()
            taken["comments"] = len(fake.comments_on(issue))

    assert run(actions, "issues", labeled(issue), on_checkpoint=stall_while_another_takes_over) == 2

    assert taken["code"] == 0 and _outputs(actions, 2)["status"] == "success"
    assert _outputs(actions, 1)["status"] == "lease_lost"
    final = _state(actions, issue)
    assert final == taken["state"] and final.status == Status.SUCCESS and final.published
    (pr,) = fake.pulls.values()
    assert git(actions.origin, "rev-parse", pr["head"]["ref"]).stdout.strip() == taken["head"]
    assert len(fake.comments_on(issue)) == taken["comments"]  # A wrote nothing more to GitHub
    assert len([c for c in fake.comments_on(issue) if progress_marker(issue) in c["body"]]) == 1
    assert "loopbot:done" in fake.labels_of(issue) and "loopbot:running" not in fake.labels_of(issue)


def _killed_mid_loop(actions) -> int:
    """Runner 1 takes the plan and dies mid-loop (its lease fresh, never to be renewed)."""
    fake = actions.fake
    issue = fake.add_issue("Add TTL", ttl_plan_body(), labels=["loopbot:plan"])

    class Killed(BaseException):
        pass

    def die(state: LoopState) -> None:
        if state.iteration == 2 and state.phase.value == "check":
            raise Killed()

    with pytest.raises(Killed):
        run(actions, "issues", labeled(issue), on_checkpoint=die)
    return issue


@pytest.mark.parametrize("how", ["a later workflow run", "a re-run of the same run"])
def test_a_lease_whose_job_github_says_ended_is_taken_at_once(actions, how):
    # A job killed, cancelled or timed out renews nothing: once GitHub says its attempt completed,
    # the next runner resumes now, not when the lease goes stale ten minutes later.
    fake = actions.fake
    issue = _killed_mid_loop(actions)
    run_id, attempt = actions.job_of(1)
    if how == "a later workflow run":
        fake.job(run_id, attempt, status="completed")
    else:
        fake.job(run_id, attempt + 1, status="in_progress")  # "Re-run jobs": attempt 1 is over
        actions.next_job = (run_id, attempt + 1)
    assert run(actions, "issue_comment", comment(issue, "/loop resume")) == 0
    assert actions.outputs()["status"] == "success"
    final = _state(actions, issue)
    assert final.status == Status.SUCCESS and final.published and len(fake.pulls) == 1


def test_a_lease_whose_job_is_still_running_on_github_stays_busy(actions):
    fake = actions.fake
    issue = _killed_mid_loop(actions)
    fake.job(*actions.job_of(1), status="in_progress")  # GitHub has not noticed the runner died yet
    assert run(actions, "issue_comment", comment(issue, "/loop resume")) == 0
    assert actions.outputs()["status"] == "busy"
    assert _state(actions, issue).status != Status.SUCCESS
