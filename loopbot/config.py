"""Repo config (`.github/loopbot.yml`): models, budgets, labels, limits, commands, wiki path."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from loopbot.core.budgets import Budgets
from loopbot.yamlfile import parse_yaml, read_yaml_file, validate_located

CONFIG_PATH = ".github/loopbot.yml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Price(_Strict):
    """USD per million tokens."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cache_write: float | None = Field(None, ge=0, description="default: the input price")
    cache_read: float | None = Field(None, ge=0, description="default: the input price")


# Built-in prices for families whose prices are known; any other model needs models.prices.
DEFAULT_PRICES = {
    "claude-opus-4-5": Price(input=5, output=25, cache_write=6.25, cache_read=0.5),
    "claude-opus-4-6": Price(input=5, output=25, cache_write=6.25, cache_read=0.5),
    "claude-opus-4": Price(input=15, output=75, cache_write=18.75, cache_read=1.5),
    "claude-sonnet-4": Price(input=3, output=15, cache_write=3.75, cache_read=0.3),
    "claude-haiku-4": Price(input=1, output=5, cache_write=1.25, cache_read=0.1),
    "claude-3-5-haiku": Price(input=0.8, output=4, cache_write=1.0, cache_read=0.08),
    "gpt-4.1-mini": Price(input=0.4, output=1.6, cache_read=0.1),
    "gpt-4.1": Price(input=2, output=8, cache_read=0.5),
    "gpt-4o-mini": Price(input=0.15, output=0.6, cache_read=0.075),
    "gpt-4o": Price(input=2.5, output=10, cache_read=1.25),
}


class ProviderConfig(_Strict):
    """Where a provider is reached. Keys come from the environment only, never from config."""

    base_url: str | None = Field(None, description="e.g. http://localhost:11434/v1 for Ollama")
    max_retries: int = Field(4, ge=0, le=10, description="retries on 429, 529, 5xx and dropped connections")
    timeout_seconds: float = Field(600, gt=0)
    max_output_tokens: int = Field(8192, ge=256)


class ModelsConfig(_Strict):
    """Named tiers map to model specs (`provider:model`); each role names a tier or a spec."""

    tiers: dict[str, str] = Field(
        default_factory=lambda: {
            "strong": "anthropic:claude-sonnet-4-6",
            "cheap": "anthropic:claude-haiku-4-5",
        }
    )
    maker: str = "strong"
    checker: str = "strong"
    goal_checker: str = "cheap"
    auditor: str = "strong"
    documenter: str = "cheap"
    anthropic: ProviderConfig = Field(default_factory=ProviderConfig)
    openai: ProviderConfig = Field(default_factory=ProviderConfig)
    prices: dict[str, Price] = Field(default_factory=dict, description="per model (or model-name prefix)")

    def price_of(self, model: str) -> Price | None:
        """The configured price, else the built-in table; the longest matching name prefix wins."""
        for table in (self.prices, DEFAULT_PRICES):
            matches = [name for name in table if model == name or model.startswith(name)]
            if matches:
                return table[max(matches, key=len)]
        return None

    def resolve(self, role_or_tier: str) -> str:
        """A tier name becomes its spec; anything else is already a spec."""
        return self.tiers.get(role_or_tier, role_or_tier)


class Labels(_Strict):
    plan: str = "loopbot:plan"
    run: str = "loopbot:run"
    running: str = "loopbot:running"
    blocked: str = "loopbot:blocked"
    done: str = "loopbot:done"
    stop: str = "loopbot:stop"


class Limits(_Strict):
    max_open_prs: int = Field(5, ge=1)
    max_new_prs_per_hour: int = Field(2, ge=1)
    max_plans_per_run: int = Field(5, ge=1, le=5)


class Commands(_Strict):
    """The repo's own test and lint commands; each becomes an evaluator."""

    test: str | None = None
    lint: str | None = None
    setup: str | None = Field(None, description=(
        "prepares ignored build outputs (a virtualenv, node_modules) on the base tree, with network, "
        "before the maker starts; the outputs are linked read-only into every tree (docs/gate.md)"))
    timeout_seconds: float = Field(900, gt=0)


class Execution(_Strict):
    max_turns_per_iteration: int = Field(40, ge=1, description="maker model calls in one iteration")
    output_cap_bytes: int = Field(64_000, ge=1_000, description="command output kept per run")
    context_tokens: int = Field(12_000, ge=1_000, description="token budget of the maker's context")
    repo_map_tokens: int = Field(2_048, ge=200, description="share of the context for the repo map")
    wiki_tokens: int = Field(1_500, ge=0, description="share of the context for wiki pages")


class SandboxConfig(_Strict):
    """How agent and evaluator commands are isolated. `sandbox: off` alone is accepted, loudly."""

    mode: Literal["bubblewrap", "off"] = "bubblewrap"
    memory_mb: int = Field(8192, ge=64, description="address-space limit per command")
    max_processes: int = Field(512, ge=8)
    max_file_size_mb: int = Field(1024, ge=1)
    cpu_seconds: int = Field(1800, ge=1)
    tmp_size_mb: int = Field(512, ge=16, description="size of the private /tmp")
    env_allow: list[str] = Field(default_factory=list, description="extra variable names passed to commands")
    expose: list[str] = Field(default_factory=list,
                              description="extra host paths shown read-only (e.g. ~/.rustup); homes are hidden")

    @field_validator("expose")
    @classmethod
    def _no_credential_dirs(cls, paths: list[str]) -> list[str]:
        bad = [p for p in paths if any(part in p for part in (".ssh", ".gnupg", ".aws", ".git-credentials", ".netrc"))]
        if bad:
            raise ValueError(f"credential stores cannot be exposed to the sandbox: {', '.join(bad)}")
        return paths

    @field_validator("env_allow")
    @classmethod
    def _no_secrets(cls, names: list[str]) -> list[str]:
        from loopbot.core.redact import SECRET_NAME

        leaking = [n for n in names if SECRET_NAME.search(n)]
        if leaking:
            raise ValueError(f"variables that look like secrets never enter the sandbox: {', '.join(leaking)}")
        return names


class GateConfig(_Strict):
    """Limits every snapshot is held to before it is evaluated (see docs/gate.md)."""

    max_file_mb: float = Field(10, gt=0, description="largest file a loop may add or grow")
    max_growth_mb: float = Field(50, gt=0, description="most the files a loop adds or grows may total")


class PushConfig(_Strict):
    remote: str = "origin"


class WikiConfig(_Strict):
    path: str = "wiki"


class Config(_Strict):
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    budgets: Budgets = Field(default_factory=Budgets)
    labels: Labels = Field(default_factory=Labels)
    limits: Limits = Field(default_factory=Limits)
    commands: Commands = Field(default_factory=Commands)
    execution: Execution = Field(default_factory=Execution)
    push: PushConfig = Field(default_factory=PushConfig)
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    wiki: WikiConfig = Field(default_factory=WikiConfig)
    bots: list[str] = Field(default_factory=list, description="bot accounts allowed to trigger loops")

    @field_validator("sandbox", mode="before")
    @classmethod
    def _sandbox_shorthand(cls, value: Any) -> Any:
        return {"mode": value} if isinstance(value, str) else value


def parse_config(text: str, source: str) -> Config:
    data, locations = parse_yaml(text, source)
    if data is None:  # an empty config file means all defaults
        return Config()
    return validate_located(Config, data, locations, source, kind="config")


def load_config(path: Path) -> Config:
    """Load a config file; a missing file means defaults."""
    if not path.exists():
        return Config()
    return parse_config(read_yaml_file(path), str(path))
