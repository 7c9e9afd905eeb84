"""Repo config (`.github/loopbot.yml`): models, budgets, labels, limits, commands, wiki path."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from loopbot.agents.spec import AgentMaker
from loopbot.core.budgets import Budgets
from loopbot.yamlfile import parse_yaml, read_yaml_file, validate_located

CONFIG_PATH = ".github/loopbot.yml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Price(_Strict):
    """USD per million tokens."""

    input: float = Field(ge=0, description="USD per million input tokens")
    output: float = Field(ge=0, description="USD per million output tokens")
    cache_write: float | None = Field(None, ge=0, description="default: the input price")
    cache_read: float | None = Field(None, ge=0, description="default: the input price")


class ProfileOverride(_Strict):
    """A model's profile declared or corrected in the repo config (loopbot.providers.profiles)."""

    input: float | None = Field(None, ge=0, description="USD per million input tokens")
    output: float | None = Field(None, ge=0, description="USD per million output tokens")
    cache_write: float | None = Field(None, ge=0, description="USD per million tokens written to the cache")
    cache_read: float | None = Field(None, ge=0, description="USD per million tokens read from the cache")
    context_window: int | None = Field(None, ge=1_000, description="tokens the model reads at most")
    max_output_tokens: int | None = Field(None, ge=256, description="tokens the model writes at most in one reply")
    thinking: Literal["adaptive", "off"] | None = Field(
        None, description="adaptive: the model thinks by default (so it gets no forced tool choice)")
    forced_tool_choice: bool | None = Field(None, description="whether the API accepts a forced tool choice")
    min_cache_tokens: int | None = Field(None, ge=0, description="shortest prompt prefix the provider caches")
    max_tokens_param: Literal["max_tokens", "max_completion_tokens"] | None = Field(
        None, description="the name of the output limit in requests (OpenAI's own models: max_completion_tokens)")
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

    base_url: str | None = Field(None, description=(
        "the API's address (default: the vendor's); a local OpenAI-compatible server e.g. http://localhost:11434/v1 "
        "(Ollama); the environment's ANTHROPIC_BASE_URL / OPENAI_BASE_URL win"))
    max_retries: int = Field(4, ge=0, le=10, description="retries on 429, 529, 5xx and dropped connections")
    timeout_seconds: float = Field(600, gt=0, description="per model call")
    max_output_tokens: int = Field(8192, ge=256, description="output limit per call (never above the model's own)")


class ModelsConfig(_Strict):
    """Named tiers map to model specs (`provider:model`); each role names a tier or a spec."""

    tiers: dict[str, str] = Field(
        default_factory=lambda: {
            "strong": "anthropic:claude-sonnet-5",
            "cheap": "anthropic:claude-haiku-4-5",
        },
        description="tier name to model spec (anthropic:MODEL, openai:MODEL, scripted:PATH)",
    )
    maker: str = Field("strong", description="tier or spec of the maker, which edits the code")
    checker: str = Field("strong", description="reviews each change with a fresh context: goal, diff, evidence")
    goal_checker: str = Field("cheap", description="decides MET / NOT MET where no command can")
    auditor: str = Field("strong", description="reviews the repository and files plans (loopbot audit)")
    documenter: str = Field("cheap", description="keeps the wiki current after merges (loopbot docs)")
    anthropic: ProviderConfig = Field(default_factory=ProviderConfig, description="the Anthropic Messages API")
    openai: ProviderConfig = Field(default_factory=ProviderConfig, description="OpenAI or an OpenAI-compatible server")
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
    """The GitHub labels loopbot reads and sets."""

    plan: str = Field("loopbot:plan", description="on the issues the audit loop files")
    run: str = Field("loopbot:run", description="a writer adds it to a plan issue to run that plan's loop")
    running: str = Field("loopbot:running", description="while a loop works on the issue")
    blocked: str = Field("loopbot:blocked", description="the loop stopped the line (a guard or an infrastructure failure)")
    done: str = Field("loopbot:done", description="the goal was met")
    stop: str = Field("loopbot:stop", description="set by /loop stop: the running loop stops after its current step")
    draft: str = Field("loopbot:draft", description=(
        "on a loop PR opened ready because the repository has no drafts; taken off when the goal is met"))


class Limits(_Strict):
    """Circuit breakers for the GitHub side."""

    max_open_prs: int = Field(5, ge=1, description="open loop pull requests at most")
    max_new_prs_per_hour: int = Field(2, ge=1, description="new loop pull requests per hour at most")
    max_plans_per_run: int = Field(5, ge=1, le=5, description="plans one audit may file")


class Commands(_Strict):
    """The repo's own test and lint commands; each becomes an evaluator."""

    test: str | None = Field(None, description="e.g. python -m pytest -q")
    lint: str | None = Field(None, description="e.g. ruff check .")
    setup: str | None = Field(None, description=(
        "prepares ignored build outputs (a virtualenv, node_modules) on the base tree, with network, "
        "before the maker starts; the outputs are linked read-only into every tree (docs/gate.md)"))
    timeout_seconds: float = Field(900, gt=0, description="per command (goal checks are held to it too)")


class Execution(_Strict):
    """The maker's session and its context."""

    max_turns_per_iteration: int = Field(40, ge=1, description="maker model calls in one iteration")
    output_cap_bytes: int = Field(64_000, ge=1_000, description="command output kept per run")
    context_tokens: int = Field(12_000, ge=1_000, description="token budget of the maker's context")
    repo_map_tokens: int = Field(2_048, ge=200, description="share of the context for the repo map")
    wiki_tokens: int = Field(1_500, ge=0, description="share of the context for wiki pages")


class SandboxConfig(_Strict):
    """How agent and evaluator commands are isolated. `sandbox: off` alone is accepted, loudly."""

    mode: Literal["bubblewrap", "off"] = Field(
        "bubblewrap", description="off: commands run as you, with your files and the network (a loud warning)")
    memory_mb: int = Field(8192, ge=64, description="address-space limit per command")
    max_processes: int = Field(512, ge=8, description="processes per command")
    max_file_size_mb: int = Field(1024, ge=1, description="largest file a command may write")
    cpu_seconds: int = Field(1800, ge=1, description="CPU time per command")
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
    """Where loop branches go."""

    remote: str = Field("origin", description="the git remote loop branches are pushed to (--remote overrides it)")


class WikiConfig(_Strict):
    """The documentation loop's wiki."""

    path: str = Field("wiki", description="the committed wiki folder, relative to the repository root")


class Config(_Strict):
    """The repository config, `.github/loopbot.yml`, read from the default branch only."""

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
    maker: AgentMaker | None = Field(None, description=(
        "an agent CLI as the maker instead of the built-in one: {agent: claude-code} (or codex, aider), or "
        "{command: [...]}; a goal's maker: wins"))

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
