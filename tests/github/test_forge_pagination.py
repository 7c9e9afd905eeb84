"""Every list the forge reads is read to its end: GitHub serves pages (30 by default, 100 at most)
with a `Link` header, and what loopbot looks for is often past the first one."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ttl_plan_body

from loopbot.forge.github.forge import GitHubForge, connect
from loopbot.forge.github.publisher import progress_marker, review_marker
from loopbot.testing.fake_github import FakeGitHub

CONTRACT = Path(__file__).resolve().parents[1] / "contracts" / "github-openapi.trimmed.json"


@pytest.fixture
def fake():
    fake = FakeGitHub(CONTRACT, permissions={"alice": "write"})
    yield fake
    assert fake.violations == []  # nothing outside the allow-list or GitHub's description, no Link followed blindly


def forge_for(fake: FakeGitHub, slept: list[float] | None = None) -> GitHubForge:
    return connect(owner="acme", repo="kvstore", api_url="https://api.github.com", token="ghs_" + "F" * 36,
                   transport=fake.transport(), sleep=(slept if slept is not None else []).append)


def test_the_fake_pages_like_github(fake):
    """The fake's pages are GitHub's: 30 by default, never more than 100, a Link header whose URLs
    name the repository by id (a client that fetched them blindly would leave the allow-list)."""
    issue = fake.add_issue("t", "b")
    for n in range(150):
        fake.add_comment(issue, f"c{n}")
    forge = forge_for(fake)
    first = forge.gh.rest.issues.list_comments("acme", "kvstore", issue)
    assert len(first.json()) == 30
    assert 'rel="next"' in first.headers["link"] and "/repositories/1300192/issues/" in first.headers["link"]
    assert "page=5>; rel=\"last\"" in first.headers["link"]
    big = forge.gh.rest.issues.list_comments("acme", "kvstore", issue, per_page=500, page=2)
    assert [c["body"] for c in big.json()] == [f"c{n}" for n in range(100, 150)]
    assert 'rel="next"' not in big.headers["link"] and 'rel="prev"' in big.headers["link"]


def test_150_comments_progress_on_page_2_context_on_page_3(fake):
    fake.max_per_page = 50  # three pages of 50, whatever the forge asks for
    issue = fake.add_issue("Add TTL", ttl_plan_body(), labels=["loopbot:plan"])
    for n in range(150):
        if n == 70:  # page 2: the loop's progress comment from an earlier run
            fake.add_comment(issue, f"{progress_marker(issue)}\nold progress", login="github-actions[bot]",
                             user_type="Bot")
        elif n == 140:  # page 3: a writer's context
            fake.add_comment(issue, "/loop context keep the public API unchanged")
        else:
            fake.add_comment(issue, f"chatter {n}", login="mallory")
    forge = forge_for(fake)

    comments = forge.comments(issue)
    assert len(comments) == 150
    # `/loop context` on page 3 reaches the inbound router, which reads the forge's comments.
    assert comments[140]["body"] == "/loop context keep the public API unchanged"
    # The progress comment is found again and updated: never a second one.
    forge.comment(issue, "new progress", marker=progress_marker(issue))
    progress = [c for c in fake.comments_on(issue) if progress_marker(issue) in c["body"]]
    assert len(progress) == 1 and progress[0]["body"].endswith("new progress")
    assert len(fake.comments_on(issue)) == 150


def test_120_open_loop_prs_all_count(fake):
    for n in range(120):
        fake.add_pull(f"loop/{1000 + n}-x")
    fake.add_pull("loop/9-fork", repo="mallory/kvstore")
    assert len(forge_for(fake).loop_prs()) == 120  # GitHub's page holds 100


def test_plan_dedupe_sees_every_open_plan(fake):
    body = ttl_plan_body()
    for n in range(130):
        fake.add_issue(f"plan {n}", body, labels=["loopbot:plan"])
    plans = forge_for(fake).plans()
    assert len(plans) == 130 and {p.ref for p in plans} == {f"#{n}" for n in range(1, 131)}


def test_reviews_and_inline_comments_past_the_first_page(fake):
    number = fake.add_pull("loop/1-x")
    forge = forge_for(fake)
    pr = forge.find_pr("loop/1-x")
    assert pr is not None
    marker = review_marker("run-1", 1)
    fake.reviews[number] = [{"id": n, "body": f"r{n}", "state": "COMMENTED", "user": {"login": "alice"}}
                            for n in range(120)]
    fake.reviews[number].append({"id": 999, "body": f"{marker}\nold verdict", "state": "COMMENTED",
                                 "user": {"login": "github-actions[bot]"}})
    forge.review(pr, "again", marker=marker, request_changes=False)
    assert len(fake.reviews[number]) == 121  # the verdict on page 2 was found: not posted twice

    fake.review_comments[number] = [{"id": n, "path": "a.py", "line": n, "body": f"inline {n}",
                                     "user": {"login": "alice"}} for n in range(130)]
    feedback = forge.review_feedback(number, trusted=lambda user: user.get("login") == "alice")
    assert "a.py:129: inline 129" in feedback and "r119" in feedback

