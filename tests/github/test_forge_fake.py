"""Probes of the fake GitHub itself, request by request, with no loopbot code in between: it answers
as GitHub does where loopbot has been caught out (pages, body limit, rate limits, refusals)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from loopbot.testing.fake_github import FakeGitHub

CONTRACT = Path(__file__).resolve().parents[1] / "contracts" / "github-openapi.trimmed.json"
ACTIONS_TOKEN = "ghs_" + "F" * 36
API = "https://api.github.com/repos/acme/kvstore"


def client(fake: FakeGitHub, token: str = ACTIONS_TOKEN) -> httpx.Client:
    return httpx.Client(transport=fake.transport(), headers={"authorization": f"token {token}"})


def test_pages_of_30_by_default_100_at_most_with_links_by_repository_id(fake):
    issue = fake.add_issue("t", "b")
    for n in range(150):
        fake.add_comment(issue, f"c{n}")
    with client(fake) as http:
        first = http.get(f"{API}/issues/{issue}/comments")
        assert len(first.json()) == 30
        assert first.headers["link"] == (
            f'<https://api.github.com/repositories/1300192/issues/{issue}/comments?per_page=30&page=2>; rel="next", '
            f'<https://api.github.com/repositories/1300192/issues/{issue}/comments?per_page=30&page=5>; rel="last"')
        big = http.get(f"{API}/issues/{issue}/comments", params={"per_page": 500, "page": 2})
        assert [c["body"] for c in big.json()] == [f"c{n}" for n in range(100, 150)]
        assert 'rel="next"' not in big.headers["link"] and 'rel="prev"' in big.headers["link"]
        past = http.get(f"{API}/issues/{issue}/comments", params={"per_page": 100, "page": 3})
        assert past.json() == [] and 'rel="next"' not in past.headers["link"]
        one = fake.add_issue("t", "b")
        fake.add_comment(one, "only")
        assert "link" not in http.get(f"{API}/issues/{one}/comments").headers  # one page: no Link at all


def test_bodies_over_65536_characters_are_refused(fake):
    issue = fake.add_issue("t", "b")
    with client(fake) as http:
        refused = http.post(f"{API}/issues/{issue}/comments", json={"body": "x" * 65_537})
        assert refused.status_code == 422
        assert refused.json()["errors"][0]["message"] == "body is too long (maximum is 65536 characters)"
        assert http.post(f"{API}/issues/{issue}/comments", json={"body": "x" * 65_536}).status_code == 201
        assert http.post(f"{API}/issues", json={"title": "t", "body": "x" * 70_000}).status_code == 422
        assert http.post(f"{API}/pulls", json={"head": "loop/1-x", "base": "main", "title": "t",
                                               "body": "x" * 70_000}).status_code == 422


@pytest.mark.parametrize(("kind", "status", "headers"), [
    ("primary", 403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1000120"}),
    ("secondary", 403, {"retry-after": "30"}),
    ("secondary-bare", 403, {}),
    ("429", 429, {"retry-after": "30"}),
])
def test_rate_limits_as_github_sends_them(fake, kind, status, headers):
    fake.wall = lambda: 1_000_000.0
    fake.throttle(kind, times=2, seconds=120 if kind == "primary" else None)
    issue = fake.add_issue("t", "b")
    with client(fake) as http:
        for _ in range(2):
            answer = http.get(f"{API}/issues/{issue}")
            assert answer.status_code == status
            for name, value in headers.items():
                assert answer.headers[name] == value
            if kind == "secondary-bare":
                assert "retry-after" not in answer.headers and "x-ratelimit-remaining" not in answer.headers
                assert "You have exceeded a secondary rate limit" in answer.json()["message"]
        assert http.get(f"{API}/issues/{issue}").status_code == 200


@pytest.mark.parametrize("status", [403, 422])
def test_actions_may_not_open_pull_requests_unless_the_setting_allows(fake, status):
    fake.actions_may_create_prs, fake.actions_refusal_status = False, status
    new = {"head": "loop/1-x", "base": "main", "title": "t", "body": "b", "draft": True}
    with client(fake) as http:
        refused = http.post(f"{API}/pulls", json=new)
        assert refused.status_code == status
        assert "GitHub Actions is not permitted to create or approve pull requests." in refused.text
    with client(fake, fake.installation_token) as http:  # an App's token is not the Actions token
        assert http.post(f"{API}/pulls", json=new).status_code == 201


def test_no_drafts_in_this_repository(fake):
    fake.drafts_supported = False
    with client(fake) as http:
        new = {"head": "loop/1-x", "base": "main", "title": "t", "body": "b", "draft": True}
        refused = http.post(f"{API}/pulls", json=new)
        assert refused.status_code == 422
        assert refused.json()["errors"][0]["message"] == "Draft pull requests are not supported in this repository."
        assert http.post(f"{API}/pulls", json={**new, "draft": False}).status_code == 201


@pytest.mark.parametrize(("event", "message"), [("REQUEST_CHANGES", "Can not request changes on your own pull request"),
                                                ("APPROVE", "Can not approve your own pull request")])
def test_a_pull_requests_author_can_neither_request_changes_nor_approve(fake, event, message):
    with client(fake) as http:
        number = http.post(f"{API}/pulls", json={"head": "loop/1-x", "base": "main", "title": "t"}).json()["number"]
        refused = http.post(f"{API}/pulls/{number}/reviews", json={"body": "no", "event": event})
        assert refused.status_code == 422 and refused.json()["errors"] == [message]
        assert http.post(f"{API}/pulls/{number}/reviews", json={"body": "ok", "event": "COMMENT"}).status_code == 200
    fake.token_logins["ghp_alice"] = "alice"
    with client(fake, "ghp_alice") as http:  # someone else may
        assert http.post(f"{API}/pulls/{number}/reviews", json={"body": "no", "event": event}).status_code == 200


def test_graphql_errors_come_in_a_200(fake):
    fake.graphql_errors.append([{"type": "FORBIDDEN", "message": "Resource not accessible by integration"}])
    query = ("mutation($id: ID!) { markPullRequestReadyForReview(input: {pullRequestId: $id}) "
             "{ clientMutationId } }")
    with client(fake) as http:
        answer = http.post("https://api.github.com/graphql", json={"query": query, "variables": {"id": "PR_x"}})
        assert answer.status_code == 200 and answer.json()["errors"][0]["message"].startswith("Resource not")


def test_a_completed_check_run_needs_a_conclusion(fake):
    with client(fake) as http:
        refused = http.post(f"{API}/check-runs", json={"name": "n", "head_sha": "a" * 40, "status": "completed"})
        assert refused.status_code == 422


def test_a_body_the_description_rejects_is_refused_every_time_and_a_good_one_passes(fake):
    """The body schemas are compiled once per operation and kept: the second refusal is the first's."""
    bad = {"name": 5, "head_sha": "a" * 40}
    good = {"name": "loopbot", "head_sha": "a" * 40, "status": "in_progress", "output": {"title": "t", "summary": "s"}}
    with client(fake) as http:
        answers = [http.post(f"{API}/check-runs", json=body) for body in (bad, good, bad)]
    assert [a.status_code for a in answers] == [422, 201, 422]
    assert answers[0].json() == answers[2].json() == {"message": "checks/create: 5 is not of type 'string' at name"}
    assert fake.violations == ["checks/create: 5 is not of type 'string' at name"] * 2
    fake.violations.clear()  # the suite-wide check fails any test whose requests broke the description
