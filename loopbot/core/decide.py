"""The decide step and the loop's phase transitions."""

from __future__ import annotations

from dataclasses import dataclass

from loopbot.core import memory
from loopbot.core.budgets import Budgets, Exhausted, exhausted_before_call
from loopbot.core.feedback import build_feedback
from loopbot.core.scoring import iteration_score
from loopbot.core.state import (
    Decision,
    IterationRecord,
    LoopState,
    Phase,
    Snapshot,
    Status,
    StopReason,
)

# Consecutive failed iterations that switch the maker into plan mode (Meta-Andon).
PLAN_MODE_AFTER = 3


@dataclass(frozen=True)
class Outcome:
    decision: Decision
    keep: bool
    stop_reason: StopReason | None = None
    exhausted: Exhausted | None = None
    detail: str = ""


def succeeded(record: IterationRecord) -> bool:
    return (
        not record.violations
        and record.spec_conflict is None
        and record.blocked_fingerprint is None
        and record.maker_error is None
        and bool(record.verdicts)
        and all(v.passed for v in record.verdicts)
        and record.checker is not None
        and record.checker.decision == "APPROVE"
        and record.goal_check is not None
        and record.goal_check.met
    )


def decide(state: LoopState, record: IterationRecord) -> Outcome:
    """SUCCESS, RETRY or STOP for a finished iteration, and whether its change is kept."""
    line_stops = [v for v in record.violations if v.stops_line]
    if line_stops:
        detail = "; ".join(f"{v.guard}: {v.path}" for v in line_stops)
        return Outcome(Decision.STOP, keep=False, stop_reason=StopReason.ANDON, detail=f"guard violation: {detail}")
    if record.spec_conflict is not None:
        # The maker says the goal and a check contradict each other: no change can be judged
        # against that check, so a human decides. The best work so far is kept and pushed.
        conflict = record.spec_conflict
        return Outcome(Decision.STOP, keep=False, stop_reason=StopReason.SPEC_CONFLICT,
                       detail=f"{conflict.check} contradicts: {conflict.requirement}"[:500])
    if succeeded(record):
        return Outcome(Decision.SUCCESS, keep=True)

    keep = (
        not record.violations
        and record.blocked_fingerprint is None
        and record.score is not None
        and record.score > state.best.score
    )
    last_improvement = record.number if keep else state.last_improvement_iteration
    budgets = state.budgets
    if record.number >= budgets.max_iterations:
        return Outcome(Decision.STOP, keep, StopReason.BUDGET_EXHAUSTED, Exhausted.ITERATIONS,
                       f"{record.number} of {budgets.max_iterations} iterations used")
    if record.number - last_improvement >= budgets.stagnation_threshold:
        return Outcome(Decision.STOP, keep, StopReason.STAGNATED,
                       detail=f"no score gain in {record.number - last_improvement} iterations")
    progress_at = state.spend.elapsed_seconds if keep else state.progress_at_seconds
    spent = exhausted_before_call(
        state.spend, budgets, seconds_since_progress=state.spend.elapsed_seconds - progress_at
    )
    if spent is not None:
        return Outcome(Decision.STOP, keep, StopReason.BUDGET_EXHAUSTED, spent, f"{spent.value} budget used up")
    return Outcome(Decision.RETRY, keep)


def _failure_signature(record: IterationRecord) -> str:
    if record.blocked_fingerprint:
        return "blocked approach repeated"
    if record.maker_error:
        return memory.error_signature(record.maker_error)
    if record.violations:
        return f"guard {record.violations[0].guard}: {record.violations[0].path}"
    failed = [v for v in record.verdicts if not v.passed]
    if failed:
        return f"{failed[0].name}: {memory.error_signature(failed[0].evidence)}"
    if record.checker is not None and record.checker.decision == "REJECT":
        return "checker: " + (record.checker.reasons[0][:140] if record.checker.reasons else "rejected")
    return "goal not met"


def apply_outcome(state: LoopState, record: IterationRecord, outcome: Outcome) -> LoopState:
    """The state after an iteration's decision (the runner has already reset the workspace)."""
    new = state.model_copy(deep=True)
    record = record.model_copy(deep=True)
    record.decision = outcome.decision
    record.kept = outcome.keep
    if outcome.keep and record.head_sha is not None:
        new.best = Snapshot(sha=record.head_sha, score=record.score or 0.0, iteration=record.number)
        new.last_improvement_iteration = record.number
        new.progress_at_seconds = new.spend.elapsed_seconds
        new.chunks_done = sorted(set(new.chunks_done) | set(record.chunks_completed))
    new.workspace_head = new.best.sha

    blocked_text: str | None = None
    if outcome.decision == Decision.SUCCESS:
        new.consecutive_failures = 0
    else:
        if record.blocked_fingerprint:
            blocked = next((r for r in new.memory if r.fingerprint == record.blocked_fingerprint), None)
            blocked_text = blocked.approach if blocked else record.approach
        if record.approach or record.files:
            new.memory, _ = memory.record_failure(
                new.memory, record.approach, record.files,
                iteration=record.number, signature=_failure_signature(record),
            )
        new.consecutive_failures += 1
        if new.consecutive_failures >= PLAN_MODE_AFTER:
            new.plan_mode = True
    record.feedback = build_feedback(record, kept=outcome.keep, blocked_approach=blocked_text)
    new.feedback = record.feedback
    new.iterations.append(record)
    new.current = None

    if outcome.decision == Decision.RETRY:
        new = begin_iteration(new)
    else:
        new.phase = Phase.FINISH
        if outcome.decision == Decision.SUCCESS:
            new.status = Status.SUCCESS
        else:
            new.status = Status.STOPPED
            new.stop_reason = outcome.stop_reason
            new.exhausted = outcome.exhausted
            new.stop_detail = outcome.detail
    return new


