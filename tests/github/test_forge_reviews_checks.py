"""The checker's verdict on a loop PR: GitHub refuses REQUEST_CHANGES from the PR's own author
(which loopbot is), so a rejection is a COMMENT saying so, asked once per PR. Check runs of
superseded heads are completed, never left in progress."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopbot.forge.github.forge import GitHubError, GitHubForge, connect
from loopbot.testing.fake_github import FakeGitHub
from tests.github import test_action
from tests.github.test_action import labeled, run, ttl_plan_body

CONTRACT = Path(__file__).resolve().parents[1] / "contracts" / "github-openapi.trimmed.json"
H1, H2, H3 = "1" * 40, "2" * 40, "3" * 40


@pytest.fixture(autouse=True)
def _examples(example, plan_body):
    test_action._example, test_action._plan = example, plan_body


def forge_for(fake: FakeGitHub) -> GitHubForge:
    return connect(owner="acme", repo="kvstore", api_url="https://api.github.com", token="ghs_" + "F" * 36,
                   transport=fake.transport(), sleep=lambda s: None)


def review_posts(fake: FakeGitHub) -> int:
    return len([entry for entry in fake.log if entry[0] == "POST" and entry[1].endswith("/reviews")])


def test_a_rejection_on_loopbots_own_pr_is_a_comment_asked_once(fake):
    forge = forge_for(fake)
    pr = forge.open_pr("loop/1-x", "main", "t", "b")  # opened by the token: GitHub's author is loopbot
    forge.review(pr, "- no tests", marker="<!-- loopbot:review run=r iteration=1 -->", request_changes=True)
    (first,) = fake.reviews[pr.number]
    assert first["state"] == "COMMENT" and "no tests" in first["body"] and "own pull request" in first["body"]
    assert review_posts(fake) == 2  # REQUEST_CHANGES refused, then the COMMENT
    forge.review(pr, "- still no tests", marker="<!-- loopbot:review run=r iteration=2 -->", request_changes=True)
    assert review_posts(fake) == 3  # GitHub's answer was remembered: no second refused request
    assert [r["state"] for r in fake.reviews[pr.number]] == ["COMMENT", "COMMENT"]


def test_a_rejection_on_someone_elses_pr_requests_changes(fake):
    number = fake.add_pull("loop/1-x", author="alice")
    forge = forge_for(fake)
    pr = forge.find_pr("loop/1-x")
    assert pr is not None and pr.number == number
    forge.review(pr, "- no tests", marker="<!-- loopbot:review run=r iteration=1 -->", request_changes=True)
    assert [r["state"] for r in fake.reviews[number]] == ["REQUEST_CHANGES"]


def test_other_refusals_of_a_review_are_not_turned_into_comments(fake):
    number = fake.add_pull("loop/1-x", author="alice")
    forge = forge_for(fake)
    pr = forge.find_pr("loop/1-x")
    assert pr is not None
    fake.throttle("primary", seconds=7200, method="POST")  # a limit that will not lift during the run
    with pytest.raises(GitHubError):
        forge.review(pr, "- no tests", marker="<!-- loopbot:review run=r iteration=1 -->", request_changes=True)
    assert fake.reviews.get(number, []) == []


def test_a_new_head_completes_the_check_runs_of_the_heads_before_it(fake):
    forge = forge_for(fake)
    forge.check_run(H1, status="in_progress", title="iteration 1", summary="s")
    forge.check_run(H1, status="in_progress", title="iteration 1 again", summary="s")
    forge.check_run(H2, status="in_progress", title="iteration 2", summary="s")
    runs = {r["head_sha"]: r for r in fake.check_runs.values()}
    assert runs[H1]["status"] == "completed" and runs[H1]["conclusion"] == "cancelled"
    assert "superseded" in runs[H1]["output"]["title"] and runs[H2]["status"] == "in_progress"
    # A fresh runner (a new forge) resuming the loop is told the earlier heads.
    forge_for(fake).check_run(H3, status="in_progress", title="iteration 3", summary="s", supersedes=[H1, H2])
    runs = {r["head_sha"]: r for r in fake.check_runs.values()}
    assert runs[H2]["conclusion"] == "cancelled" and runs[H3]["status"] == "in_progress"
    assert runs[H1]["output"]["title"].startswith("superseded by 222")  # settled once, not rewritten


def test_a_loop_leaves_no_check_run_in_progress(actions):
    fake = actions.fake
    issue = fake.add_issue("Add expiration (TTL) support to KVStore", ttl_plan_body(), labels=["loopbot:plan"])

    assert run(actions, "issues", labeled(issue)) == 0

    runs = list(fake.check_runs.values())
    assert len(runs) >= 2 and all(r["status"] == "completed" for r in runs)
    assert [r["conclusion"] for r in runs].count("success") == 1
    assert all(r["conclusion"] == "cancelled" for r in runs if r["conclusion"] != "success")
    # The checker's rejection on loopbot's own PR is a comment, as GitHub allows.
    (pr,) = fake.pulls.values()
    assert [r["state"] for r in fake.reviews[pr["number"]]] == ["COMMENT", "COMMENT"]
    assert "own pull request" in fake.reviews[pr["number"]][0]["body"]
