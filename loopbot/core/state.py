"""The loop state: everything a run needs to continue on another machine. Schema-versioned."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

from loopbot.config import Config
from loopbot.core.budgets import Budgets, Exhausted, Spend
from loopbot.goal import Goal

SCHEMA_VERSION: Literal[1] = 1


class Phase(StrEnum):
    """The next step to carry out. A checkpoint is saved after every step."""

    BASELINE = "baseline"
    DIAGNOSE = "diagnose"
    MAKE = "make"
    GUARD = "guard"
    EVALUATE = "evaluate"
    CHECK = "check"
    GOAL_CHECK = "goal_check"
    DECIDE = "decide"
    FINISH = "finish"
    DONE = "done"


class Status(StrEnum):
    RUNNING = "running"
    SUCCESS = "success"
    STOPPED = "stopped"


class StopReason(StrEnum):
    """Why a run ended for good. CANCELLED and ERROR end a run only through `loopbot abandon`;
    otherwise they suspend it (see Suspension)."""

    BUDGET_EXHAUSTED = "BUDGET_EXHAUSTED"
    STAGNATED = "STAGNATED"
    ANDON = "ANDON"
    CANCELLED = "CANCELLED"
    ERROR = "ERROR"
    ABANDONED = "ABANDONED"
    # The maker reported, with evidence, that a check contradicts the goal: a human decides.
    SPEC_CONFLICT = "SPEC_CONFLICT"


class SuspendReason(StrEnum):
    """Why a run paused without ending: `loopbot resume` continues it from its last checkpoint."""

    CANCELLED = "CANCELLED"
    ERROR = "ERROR"
    PUSH_PENDING = "PUSH_PENDING"


class Decision(StrEnum):
    SUCCESS = "SUCCESS"
    RETRY = "RETRY"
    STOP = "STOP"


class Verdict(BaseModel):
    """One evaluator's finding."""

    name: str
    kind: str
    passed: bool
    score: float = Field(ge=0, le=1)
    evidence: str = ""
    duration_seconds: float = 0.0
    exit_code: int | None = None
    # The shell command that was run (None for a file check): what a reader runs to see it fail.
    command: str | None = None
    value: float | None = None
    # Tests the command reported (pytest or unittest output): passed, and run (not skipped).
    tests_passed: int | None = None
    tests_run: int | None = None


class CheckerVerdict(BaseModel):
    decision: Literal["APPROVE", "REJECT", "SKIPPED"]
    reasons: list[str] = Field(default_factory=list)


class CriterionResult(BaseModel):
    criterion: str
    met: bool
    evidence: str = ""


class GoalCheck(BaseModel):
    met: bool
    objective_met: bool
    criteria: list[CriterionResult] = Field(default_factory=list)
    summary: str = ""


class SetupRecord(BaseModel):
    """The setup step's outputs (ignored paths in its own tree) and a fingerprint of their files."""

    outputs: list[str]
    fingerprint: str


class SpecConflict(BaseModel):
    """The maker's report that the goal cannot be met as specified."""

    check: str
    requirement: str
    evidence: str

    def render(self) -> str:
        return f"check: {self.check}\nrequirement: {self.requirement}\nevidence: {self.evidence}"


class GuardViolation(BaseModel):
    guard: Literal["scope", "protected", "spec_drift", "deny_path", "deny_command", "refused_write", "harness",
                   "special_file", "size", "setup", "secret"]
    path: str
    message: str

    @property
    def stops_line(self) -> bool:
        """Scope drift and an oversized file are rolled back and retried; touching protected tests,
        the harness or denied paths is an Andon."""
        return self.guard not in ("scope", "size")


class Snapshot(BaseModel):
    sha: str
    score: float
    iteration: int


class IterationRecord(BaseModel):
    number: int
    mode: Literal["edit", "plan"] = "edit"
    start_sha: str
    head_sha: str | None = None
    approach: str = ""
    summary: str = ""
    diagnosis: str | None = None
    files: list[str] = Field(default_factory=list)
    chunks_completed: list[int] = Field(default_factory=list)
    model_calls: int = 0
    model_seconds: float = 0.0
    # What each role's calls in this iteration cost, and how long they took (the report's table).
    role_costs: dict[str, float] = Field(default_factory=dict)
    role_seconds: dict[str, float] = Field(default_factory=dict)
    maker_error: str | None = None
    refusals: list[GuardViolation] = Field(default_factory=list)
    spec_conflict: SpecConflict | None = None
    violations: list[GuardViolation] = Field(default_factory=list)
    blocked_fingerprint: str | None = None
    verdicts: list[Verdict] = Field(default_factory=list)
    checker: CheckerVerdict | None = None
    goal_check: GoalCheck | None = None
    score: float | None = None
    decision: Decision | None = None
    kept: bool | None = None
    feedback: str | None = None
    timings: dict[str, float] = Field(default_factory=dict)


