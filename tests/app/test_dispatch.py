"""Dispatch to GitHub Actions: tokens, the once-only dispatch, GitHub's refusals, pacing, limits."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from loopbot.app.dispatch import DispatchRefused, WaitFor
from tests.app.helpers import world


@pytest.fixture
def url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'app.db'}"


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_an_installation_token_is_cached_until_ten_minutes_before_it_expires(url) -> None:
    w = world(url)
    w.fake.token_expires_at = _iso(w.clock.wall() + 3600)
    assert w.app.token(42) == w.fake.installation_token
    w.clock.advance(3600 - 601)
    w.app.token(42)
    assert w.fake.tokens_minted == 1
    w.clock.advance(2)  # now under ten minutes left
    w.app.token(42)
    assert w.fake.tokens_minted == 2
    assert w.fake.violations == []


def test_a_dispatch_is_sent_once_with_its_inputs(url) -> None:
    w = world(url)
    assert w.dispatcher.dispatch(42, "acme/kvstore", 3, "run", "delivery-1", "main", approved="abc")
    assert not w.dispatcher.dispatch(42, "acme/kvstore", 3, "run", "delivery-1", "main")  # a retried job
    assert [r["inputs"] for r in w.fake.workflow_runs] == [
        {"issue": "3", "command": "run", "delivery": "delivery-1", "approved": "abc"}]
    assert w.fake.log.count(("POST", "/repos/acme/kvstore/actions/workflows/loopbot-run.yml/dispatches")) == 1
    assert w.fake.violations == []


def test_a_dispatch_whose_worker_died_is_found_by_its_run_and_not_sent_again(url) -> None:
    w = world(url)
    assert w.dispatcher.dispatch(42, "acme/kvstore", 3, "run", "d-1", "main")
    # The worker died between GitHub's 204 and recording it: the record still says pending.
    with w.store.write() as conn:
        from sqlalchemy import update

        from loopbot.app.db import dispatches
        conn.execute(update(dispatches).values(state="pending"))
    assert not w.dispatcher.dispatch(42, "acme/kvstore", 3, "run", "d-1", "main")
    assert len(w.fake.workflow_runs) == 1
    # Begun but never sent (no run carries its key): sent now.
    assert w.store.begin_dispatch("acme/kvstore", 4, "d-2", "run") == "new"
    assert w.dispatcher.dispatch(42, "acme/kvstore", 4, "run", "d-2", "main")
    assert len(w.fake.workflow_runs) == 2
    assert w.fake.violations == []


@pytest.mark.parametrize(("setup", "said"), [
    ("unknown", "404"),
    ("no-trigger", "does not have 'workflow_dispatch' trigger"),
    ("old-inputs", "Unexpected inputs provided"),
])
def test_githubs_refusals_of_a_dispatch_say_what_to_fix(url, setup, said) -> None:
    w = world(url)
    if setup == "unknown":
        w.fake.workflows.clear()
    elif setup == "no-trigger":
        w.fake.add_workflow("loopbot-run.yml", None)
    else:
        w.fake.add_workflow("loopbot-run.yml", {"issue": True, "command": True})  # before the App's inputs
    with pytest.raises(DispatchRefused, match=said) as caught:
        w.dispatcher.dispatch(42, "acme/kvstore", 3, "run", "d-1", "main")
    assert "workflow_dispatch trigger" in str(caught.value)
    assert w.fake.workflow_runs == []
    assert w.fake.violations == []


def test_writes_are_paced_a_second_apart_and_a_secondary_limit_blocks_the_installation(url) -> None:
    w = world(url)
    for issue in (1, 2, 3):
        w.dispatcher.dispatch(42, "acme/kvstore", issue, "run", f"d-{issue}", "main")
    assert w.slept == [1.0, 1.0]  # the clock did not move between them: each waited its slot
    w.fake.throttle("secondary", method="POST", seconds=120)
    with pytest.raises(WaitFor) as caught:
        w.dispatcher.dispatch(42, "acme/kvstore", 9, "run", "d-9", "main")
    assert caught.value.seconds == 120
    # Every worker and replica now holds this installation's writes for as long as GitHub asked.
    with pytest.raises(WaitFor, match="write budget"):
        w.dispatcher.dispatch(42, "acme/kvstore", 10, "run", "d-10", "main")
    w.clock.advance(121)
    assert w.dispatcher.dispatch(42, "acme/kvstore", 9, "run", "d-9", "main")
    assert w.fake.violations == []


def test_the_installations_repositories_page_by_page(url) -> None:
    w = world(url)
    w.fake.installation_repos = [f"acme/r{n}" for n in range(5)]
    w.fake.max_per_page = 2
    assert w.app.repositories(42) == [f"acme/r{n}" for n in range(5)]
    assert w.fake.violations == []
