"""A generic agent CLI given as an argv template (`maker: {command: [...]}`)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from loopbot.agents.base import PLACEHOLDER_KEY, AgentOutcome, AgentSession, Api, approach_from


@dataclass
class CommandTemplate:
    argv: list[str]
    api: Api = "anthropic"
    name: str = "command"

    def check_installed(self) -> str | None:
        if shutil.which(self.argv[0]) is None and not Path(self.argv[0]).is_file():
            return f"the maker command {self.argv[0]!r} is not on PATH"
        return None

    def host_paths(self) -> list[Path]:
        return []

    def command(self, session: AgentSession) -> list[str]:
        values = {"task_file": session.task_file, "task": session.task, "worktree": session.worktree,
                  "config_dir": session.config_dir, "proxy_url": session.proxy_url, "model": session.model,
                  "max_turns": str(session.max_turns)}
        filled = []
        for part in self.argv:
            for key, value in values.items():
                part = part.replace("{" + key + "}", value)
            filled.append(part)
        return filled

    def env(self, session: AgentSession) -> dict[str, str]:
        if self.api == "anthropic":
            return {"ANTHROPIC_BASE_URL": session.proxy_url, "ANTHROPIC_API_KEY": PLACEHOLDER_KEY,
                    "HOME": session.config_dir}
        return {"OPENAI_BASE_URL": f"{session.proxy_url}/v1", "OPENAI_API_KEY": PLACEHOLDER_KEY,
                "HOME": session.config_dir}

    def parse(self, stdout: str, stderr: str) -> AgentOutcome:
        # A CLI loopbot does not know: its last output lines are taken as its final message.
        lines = [line for line in stdout.strip().splitlines() if line.strip()]
        final = "\n".join(lines[-20:])
        return AgentOutcome(final_message=final, approach=approach_from(final))
