"""The dashboard issue written to the contract-checked fake GitHub: opened once, found by its
marker across pages, edited in place only when it changed; a tick routed and unticked."""

from __future__ import annotations

from pathlib import Path

import pytest
from githubkit import GitHub, TokenAuthStrategy

from loopbot.app.dashboard import DashboardWriter
from loopbot.config import Config
from loopbot.core.dashboard import MARKER, boxes
from loopbot.core.route import Repo, StaticFacts, route
from loopbot.testing.app_seed import seed_loop
from loopbot.testing.fake_github import FakeGitHub

CONTRACTS = Path(__file__).resolve().parents[1] / "contracts"
BOT = "loopbot[bot]"


@pytest.fixture
def fake():
    fake = FakeGitHub(CONTRACTS / "github-openapi.trimmed.json")
    yield fake
    assert fake.violations == []


def writer(fake: FakeGitHub) -> DashboardWriter:
    github = GitHub(TokenAuthStrategy(fake.installation_token), base_url="https://api.github.com",
                    transport=fake.transport(), auto_retry=False)
    return DashboardWriter(github, fake.owner, fake.repo, self_login=BOT)


def dashboards(fake: FakeGitHub) -> list[int]:
    return [n for n, issue in fake.issues.items() if MARKER in issue["body"]]


def test_opened_once_then_edited_in_place_only_when_changed(fake, store):
    plan = fake.add_issue("Add TTL", "the plan")
    loop = seed_loop(store, "acme/kvstore", plan, "running", cost_usd=1.0, workflow_run_id=77)
    first = writer(fake).publish(store.loops(repo="acme/kvstore"))
    assert dashboards(fake) == [first] and fake.issues[first]["user"]["login"] == BOT
    body = fake.issues[first]["body"]
    assert f"loop={loop} issue={plan} action=stop" in body and "Add TTL" in body
    assert "https://github.com/acme/kvstore/actions/runs/77" in body
    writes = [m for m, _ in fake.log if m != "GET"]
    assert writer(fake).publish(store.loops(repo="acme/kvstore")) == first
    assert [m for m, _ in fake.log if m != "GET"] == writes  # unchanged: no write at all
    seed_loop(store, "acme/kvstore", fake.add_issue("Fix parser", "p"), "blocked", detail="heartbeat stale")
    assert writer(fake).publish(store.loops(repo="acme/kvstore")) == first
    assert dashboards(fake) == [first]
    assert ("PATCH", f"/repos/acme/kvstore/issues/{first}") in fake.log
    assert "heartbeat stale" in fake.issues[first]["body"]


def test_found_across_pages_never_a_second_one(fake, store):
    fake.max_per_page = 2
    dashboard = fake.add_issue("loopbot dashboard", MARKER + "\nold", author=BOT)
    for i in range(7):
        fake.add_issue(f"issue {i}", "text")
    fake.add_issue("a copy", MARKER + "\nsomeone pasted the marker", author="mallory")  # not the App's
    number = writer(fake).publish([])
    assert number == dashboard
    assert dashboards(fake) == [dashboard, max(fake.issues)]
    assert "someone pasted" in fake.issues[max(fake.issues)]["body"]  # left alone
    assert sum(1 for m, p in fake.log if m == "GET" and p.endswith("/issues")) >= 5


def test_a_writers_tick_stops_the_loop_a_readers_is_refused_and_both_are_unticked(fake, store):
    plan = fake.add_issue("<img src=x onerror=alert(1)> @octocat", "the plan")
    loop = seed_loop(store, "acme/kvstore", plan, "running")
    number = writer(fake).publish(store.loops())
    rendered = fake.issues[number]["body"]
    assert "<img" not in rendered and "@octocat" not in rendered
    ticked = rendered.replace(f"- [ ] <!-- loopbot:loop={loop} ", f"- [x] <!-- loopbot:loop={loop} ")
    facts = StaticFacts(permissions={"alice": "write", "eve": "read"})
    for login, expected in (("alice", "stop"), ("eve", "refuse")):
        payload = {"action": "edited", "issue": {"number": number, "body": ticked, "updated_at": "2026-12-02T12:00:00Z"},
                   "changes": {"body": {"from": rendered}}, "sender": {"login": login, "type": "User"}}
        intent = route("issues", payload, Config(), facts, Repo("acme/kvstore"))
        assert (intent.kind, intent.actor) == (expected, login)
    fake.issues[number]["body"] = ticked  # as GitHub saved the click
    writer(fake).publish(store.loops())
    assert not any(boxes(fake.issues[number]["body"]).values())
