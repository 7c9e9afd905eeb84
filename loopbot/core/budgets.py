"""Budgets: limits a loop may spend, and the check made before every model call."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Budgets(BaseModel):
    """The limits of one run, checked before every model call. A goal's `budgets` change them for
    that goal; a goal from GitHub can only lower them."""

    model_config = ConfigDict(extra="forbid")

    max_iterations: int = Field(6, ge=1, le=100, description="iterations (maker, checks, reviews) per run")
    # Sized from a realistic iteration: ~20 maker turns and up to 4 reviewer calls.
    max_model_calls: int = Field(150, ge=1, description="model calls per run, every role counted")
    max_tokens: int = Field(2_000_000, ge=1, description="input and output tokens per run")
    max_cost_usd: float = Field(5.0, gt=0, description="model cost per run, checked before every call")
    max_wall_minutes: float = Field(60.0, gt=0, description="wall time of the run's active work")
    stagnation_threshold: int = Field(3, ge=1, description="iterations without a score gain before STAGNATED")
    # A healthy first iteration of 20 turns with a slow test suite takes over 10 minutes.
    no_progress_minutes: float = Field(30.0, gt=0, description="minutes without a better snapshot before the run stops")


class BudgetOverrides(BaseModel):
    """A goal's partial budgets; unset fields fall back to the repo config."""

    model_config = ConfigDict(extra="forbid")

    max_iterations: int | None = Field(None, ge=1, le=100)
    max_model_calls: int | None = Field(None, ge=1)
    max_tokens: int | None = Field(None, ge=1)
    max_cost_usd: float | None = Field(None, gt=0)
    max_wall_minutes: float | None = Field(None, gt=0)
    stagnation_threshold: int | None = Field(None, ge=1)
    no_progress_minutes: float | None = Field(None, gt=0)

    def apply_to(self, base: Budgets) -> Budgets:
        return base.model_copy(update=self.model_dump(exclude_none=True))


class Exhausted(StrEnum):
    """Which budget ran out: the `which` in BUDGET_EXHAUSTED(which)."""

    ITERATIONS = "iterations"
    MODEL_CALLS = "model_calls"
    TOKENS = "tokens"
    COST = "cost"
    WALL_TIME = "wall_time"
    NO_PROGRESS = "no_progress"


class Spend(BaseModel):
    """What a loop has spent so far; carried in the state so it survives resume."""

    model_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    cost_usd: float = 0.0
    model_seconds: float = 0.0
    # Active wall time across every process that worked on the loop (downtime between a kill and
    # a resume is not charged).
    elapsed_seconds: float = 0.0

    def charge(self, *, input_tokens: int, output_tokens: int, cache_write_tokens: int, cache_read_tokens: int,
               cost_usd: float, seconds: float) -> None:
        """Count one model call."""
        self.model_calls += 1
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        self.cache_write_tokens += cache_write_tokens
        self.cache_read_tokens += cache_read_tokens
        self.cost_usd = round(self.cost_usd + cost_usd, 6)
        self.model_seconds += seconds

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens + self.cache_write_tokens + self.cache_read_tokens

    @property
    def budget_tokens(self) -> int:
        """Tokens as the token budget counts them: cache reads at a tenth, as they are priced
        (a 20-turn session rereads its prefix every turn; raw counts would end it for nothing)."""
        return self.input_tokens + self.output_tokens + self.cache_write_tokens + self.cache_read_tokens // 10

    def plus(self, other: Spend) -> Spend:
        """This spend with `other` added (a reservation), as a new value."""
        return Spend(model_calls=self.model_calls + other.model_calls,
                     input_tokens=self.input_tokens + other.input_tokens,
                     output_tokens=self.output_tokens + other.output_tokens,
                     cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
                     cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
                     cost_usd=self.cost_usd + other.cost_usd, model_seconds=self.model_seconds,
                     elapsed_seconds=self.elapsed_seconds)


class Charge(BaseModel):
    """One model call in the spend ledger, written before its reply is used (or rejected)."""

    role: str
    model: str
    iteration: int = 0
    turn: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    cost_usd: float = 0.0
    seconds: float = 0.0
    accepted: bool = True

    def charge_to(self, spend: Spend) -> None:
        spend.charge(input_tokens=self.input_tokens, output_tokens=self.output_tokens,
                     cache_write_tokens=self.cache_write_tokens, cache_read_tokens=self.cache_read_tokens,
                     cost_usd=self.cost_usd, seconds=self.seconds)


def exhausted_before_call(spend: Spend, budgets: Budgets, *, seconds_since_progress: float) -> Exhausted | None:
    """Checked before every model call: may one more call be made?"""
    if spend.model_calls >= budgets.max_model_calls:
        return Exhausted.MODEL_CALLS
    if spend.budget_tokens >= budgets.max_tokens:
        return Exhausted.TOKENS
    if spend.cost_usd >= budgets.max_cost_usd:
        return Exhausted.COST
    if spend.elapsed_seconds >= budgets.max_wall_minutes * 60:
        return Exhausted.WALL_TIME
    if seconds_since_progress >= budgets.no_progress_minutes * 60:
        return Exhausted.NO_PROGRESS
    return None
