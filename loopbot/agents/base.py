"""The adapter protocol: what loopbot needs to know to run one agent CLI as the maker.

An adapter is pure: it turns a session (paths as the agent sees them inside the sandbox, the
proxy's URL, the limits) into an argv and an environment, and the CLI's output into an
outcome. It never starts anything and never sees a credential: the agent talks to loopbot's
host-side proxy (loopbot/agents/proxy.py) with PLACEHOLDER_KEY, which the proxy swaps for the
real key. See loopbot/agents/README.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from loopbot.config import Price

# What the agent sends as its API key; the proxy refuses anything else and never forwards it.
PLACEHOLDER_KEY = "loopbot-proxy-placeholder-key"
Api = Literal["anthropic", "openai"]

_APPROACH = re.compile(r"^\s*\**APPROACH:?\**:?\s*(.+)$", re.MULTILINE | re.IGNORECASE)


@dataclass(frozen=True)
class Upstream:
    """Where the agent's calls really go. `base_url` as the provider's SDK takes it: Anthropic
    without /v1 (https://api.anthropic.com), OpenAI with it (https://api.openai.com/v1)."""

    api: Api
    base_url: str
    api_key: str
    price: Price | None = None

    def url(self, path: str) -> str:
        base = self.base_url.rstrip("/")
        if self.api == "openai" and base.endswith("/v1") and (path == "/v1" or path.startswith("/v1/")):
            path = path[3:]
        return base + path


@dataclass(frozen=True)
class AgentSession:
    """One non-interactive agent run. Paths are the sandbox's view (the same as the host's for
    the worktree; config_dir is a fresh, empty, writable folder the agent may use as its home)."""

    task_file: str  # the iteration prompt, as a file the CLI reads (or is given the text of)
    task: str  # the same prompt's text, for CLIs that take it as an argument
    worktree: str
    config_dir: str
    proxy_url: str  # base URL of the relay inside the sandbox, e.g. http://127.0.0.1:4100
    model: str  # the provider's model id (no `anthropic:` prefix)
    max_turns: int
    wall_seconds: float


@dataclass(frozen=True)
class AgentUsage:
    """The agent's own report of what it spent (loopbot's ledger comes from the proxy, not this)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    cost_usd: float | None = None


@dataclass
class AgentOutcome:
    final_message: str = ""
    approach: str = ""
    usage: AgentUsage | None = None
    turns: int = 0
    error: str | None = None
    notes: list[str] = field(default_factory=list)


class AgentAdapter(Protocol):
    """One agent CLI. `api` says which provider API the proxy fronts for it."""

    name: str
    api: Api

    def check_installed(self) -> str | None:
        """None when the CLI can run; else what is wrong and the command that installs it."""
        ...

    def host_paths(self) -> list[Path]:
        """Host folders the CLI needs inside the sandbox, shown read-only (its install folder)."""
        ...

    def command(self, session: AgentSession) -> list[str]:
        """The argv of one non-interactive session (run with the sandbox's cwd at the worktree)."""
        ...

    def env(self, session: AgentSession) -> dict[str, str]:
        """Variables for the CLI: the proxy URL, PLACEHOLDER_KEY, HOME=config_dir, telemetry and
        auto-update off. Never a real secret."""
        ...

    def parse(self, stdout: str, stderr: str) -> AgentOutcome:
        """The final message, approach, the CLI's own usage report, turns, and any error."""
        ...


def approach_from(final_message: str) -> str:
    """The `APPROACH: ...` line the prompt asks for; else the final message's first line."""
    found = _APPROACH.search(final_message)
    if found:
        return found.group(1).strip()[:300]
    for line in final_message.splitlines():
        if line.strip():
            return line.strip()[:300]
    return ""
