"""GitHub refuses bodies over 65,536 characters (422 "body is too long"): every body the forge
writes (comments, plan issues, PR bodies, reviews, check run summaries) is cut to fit, with a note,
and the write succeeds."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopbot.forge.github import limits
from loopbot.forge.github.forge import GitHubForge, connect
from loopbot.plans import Plan

CONTRACT = Path(__file__).resolve().parents[1] / "contracts" / "github-openapi.trimmed.json"
HUGE = "\n".join(f"line {n}: " + "x" * 60 for n in range(3000))  # ~200,000 characters
NOTE = "characters left out"


@pytest.fixture
def forge(fake) -> GitHubForge:
    return connect(owner="acme", repo="kvstore", api_url="https://api.github.com", token="ghs_" + "F" * 36,
                   transport=fake.transport(), sleep=lambda s: None)


def test_a_huge_comment_is_cut_with_a_note_and_found_again(fake, forge):
    issue = fake.add_issue("t", "b")
    marker = "<!-- loopbot:progress issue=1 -->"
    forge.comment(issue, HUGE, marker=marker)
    (posted,) = fake.comments_on(issue)
    assert len(posted["body"]) <= 65_536 and posted["body"].startswith(marker) and NOTE in posted["body"]
    writes = [entry for entry in fake.log if entry[0] != "GET"]
    forge.comment(issue, HUGE, marker=marker)  # the same body again: nothing to write
    assert [entry for entry in fake.log if entry[0] != "GET"] == writes
    forge.comment(issue, HUGE + "\nmore", marker=marker)
    assert len(fake.comments_on(issue)) == 1
    forge.comment(issue, "y" * 70_000)  # an unmarked comment fits too
    assert len(fake.comments_on(issue)[-1]["body"]) <= 65_536


def test_pr_bodies_plans_reviews_and_check_summaries_fit(fake, forge):
    pr = forge.open_pr("loop/1-x", "main", "t", HUGE)
    assert len(fake.pulls[pr.number]["body"]) <= 65_536
    forge.update_pr(pr, "Closes #1\n\n" + HUGE + "changed")
    assert fake.pulls[pr.number]["body"].startswith("Closes #1") and NOTE in fake.pulls[pr.number]["body"]
    forge.review(pr, HUGE, marker="<!-- loopbot:review run=r iteration=1 -->", request_changes=False)
    assert len(fake.reviews[pr.number][0]["body"]) <= 65_536
    forge.check_run("a" * 40, status="in_progress", title="t", summary=HUGE)
    (run,) = fake.check_runs.values()
    assert len(run["output"]["summary"]) <= 65_535 and NOTE in run["output"]["summary"]
    plan = Plan(title="Big plan", context="c", chunks=["one"], scope=["a.py"], goal={"id": "g", "goal": "g"})
    filed = forge.file_plan(plan, HUGE, date="2025-01-01")
    assert len(fake.issues[int(filed.ref[1:])]["body"]) <= 65_536


def test_a_cut_inside_a_code_block_or_an_html_comment_closes_it():
    fit = limits.fit
    fenced = "intro\n~~~~~\n" + HUGE + "\n~~~~~\nafter"
    cut = fit(fenced)
    assert len(cut) <= 65_536
    head, note = cut.rsplit("\n\n… ", 1)
    assert head.endswith("\n~~~~~") and NOTE in note  # the note is outside the block
    hidden = fit("<!-- " + HUGE + " -->")
    assert hidden.count("<!--") == hidden.count("-->") == 1 and len(hidden) <= 65_536
    assert fit("short") == "short" and fit("x" * 65_536) == "x" * 65_536
    assert len(fit("x" * 65_537)) <= 65_536
