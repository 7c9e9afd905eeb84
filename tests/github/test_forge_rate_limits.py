"""Rate limits as GitHub sends them are waited out with bounded, growing waits, twice in a row
too, and then end in a clear RateLimited error; writes are paced per repository, across forges."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from loopbot.forge.github.forge import (
    GitHubError,
    GitHubForge,
    PermissionUnknown,
    RateLimited,
    connect,
)
from loopbot.testing.fake_github import FakeGitHub

CONTRACT = Path(__file__).resolve().parents[1] / "contracts" / "github-openapi.trimmed.json"


class Time:
    """One clock for the fake and the forge: sleeping moves it on, nothing really waits."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _no_real_sleep(monkeypatch):
    def forbidden(seconds: float) -> None:
        raise AssertionError(f"slept {seconds} s for real: every wait goes through the forge's sleep")

    monkeypatch.setattr("githubkit.core.time.sleep", forbidden)


@pytest.fixture
def clock() -> Time:
    return Time()


@pytest.fixture
def fake(clock):
    fake = FakeGitHub(CONTRACT, permissions={"alice": "write"})
    fake.wall = clock.clock
    yield fake
    assert fake.violations == []


def forge_for(fake: FakeGitHub, clock: Time, *, repo: str = "kvstore",
              api_url: str = "https://api.github.com") -> GitHubForge:
    return connect(owner="acme", repo=repo, api_url=api_url, token="ghs_" + "F" * 36, transport=fake.transport(),
                   sleep=clock.sleep, clock=clock.clock, wall=clock.clock)


def comments_posted(fake: FakeGitHub) -> int:
    return len([entry for entry in fake.log if entry[0] == "POST"])


def test_a_secondary_limit_without_headers_twice_in_a_row_waits_a_minute_and_more(fake, clock):
    issue = fake.add_issue("t", "b")
    fake.throttle("secondary-bare", times=2)
    forge_for(fake, clock).comment(issue, "hello")
    assert len(fake.comments_on(issue)) == 1
    assert len(clock.slept) == 2 and clock.slept[0] >= 60 and clock.slept[1] > clock.slept[0]


def test_retry_after_and_429_are_honoured_each_time(fake, clock):
    issue = fake.add_issue("t", "b")
    fake.throttle("secondary", seconds=30)
    fake.throttle("429", seconds=7)
    forge_for(fake, clock).comment(issue, "hello")
    assert len(fake.comments_on(issue)) == 1
    assert clock.slept[0] >= 30 and clock.slept[1] >= 7 and len(clock.slept) == 2


def test_a_primary_limit_waits_for_its_reset(fake, clock):
    issue = fake.add_issue("t", "b")
    fake.throttle("primary", times=2, seconds=120)
    assert forge_for(fake, clock).issue(issue).title == "t"
    assert len(clock.slept) == 2 and all(120 <= s <= 125 for s in clock.slept)


def test_a_limit_that_holds_ends_in_rate_limited_after_five_attempts(fake, clock):
    issue = fake.add_issue("t", "b")
    fake.throttle("secondary-bare", times=50)
    with pytest.raises(RateLimited) as raised:
        forge_for(fake, clock).comment(issue, "hello")
    assert isinstance(raised.value, GitHubError) and raised.value.kind == "secondary"
    assert "secondary rate limit" in str(raised.value) and "5 attempt" in str(raised.value)
    assert comments_posted(fake) == 5 and len(clock.slept) == 4  # bounded: no sixth try
    assert all(s <= 15 * 60 for s in clock.slept) and fake.comments_on(issue) == []


def test_a_primary_reset_an_hour_away_is_not_waited_for(fake, clock):
    issue = fake.add_issue("t", "b")
    fake.throttle("primary", seconds=3600)
    with pytest.raises(RateLimited) as raised:
        forge_for(fake, clock).issue(issue)
    assert raised.value.kind == "primary" and clock.slept == [] and "3601 s" in str(raised.value)


def test_a_rate_limited_permission_lookup_is_retried_not_read_as_no_access(fake, clock):
    fake.throttle("secondary", seconds=5)
    assert forge_for(fake, clock).permission("alice") == "write"
    fake.failing_permission["bob"] = 502  # a server error on a read: retried a few times, then unknown
    with pytest.raises(PermissionUnknown):
        forge_for(fake, clock).permission("bob")
    assert clock.slept[1:] == [1.0, 2.0, 4.0]


def test_a_plain_403_is_not_a_rate_limit(fake, clock):
    fake.failing_permission["eve"] = 403
    with pytest.raises(PermissionUnknown):
        forge_for(fake, clock).permission("eve")
    assert clock.slept == []


def test_writes_are_paced_per_repository_across_forges(fake, clock):
    issue = fake.add_issue("t", "b")
    first, second = forge_for(fake, clock), forge_for(fake, clock)
    first.comment(issue, "one")
    second.comment(issue, "two")  # another forge in the same process, the same repository
    assert clock.slept == [pytest.approx(1.0)]
    clock.now += 5
    first.comment(issue, "three")  # a second has passed: no wait
    assert clock.slept == [pytest.approx(1.0)]
    other = FakeGitHub(CONTRACT, repo="other")
    other_issue = other.add_issue("t", "b")
    forge_for(other, clock, repo="other").comment(other_issue, "elsewhere")  # another repository
    enterprise = forge_for(fake, clock, api_url="https://ghe.example.com/api/v3")  # another GitHub
    enterprise.policy(httpx.Request("POST", "https://ghe.example.com/api/v3/repos/acme/kvstore/issues/1/comments"))
    assert clock.slept == [pytest.approx(1.0)]


def test_removing_a_label_is_quiet_only_when_it_is_not_there(fake, clock):
    issue = fake.add_issue("t", "b", labels=["loopbot:running"])
    forge = forge_for(fake, clock)
    forge.remove_label(issue, "loopbot:done")  # 404: nothing to remove
    fake.throttle("primary", seconds=7200, method="DELETE")
    with pytest.raises(RateLimited):  # never a label silently left on the issue
        forge.remove_label(issue, "loopbot:running")
    assert fake.labels_of(issue) == ["loopbot:running"]
