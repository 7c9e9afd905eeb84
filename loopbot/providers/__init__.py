"""Model providers, chosen by spec `provider:model`. SDKs are imported lazily."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loopbot.errors import InputError, Problem
from loopbot.ports import Model

KNOWN = ("scripted", "anthropic", "openai")


def build_model(spec: str, *, clock: Any | None = None) -> Model:
    provider, _, target = spec.partition(":")
    if provider == "scripted":
        from loopbot.testing.scripted import ScriptedModel

        if not target:
            raise InputError([Problem("--model", None, None, "", "scripted needs a script: scripted:PATH.yaml")])
        return ScriptedModel.from_file(Path(target), clock=clock)
    if provider in ("anthropic", "openai"):
        raise InputError([Problem("--model", None, None, "",
                                  f"the {provider} provider is not in this version of loopbot yet; "
                                  "use --model scripted:SCRIPT.yaml")])
    raise InputError([Problem("--model", None, None, "",
                              f"unknown model provider {provider!r} in {spec!r}; known: {', '.join(KNOWN)}")])
