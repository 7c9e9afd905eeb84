"""The runner: carries out the core's decisions through the ports, checkpointing after every step.

Resume is the same code path as a fresh run: the workspace is reset to the state's recorded head,
then the next step runs. A step killed halfway is simply run again from its start.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from loopbot import evaluators
from loopbot.agents.billing import SessionBilling
from loopbot.cancel import Cancellation, Interrupted
from loopbot.context import repomap
from loopbot.core import andon, events, guards, memory
from loopbot.core.budgets import Charge, Exhausted, Spend, exhausted_before_call
from loopbot.core.changes import FileChange
from loopbot.core.decide import (
    after_check,
    after_evaluate,
    after_guard,
    apply_outcome,
    begin_iteration,
    budget_stop,
    decide,
    stop_now,
)
from loopbot.core.diffview import render_change
from loopbot.core.drift import drift
from loopbot.core.harness import check_harness, project_modules
from loopbot.core.outputtail import output_tail
from loopbot.core.paths import ALWAYS_DENIED, is_test_path, matches
from loopbot.core.redact import NO_SECRETS, Redactor
from loopbot.core.scoring import held_to_baseline, iteration_score
from loopbot.core.state import (
    Decision,
    GuardViolation,
    IterationRecord,
    LoopState,
    Phase,
    PushResult,
    SetupRecord,
    Snapshot,
    Status,
    StopReason,
    SuspendReason,
    Suspension,
)
from loopbot.errors import LeaseLost, WorkspaceError
from loopbot.goal import MetricCheck, RunCheck
from loopbot.messages import ModelReply, ModelRequest, TextBlock, Usage
from loopbot.ports import Clock, Model, ModelError, Sandbox, Store
from loopbot.prompts import render
from loopbot.recording import NO_RECORDER, Recorder
from loopbot.roles.checker import run_checker
from loopbot.roles.goal_checker import run_goal_checker
from loopbot.roles.maker import MakerResult, OutOfCalls, run_session
from loopbot.roles.review import NUDGES, ReviewerUnavailable
from loopbot.tools.toolbox import ToolBox
from loopbot.workspace.git import BASE_TESTS, GitWorkspace, fingerprint

if TYPE_CHECKING:  # an agent maker's session and proxy (httpx) load only when a run has one
    from loopbot.agents.proxy import ProxyCall
    from loopbot.agents.session import ExternalMaker

# A push that hangs (a dead remote) must not hold the run for ever; a stopping run (a signal) has
# about 10 seconds in all, so its push gets less.
PUSH_TIMEOUT_SECONDS = 120.0
SUSPEND_PUSH_TIMEOUT_SECONDS = 7.0
# The push line of a run whose best work is its base: there is nothing to show, so no branch.
NOTHING_PUSHED = "nothing pushed: no change"
# Calls one iteration's reviewers may make: checker and goal-checker, each with one reminder.
REVIEW_CALLS = 2 * (1 + NUDGES)


class Observer(Protocol):
    def event(self, event: events.LoopEvent, state: LoopState) -> None: ...


# An observer (the console, GitHub) that fails is asked again this often, then logged and skipped.
OBSERVER_ATTEMPTS = 3


class BudgetStop(Exception):
    def __init__(self, which: Exhausted):
        super().__init__(which.value)
        self.which = which


@dataclass
class Runner:
    store: Store
    workspace: GitWorkspace
    sandbox: Sandbox
    models: dict[str, Model]
    clock: Clock
    observers: list[Observer] = field(default_factory=list)
    lessons: list[str] = field(default_factory=list)
    # Called after each checkpoint; the CLI's fault-injection hook uses it to SIGKILL itself.
    on_checkpoint: Callable[[LoopState], None] | None = None
    cancel: Cancellation | None = None
    # The exit filter: commit messages pass it, and what is pushed is scanned with it first.
    redact: Redactor = NO_SECRETS
    # The run's transcript: every model turn and tool call, as it happens.
    recorder: Recorder = NO_RECORDER
    # An agent CLI as the maker (loopbot.agents): its session is the make step's, the rest is as ever.
    agent_maker: ExternalMaker | None = None

    def __post_init__(self) -> None:
        # Set from a signal handler or `loopbot stop`: running commands are killed and an in-flight
        # model call abandoned at once; the run is suspended from its last checkpoint.
        if self.cancel is None:
            self.cancel = Cancellation()
        self._segment_start = 0.0
        self._elapsed_base = 0.0
        self._tree_files: dict[str, set[str]] = {}
        self._project_modules: dict[str, set[str]] = {}
        self._change_lists: dict[tuple[str, str], list[FileChange]] = {}
        self._review_cost = 0.0
        self._review_tokens = 0
        self._in_step = False
        self._pending: list[events.LoopEvent] = []
        self.observer_failures: list[str] = []

    @property
    def cancellation(self) -> Cancellation:
        assert self.cancel is not None
        return self.cancel

    # -- bookkeeping -----------------------------------------------------------------------
    def _emit(self, event: events.LoopEvent, state: LoopState) -> None:
        """Within a step, events wait for the step's checkpoint: observers mirror what is saved, never
        a step that may yet be undone. A model call is shown at once (the console's live budget)."""
        if self._in_step and not isinstance(event, events.ModelCalled):
            self._pending.append(event)
        else:
            self._tell(event, state)

    def _deliver(self, state: LoopState) -> None:
        pending, self._pending = self._pending, []
        for event in pending:
            self._tell(event, state)

    def _tell(self, event: events.LoopEvent, state: LoopState) -> None:
        """An observer that fails is retried, then logged; it never ends or pauses the loop."""
        for observer in self.observers:
            for attempt in range(1, OBSERVER_ATTEMPTS + 1):
                try:
                    observer.event(event, state)
                    break
                except Exception as exc:  # an observer's failure is its own, never the loop's
                    if attempt == OBSERVER_ATTEMPTS:
                        note = f"{type(observer).__name__} failed on {event.kind} {OBSERVER_ATTEMPTS} times: " \
                               f"{type(exc).__name__}: {exc}"
                        self.observer_failures.append(self.redact(note))
                        print(f"loopbot: {self.redact(note)}", file=sys.stderr)

    def _tick(self, state: LoopState) -> None:
        state.spend.elapsed_seconds = self._elapsed_base + (self.clock.monotonic() - self._segment_start)

    def _checkpoint(self, state: LoopState, step: str) -> None:
        self._tick(state)
        state.steps_completed += 1
        self.store.save(state, step)
        self._emit(events.Checkpointed(step=step), state)
        self._deliver(state)
        if self.on_checkpoint is not None:
            self.on_checkpoint(state)

    def _cancel_wanted(self, state: LoopState) -> bool:
        if self.cancellation.is_set():
            return True
        if self.store.cancel_requested(state.run_id):
            self.cancellation.set("cancelled by `loopbot stop`")
            return True
        return False

    # -- the loop --------------------------------------------------------------------------
    def run(self, state: LoopState) -> LoopState:
        """Run to a final outcome or a suspension; both are checkpointed before this returns.

        LeaseLost propagates: a process that no longer owns the run must write nothing more.
        """
        self._segment_start = self.clock.monotonic()
        self._elapsed_base = state.spend.elapsed_seconds
        resuming = state.steps_completed > 0 or state.suspended is not None
        if state.suspended is not None:
            state.suspended = None
            state.suspensions += 1
        ledger = self.store.spent(state.run_id)
        if ledger is not None:
            # The ledger, not the checkpoint, is what was paid: calls after the last checkpoint count.
            elapsed = state.spend.elapsed_seconds
            state.spend = ledger
            state.spend.elapsed_seconds = elapsed
        self._pin_setup(state)
        if state.phase != Phase.DONE:
            # Whatever a killed process left half-done in the worktree is discarded here.
            self.workspace.reset(state.workspace_head)
        self._emit(events.Resumed() if resuming else events.RunStarted(), state)
        while state.phase != Phase.DONE and state.suspended is None:
            step = state.phase.value
            if state.phase != Phase.FINISH and self._cancel_wanted(state):
                state = self._suspend(state, state.spend, SuspendReason.CANCELLED, self.cancellation.reason)
                step = "suspend"
            else:
                self._emit(events.PhaseStarted(phase=step), state)
                # Steps mutate a working copy: a step that does not complete leaves the checkpoint as
                # it was, and the ledger keeps the spend it counted.
                work = state.model_copy(deep=True)
                self._in_step = True
                try:
                    new = self._step(work)
                except LeaseLost:
                    self._in_step = False
                    raise
                except Interrupted:
                    self._pending.clear()  # the step is undone: nothing it did is told
                    new = self._suspend(state, work.spend, SuspendReason.CANCELLED, self.cancellation.reason)
                    step = "suspend"
                except BudgetStop as exc:
                    new = budget_stop(work, f"{exc.which.value} budget used up", exc.which)
                    with contextlib.suppress(WorkspaceError):
                        self.workspace.reset(new.best.sha)
                except ReviewerUnavailable as exc:
                    # Infrastructure, not the maker's fault: the run pauses at this step, its work
                    # kept; `loopbot resume` asks the reviewer again. Never review feedback.
                    self._pending.clear()
                    new = self._suspend(state, work.spend, SuspendReason.ERROR, str(exc))
                    step = "suspend"
                except Exception as exc:
                    # Git missing for a moment, a full disk, a deleted worktree: the step can be run
                    # again from the checkpoint, so the run pauses instead of ending.
                    self._pending.clear()
                    new = self._suspend(state, work.spend, SuspendReason.ERROR, f"{type(exc).__name__}: {exc}")
                    step = "suspend"
                else:
                    if self.cancellation.is_set() and state.phase != Phase.FINISH:
                        # Commands the cancel killed make a step's results meaningless: drop them.
                        self._pending.clear()
                        new = self._suspend(state, work.spend, SuspendReason.CANCELLED, self.cancellation.reason)
                        step = "suspend"
                self._in_step = False
                state = new
            self._checkpoint(state, step)
        if state.suspended is not None:
            self._emit(events.Suspended(reason=state.suspended.reason.value, detail=state.suspended.detail), state)
        else:
            self._emit(events.Finished(outcome=state.stop_label or state.status.value), state)
        return state

    def _suspend(self, checkpoint: LoopState, spend: Spend, reason: SuspendReason, detail: str) -> LoopState:
        """Pause at the last checkpoint, keeping the spend since; push the best snapshot so far."""
        state = checkpoint.model_copy(deep=True)
        state.spend = spend.model_copy()
        pushed: PushResult | None = None
        try:
            self.workspace.reset(state.best.sha)
        except WorkspaceError as exc:
            detail += f"; rollback to the best snapshot failed ({exc}), `loopbot resume` repairs the worktree"
        if state.best.sha != state.base_sha and state.phase != Phase.FINISH:
            pushed = self._push(state, state.best.sha, SUSPEND_PUSH_TIMEOUT_SECONDS)
        state.suspended = Suspension(reason=reason, detail=detail, push=pushed)
        return state

    def _step(self, state: LoopState) -> LoopState:
        handler = {
            Phase.BASELINE: self._baseline,
            Phase.DIAGNOSE: self._diagnose,
            Phase.MAKE: self._make,
            Phase.GUARD: self._guard,
            Phase.EVALUATE: self._evaluate,
            Phase.CHECK: self._check,
            Phase.GOAL_CHECK: self._goal_check,
            Phase.DECIDE: self._decide,
            Phase.FINISH: self._finish,
        }[state.phase]
        phase, number = state.phase.value, state.iteration
        started = self.clock.monotonic()
        new = handler(state)
        took = self.clock.monotonic() - started
        if new.current is not None and new.current.number == number:
            new.current.timings[phase] = took
        elif new.iterations and new.iterations[-1].number == number:
            new.iterations[-1].timings[phase] = took
        return new

    # -- model calls, budget-checked -------------------------------------------------------
    def _review_reserve(self, state: LoopState) -> Spend:
        """What the reviewers of one iteration may need: their calls (with a reminder each), and
        twice the dearest reviewer call so far in cost and tokens."""
        calls = REVIEW_CALLS if state.goal.criteria else REVIEW_CALLS // 2
        return Spend(model_calls=calls, cost_usd=2 * self._review_cost, input_tokens=2 * self._review_tokens)

    def _gate(self, state: LoopState, role: str) -> Callable[[ModelRequest], ModelReply]:
        model = self.models[role]
        making = role in ("maker", "planner")

        def call(request: ModelRequest) -> ModelReply:
            self._tick(state)
            which = exhausted_before_call(
                state.spend, state.budgets,
                seconds_since_progress=state.spend.elapsed_seconds - state.progress_at_seconds,
            )
            if which is not None:
                raise BudgetStop(which)
            if making:
                # The reviewers' share is kept: no maker session starts that they could not
                # review, and a session stops where they could no longer be paid (its work is
                # then evaluated and reviewed instead of being thrown away by a budget stop).
                short = exhausted_before_call(state.spend.plus(self._review_reserve(state)), state.budgets,
                                              seconds_since_progress=0.0)
                if short is not None and request.turn == 0:
                    raise BudgetStop(short)
                if short is not None:
                    raise OutOfCalls(f"the {short.value} budget left is kept for this iteration's reviewers")
            started = time.monotonic()
            try:
                reply = self.cancellation.call(lambda: model.complete(request))
            except ModelError as exc:
                if exc.usage is not None:
                    # Answered and billed, but unusable: charged all the same.
                    self._charge(state, role, model.name, request, exc.usage, exc.cost_usd,
                                 time.monotonic() - started, accepted=False)
                self.recorder.model_turn(request, model.name, None, seconds=time.monotonic() - started,
                                         error=str(exc), usage=exc.usage, cost_usd=exc.cost_usd)
                raise
            seconds = reply.seconds or (time.monotonic() - started)
            self._charge(state, role, model.name, request, reply.usage, reply.cost_usd, seconds, accepted=True)
            self.recorder.model_turn(request, model.name, reply, seconds=seconds)
            if not making:
                self._review_cost = max(self._review_cost, reply.cost_usd)
                self._review_tokens = max(self._review_tokens, reply.usage.input_tokens + reply.usage.output_tokens
                                          + reply.usage.cache_write_tokens + reply.usage.cache_read_tokens)
            self._emit(events.ModelCalled(
                role=role, model=model.name, turn=request.turn, input_tokens=reply.usage.input_tokens,
                output_tokens=reply.usage.output_tokens, cache_write_tokens=reply.usage.cache_write_tokens,
                cache_read_tokens=reply.usage.cache_read_tokens, cost_usd=reply.cost_usd,
                stop_reason=str(reply.stop_reason)), state)
            return reply

        return call

    def _charge(self, state: LoopState, role: str, model: str, request: ModelRequest, usage: Usage, cost: float,
                seconds: float, *, accepted: bool) -> None:
        """Into the ledger first (it survives a kill on the next line), then the in-memory spend."""
        charge = Charge(role=role, model=model, iteration=request.iteration, turn=request.turn,
                        input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                        cache_write_tokens=usage.cache_write_tokens, cache_read_tokens=usage.cache_read_tokens,
                        cost_usd=cost, seconds=seconds, accepted=accepted)
        self.store.record_spend(state.run_id, charge)
        charge.charge_to(state.spend)
        if state.current is not None:
            record = state.current
            record.model_calls += 1
            record.model_seconds += seconds
            record.role_costs[role] = record.role_costs.get(role, 0.0) + cost
            record.role_seconds[role] = record.role_seconds.get(role, 0.0) + seconds

    # -- steps -----------------------------------------------------------------------------
    # -- the setup step ---------------------------------------------------------------------
    def _setup(self, state: LoopState) -> str | None:
        """Run the setup command in the worktree at the base (the base's own code, with network);
        its ignored outputs are kept through every clean, read-only inside the sandbox, and linked
        into variant trees. The worktree goes back to where it was. Returns why it failed, or None."""
        command = state.config.commands.setup
        assert command is not None
        here = self.workspace.head()
        self.workspace.pinned = []
        self.sandbox.clear_read_only()
        self.workspace.reset(state.base_sha)  # and every old output gone with the other ignored files
        result = self.sandbox.run(command, cwd=self.workspace.path,
                                  timeout_seconds=state.config.commands.timeout_seconds, network=True)
        outputs, loose = self.workspace.ignored_entries(self.workspace.path)
        problem = None
        if result.exit_code != 0:
            problem = f"`{command}` exited {result.exit_code}: {result.output.strip()[-1500:]}"
        elif loose:
            problem = (f"`{command}` created files git does not ignore ({', '.join(loose[:5])}); setup outputs must "
                       "be ignored (add them to .gitignore) so they never reach a snapshot")
        if problem is None:
            state.setup = SetupRecord(outputs=outputs, fingerprint=fingerprint(self.workspace.path, outputs))
            self._pin_setup(state)
            self._emit(events.SetupDone(outputs=tuple(outputs), seconds=result.duration_seconds), state)
        self.workspace.reset(here)
        return problem

    def _pin_setup(self, state: LoopState) -> None:
        if state.setup is not None:
            self.workspace.pinned = list(state.setup.outputs)
            for rel in state.setup.outputs:
                self.sandbox.share_read_only(self.workspace.path / rel)

    def _verify_setup(self, state: LoopState, *, thorough: bool) -> None:
        """The outputs are the setup's own, else they are made again on the base: before the maker
        (present: a resume on a fresh machine) and before each evaluation (unchanged: only a
        command running without bubblewrap could have written to them)."""
        if state.setup is None:
            return
        root = self.workspace.path
        present = all((root / rel).exists() for rel in state.setup.outputs)
        if present and (not thorough or fingerprint(root, state.setup.outputs) == state.setup.fingerprint):
            return
        problem = self._setup(state)
        if problem is not None:
            raise WorkspaceError(f"the setup outputs had changed and could not be made again: {problem}")
        self._emit(events.SetupRestored(outputs=tuple(state.setup.outputs) if state.setup else ()), state)

    def _baseline(self, state: LoopState) -> LoopState:
        self.workspace.ensure_at(state.workspace_head)
        if state.config.commands.setup:
            problem = self._setup(state)
            if problem is not None:
                return stop_now(state, StopReason.ANDON, f"infrastructure: setup failed: {problem}")
        verdicts = evaluators.run_parallel(
            evaluators.build(state.goal, state.config.commands), self.workspace.path, self.sandbox)
        self.workspace.ensure_at(state.workspace_head)
        state.baseline = verdicts
        execution = state.config.execution
        state.repo_map = repomap.build(
            self.workspace.path, self.workspace.tracked_files(), goal_text=f"{state.goal.goal} {' '.join(state.goal.chunks)}",
            scope=state.goal.scope.allow, budget_tokens=execution.repo_map_tokens)
        state.wiki = repomap.wiki_excerpt(self.workspace.path, state.config.wiki.path, execution.wiki_tokens)
        # The baseline is where the loop starts: the base, or a loop PR's work when it iterates on it.
        state.best = Snapshot(sha=state.workspace_head, score=iteration_score(verdicts, None), iteration=0)
        self._emit(events.BaselineScored(score=state.best.score), state)
        broken = andon.infrastructure_failure(verdicts)
        if broken is not None:
            verdict, found = broken
            # No model call can fix the environment: stop the line before spending any.
            return stop_now(state, StopReason.ANDON,
                            f"infrastructure: {verdict.name}: {found.failure.value} "
                            f"(confidence {found.confidence:.2f}): {found.evidence}")
        return begin_iteration(state)

    def _toolbox(self, state: LoopState, *, plan_mode: bool) -> ToolBox:
        run_timeout = min(300.0, state.config.commands.timeout_seconds)
        setup_outputs = [p for rel in (state.setup.outputs if state.setup else []) for p in (rel, f"{rel}/**")]
        return ToolBox(root=self.workspace.path, sandbox=self.sandbox,
                       deny_paths=[*ALWAYS_DENIED, *state.goal.boundaries.deny_paths, *state.protected, *setup_outputs],
                       deny_commands=state.goal.boundaries.deny_commands, plan_mode=plan_mode,
                       output_cap_bytes=min(16_000, state.config.execution.output_cap_bytes),
                       run_timeout_seconds=run_timeout)

    def _context(self, state: LoopState) -> list[TextBlock]:
        """Two blocks: a stable prefix (cache breakpoint) and this iteration's progress and feedback."""
        stable = self._render(
            state, "maker_context.md.j2", goal=state.goal, acceptance=evaluators.describe(state.goal),
            protected=state.protected, lessons=self.lessons, wiki=state.wiki, repo_map=state.repo_map)
        changed = self.workspace.changed_files(state.base_sha, state.best.sha) if state.best.sha != state.base_sha else []
        progress = self._render(
            state, "maker_progress.md.j2", goal=state.goal, iteration=state.iteration, chunks_done=state.chunks_done,
            current_chunk=state.current_chunk, changed_files=changed, blocked=state.blocked_approaches(),
            diagnosis=state.diagnosis, feedback=state.feedback)
        return [TextBlock(text=stable, cache=True), TextBlock(text=progress)]

    def _render(self, state: LoopState, name: str, **values: Any) -> str:
        return render(name, overrides=state.prompt_overrides, **values)

    def _diagnose(self, state: LoopState) -> LoopState:
        assert state.current is not None
        result = run_session(
            self._gate(state, "planner"), self._toolbox(state, plan_mode=True), role="planner",
            system=self._render(state, "planner_system.md.j2", failures=state.consecutive_failures),
            context=self._context(state), iteration=state.iteration,
            max_turns=state.config.execution.max_turns_per_iteration, recorder=self.recorder,
        )
        if result.diagnosis is None:
            state.current.maker_error = result.error or "plan mode ended without a diagnosis"
            state.phase = Phase.GUARD
            return state
        state.diagnosis = result.diagnosis.render()
        state.current.diagnosis = state.diagnosis
        state.plan_mode = False
        state.consecutive_failures = 0
        state.phase = Phase.MAKE
        return state

    def _make(self, state: LoopState) -> LoopState:
        record = state.current
        assert record is not None
        self._verify_setup(state, thorough=False)
        # The workspace is already at start_sha: decide (or resume) reset it there.
        toolbox = self._toolbox(state, plan_mode=False)
        if self.agent_maker is not None:
            result = self._agent_session(state, self.agent_maker)
        else:
            result = run_session(
                self._gate(state, "maker"), toolbox, role="maker",
                system=self._render(state, "maker_system.md.j2"), context=self._context(state),
                iteration=state.iteration, max_turns=state.config.execution.max_turns_per_iteration,
                recorder=self.recorder,
            )
        record = state.current
        assert record is not None
        first_line = result.summary.strip().splitlines()[0][:300] if result.summary.strip() else ""
        record.approach = result.approach or first_line
        record.summary = result.summary
        record.chunks_completed = result.chunks_completed
        record.maker_error = result.error
        record.spec_conflict = result.conflict
        record.refusals = list(toolbox.refusals)
        title = self.redact(record.approach or "no approach stated").replace("\n", " ")[:72]
        for removed in self.workspace.remove_special_files():
            record.refusals.append(GuardViolation(
                guard="special_file", path=removed,
                message="git cannot carry it, so it would be evaluated but never pushed; removed"))
        record.head_sha = self.workspace.snapshot(f"loopbot: iteration {record.number}: {title}")
        record.files = self.workspace.changed_files(record.start_sha, record.head_sha)
        state.workspace_head = record.head_sha
        state.phase = Phase.GUARD
        self._emit(events.Made(approach=record.approach, files=tuple(record.files)), state)
        return state

    def _agent_session(self, state: LoopState, agent: ExternalMaker) -> MakerResult:
        """One agent CLI session under the built-in maker's budget rules, asked by the proxy per call."""
        model = self.models["maker"].name

        def hard() -> Exhausted | None:
            self._tick(state)
            return exhausted_before_call(state.spend, state.budgets,
                                         seconds_since_progress=state.spend.elapsed_seconds - state.progress_at_seconds)

        def reserved() -> Exhausted | None:
            return exhausted_before_call(state.spend.plus(self._review_reserve(state)), state.budgets,
                                         seconds_since_progress=0.0)

        def charge(request: ModelRequest, call: ProxyCall) -> None:
            self._charge(state, "maker", model, request, call.usage, call.cost_usd, call.seconds,
                         accepted=call.error is None)
            self._emit(events.ModelCalled(
                role="maker", model=model, turn=request.turn, input_tokens=call.usage.input_tokens,
                output_tokens=call.usage.output_tokens, cache_write_tokens=call.usage.cache_write_tokens,
                cache_read_tokens=call.usage.cache_read_tokens, cost_usd=call.cost_usd,
                stop_reason=call.stop_reason or "error"), state)

        # No session starts that could not make one call its reviewers could pay (as _gate at turn 0).
        before = hard() or reserved()
        if before is not None:
            raise BudgetStop(before)
        billing = SessionBilling(iteration=state.iteration, model=model, hard=hard, reserved=reserved,
                                 charge_call=charge, recorder=self.recorder)
        task = self._render(state, "agent_task.md.j2", blocks=[b.text for b in self._context(state)])
        result = agent.run(self.sandbox, self.workspace.path, task, iteration=state.iteration, billing=billing,
                           max_turns=state.config.execution.max_turns_per_iteration)
        if billing.stopped_by is not None:
            raise BudgetStop(billing.stopped_by)
        return result

    def _guard(self, state: LoopState) -> LoopState:
        record = state.current
        assert record is not None
        violations = list(record.refusals)
        if record.head_sha is not None:
            violations += self._gate_violations(state, record.start_sha, record.head_sha)
        violations += self._escaping_symlinks(record.files)
        if record.head_sha is not None:
            violations += self._secret_violations(state, record.start_sha, record.head_sha)
        record.violations = violations
        blocked = memory.is_blocked(state.memory, record.approach, record.files)
        if blocked is not None and not record.violations:
            record.blocked_fingerprint = blocked.fingerprint
            self._emit(events.ApproachRefused(approach=record.approach, fingerprint=blocked.fingerprint), state)
        state.phase = after_guard(record)
        return state

    def _gate_violations(self, state: LoopState, start: str, head: str) -> list[GuardViolation]:
        """Path, harness, drift, nested-repository and size guards on the snapshot's change,
        read from git's records of it (modes, sizes), not from how a diff renders it."""
        changes = self._changes(start, head)
        goal, gate = state.goal, state.config.gate
        protected = set(state.protected)
        drifted: dict[str, list[str]] = {}
        for change in changes:
            if change.added or change.path in protected or not is_test_path(change.path):
                continue
            old = self.workspace.show(start, change.path)
            new = None if change.deleted else self.workspace.show(head, change.path)
            diff = "" if change.path.endswith(".py") else self.workspace.diff(start, head, [change.path])
            findings = drift(change.path, old, new, diff)
            if findings:
                drifted[change.path] = findings
        found = guards.check_changes(changes, allow=goal.scope.allow, protected=state.protected,
                                     deny_paths=goal.boundaries.deny_paths, drift=drifted,
                                     max_file_bytes=int(gate.max_file_mb * guards.MB))
        base_files = self._files_at(state.base_sha)
        if state.base_sha not in self._project_modules:
            self._project_modules[state.base_sha] = project_modules(base_files)
        added_python = any(c.added and c.path.endswith((".py", ".so", ".pyd")) for c in changes)
        found += check_harness(
            changes, base_files=base_files, head_files=set(self.workspace.tracked_files()) if added_python else set(),
            allow=goal.scope.allow, acceptance_commands=self._acceptance_commands(state),
            texts=lambda path: (self.workspace.show(start, path), self.workspace.show(head, path)),
            # Reading every installed distribution's metadata takes half a second: only when a
            # new module could shadow one.
            project=self._project_modules[state.base_sha], installed=installed_modules() if added_python else (),
            setup_outputs=state.setup.outputs if state.setup else ())
        since_base = changes if start == state.base_sha else self._changes(state.base_sha, head)
        found += guards.check_growth(since_base, int(gate.max_growth_mb * guards.MB))
        return found

    def _secret_violations(self, state: LoopState, base: str, head: str) -> list[GuardViolation]:
        """A secret loopbot holds, in any encoding, anywhere in what base..head would push: every
        added or changed file's name and content, and the commit messages. Each hit names the
        place and line, never the value."""
        if not self.redact.holds_secrets or base == head:
            return []
        found: list[GuardViolation] = []

        def scan(text: str, where: str) -> None:
            for hit in self.redact.scan(text):
                found.append(GuardViolation(guard="secret", path=f"{where}:{hit.line}", message=(
                    f"holds a secret loopbot holds ({hit.form}); rolled back, never pushed")))

        # Files over the size cap are skipped: the size guard never lets them be kept.
        cap = int(state.config.gate.max_file_mb * guards.MB)
        for path, data in self.workspace.changed_blobs(base, head, cap):
            scan(path, "file name")
            if data is not None:
                scan(data.decode("utf-8", errors="replace"), path)
        scan(self.workspace.messages(base, head), "commit message")
        return found

    def _exit_filter(self, state: LoopState, sha: str) -> PushResult | None:
        """The refusal to push a snapshot that carries a secret, or None when it may go."""
        leaks = self._secret_violations(state, state.base_sha, sha)
        if not leaks:
            return None
        where = ", ".join(v.path for v in leaks[:5])
        return PushResult(remote=state.remote, branch=state.branch, sha=sha, pushed=False,
                          message=f"refused by the exit filter: a secret loopbot holds is in {where}")

    def _push(self, state: LoopState, sha: str, timeout: float) -> PushResult:
        """Every push passes the exit filter first, and is leased against the head loopbot last saw
        on the remote (state.remote_head, updated here): a maintainer's commit is never overwritten.
        A branch with no commit beyond its base is never pushed: it would only look like work."""
        if sha == state.base_sha:
            return PushResult(remote=state.remote, branch=state.branch, sha=sha, pushed=False, message=NOTHING_PUSHED)
        refused = self._exit_filter(state, sha)
        if refused is not None:
            return refused
        result = self.workspace.push(state.remote, sha, timeout=timeout, lease=state.remote_head)
        if result.remote_moved and state.remote is not None:
            # A kill between a push and its checkpoint leaves the lease one push behind: the head
            # there is loopbot's own work, so the push goes on from it. Anyone else's is kept.
            theirs = self.workspace.remote_head(state.remote, timeout=timeout)
            if theirs in _own_heads(state):
                result = self.workspace.push(state.remote, sha, timeout=timeout, lease=theirs)
            else:
                result = result.model_copy(update={"message": (
                    f"not pushed: {state.branch} on {state.remote} moved to {theirs[:12] or 'nothing'}, a commit "
                    "loopbot did not make (someone pushed to the loop branch); it was kept, not overwritten. "
                    "`/loop run` builds on it, `/loop retry` starts over from the default branch")})
        if result.pushed and state.remote_head is not None:
            state.remote_head = sha
        return result

    def _changes(self, base: str, head: str) -> list[FileChange]:
        """What git records as changed between two commits; commits never change, so neither does this."""
        key = (base, head)
        if key not in self._change_lists:
            self._change_lists[key] = self.workspace.changes(base, head)
        return self._change_lists[key]

    def _files_at(self, sha: str) -> set[str]:
        if sha not in self._tree_files:
            self._tree_files[sha] = set(self.workspace.files_at(sha))
        return self._tree_files[sha]

    @staticmethod
    def _acceptance_commands(state: LoopState) -> list[str]:
        commands = [c.run for c in state.goal.objective_checks if isinstance(c, (RunCheck, MetricCheck))]
        return commands + [c for c in (state.config.commands.test, state.config.commands.lint) if c]

    def _escaping_symlinks(self, files: list[str]) -> list[GuardViolation]:
        """A committed symlink that leads out of the worktree is a trap for whoever checks it out."""
        root = self.workspace.path.resolve()
        found = []
        for name in files:
            path = self.workspace.path / name
            if path.is_symlink():
                target = path.resolve()
                if target != root and root not in target.parents:
                    found.append(GuardViolation(guard="deny_path", path=name,
                                                message=f"symlink points outside the worktree ({os.readlink(path)})"))
        return found

    def _evaluate(self, state: LoopState) -> LoopState:
        record = state.current
        assert record is not None
        assert record.head_sha is not None
        started = self.clock.monotonic()
        self._verify_setup(state, thorough=True)
        self.workspace.ensure_at(record.head_sha)
        built = evaluators.build(state.goal, state.config.commands)
        jobs = [(ev, self.workspace.path, self.sandbox) for ev in built]
        changes = self._changes(state.base_sha, record.head_sha)
        added = [c.path for c in changes if c.added]
        if state.goal.scope.new_tests:
            jobs.append((evaluators.new_tests_present(state.goal.scope.new_tests, added), self.workspace.path,
                         self.sandbox))
        variant = self._base_tests_tree(state, record.head_sha, changes)
        if variant is not None:
            tree, note = variant
            jobs += [(ev, tree, self.sandbox.for_tree(tree)) for ev in evaluators.on_base_tests(built, note)]
        record.verdicts = held_to_baseline(evaluators.run_jobs(jobs), state.baseline, evaluators.BASE_TESTS_SUFFIX)
        self.workspace.ensure_at(record.head_sha)
        record.timings["evaluate_wall"] = self.clock.monotonic() - started
        record.score = iteration_score(record.verdicts, None)
        for verdict in record.verdicts:
            self._emit(events.CheckRan(
                name=verdict.name, passed=verdict.passed, score=verdict.score, seconds=verdict.duration_seconds,
                command=verdict.command, exit_code=verdict.exit_code,
                output_tail="" if verdict.passed else output_tail(verdict.evidence)), state)
        state.phase = after_evaluate(record)
        return state

    def _base_tests_tree(self, state: LoopState, head: str, changes: list[FileChange]) -> tuple[Path, str] | None:
        """The snapshot with only the base's test files, when the loop added or changed any: new
        test files go (except those the goal asks for), changed ones are the base's again."""
        asked = state.goal.scope.new_tests
        drop = [c.path for c in changes if c.added and is_test_path(c.path) and not matches(asked, c.path)]
        # Changed and deleted test files are the base's again: a deleted data file of a
        # data-driven test must still pass.
        restore = [c.path for c in changes if not c.added and is_test_path(c.path)]
        if not drop and not restore:
            return None
        tree = self.workspace.prepare_variant(BASE_TESTS, head, restore=restore, drop=drop, base=state.base_sha)
        parts = [f"without the loop's new test files ({', '.join(drop)})" if drop else "",
                 f"with the base's version of {', '.join(restore)}" if restore else ""]
        return tree, "re-run " + " and ".join(p for p in parts if p)

    def _check(self, state: LoopState) -> LoopState:
        record = state.current
        assert record is not None and record.head_sha is not None
        diff = self._change_view(state, record.head_sha)
        record.checker = run_checker(self._gate(state, "checker"), state.goal, diff, record.verdicts,
                                     iteration=record.number, overrides=state.prompt_overrides)
        record.score = iteration_score(record.verdicts, record.checker)
        self._emit(events.Reviewed(decision=record.checker.decision, reasons=tuple(record.checker.reasons)), state)
        state.phase = after_check(record)
        return state

    def _goal_check(self, state: LoopState) -> LoopState:
        record = state.current
        assert record is not None and record.head_sha is not None
        diff = self._change_view(state, record.head_sha)
        record.goal_check = run_goal_checker(self._gate(state, "goal_checker"), state.goal, diff,
                                             record.verdicts, iteration=record.number, overrides=state.prompt_overrides)
        self._emit(events.GoalChecked(met=record.goal_check.met, summary=record.goal_check.summary), state)
        state.phase = Phase.DECIDE
        return state

    def _change_view(self, state: LoopState, head: str) -> str:
        """The whole change for a reviewer: every file listed with status, mode and size; diffs
        with text forced, trimmed per file (data first), never dropping a source file."""
        changes = self._changes(state.base_sha, head)
        diffs = self.workspace.file_diffs(state.base_sha, head, [c.path for c in changes])
        return self.redact(render_change(changes, diffs))

    def _decide(self, state: LoopState) -> LoopState:
        record = state.current
        assert record is not None
        if record.score is None:
            record = record.model_copy(update={"score": 0.0})
        self._tick(state)
        outcome = decide(state, record)
        new = apply_outcome(state, record, outcome)
        self.workspace.reset(new.best.sha)
        if outcome.decision == Decision.RETRY:
            self._progress_push(new)
        self._emit(events.Decided(iteration=record.number, decision=outcome.decision.value, kept=outcome.keep,
                                  score=record.score or 0.0, stop=new.stop_label), new)
        return new

    def _progress_push(self, state: LoopState) -> None:
        """The best work so far goes to the remote after each iteration that changed it, so the loop PR
        shows it while the loop goes on. Only the runner pushes; a refused push is told, not fatal:
        the work is in the state, and the final push tries again."""
        best = state.best.sha
        if state.remote is None or best == state.base_sha or (state.push is not None and state.push.pushed
                                                               and state.push.sha == best):
            return
        state.push = self._push(state, best, PUSH_TIMEOUT_SECONDS)
        self._emit(events.Pushed(pushed=state.push.pushed, message=state.push.message, sha=state.push.sha), state)

    def _finish(self, state: LoopState) -> LoopState:
        """Push the best snapshot; only then is the run final. A failed push suspends it (PUSH_PENDING)."""
        if self.workspace.head() != state.best.sha:
            self.workspace.reset(state.best.sha)
        refused = self._exit_filter(state, state.best.sha)
        state.push = refused or self._push(state, state.best.sha, PUSH_TIMEOUT_SECONDS)
        self._emit(events.Pushed(pushed=state.push.pushed, message=state.push.message, sha=state.push.sha,
                                 nothing_to_push=state.push.message == NOTHING_PUSHED), state)
        if refused is not None:
            # Not a push to retry: the line stops, the work stays local for a human to look at.
            state.stop_reason, state.stop_detail = StopReason.ANDON, refused.message
        elif not state.push.pushed and state.remote is not None and state.push.message != NOTHING_PUSHED:
            state.suspended = Suspension(reason=SuspendReason.PUSH_PENDING, detail=state.push.message)
            return state
        if state.status != Status.SUCCESS:
            # Kaizen: every stop leaves an incident record and lessons for this repository's next loops
            # (counted once per run, however often this step is replayed).
            lessons = andon.lessons_for(state)
            self.store.add_lessons(state.repo, lessons, state.run_id)
            found = andon.stop_classification(state)
            self._emit(events.IncidentRecorded(markdown=andon.incident_markdown(state, lessons, found),
                                               failure=found.failure.value if found else None,
                                               confidence=found.confidence if found else None), state)
        state.phase = Phase.DONE
        return state


def _own_heads(state: LoopState) -> set[str]:
    """Commits this run made or started from: a remote head among them is loopbot's own."""
    heads = {state.best.sha, state.workspace_head}
    for record in [*state.iterations, *([state.current] if state.current else [])]:
        heads.update(sha for sha in (record.start_sha, record.head_sha) if sha)
    return heads


@functools.cache
def installed_modules() -> frozenset[str]:
    """Top-level import names of the distributions installed for this interpreter (the test
    runner's plugins among them): a new module by one of these names replaces it."""
    return frozenset(importlib.metadata.packages_distributions())


def iteration_overhead(record: IterationRecord) -> float:
    """Controller time in an iteration: its wall time less model time and the slowest evaluator."""
    wall = sum(v for k, v in record.timings.items() if k != "evaluate_wall")
    slowest = max((v.duration_seconds for v in record.verdicts), default=0.0)
    return max(0.0, wall - record.model_seconds - slowest)
