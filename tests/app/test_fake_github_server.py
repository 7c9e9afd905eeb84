"""The FakeGitHub over loopback HTTP (what a `loopbot serve` subprocess talks to): the App mints an
installation token and dispatches a workflow through it, and the fake's contract checks still hold."""

from __future__ import annotations

import httpx

from loopbot.app.dispatch import GitHubApp
from loopbot.testing.fake_github import FakeGitHub
from loopbot.testing.fake_github_server import FakeGitHubServer
from tests.app.helpers import CONTRACTS, INPUTS, RUN_NAME, app_key


def test_the_app_mints_a_token_and_dispatches_over_loopback() -> None:
    fake = FakeGitHub(CONTRACTS / "github-openapi.trimmed.json")
    fake.add_workflow("loopbot-run.yml", INPUTS, run_name=RUN_NAME)
    with FakeGitHubServer(fake) as server:
        app = GitHubApp(12345, app_key(), server.url)
        github = app.client(42, "acme/kvstore")
        answer = github.rest.actions.create_workflow_dispatch(
            "acme", "kvstore", "loopbot-run.yml", data={"ref": "main", "inputs": {"issue": "7", "command": "run", "delivery": "d-1"}})
        assert answer.status_code == 204
        # GitHub's own refusal comes back over the wire as it would from GitHub.
        missing = httpx.post(f"{server.url}/repos/acme/kvstore/actions/workflows/nope.yml/dispatches",
                             json={"ref": "main"}, headers={"authorization": f"token {fake.installation_token}"})
        assert missing.status_code == 404 and missing.json()["message"] == "Not Found"
    assert fake.tokens_minted == 1
    assert [run["inputs"] for run in fake.workflow_runs] == [{"issue": "7", "command": "run", "delivery": "d-1"}]
    assert fake.violations == [] and server.errors == []
