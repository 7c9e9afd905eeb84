"""Errors loopbot reports to a user without a traceback."""

from __future__ import annotations

from dataclasses import dataclass


class LoopbotError(Exception):
    """Base for every error the CLI turns into a clean message."""


@dataclass(frozen=True)
class Problem:
    """One located problem in an input file."""

    source: str
    line: int | None
    column: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.source
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


class InputError(LoopbotError):
    """Bad user input: the CLI exits 2 and prints every located problem."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class StateError(LoopbotError):
    """A stored loop state that cannot be used (wrong schema version, corrupt)."""


class WorkspaceError(LoopbotError):
    """A git operation on the loop's workspace failed."""


class StoreError(LoopbotError):
    """The state database cannot be used (read-only, full, damaged): the message says what to do."""


class LeaseHeld(LoopbotError):
    """Another live process owns the run."""

    def __init__(self, run_id: str, owner: str):
        self.run_id, self.owner = run_id, owner
        super().__init__(f"run {run_id} is being run by {owner} (its lease is live); "
                         f"`loopbot stop {run_id}` asks it to stop")


class LeaseLost(LoopbotError):
    """This process no longer owns the run: another took the lease over. It must write nothing more."""

    def __init__(self, run_id: str, owner: str):
        self.run_id, self.owner = run_id, owner
        super().__init__(f"run {run_id} was taken over by {owner}; this process stopped without writing")
