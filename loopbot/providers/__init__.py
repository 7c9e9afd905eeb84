"""Model providers, chosen by spec `provider:model`. SDKs are imported lazily.

Keys and base URLs reach here through ProviderEnv, which only the composition roots (CLI,
Action, App) fill from the environment.
"""

from __future__ import annotations

import difflib
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
        try:
            return ScriptedModel.from_file(Path(target), clock=clock)
        except InputError as exc:
            raise InputError([*exc.problems, Problem(target, None, None, "", SCRIPT_FORMAT)]) from None
    if not target:
        if provider not in KNOWN:
            raise _problem(_bare_model_hint(spec, provider))
        raise _problem(f"{spec!r} names no model; use {provider}:MODEL")
    # Each SDK takes over a second to import: a spec refused on what it says is refused without it.
    if provider == "anthropic":
        profile = model_profile("anthropic", target, models)
        if not env.anthropic_api_key:
            raise _problem("ANTHROPIC_API_KEY is not set")
        from loopbot.providers.anthropic import AnthropicModel

        return AnthropicModel(target, api_key=env.anthropic_api_key,
                              base_url=env.anthropic_base_url or models.anthropic.base_url,
                              settings=models.anthropic, profile=profile)
    if provider == "openai":
        profile = model_profile("openai", target, models)
        base_url = env.openai_base_url or models.openai.base_url
        if not env.openai_api_key and base_url is None:
            raise _problem("OPENAI_API_KEY is not set (a local OpenAI-compatible server needs models.openai.base_url)")
        from loopbot.providers.openai_compat import OpenAICompatModel

        return OpenAICompatModel(target, api_key=env.openai_api_key or "unused", base_url=base_url,
                                 settings=models.openai, profile=profile)
    raise _problem(_provider_hint(spec, provider, target))


SCRIPT_FORMAT = "the scripted-model format is in docs/scripted-models.md (its JSON Schema: loopbot schema script)"


def _bare_model_hint(spec: str, name: str) -> str:
    """A model id without its provider: the spec to write, a misspelt id's likely meaning first."""
    from loopbot.providers.profiles import BUILTIN

    start = f"{spec!r} is not a model spec: write PROVIDER:MODEL"
    if name in BUILTIN:
        return f"{start}, here {BUILTIN[name].provider}:{name} (providers: {', '.join(KNOWN)})"
    close = difflib.get_close_matches(name, list(BUILTIN), n=1, cutoff=0.75)
    if close:
        return f"{start}; did you mean {BUILTIN[close[0]].provider}:{close[0]}? (providers: {', '.join(KNOWN)})"
    guess = "anthropic" if name.startswith("claude") else "openai"
    return f"{start}, e.g. {guess}:{name} (providers: {', '.join(KNOWN)})"


def _provider_hint(spec: str, provider: str, target: str) -> str:
    from loopbot.providers.profiles import BUILTIN

    if provider in BUILTIN:  # the model id first, e.g. gpt-4.1:mini
        return (f"{spec!r} starts with a model id, not a provider: write PROVIDER:MODEL: "
                f"{BUILTIN[provider].provider}:{provider} (providers: {', '.join(KNOWN)})")
    close = difflib.get_close_matches(provider, KNOWN, n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}:{target}'?" if close else ""
    return f"unknown model provider {provider!r} in {spec!r}{hint} (providers: {', '.join(KNOWN)})"


def cost_usd(price: Price, *, input_tokens: int, output_tokens: int, cache_write: int, cache_read: int) -> float:
    write = price.cache_write if price.cache_write is not None else price.input
    read = price.cache_read if price.cache_read is not None else price.input
    total = input_tokens * price.input + output_tokens * price.output + cache_write * write + cache_read * read
    return round(total / 1_000_000, 8)
