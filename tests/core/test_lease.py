"""Who may take a plan's lease, from what lease.json says: a hand-edited or garbage heartbeat
never makes the plan busy for ever, nor makes the busy message fail to render."""

from __future__ import annotations

import pytest

from loopbot.core.lease import LEASE_SECONDS, Lease, may_take
from loopbot.store.git_state import LeaseBusy

NOW = 1_800_000_000.0


def lease(heartbeat: float) -> Lease:
    return Lease(run_id="r1", runner="run 1 on host-a", holder="host-a:nonce", heartbeat=heartbeat)


@pytest.mark.parametrize("heartbeat", [str(NOW + 10 * LEASE_SECONDS), "1e300", "1e400", "Infinity", "NaN"])
def test_a_heartbeat_far_ahead_or_not_a_number_holds_nobody(heartbeat: str) -> None:
    # As the store reads lease.json (Lease.model_validate_json): what a hand edit may leave there.
    held = Lease.model_validate_json('{"run_id": "r1", "runner": "run 1 on host-a", "holder": "host-a:nonce", '
                                     f'"heartbeat": {heartbeat}}}')
    assert not held.fresh(NOW) and may_take(held, "host-b:other", NOW)


@pytest.mark.parametrize("heartbeat", [NOW - LEASE_SECONDS / 2, NOW + LEASE_SECONDS / 2])
def test_a_recent_heartbeat_or_one_a_little_ahead_a_skewed_clock_still_holds(heartbeat: float) -> None:
    held = lease(heartbeat)
    assert held.fresh(NOW) and not may_take(held, "host-b:other", NOW)
    assert "run 1 on host-a" in str(LeaseBusy("r1", held, LEASE_SECONDS))  # the reply renders
