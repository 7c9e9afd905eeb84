"""GitHub's refusals never cost the work: a repository that lets no Actions token open pull
requests gets the branch pushed and a comment with a compare link and the setting to change; a
repository without drafts gets a ready pull request labelled as not ready."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopbot.forge.github import forge as forge_module
from loopbot.forge.github.forge import GitHubForge, connect
from loopbot.testing.fake_github import FakeGitHub
from loopbot.workspace.git import git
from tests.github import test_action
from tests.github.test_action import labeled, run, ttl_plan_body

CONTRACT = Path(__file__).resolve().parents[1] / "contracts" / "github-openapi.trimmed.json"
SETTING = ('Settings → Actions → General → Workflow permissions → '
           '"Allow GitHub Actions to create and approve pull requests"')


@pytest.fixture(autouse=True)
def _examples(example, plan_body):
    test_action._example, test_action._plan = example, plan_body


def forge_for(fake: FakeGitHub, api_url: str = "https://api.github.com") -> GitHubForge:
    return connect(owner="acme", repo="kvstore", api_url=api_url, token="ghs_" + "F" * 36,
                   transport=fake.transport(), sleep=lambda s: None)


@pytest.mark.parametrize("status", [403, 422])
def test_pr_creation_refused_to_actions_is_a_typed_error(fake, status):
    fake.actions_may_create_prs, fake.actions_refusal_status = False, status
    with pytest.raises(forge_module.PullRequestsNotPermitted) as raised:
        forge_for(fake).open_pr("loop/1-x", "main", "t", "b")
    assert raised.value.status == status and "not permitted to create" in str(raised.value)
    assert isinstance(raised.value, forge_module.GitHubError)


def test_no_drafts_opens_a_ready_pr_labelled_not_ready_until_marked_ready(fake):
    fake.drafts_supported = False
    forge = forge_for(fake)
    pr = forge.open_pr("loop/1-x", "main", "t", "b")
    assert pr.draft is False and fake.pulls[pr.number]["draft"] is False
    assert fake.labels_of(pr.number) == ["loopbot:draft"] and "loopbot:draft" in pr.labels
    again = forge.find_pr("loop/1-x")
    assert again is not None and "loopbot:draft" in again.labels  # a later run sees the label
    forge.mark_ready(again)
    assert fake.labels_of(pr.number) == [] and fake.graphql_seen == []  # no draft to mark ready


@pytest.mark.parametrize(("api_url", "web"), [("https://api.github.com", "https://github.com"),
                                              ("https://ghe.example.com/api/v3", "https://ghe.example.com"),
                                              ("https://api.acme.ghe.com", "https://acme.ghe.com")])
def test_the_compare_link_points_at_the_web(fake, api_url, web):
    assert forge_for(fake, api_url).compare_url("main", "loop/3-add ttl") == (
        f"{web}/acme/kvstore/compare/main...loop/3-add%20ttl?expand=1")


def test_a_loop_whose_pr_github_refuses_keeps_its_work_and_says_what_to_change(actions):
    fake = actions.fake
    fake.actions_may_create_prs = False
    issue = fake.add_issue("Add expiration (TTL) support to KVStore", ttl_plan_body(), labels=["loopbot:plan"])

    assert run(actions, "issues", labeled(issue)) == 0

    assert fake.pulls == {} and actions.outputs()["status"] == "success"  # not ERROR: the goal was met
    branches = git(actions.origin, "branch", "--list", f"loop/{issue}-*", "--format=%(refname:short)").stdout.split()
    (branch,) = [b for b in branches if not b.startswith("loop/state-")]
    assert "def _expired" in git(actions.origin, "show", f"{branch}:kvstore.py").stdout  # the work is pushed
    explained = [c for c in fake.comments_on(issue) if "compare/" in c["body"]]
    assert len(explained) == 1  # once, however many times the loop tried
    body = explained[0]["body"]
    assert f"https://github.com/acme/kvstore/compare/main...{branch}?expand=1" in body
    assert SETTING in body and "GitHub Actions is not permitted to create or approve pull requests" in body
    assert "loopbot:done" in fake.labels_of(issue) and "loopbot:running" not in fake.labels_of(issue)


def test_a_loop_in_a_repository_without_drafts_opens_a_ready_pr_marked_not_ready(actions):
    fake = actions.fake
    fake.drafts_supported = False
    issue = fake.add_issue("Add expiration (TTL) support to KVStore", ttl_plan_body(), labels=["loopbot:plan"])
    seen: list[list[str]] = []

    def labels_while_running(state) -> None:
        if fake.pulls:
            seen.append(fake.labels_of(next(iter(fake.pulls))))

    assert run(actions, "issues", labeled(issue), on_checkpoint=labels_while_running) == 0
    (pr,) = fake.pulls.values()
    assert pr["draft"] is False and actions.outputs()["status"] == "success"
    assert ["loopbot:draft"] in seen  # not ready while the loop ran
    assert "loopbot:draft" not in fake.labels_of(pr["number"])  # the goal is met: ready
