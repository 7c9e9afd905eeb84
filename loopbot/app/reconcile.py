"""The reconciler: GitHub does not redeliver a failed webhook, and a runner can die without a word,
so on a schedule every loop the registry holds as active is looked at again. One whose heartbeat
(its state branch's last checkpoint, or its dispatch) is stale, or whose workflow run completed
without a final state, is resumed automatically, a bounded number of times; then it is marked
blocked with the reason, and the plan issue is told."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from loopbot.app import registry
from loopbot.app.registry import FINAL, Liveness, Observed
from loopbot.app.store import AppStore
from loopbot.core.route import MARK


@dataclass(frozen=True)
class ReconcilePolicy:
    stale_after_s: float = 30 * 60.0  # a loop checkpoints after every step; half an hour of silence is death
    max_resumes: int = 2  # automatic resumes of one loop before a human is asked


@dataclass(frozen=True)
class Decision:
    loop_id: int
    action: str  # resume | blocked
    reason: str


def why_stuck(live: Liveness, now: float, policy: ReconcilePolicy) -> str | None:
    """Why an active loop needs help, or None while it looks alive (pure)."""
    loop = live.loop
    last = max(loop.heartbeat_at or 0.0, loop.dispatched_at or 0.0)
    if live.workflow_run_done:
        return f"its workflow run {loop.workflow_run_id} completed without a final state"
    if last and now - last > policy.stale_after_s:
        return f"no heartbeat for {(now - last) / 60:.0f} minutes"
    return None


def reconcile(store: AppStore, policy: ReconcilePolicy,
              observe: Callable[[Liveness], Observed | None] | None = None) -> list[Decision]:
    """One round. `observe` reads a loop's state from GitHub first (None: not readable now, or no
    App credentials): a loop that finished while its events were lost is recorded, not resumed."""
    decisions = []
    for live in registry.active(store):
        seen = observe(live) if observe is not None else None
        if seen is not None:
            registry.observed(store, live.loop.repo, live.loop.issue, seen)
            if seen.status in FINAL:
                continue
            live = replace(live, loop=replace(live.loop, heartbeat_at=seen.heartbeat_at))
        reason = why_stuck(live, store.now(), policy)
        if reason is None:
            continue
        loop = live.loop
        # One job per stuck dispatch: a round that runs again before the resume is sent adds nothing.
        epoch = f"{loop.id}:{loop.dispatched_at or 0:.3f}"
        if live.resumes < policy.max_resumes:
            store.enqueue("command", "reconcile", loop.repo, loop.issue,
                          {"command": "resume", "issue": loop.issue, "source": "reconciler", "actor": "",
                           "reason": reason}, installation_id=live.installation_id, dedupe=f"reconcile:{epoch}")
            decisions.append(Decision(loop.id, "resume", reason))
            continue
        detail = f"blocked: {reason}, after {live.resumes} automatic resume(s)"
        registry.mark(store, loop.id, "blocked", detail)
        store.enqueue("comment", "reconcile", loop.repo, loop.issue, {
            "issue": loop.issue, "key": f"blocked:{epoch}",
            "body": f"{MARK}\nThe loop on this issue looks stuck: {reason}. loopbot resumed it automatically "
                    f"{live.resumes} time(s) and has stopped trying. Its work so far is on its branch; comment "
                    "`/loop resume` to go on, or `/loop retry` to start over."},
            installation_id=live.installation_id, dedupe=f"blocked:{epoch}")
        decisions.append(Decision(loop.id, "blocked", reason))
    return decisions