class FailureEvent(BaseModel):
    iteration: int
    signature: str


class ApproachRecord(BaseModel):
    fingerprint: str
    approach: str
    tokens: list[str]
    files: list[str]
    failures: list[FailureEvent] = Field(default_factory=list)
    blocked: bool = False


class PushResult(BaseModel):
    remote: str | None
    branch: str
    sha: str
    pushed: bool
    message: str = ""
    # The push was refused because the branch on the remote moved: someone else pushed to it.
    remote_moved: bool = False


class Suspension(BaseModel):
    """A run paused between checkpoints: cancelled, a transient error, or a push that failed."""

    reason: SuspendReason
    detail: str
    # The best snapshot pushed when the run paused (None: nothing to push yet).
    push: PushResult | None = None


class LoopState(BaseModel):
    schema_version: Literal[1] = SCHEMA_VERSION
    run_id: str
    goal: Goal
    goal_source: str
    config: Config
    budgets: Budgets
    models: dict[str, str]
    repo: str
    branch: str
    worktree: str
    base_sha: str
    remote: str | None
    protected: list[str] = Field(default_factory=list)
    # Computed once at baseline and never changed: a byte-stable prompt prefix caches.
    repo_map: str = ""
    wiki: str = ""
    # The repo's own templates from .github/loopbot/prompts/ at the base commit (never the loop's branch).
    prompt_overrides: dict[str, str] = Field(default_factory=dict)

    status: Status = Status.RUNNING
    stop_reason: StopReason | None = None
    stop_detail: str = ""
    exhausted: Exhausted | None = None
    phase: Phase = Phase.BASELINE
    iteration: int = 0
    steps_completed: int = 0

    spend: Spend = Field(default_factory=Spend)
    baseline: list[Verdict] = Field(default_factory=list)
    setup: SetupRecord | None = None
    best: Snapshot
    workspace_head: str
    last_improvement_iteration: int = 0
    progress_at_seconds: float = 0.0
    consecutive_failures: int = 0
    plan_mode: bool = False
    diagnosis: str | None = None
    memory: list[ApproachRecord] = Field(default_factory=list)
    chunks_done: list[int] = Field(default_factory=list)
    feedback: str | None = None
    iterations: list[IterationRecord] = Field(default_factory=list)
    current: IterationRecord | None = None
    push: PushResult | None = None
    cancel_requested: bool = False
    # Set while the run is paused; cleared when it is resumed. A suspended run is not finished.
    suspended: Suspension | None = None
    suspensions: int = 0
    # The event that started the run on GitHub (see core.route.trigger_of): a replay of it resumes
    # or reports, never reruns.
    trigger: str | None = None
    # The loop branch's head on the remote as loopbot last saw or pushed it: every push is leased
    # against it, so a maintainer's commit is never overwritten. None: unknown (a local run's own
    # branch; pushed with --force); "": the branch does not exist there yet.
    remote_head: str | None = None
    # Times a human continued this run after it stopped (`/loop resume` on a budget or andon stop).
    reopenings: int = 0
    # On GitHub: the final outcome is shown (PR body, review, check run, ready, labels). A runner
    # that died before that resumes publishing only, never the paid loop.
    published: bool = False

    @property
    def finished(self) -> bool:
        """Final: the outcome is decided and the best snapshot is where it was to be pushed."""
        return self.phase == Phase.DONE

    @property
    def state_label(self) -> str:
        if self.suspended is not None:
            return f"suspended ({self.suspended.reason.value})"
        return self.status.value if self.finished else f"{self.status.value} ({self.phase.value})"

    @property
    def stop_label(self) -> str:
        if self.stop_reason is None:
            return ""
        if self.stop_reason == StopReason.BUDGET_EXHAUSTED and self.exhausted:
            return f"BUDGET_EXHAUSTED({self.exhausted.value})"
        return self.stop_reason.value

    @property
    def current_chunk(self) -> str | None:
        for index, chunk in enumerate(self.goal.chunks, start=1):
            if index not in self.chunks_done:
                return chunk
        return None

    def blocked_approaches(self) -> list[ApproachRecord]:
        return [r for r in self.memory if r.blocked]


def load_state(data: dict[str, Any]) -> LoopState:
    """Validate a stored state; a different schema version is a clear error, not a crash."""
    from loopbot.errors import StateError

    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise StateError(f"loop state has schema version {version!r}; this loopbot reads version {SCHEMA_VERSION}")
    try:
        return LoopState.model_validate(data)
    except Exception as exc:  # pydantic.ValidationError; kept broad so a corrupt row never crashes
        raise StateError(f"loop state does not validate: {exc}") from None
