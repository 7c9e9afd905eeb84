"""What a loop tells its observers: a closed set of frozen event types. Observers (the console,
the run's files, GitHub) match on the type, so a renamed field is a type error, not a silently
empty comment. `kind` is the name in events.jsonl."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class _Event:
    kind: ClassVar[str]

    def fields(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class RunStarted(_Event):
    kind: ClassVar[str] = "run_started"


@dataclass(frozen=True)
class Resumed(_Event):
    kind: ClassVar[str] = "resumed"


@dataclass(frozen=True)
class PhaseStarted(_Event):
    kind: ClassVar[str] = "phase"
    phase: str


@dataclass(frozen=True)
class Checkpointed(_Event):
    kind: ClassVar[str] = "checkpoint"
    step: str


@dataclass(frozen=True)
class ModelCalled(_Event):
    kind: ClassVar[str] = "model_call"
    role: str
    model: str
    turn: int
    input_tokens: int
    output_tokens: int
    cache_write_tokens: int
    cache_read_tokens: int
    cost_usd: float
    stop_reason: str


@dataclass(frozen=True)
class SetupDone(_Event):
    kind: ClassVar[str] = "setup"
    outputs: tuple[str, ...]
    seconds: float


@dataclass(frozen=True)
class SetupRestored(_Event):
    kind: ClassVar[str] = "setup_restored"
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class BaselineScored(_Event):
    kind: ClassVar[str] = "baseline"
    score: float


@dataclass(frozen=True)
class Made(_Event):
    kind: ClassVar[str] = "made"
    approach: str
    files: tuple[str, ...]


@dataclass(frozen=True)
class ApproachRefused(_Event):
    kind: ClassVar[str] = "refused"
    approach: str
    fingerprint: str


@dataclass(frozen=True)
class CheckRan(_Event):
    kind: ClassVar[str] = "verdict"
    name: str
    passed: bool
    score: float
    seconds: float
    # A failed check says how: the command run, its exit code and the tail of what it printed.
    command: str | None = None
    exit_code: int | None = None
    output_tail: str = ""


@dataclass(frozen=True)
class Reviewed(_Event):
    kind: ClassVar[str] = "checker"
    decision: str
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class GoalChecked(_Event):
    kind: ClassVar[str] = "goal_check"
    met: bool
    summary: str


@dataclass(frozen=True)
class Decided(_Event):
    kind: ClassVar[str] = "decided"
    iteration: int
    decision: str
    kept: bool
    score: float
    stop: str


@dataclass(frozen=True)
class Pushed(_Event):
    kind: ClassVar[str] = "pushed"
    pushed: bool
    message: str
    sha: str
    # Not pushed because there is nothing to show (the best work is the base): not a refusal.
    nothing_to_push: bool = False


@dataclass(frozen=True)
class IncidentRecorded(_Event):
    kind: ClassVar[str] = "incident"
    markdown: str
    failure: str | None
    confidence: float | None


@dataclass(frozen=True)
class Finished(_Event):
    kind: ClassVar[str] = "finished"
    outcome: str  # success, or the stop label: what scripts reading events.jsonl need


@dataclass(frozen=True)
class Suspended(_Event):
    kind: ClassVar[str] = "suspended"
    reason: str
    detail: str


LoopEvent = (RunStarted | Resumed | PhaseStarted | Checkpointed | ModelCalled | SetupDone | SetupRestored
             | BaselineScored | Made | ApproachRefused | CheckRan | Reviewed | GoalChecked | Decided | Pushed
             | IncidentRecorded | Finished | Suspended)