def begin_iteration(state: LoopState) -> LoopState:
    """Open the next iteration from the best snapshot; plan mode first diagnoses."""
    new = state.model_copy(deep=True)
    new.iteration += 1
    new.current = IterationRecord(number=new.iteration, start_sha=new.best.sha,
                                  mode="plan" if new.plan_mode else "edit")
    new.workspace_head = new.best.sha
    new.phase = Phase.DIAGNOSE if new.plan_mode else Phase.MAKE
    return new


def stop_now(state: LoopState, reason: StopReason, detail: str, exhausted: Exhausted | None = None) -> LoopState:
    """Stop mid-iteration (budget, cancel, error): the partial iteration is dropped, best work kept."""
    new = state.model_copy(deep=True)
    current = new.current
    if current is not None:
        if current.model_calls or current.head_sha or current.verdicts:
            new.iterations.append(current.model_copy(update={"decision": Decision.STOP, "kept": False}))
        else:
            new.iteration = current.number - 1  # the iteration never started: it does not count
    new.current = None
    new.workspace_head = new.best.sha
    new.status = Status.STOPPED
    new.stop_reason = reason
    new.exhausted = exhausted
    new.stop_detail = detail
    new.phase = Phase.FINISH
    return new


def budget_stop(state: LoopState, detail: str, exhausted: Exhausted) -> LoopState:
    """A budget ran out mid-iteration. A snapshot that had passed every objective check (the
    budget ran out while it was being reviewed) is kept as the best work when it beats it: paid
    for and proven by the checks, it is pushed, never SUCCESS, for a human to review."""
    current = state.current
    passed = (current is not None and current.head_sha is not None and bool(current.verdicts)
              and all(v.passed for v in current.verdicts) and not current.violations)
    if not passed or current is None or current.head_sha is None:
        return stop_now(state, StopReason.BUDGET_EXHAUSTED, detail, exhausted)
    score = iteration_score(current.verdicts, current.checker)
    if score <= state.best.score:
        return stop_now(state, StopReason.BUDGET_EXHAUSTED, detail, exhausted)
    kept = state.model_copy(deep=True)
    kept.best = Snapshot(sha=current.head_sha, score=score, iteration=current.number)
    new = stop_now(kept, StopReason.BUDGET_EXHAUSTED,
                   f"{detail}; iteration {current.number} passed every objective check and is kept, unreviewed",
                   exhausted)
    new.iterations[-1].kept = True
    return new


def after_guard(record: IterationRecord) -> Phase:
    """Guard violations, a refused (blocked) approach or a failed maker skip the evaluators."""
    if record.violations or record.blocked_fingerprint or record.maker_error or record.spec_conflict:
        return Phase.DECIDE
    return Phase.EVALUATE


def after_evaluate(record: IterationRecord) -> Phase:
    """The checker is a model call: spend it only when every objective check passed."""
    if all(v.passed for v in record.verdicts):
        return Phase.CHECK
    return Phase.DECIDE


def after_check(record: IterationRecord) -> Phase:
    if record.checker is not None and record.checker.decision == "APPROVE":
        return Phase.GOAL_CHECK
    return Phase.DECIDE


def abandon_state(state: LoopState) -> LoopState:
    """A human ends a resumable run for good: final, ABANDONED, the partial iteration dropped."""
    detail = f"abandoned by a human ({state.suspended.reason.value}: {state.suspended.detail})" \
        if state.suspended else "abandoned by a human"
    new = stop_now(state, StopReason.ABANDONED, detail)
    new.suspended = None
    new.phase = Phase.DONE
    return new


def reopenable(state: LoopState) -> bool:
    """A final run a human may continue: stopped by a budget, stagnation or the andon, never a success
    or an abandoned run."""
    return state.finished and state.status == Status.STOPPED and state.stop_reason != StopReason.ABANDONED


def reopen(state: LoopState, allowance: Budgets) -> LoopState:
    """Continue a stopped run on its branch from its best work, every record kept: a human asked for
    more (`/loop resume`). The budgets grow by one `allowance` from what was spent, the no-progress
    clocks restart, and the next iteration begins."""
    assert reopenable(state)
    new = state.model_copy(deep=True)
    spent = new.spend
    new.budgets = new.budgets.model_copy(update={
        "max_iterations": min(100, new.iteration + allowance.max_iterations),
        "max_model_calls": spent.model_calls + allowance.max_model_calls,
        "max_tokens": spent.budget_tokens + allowance.max_tokens,
        "max_cost_usd": spent.cost_usd + allowance.max_cost_usd,
        "max_wall_minutes": spent.elapsed_seconds / 60 + allowance.max_wall_minutes,
    })
    new.status, new.stop_reason, new.exhausted, new.stop_detail = Status.RUNNING, None, None, ""
    new.push = None
    new.published = False
    new.consecutive_failures = 0
    new.last_improvement_iteration = new.iteration
    new.progress_at_seconds = spent.elapsed_seconds
    new.reopenings += 1
    return begin_iteration(new)
