"""A runner killed right after a GitHub write, then `/loop resume` on a fresh runner: exactly one PR,
one progress comment, one review per checker verdict, the loop never rerun, the same outcome as an
uninterrupted run. (Every write position is in bench/github_kill_matrix.py; these are the ends.)"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import httpx
import pytest

from loopbot.action import run_action
from loopbot.core.state import LoopState
from loopbot.forge.github.publisher import progress_marker
from loopbot.workspace.git import git
from tests.github import test_action
from tests.github.test_action import comment, labeled, stale_lease_clock, ttl_plan_body

WRITES = ("POST", "PATCH", "PUT", "DELETE")


class Killed(BaseException):
    """The runner dies: nothing after this point runs."""


@pytest.fixture(autouse=True)
def _examples(example, plan_body):
    test_action._example, test_action._plan = example, plan_body


def dying_after(fake, when: Callable[[httpx.Request], bool] | None) -> httpx.MockTransport:
    """The fake GitHub, through a transport that kills the runner once the first write `when`
    accepts has landed (GitHub did it; the runner never learns)."""
    def handle(request: httpx.Request) -> httpx.Response:
        response = fake.handle(request)
        if when is not None and request.method in WRITES and response.status_code < 400 and when(request):
            raise Killed()
        return response

    return httpx.MockTransport(handle)


def _body(request: httpx.Request) -> str:
    return request.content.decode(errors="replace")


# Where the runner dies: at its first write, mid-loop, and at each end of the publishing phase.
KILLS = {
    "after the running label": lambda r: r.url.path.endswith("/labels") and "loopbot:running" in _body(r),
    "after the first review": lambda r: r.url.path.endswith("/reviews"),
    "after the final check run": lambda r: "check-runs" in r.url.path and '"conclusion":"success"' in _body(r),
    "after ready for review": lambda r: r.url.path == "/graphql",
    "after the done label": lambda r: r.url.path.endswith("/labels") and "loopbot:done" in _body(r),
}
EXPECTED = {"runs": 1, "status": "success", "published": True, "prs": 1, "draft": False, "progress": 1,
            "reviews": True, "labels": ["loopbot:done", "loopbot:plan"], "iterations": 3}


def go(actions, event: str, payload: dict, transport: httpx.MockTransport, *, later: bool = False) -> int:
    """One runner; `later`: after the dead runner's lease on the plan went stale (until then a
    resume is refused as busy: the dead runner could as well be a live one that lost the network)."""
    issue = payload.get("issue") or {}
    if issue.get("body") == test_action.CURRENT_BODY:
        issue["body"] = actions.fake.issues[issue["number"]]["body"]
    env = actions.runner(event, payload)
    return run_action({**os.environ, **env}, transport=transport, sleep=actions.slept.append,
                      lease_clock=stale_lease_clock if later else time.time)



def outcome(actions, issue: int) -> dict:
    fake = actions.fake
    state = LoopState.model_validate_json(git(actions.origin, "show", f"loop/state-{issue}:state.json").stdout)
    runs = git(actions.origin, "log", "--first-parent", "--format=%H", "--grep=after created",
               f"loop/state-{issue}").stdout.split()
    (pr,) = fake.pulls.values()
    reviews = fake.reviews.get(pr["number"], [])
    verdicts = [r for r in state.iterations if r.checker is not None and r.checker.decision != "SKIPPED"]
    return {
        "runs": len(runs), "status": state.status.value, "published": state.published, "prs": len(fake.pulls),
        "draft": pr["draft"], "progress": len([c for c in fake.comments_on(issue) if progress_marker(issue) in c["body"]]),
        "reviews": len(reviews) == len(verdicts) == len({r["body"].splitlines()[0] for r in reviews}),
        "labels": sorted(label for label in fake.labels_of(issue) if label.startswith("loopbot:")),
        "iterations": len(state.iterations),
    }


def test_an_uninterrupted_run_has_the_expected_outcome(actions):
    issue = actions.fake.add_issue("Add TTL", ttl_plan_body(), labels=["loopbot:plan"])
    assert go(actions, "issues", labeled(issue), dying_after(actions.fake, None)) == 0
    assert outcome(actions, issue) == EXPECTED


@pytest.mark.parametrize("where", list(KILLS))
def test_a_kill_after_a_github_write_resumes_to_the_same_outcome(actions, where):
    fake = actions.fake
    issue = fake.add_issue("Add TTL", ttl_plan_body(), labels=["loopbot:plan"])
    with pytest.raises(Killed):
        go(actions, "issues", labeled(issue), dying_after(fake, KILLS[where]))
    assert go(actions, "issue_comment", comment(issue, "/loop resume"), dying_after(fake, None), later=True) == 0
    assert outcome(actions, issue) == EXPECTED
