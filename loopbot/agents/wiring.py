"""From a run's state to its agent maker: which CLI, which endpoint, checked before the run starts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from loopbot.agents.base import Upstream
from loopbot.agents.registry import UnknownAgent, adapter_for
from loopbot.agents.spec import AgentMaker
from loopbot.core.state import LoopState
from loopbot.errors import InputError, Problem
from loopbot.ports import Model

if TYPE_CHECKING:  # the session and its proxy (httpx) load only for a run that has an agent maker
    from loopbot.agents.session import ExternalMaker


def maker_spec(state: LoopState) -> AgentMaker | None:
    """The goal's maker, else the config's; None for the built-in maker."""
    return state.goal.maker or state.config.maker


def external_maker(state: LoopState, model: Model, run_dir: Path, redact: Callable[[str], str]) -> ExternalMaker | None:
    """The agent maker a run asks for, or None. A CLI that is not installed, or a maker model
    with no API endpoint to proxy (a scripted model), is an InputError naming the fix."""
    spec = maker_spec(state)
    if spec is None:
        return None
    if state.config.sandbox.mode == "off":
        # Off, the CLI's own commands run on the host with the network (Codex in full-access mode),
        # and Claude Code cannot edit loopbot's worktrees: they are under .git/, and the /workspace
        # view it edits through exists only in bubblewrap.
        raise InputError([Problem("maker", None, None, "", (
            "agent makers need the sandbox: an agent CLI runs only inside loopbot's bubblewrap; drop `sandbox: off` "
            "from the config, or remove `maker:` to use the built-in maker"))])
    try:
        adapter = adapter_for(spec)
    except UnknownAgent as exc:
        raise InputError([Problem("maker", None, None, "", str(exc))]) from None
    missing = adapter.check_installed()
    if missing is not None:
        raise InputError([Problem("maker", None, None, "", missing)])
    upstream_of = getattr(model, "upstream", None)
    upstream = upstream_of() if callable(upstream_of) else None
    if not isinstance(upstream, Upstream):
        raise InputError([Problem("maker", None, None, "", (
            f"the {adapter.name} maker reaches its model through loopbot's proxy, so the maker model must be an "
            f"API model (anthropic:… or openai:…), not {model.name}"))])
    if upstream.api != adapter.api:
        raise InputError([Problem("maker", None, None, "", (
            f"{adapter.name} speaks the {adapter.api} API, but the maker model {model.name} is an {upstream.api} "
            "model: choose a maker model of that provider (models.maker)"))])
    from loopbot.agents.session import ExternalMaker

    return ExternalMaker(adapter=adapter, upstream=upstream, model=model.name.split(":", 1)[-1], run_dir=run_dir,
                         redact=redact, wall_seconds=spec.wall_seconds, max_turns=spec.max_turns)
