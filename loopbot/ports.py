"""The ports: what the runner needs from the outside world. Adapters implement them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from loopbot.core.andon import Lesson
from loopbot.core.budgets import Charge, Spend
from loopbot.core.state import LoopState, PushResult
from loopbot.messages import ModelReply, ModelRequest, Usage
from loopbot.plans import FiledPlan, Plan


class Model(Protocol):
    """One model endpoint. A failed call raises ModelError; the loop records it, never crashes."""

    name: str

    def complete(self, request: ModelRequest) -> ModelReply: ...


class ModelError(Exception):
    """A model call that failed for good (after the provider's own retries).

    When the provider did answer (and so billed) but the reply was unusable, `usage` and
    `cost_usd` carry the bill: the spend ledger charges rejected replies too.
    """

    def __init__(self, message: str, *, usage: Usage | None = None, cost_usd: float = 0.0):
        super().__init__(message)
        self.usage = usage
        self.cost_usd = cost_usd


@dataclass(frozen=True)
class Bind:
    """A host path shown inside the sandbox for one command: at the same path, or `at`."""

    path: Path
    writable: bool = False
    at: Path | None = None


@dataclass(frozen=True)
class CommandResult:
    exit_code: int
    output: str  # stdout and stderr interleaved, head and tail kept under the cap
    duration_seconds: float
    timed_out: bool = False
    truncated_bytes: int = 0


class Sandbox(Protocol):
    """Runs one shell command in the worktree, isolated as far as the adapter can."""

    name: str

    def run(
        self,
        command: str,
        *,
        cwd: Path,
        timeout_seconds: float,
        env: Mapping[str, str] | None = None,
        network: bool = False,
        binds: Sequence[Bind] = (),
    ) -> CommandResult:
        """`network` only for the setup step, which runs the base's own code (never the maker's).
        `binds`: host paths shown at the same place for this command only (an agent's session
        folder, its install folder, the model proxy's socket)."""
        ...

    def share_read_only(self, path: Path) -> None:
        """Show `path` read-only to every command from now on (a setup output), even inside the
        worktree."""
        ...

    def clear_read_only(self) -> None:
        """Forget the paths shared read-only (the setup step is about to make them again)."""
        ...

    def for_tree(self, tree: Path) -> Sandbox:
        """The same isolation with `tree` as the writable tree (a variant of the snapshot)."""
        ...


class Workspace(Protocol):
    """The loop's own git worktree on its own branch. Never the user's tree, never main."""

    path: Path
    branch: str

    def head(self) -> str: ...
    def snapshot(self, message: str) -> str: ...
    def reset(self, sha: str) -> None: ...
    def changed_files(self, base: str, head: str) -> list[str]: ...
    def diff(self, base: str, head: str) -> str: ...
    def tracked_files(self) -> list[str]: ...
    def push(self, remote: str | None) -> PushResult: ...


class Store(Protocol):
    """Durable loop state, saved after every step, and the spend ledger written before each reply
    is used. `save` raises LeaseLost when another process has taken the run over."""

    def create(self, state: LoopState) -> None: ...
    def claim(self, run_id: str) -> None: ...
    def release(self, run_id: str) -> None: ...
    def delete(self, run_id: str) -> None: ...
    def save(self, state: LoopState, step: str) -> None: ...
    def load(self, run_id: str) -> LoopState: ...
    def list_runs(self) -> Sequence[LoopState]: ...
    def record_spend(self, run_id: str, charge: Charge) -> None: ...
    def spent(self, run_id: str) -> Spend | None: ...
    def add_lessons(self, repo: str, lessons: Sequence[Lesson], run_id: str = "") -> None: ...
    def lessons(self, repo: str, limit: int = 12) -> list[str]: ...
    def request_cancel(self, run_id: str) -> None: ...
    def cancel_requested(self, run_id: str) -> bool: ...
    def clear_cancel(self, run_id: str) -> None: ...
    def close(self) -> None: ...


class PlanForge(Protocol):
    """Where plans are filed: files under plans/ locally, issues on GitHub."""

    def plans(self) -> list[FiledPlan]: ...
    def file_plan(self, plan: Plan, body: str, *, date: str) -> FiledPlan: ...


class Clock(Protocol):
    def monotonic(self) -> float: ...
    def wall(self) -> float: ...
