"""Model providers, chosen by spec `provider:model`. SDKs are imported lazily.

Keys and base URLs reach here through ProviderEnv, which only the composition roots (CLI,
Action, App) fill from the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from loopbot.config import ModelsConfig, Price
from loopbot.errors import InputError, Problem
from loopbot.ports import Model

if TYPE_CHECKING:
    from loopbot.providers.profiles import ModelProfile

KNOWN = ("scripted", "anthropic", "openai")


@dataclass(frozen=True)
class ProviderEnv:
    anthropic_api_key: str | None = None
    anthropic_base_url: str | None = None
    openai_api_key: str | None = None
    openai_base_url: str | None = None

    @classmethod
    def from_mapping(cls, env: Mapping[str, str]) -> ProviderEnv:
        """Keys and base URLs from an environment the composition root read (CLI, Action)."""
        return cls(anthropic_api_key=env.get("ANTHROPIC_API_KEY"), anthropic_base_url=env.get("ANTHROPIC_BASE_URL"),
                   openai_api_key=env.get("OPENAI_API_KEY"), openai_base_url=env.get("OPENAI_BASE_URL"))


def _problem(message: str) -> InputError:
    return InputError([Problem("model", None, None, "", message)])


def model_profile(provider: Literal["anthropic", "openai"], model: str, models: ModelsConfig) -> ModelProfile:
    from loopbot.providers.profiles import UnknownModel, lookup

    try:
        return lookup(provider, model, models.declared_profiles())
    except UnknownModel as exc:
        raise _problem(str(exc)) from None


def build_model(spec: str, *, models: ModelsConfig | None = None, env: ProviderEnv | None = None,
                clock: Any | None = None) -> Model:
    provider, _, target = spec.partition(":")
    models = models or ModelsConfig()
    env = env or ProviderEnv()
    if provider == "scripted":
        from loopbot.testing.scripted import ScriptedModel

        if not target:
            raise _problem("scripted needs a script: scripted:PATH.yaml")
        return ScriptedModel.from_file(Path(target), clock=clock)
    if not target:
        if provider not in KNOWN:
            from loopbot.providers.profiles import BUILTIN

            guess = BUILTIN[provider].provider if provider in BUILTIN else (
                "anthropic" if provider.startswith("claude") else "openai")
            raise _problem(f"{spec!r} is not a model spec: write PROVIDER:MODEL, here {guess}:{provider} "
                           f"(providers: {', '.join(KNOWN)})")
        raise _problem(f"{spec!r} names no model; use {provider}:MODEL")
    if provider == "anthropic":
        from loopbot.providers.anthropic import AnthropicModel

        profile = model_profile("anthropic", target, models)
        if not env.anthropic_api_key:
            raise _problem("ANTHROPIC_API_KEY is not set")
        return AnthropicModel(target, api_key=env.anthropic_api_key,
                              base_url=env.anthropic_base_url or models.anthropic.base_url,
                              settings=models.anthropic, profile=profile)
    if provider == "openai":
        from loopbot.providers.openai_compat import OpenAICompatModel

        profile = model_profile("openai", target, models)
        base_url = env.openai_base_url or models.openai.base_url
        if not env.openai_api_key and base_url is None:
            raise _problem("OPENAI_API_KEY is not set (a local OpenAI-compatible server needs models.openai.base_url)")
        return OpenAICompatModel(target, api_key=env.openai_api_key or "unused", base_url=base_url,
                                 settings=models.openai, profile=profile)
    raise _problem(f"unknown model provider {provider!r} in {spec!r}; known: {', '.join(KNOWN)}")


def cost_usd(price: Price, *, input_tokens: int, output_tokens: int, cache_write: int, cache_read: int) -> float:
    write = price.cache_write if price.cache_write is not None else price.input
    read = price.cache_read if price.cache_read is not None else price.input
    total = input_tokens * price.input + output_tokens * price.output + cache_write * write + cache_read * read
    return round(total / 1_000_000, 8)
