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


class ProfileOverride(_Strict):
    """A model's profile declared or corrected in the repo config (loopbot.providers.profiles)."""

    input: float | None = Field(None, ge=0, description="USD per million input tokens")
    output: float | None = Field(None, ge=0, description="USD per million output tokens")
    cache_write: float | None = Field(None, ge=0)
    cache_read: float | None = Field(None, ge=0)
    context_window: int | None = Field(None, ge=1_000)
    max_output_tokens: int | None = Field(None, ge=256)
    thinking: Literal["adaptive", "off"] | None = None
    forced_tool_choice: bool | None = None
    min_cache_tokens: int | None = Field(None, ge=0)
    max_tokens_param: Literal["max_tokens", "max_completion_tokens"] | None = None
    tool_protocol: Literal["native", "text"] | None = Field(
        None, description="text: the server returns tool calls as JSON in the reply text (some local servers)")

    def price(self, base: Price | None) -> Price | None:
        """The declared price over `base`; None when neither says what input and output cost."""
        fields = {k: v for k in ("input", "output", "cache_write", "cache_read") if (v := getattr(self, k)) is not None}
        if base is None and not {"input", "output"} <= fields.keys():
            return None
        return Price.model_validate({**(base.model_dump() if base else {}), **fields})

    def fields(self) -> dict[str, Any]:
        """The profile fields this override sets (prices apart)."""
        return {k: v for k, v in self.model_dump(exclude_none=True).items()
                if k not in ("input", "output", "cache_write", "cache_read")}


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
            "strong": "anthropic:claude-sonnet-5",
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
    profiles: dict[str, ProfileOverride] = Field(default_factory=dict, description=(
        "per exact model id: a model loopbot does not know (with its price), or a correction to a built-in profile"))
    prices: dict[str, Price] = Field(default_factory=dict, description="per exact model id (older form of profiles)")

    def declared_profiles(self) -> dict[str, ProfileOverride]:
        """profiles, with the older prices table folded in (profiles win)."""
        merged = {name: ProfileOverride.model_validate(price.model_dump()) for name, price in self.prices.items()}
        for name, override in self.profiles.items():
            if name in merged:
                override = merged[name].model_copy(update=override.model_dump(exclude_none=True))
            merged[name] = override
        return merged

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

    @field_validator("mode", mode="before")
    @classmethod
    def _yaml_boolean(cls, value: Any) -> Any:
        return _sandbox_mode(value)

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
        return {"mode": _sandbox_mode(value)} if isinstance(value, str | bool) else value


def _sandbox_mode(value: Any) -> Any:
    """YAML 1.1 reads a bare `off` (and `no`, `false`) as False, and `on` as True: the documented
    `sandbox: off` means off however it is quoted."""
    if value is False:
        return "off"
    if value is True:
        return "bubblewrap"
    return value


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
