"""The lease on a plan's loop state: which runner may write it, and until when. Pure: the state
store keeps the lease in its commits and compares-and-swaps the ref; this says who may take it."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict

# A lease whose heartbeat is older than this belongs to nobody: its runner died or lost the network.
LEASE_SECONDS = 600.0
# How often a holder renews it: five beats in a lease, so a slow push or two never lets it lapse.
HEARTBEAT_SECONDS = LEASE_SECONDS / 5


class Lease(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str
    runner: str  # who holds it, as a person reads it: "workflow run 123 attempt 1 on runner-7"
    holder: str  # the runner and a nonce: one process, never a later one with the same name
    heartbeat: float  # epoch seconds of the last renewal

    def fresh(self, now: float, limit: float = LEASE_SECONDS) -> bool:
        return now - self.heartbeat < limit

    def free_at(self, limit: float = LEASE_SECONDS) -> str:
        return datetime.fromtimestamp(self.heartbeat + limit, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def may_take(lease: Lease | None, holder: str, now: float, limit: float = LEASE_SECONDS) -> bool:
    """A runner may take a plan's lease that nobody holds, that it holds already, or that went stale."""
    return lease is None or lease.holder == holder or not lease.fresh(now, limit)
