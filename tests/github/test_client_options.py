"""Every GitHub client loopbot makes talks to GitHub directly, without githubkit's HTTP cache: that
cache (hishel, one in-memory store per process) keeps every response and scans all of a URL's
entries on each request, so a long-running App's reads grew slower and its memory larger with
every delivery (24 ms of CPU per delivery after a thousand, mostly unpacking cached answers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from loopbot.app.dispatch import GitHubApp
from loopbot.forge.github.forge import connect
from loopbot.testing.fake_github import FakeGitHub
from tests.app.helpers import app_key

CONTRACT = Path(__file__).resolve().parents[1] / "contracts" / "github-openapi.trimmed.json"


def plain(github: Any) -> bool:
    with github.get_sync_client() as client:
        return type(client) is httpx.Client


def test_the_actions_forge_reads_github_every_time(tmp_path: Path) -> None:
    fake = FakeGitHub(CONTRACT)
    forge = connect(owner="acme", repo="kvstore", api_url="https://api.github.com", token="ghs_" + "F" * 36,
                    transport=fake.transport())
    assert plain(forge.gh)
    before = len(fake.log)
    for _ in range(3):
        forge.gh.rest.issues.get("acme", "kvstore", fake.add_issue("x", "y"))
    assert len(fake.log) - before == 3


def test_the_apps_clients_read_github_every_time() -> None:
    fake = FakeGitHub(CONTRACT)
    app = GitHubApp(12345, app_key(), transport=fake.transport())
    github = app.client(42, "acme/kvstore")
    assert plain(github) and plain(app.forge(42, "acme/kvstore").gh)
    number = fake.add_issue("x", "y")
    before = len(fake.log)
    for _ in range(3):
        github.rest.issues.get("acme", "kvstore", number)
    assert len(fake.log) - before == 3
