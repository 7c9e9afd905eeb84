"""The goal file: what one loop must achieve, proven by objective acceptance checks."""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from loopbot.agents.spec import AgentMaker
from loopbot.core import regex
from loopbot.core.budgets import BudgetOverrides
from loopbot.yamlfile import parse_yaml, read_yaml_file, validate_located

_ID = r"^[a-z0-9][a-z0-9._-]{0,62}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunCheck(_Strict):
    """A command that must exit with `expect_exit` (0 by default)."""

    run: str = Field(min_length=1)
    name: str | None = None
    expect_exit: int = 0
    timeout_seconds: float = Field(600, gt=0)


class FileCheck(_Strict):
    """A file that must exist and contain a string or match a regex (or must not)."""

    file: str = Field(min_length=1)
    contains: str | None = None
    regex: str | None = None
    not_contains: str | None = None
    name: str | None = None

    @field_validator("regex")
    @classmethod
    def _regex_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            problem = regex.check(value)
            if problem:
                raise ValueError(f"regex: {problem}")
        return value


class MetricCheck(_Strict):
    """A number read from a command's output, held to a threshold."""

    metric: str = Field(min_length=1)
    run: str = Field(min_length=1)
    pattern: str = Field(min_length=1, description="regex whose first group is the number")
    min: float | None = None
    max: float | None = None
    timeout_seconds: float = Field(600, gt=0)

    @field_validator("pattern")
    @classmethod
    def _pattern_has_group(cls, value: str) -> str:
        try:
            compiled = regex.SafePattern(value)
        except regex.RegexRefused as exc:
            raise ValueError(f"pattern: {exc}") from None
        if compiled.groups < 1:
            raise ValueError("pattern needs a capturing group around the number")
        return value

    @model_validator(mode="after")
    def _has_threshold(self) -> MetricCheck:
        if self.min is None and self.max is None:
            raise ValueError("a metric needs min, max or both")
        return self


class Criterion(_Strict):
    """A criterion no command can decide; the goal-checker model judges it from the evidence."""

    criterion: str = Field(min_length=1)


def _check_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        if "metric" in value:
            return "@metric"
        if "file" in value:
            return "@file"
        if "run" in value:
            return "@run"
        if "criterion" in value:
            return "@criterion"
    if isinstance(value, BaseModel):
        return {RunCheck: "@run", FileCheck: "@file", MetricCheck: "@metric", Criterion: "@criterion"}.get(type(value))
    return None


Check = Annotated[
    Annotated[RunCheck, Tag("@run")]
    | Annotated[FileCheck, Tag("@file")]
    | Annotated[MetricCheck, Tag("@metric")]
    | Annotated[Criterion, Tag("@criterion")],
    Discriminator(
        _check_kind,
        custom_error_type="unknown_check",
        custom_error_message="each acceptance item needs one of: run, file, metric, criterion",
    ),
]


class Scope(_Strict):
    allow: list[str] = Field(default_factory=lambda: ["**"])
    # None means: every test file that exists when the loop starts.
    protect: list[str] | None = None
    # A goal whose purpose is writing tests names them (paths or globs): they must exist, and they
    # are the only new test files kept when acceptance is re-run on the base's tests.
    new_tests: list[str] = Field(default_factory=list)


class Boundaries(_Strict):
    deny_paths: list[str] = Field(default_factory=list)
    deny_commands: list[str] = Field(default_factory=list)


class GoalModels(_Strict):
    """A model tier name (from config) or a model spec, per role."""

    maker: str | None = None
    checker: str | None = None
    goal_checker: str | None = None


class Priority(StrEnum):
    SECURITY = "security"
    INCIDENT = "incident"
    ROUTINE = "routine"


class Goal(_Strict):
    id: str = Field(pattern=_ID, description="lowercase letters, digits, '.', '_' or '-'")
    goal: str = Field(min_length=1)
    chunks: list[str] = Field(default_factory=list, max_length=10)
    acceptance: list[Check] = Field(min_length=1)
    scope: Scope = Field(default_factory=Scope)
    boundaries: Boundaries = Field(default_factory=Boundaries)
    budgets: BudgetOverrides = Field(default_factory=BudgetOverrides)
    models: GoalModels = Field(default_factory=GoalModels)
    maker: AgentMaker | None = Field(None, description="an agent CLI as this goal's maker (over the config's)")
    priority: Priority = Priority.ROUTINE
    context: str | None = Field(None, description="background for the maker (issue text, links)")

    @field_validator("acceptance")
    @classmethod
    def _needs_objective_check(cls, value: list[Any]) -> list[Any]:
        if not any(not isinstance(check, Criterion) for check in value):
            raise ValueError(
                "a goal needs at least one objective acceptance check (run, file or metric); "
                "criteria alone cannot be verified"
            )
        return value

    @property
    def objective_checks(self) -> list[RunCheck | FileCheck | MetricCheck]:
        return [c for c in self.acceptance if not isinstance(c, Criterion)]

    @property
    def criteria(self) -> list[Criterion]:
        return [c for c in self.acceptance if isinstance(c, Criterion)]


def parse_goal(text: str, source: str) -> Goal:
    data, locations = parse_yaml(text, source)
    return validate_located(Goal, data, locations, source, kind="goal")


def load_goal(path: Path) -> Goal:
    return parse_goal(read_yaml_file(path), str(path))


def slugify(text: str, limit: int = 40) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:limit].rstrip("-") or "goal"


CheckKind = Literal["run", "file", "metric", "criterion"]
