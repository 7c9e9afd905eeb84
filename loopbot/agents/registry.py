"""Adapter lookup: `maker.agent` names a module's adapter class, imported only when used."""

from __future__ import annotations

import importlib

from loopbot.agents.base import AgentAdapter
from loopbot.agents.spec import AgentMaker

# name -> (module, class). Each class takes no arguments.
ADAPTERS: dict[str, tuple[str, str]] = {
    "claude-code": ("loopbot.agents.claude_code", "ClaudeCode"),
    "codex": ("loopbot.agents.codex", "Codex"),
    "aider": ("loopbot.agents.aider", "Aider"),
}


class UnknownAgent(Exception):
    pass


def adapter_for(spec: AgentMaker) -> AgentAdapter:
    if spec.command is not None:
        from loopbot.agents.template import CommandTemplate

        return CommandTemplate(argv=list(spec.command), api=spec.api)
    assert spec.agent is not None
    module_name, class_name = ADAPTERS[spec.agent]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise UnknownAgent(f"the {spec.agent} adapter is not available in this loopbot ({exc})") from None
    adapter: AgentAdapter = getattr(module, class_name)()
    return adapter
