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
