"""Model profiles: what loopbot must know about a model to call it correctly and to charge it.

Exact ids and their dated snapshots only, never name prefixes: `gpt-4.1-nano` is not `gpt-4.1`
and `claude-opus-4-7` is not `claude-opus-4`. An unknown id is refused with the nearest known
ones; a model loopbot does not know (a new release, a local server's) is declared under
`models.profiles` in the repo config, which also overrides any built-in field.

Figures are the vendors' published ones (Anthropic's models overview and pricing pages, OpenAI's
pricing page) as of the date below; `loopbot models` lists them.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from loopbot.config import Price, ProfileOverride

AS_OF = "2026-11"
Provider = Literal["anthropic", "openai"]
# A dated snapshot of an id: claude-haiku-4-5-20251001, gpt-4.1-2025-04-14.
_SNAPSHOT = re.compile(r"^(?P<base>.+?)-(?:\d{8}|\d{4}-\d{2}-\d{2})$")


class ModelProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: Provider
    price: Price
    context_window: int = Field(200_000, ge=1_000)
    max_output_tokens: int = Field(8_192, ge=256)
    # "adaptive": the model thinks by default and returns thinking blocks that must be passed
    # back unchanged; "off": no thinking unless asked (loopbot never asks).
    thinking: Literal["adaptive", "off"] = "off"
    # tool_choice naming a tool (or "any"/"required"): refused while thinking is on.
    forced_tool_choice: bool = True
    # Below this many tokens a cache breakpoint is ignored by the API (and only costs the write).
    min_cache_tokens: int = 1024
    # OpenAI's own reasoning-era models refuse `max_tokens`; compatible servers expect it.
    max_tokens_param: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    # "text": tool calls come back as JSON in the reply text (some local servers), not as calls.
    tool_protocol: Literal["native", "text"] = "native"
    retires: str | None = Field(None, description="the vendor's announced retirement date, if any")


def _claude(inp: float, out: float, **fields: object) -> ModelProfile:
    # Anthropic: 5-minute cache writes cost 1.25x input, cache reads 0.1x.
    price = Price(input=inp, output=out, cache_write=round(inp * 1.25, 4), cache_read=round(inp * 0.1, 4))
    return ModelProfile.model_validate({"provider": "anthropic", "price": price, **fields})


def _gpt(inp: float, out: float, cached: float, **fields: object) -> ModelProfile:
    price = Price(input=inp, output=out, cache_read=cached)
    return ModelProfile.model_validate({"provider": "openai", "price": price, "min_cache_tokens": 1024,
                                        "max_tokens_param": "max_completion_tokens", **fields})


_THINKING = {"thinking": "adaptive", "forced_tool_choice": False}

BUILTIN: dict[str, ModelProfile] = {
    # Claude: current generation think adaptively by default.
    "claude-fable-5-1": _claude(10, 50, context_window=1_000_000, max_output_tokens=128_000, min_cache_tokens=4096,
                                **_THINKING),
    "claude-fable-5": _claude(10, 50, context_window=1_000_000, max_output_tokens=128_000, min_cache_tokens=4096,
                              **_THINKING),
    "claude-opus-5": _claude(5, 25, context_window=1_000_000, max_output_tokens=128_000, min_cache_tokens=4096,
                             **_THINKING),
    "claude-sonnet-5-5": _claude(2, 10, context_window=1_000_000, max_output_tokens=128_000, min_cache_tokens=2048,
                                 **_THINKING),
    "claude-sonnet-5": _claude(2, 10, context_window=1_000_000, max_output_tokens=128_000, min_cache_tokens=2048,
                               **_THINKING),
    "claude-haiku-4-5": _claude(1, 5, context_window=200_000, max_output_tokens=64_000, min_cache_tokens=4096),
    # Claude, previous generation.
    "claude-opus-4-7": _claude(5, 25, context_window=200_000, max_output_tokens=128_000, min_cache_tokens=4096),
    "claude-opus-4-6": _claude(5, 25, context_window=200_000, max_output_tokens=128_000, min_cache_tokens=4096),
    "claude-opus-4-5": _claude(5, 25, context_window=200_000, max_output_tokens=64_000, min_cache_tokens=4096),
    "claude-sonnet-4-6": _claude(3, 15, context_window=200_000, max_output_tokens=64_000, min_cache_tokens=2048),
    "claude-sonnet-4-5": _claude(3, 15, context_window=200_000, max_output_tokens=64_000),
    "claude-opus-4-1": _claude(15, 75, context_window=200_000, max_output_tokens=32_000),
    # OpenAI: every model of OpenAI's own takes max_completion_tokens.
    "gpt-5.4": _gpt(2.5, 15, 0.25, context_window=1_000_000, max_output_tokens=128_000),
    "gpt-5.4-mini": _gpt(0.75, 4.5, 0.075, context_window=400_000, max_output_tokens=128_000),
    "gpt-5.1": _gpt(1.25, 10, 0.125, context_window=400_000, max_output_tokens=128_000),
    "gpt-5": _gpt(1.25, 10, 0.125, context_window=400_000, max_output_tokens=128_000),
    "gpt-5-mini": _gpt(0.25, 2, 0.025, context_window=400_000, max_output_tokens=128_000),
    "gpt-5-nano": _gpt(0.05, 0.4, 0.005, context_window=400_000, max_output_tokens=128_000),
    "o3": _gpt(2, 8, 0.5, context_window=200_000, max_output_tokens=100_000),
    "o4-mini": _gpt(1.1, 4.4, 0.275, context_window=200_000, max_output_tokens=100_000),
    "gpt-4.1": _gpt(2, 8, 0.5, context_window=1_047_576, max_output_tokens=32_768),
    "gpt-4.1-mini": _gpt(0.4, 1.6, 0.1, context_window=1_047_576, max_output_tokens=32_768),
    "gpt-4.1-nano": _gpt(0.1, 0.4, 0.025, context_window=1_047_576, max_output_tokens=32_768),
    "gpt-4o": _gpt(2.5, 10, 1.25, context_window=128_000, max_output_tokens=16_384),
    "gpt-4o-mini": _gpt(0.15, 0.6, 0.075, context_window=128_000, max_output_tokens=16_384),
}


class UnknownModel(ValueError):
    def __init__(self, provider: str, model: str, suggestions: list[str]):
        self.suggestions = suggestions
        hint = f"did you mean {' or '.join(suggestions)}? " if suggestions else ""
        super().__init__(
            f"unknown {provider} model {model!r}: {hint}A model loopbot does not know yet (a new release, a local "
            f"server's) is declared under models.profiles.{model} in .github/loopbot.yml, with its price "
            "(input/output USD per million tokens; 0 for a local model) so the cost budget holds")


def known(provider: str) -> list[str]:
    return sorted(name for name, p in BUILTIN.items() if p.provider == provider)


def _base_id(model: str, table: Mapping[str, object]) -> str | None:
    if model in table:
        return model
    found = _SNAPSHOT.match(model)
    if found and found.group("base") in table:
        return found.group("base")
    return None


def lookup(provider: Provider, model: str, overrides: Mapping[str, ProfileOverride] | None = None) -> ModelProfile:
    """The profile of `model`: the built-in one (exact id or a dated snapshot of it) with the
    config's override applied, or the config's declaration alone."""
    overrides = overrides or {}
    declared_id = _base_id(model, overrides)
    declared = overrides.get(declared_id) if declared_id is not None else None
    builtin_id = _base_id(model, BUILTIN)
    builtin = BUILTIN.get(builtin_id) if builtin_id is not None else None
    if builtin is not None and builtin.provider != provider:
        builtin = None
    if builtin is None and declared is None:
        close = difflib.get_close_matches(model, known(provider) + list(overrides), n=2, cutoff=0.75)
        raise UnknownModel(provider, model, close)
    if declared is None:
        assert builtin is not None
        return builtin
    price = declared.price(builtin.price if builtin is not None else None)
    if price is None:
        raise UnknownModel(provider, model, []) from None
    # Unknown to loopbot: a compatible server, so the classic parameter names and no thinking.
    base = builtin if builtin is not None else ModelProfile(provider=provider, price=price)
    return ModelProfile.model_validate({**base.model_dump(), **declared.fields(), "price": price})
