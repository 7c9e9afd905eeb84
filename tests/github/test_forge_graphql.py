"""GraphQL: the never-merge allow-list parses documents (one operation, one allowed top-level
field, nothing hidden in aliases, fragments, extra operations or comments), and GitHub's errors
in a 200 are GitHubErrors."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from loopbot.forge.github.forge import GitHubError, PullRequest, connect
from loopbot.forge.github.operations import graphql_operation
from loopbot.forge.github.policy import ForbiddenOperation, RequestPolicy
from loopbot.testing.fake_github import FakeGitHub
from tests.github import test_action
from tests.github.test_action import labeled, run, ttl_plan_body

CONTRACT = Path(__file__).resolve().parents[1] / "contracts" / "github-openapi.trimmed.json"
READY = "markPullRequestReadyForReview(input: {pullRequestId: $id}) { clientMutationId }"
MERGE = "mergePullRequest(input: {pullRequestId: $id}) { clientMutationId }"


@pytest.fixture(autouse=True)
def _examples(example, plan_body):
    test_action._example, test_action._plan = example, plan_body


@pytest.mark.parametrize("document", [
    f"mutation($id: ID!) {{ {READY} }}",
    f"mutation Ready($id: ID!) {{ {READY} }}",
    f"mutation($id: ID!) {{ ready: {READY} }}",  # an alias on the allowed field changes nothing
    f"# a comment\nmutation($id: ID!) {{\n  # another\n  {READY}\n}}",
    f"mutation($id: ID!) {{ {READY.replace('clientMutationId', 'pullRequest { number isDraft }')} }}",
])
def test_the_one_allowed_mutation_passes(document):
    assert graphql_operation(document) == "markPullRequestReadyForReview"


@pytest.mark.parametrize("document", [
    # a second top-level field after an allowed one (the regex read only the first)
    f"mutation($id: ID!) {{ {READY} {MERGE} }}",
    f"mutation($id: ID!) {{ {READY}, {MERGE} }}",
    # an alias that names the allowed field but calls another
    f"mutation($id: ID!) {{ markPullRequestReadyForReview: {MERGE} }}",
    # fragments, named and inline
    f"mutation($id: ID!) {{ ...F }} fragment F on Mutation {{ {MERGE} }}",
    f"mutation($id: ID!) {{ {READY} ...F }} fragment F on Mutation {{ {MERGE} }}",
    f"mutation($id: ID!) {{ ... on Mutation {{ {MERGE} }} }}",
    f"mutation($id: ID!) {{ ... {{ {READY} }} }}",
    # several operations: the server picks one by operationName
    f"mutation A($id: ID!) {{ {READY} }} mutation B($id: ID!) {{ {MERGE} }}",
    f"mutation A($id: ID!) {{ {READY} }} query B {{ viewer {{ login }} }}",
    # comments hiding or faking the allowed name
    f"# mutation {{ {READY} }}\nmutation($id: ID!) {{ {MERGE} }}",
    f"mutation($id: ID!) {{ # {READY}\n {MERGE} }}",
    f'mutation($id: ID!) {{ {MERGE} }} # "markPullRequestReadyForReview"',
    # strings are not names
    'mutation { addComment(input: {body: "markPullRequestReadyForReview", subjectId: "x"}) { clientMutationId } }',
    # queries and subscriptions: loopbot needs none (the old rule passed any query named pullRequestId)
    "query pullRequestId { repository(owner: \"o\", name: \"r\") { id } }",
    "{ viewer { login } }",
    f"subscription {{ {READY} }}",
    # not GraphQL, empty, or too big to read
    "mutation {", "", "   ", f"mutation {{ {READY} }}" + " " * 200_000,
    "mutation { " + "a: markPullRequestReadyForReview(input: {}) { clientMutationId } " * 5000 + "}",
])
def test_hostile_documents_are_refused(document):
    assert graphql_operation(document) is None


def test_the_policy_refuses_them_before_anything_is_sent():
    policy = RequestPolicy(base_url="https://api.github.com", sleep=lambda s: None)
    for body in [{"query": f"mutation($id: ID!) {{ {READY} {MERGE} }}"}, {"query": ["not", "a", "string"]},
                 {"query": f"mutation A($id: ID!) {{ {READY} }} mutation B($id: ID!) {{ {MERGE} }}",
                  "operationName": "B"}]:
        with pytest.raises(ForbiddenOperation):
            policy(httpx.Request("POST", "https://api.github.com/graphql", json=body))
    with pytest.raises(ForbiddenOperation):
        policy(httpx.Request("POST", "https://api.github.com/graphql", content=b"{not json"))
    policy(httpx.Request("POST", "https://api.github.com/graphql",
                         content=json.dumps({"query": f"mutation($id: ID!) {{ {READY} }}"}).encode()))


def test_graphql_errors_in_a_200_are_github_errors():
    fake = FakeGitHub(CONTRACT)
    forge = connect(owner="acme", repo="kvstore", api_url="https://api.github.com", token="ghs_" + "F" * 36,
                    transport=fake.transport(), sleep=lambda s: None)
    fake.graphql_errors.append([{"type": "FORBIDDEN", "message": "Resource not accessible by integration"}])
    pr = PullRequest(number=1, node_id="PR_x", head="loop/1-x", draft=True, state="open", body="")
    with pytest.raises(GitHubError, match="Resource not accessible by integration"):
        forge.mark_ready(pr)
    with pytest.raises(GitHubError, match="Could not resolve to a node"):
        forge.mark_ready(pr)  # no such pull request: GitHub says so in a 200 too
    assert fake.violations == []


def test_a_refused_ready_for_review_is_said_on_the_issue_and_the_run_ends_as_it_did(actions):
    fake = actions.fake
    fake.graphql_errors.append([{"type": "FORBIDDEN", "message": "Resource not accessible by integration"}])
    issue = fake.add_issue("Add expiration (TTL) support to KVStore", ttl_plan_body(), labels=["loopbot:plan"])

    assert run(actions, "issues", labeled(issue)) == 0

    (pr,) = fake.pulls.values()
    assert pr["draft"] is True and actions.outputs()["status"] == "success"
    assert actions.outputs()["pr_number"] == str(pr["number"])
    said = [c["body"] for c in fake.comments_on(issue) if "Resource not accessible by integration" in c["body"]]
    assert len(said) == 1 and "ready for review" in said[0]
    assert "loopbot:done" in fake.labels_of(issue)
