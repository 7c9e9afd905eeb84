"""`maker:` in the repo config or the goal: an external agent CLI instead of the built-in maker."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

AGENTS = ("claude-code", "codex", "aider")


class AgentMaker(BaseModel):
    """One agent CLI session per iteration, in the sandbox, reaching the model through loopbot's proxy."""

    model_config = ConfigDict(extra="forbid")

    agent: Literal["claude-code", "codex", "aider"] | None = Field(
        None, description="a supported agent CLI (installed from npm or PyPI, see the README)")
    command: list[str] | None = Field(None, min_length=1, description=(
        "any other CLI, as an argv template: {task_file} {task} {worktree} {config_dir} {proxy_url} {model} "
        "{max_turns} are filled in"))
    api: Literal["anthropic", "openai"] = Field(
        "anthropic", description="for a command template: which API the CLI speaks to the proxy")
    max_turns: int | None = Field(None, ge=1, description=(
        "agent turns per session (default: execution.max_turns_per_iteration)"))
    wall_seconds: float = Field(900, gt=0, description="wall time per session; the agent is killed after it")

    @model_validator(mode="after")
    def _one_kind(self) -> AgentMaker:
        if (self.agent is None) == (self.command is None):
            raise ValueError("maker needs exactly one of agent (claude-code, codex, aider) or command")
        return self
