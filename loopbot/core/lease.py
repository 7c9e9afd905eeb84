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
    # The holder's job as its host can look it up ("github-actions:<run id>:<attempt>"), so a runner
    # finding the lease can ask whether that job has ended instead of waiting for the lease to lapse.
    job: str = ""

    def fresh(self, now: float, limit: float = LEASE_SECONDS) -> bool:
        # A heartbeat more than a lease ahead of this clock (a hand-edited lease.json, infinity, a
        # clock far off) holds nobody: else one bad file keeps the plan busy for ever. NaN is stale.
        return -limit < now - self.heartbeat < limit

    def free_at(self, limit: float = LEASE_SECONDS) -> str:
        return datetime.fromtimestamp(self.heartbeat + limit, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def may_take(lease: Lease | None, holder: str, now: float, limit: float = LEASE_SECONDS, *,
             holder_ended: bool = False) -> bool:
    """A runner may take a plan's lease that nobody holds, that it holds already, that went stale,
    or whose holder's job is known to have ended (killed, cancelled or timed out: it renews nothing)."""
    return lease is None or lease.holder == holder or not lease.fresh(now, limit) or holder_ended


def github_actions_job(run_id: str, attempt: str) -> str:
    """The lease's handle of a GitHub Actions job attempt ("" when not on Actions)."""
    return f"github-actions:{run_id}:{attempt or '1'}" if run_id.isdigit() and (attempt or "1").isdigit() else ""


def parse_github_actions_job(job: str) -> tuple[int, int] | None:
    """(run id, attempt) of a handle made by github_actions_job; None for any other holder."""
    kind, _, rest = job.partition(":")
    run_id, _, attempt = rest.partition(":")
    if kind != "github-actions" or not run_id.isdigit() or not attempt.isdigit():
        return None
    return int(run_id), int(attempt)
