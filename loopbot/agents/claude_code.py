"""Claude Code (npm @anthropic-ai/claude-code) as the maker: one `claude -p` session per iteration.

Non-interactive and contained: settings from the fresh per-session home only (a repository's
.claude/settings.json could name hooks, an apiKeyHelper or another base URL), no MCP servers (a
repository's .mcp.json would start commands), only the file and shell tools
(no web, no sub-agents), its permission prompts off (bypassPermissions, see command()) — the
sandbox, not the CLI, is what contains it. Telemetry, error
reports and auto-update are off; the network is unshared anyway.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import loopbot
from loopbot.agents.base import (
    PLACEHOLDER_KEY,
    AgentOutcome,
    AgentSession,
    AgentUsage,
    approach_from,
)

PACKAGE = "@anthropic-ai/claude-code"
INSTALL = f"npm install -g {PACKAGE}@2.1.112"
# The CLI's tools a maker needs: read, search, edit and run. No WebFetch/WebSearch, no Task
# sub-agents, no worktree or cron tools.
TOOLS = ("Bash", "Read", "Edit", "Write", "Glob", "Grep")
# The sandbox limits each command's address space (sandbox.memory_mb); V8 reserves ~10 GB of it per
# WebAssembly instance for its bounds-check guard pages, and node's HTTP client (undici's llhttp)
# is WebAssembly, so every API call failed "Out of memory: Cannot allocate Wasm memory". Inline
# bounds checks instead, as node documents for `ulimit -v`; in NODE_OPTIONS for child nodes too.
NODE_FLAGS = ("--disable-wasm-trap-handler",)
MIN_NODE = (20, 17)  # the first node with --disable-wasm-trap-handler (22.2 on the 22 line)
_DEV_TOOLS = Path(loopbot.__file__).resolve().parents[1] / "tools" / "node_modules" / PACKAGE


def _node_version(node: str) -> tuple[int, int] | None:
    try:
        text = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.match(r"v(\d+)\.(\d+)", text.strip())
    return (int(found.group(1)), int(found.group(2))) if found else None


def find_cli(search: Path | None = None) -> Path | None:
    """The CLI's entry file: `claude` on PATH (an npm global install), else a development
    checkout's tools/node_modules (where `make test` installs it)."""
    if search is not None:
        candidates = [search / "cli.js", search / "bin" / "claude.exe", search]
    else:
        found = shutil.which("claude")
        candidates = [Path(found).resolve()] if found else []
        candidates += [_DEV_TOOLS / "cli.js", _DEV_TOOLS / "bin" / "claude.exe"]
    return next((path for path in candidates if path.is_file()), None)


@dataclass
class ClaudeCode:
    package: Path | None = None  # a folder holding cli.js; default: found as find_cli does
    name: str = "claude-code"
    api: Any = "anthropic"
    extra_args: list[str] = field(default_factory=list)

    def _entry(self) -> Path | None:
        return find_cli(self.package)

    def check_installed(self) -> str | None:
        entry = self._entry()
        if entry is None:
            return f"Claude Code is not installed (no `claude` on PATH): {INSTALL}"
        if entry.suffix == ".js":
            node = shutil.which("node")
            if node is None:
                return "Claude Code needs node (20.17 or newer) on PATH: install Node.js, then " + INSTALL
            version = _node_version(node)
            if version is not None and (version < MIN_NODE or (21, 0) <= version < (22, 2)):
                return (f"Claude Code in loopbot's sandbox needs node 20.17 or newer (for {NODE_FLAGS[0]}, see "
                        f"loopbot/agents/claude_code.py); {node} is {'.'.join(map(str, version))}")
        return None

    def host_paths(self) -> list[Path]:
        entry = self._entry()
        if entry is None:
            return []
        return [entry.parent]

    def command(self, session: AgentSession) -> list[str]:
        entry = self._entry()
        assert entry is not None, "check_installed() first"
        launcher = ["node", *NODE_FLAGS, str(entry)] if entry.suffix == ".js" else [str(entry)]
        return [*launcher, "-p", session.task,
                "--output-format", "stream-json", "--verbose",
                "--max-turns", str(session.max_turns),
                "--model", session.model,
                # Not --bare: in 2.1.112 it offers Bash, Edit and Read only, whatever --tools says
                # (no Write for new files, no Glob or Grep).
                "--setting-sources", "user", "--strict-mcp-config",
                "--tools", ",".join(TOOLS), "--allowedTools", " ".join(TOOLS),
                # loopbot's worktrees live under .git/loopbot/worktrees, and the CLI asks before
                # any edit of a path under .git/ ("a sensitive file") even in acceptEdits, which in
                # -p mode is a refusal. So its permission checks are off; this argv only ever runs
                # inside bubblewrap (network unshared, only the worktree writable), which is what
                # contains the agent, as it contains the built-in maker's commands.
                "--permission-mode", "bypassPermissions",
                *self.extra_args]

    def env(self, session: AgentSession) -> dict[str, str]:
        return {
            "HOME": session.config_dir,
            # The CLI refuses bypassPermissions as root outside a sandbox; this is one (see above).
            "IS_SANDBOX": "1",
            "NODE_OPTIONS": " ".join(NODE_FLAGS),
            "CLAUDE_CONFIG_DIR": f"{session.config_dir}/.claude",
            "XDG_CONFIG_HOME": f"{session.config_dir}/.config",
            "ANTHROPIC_BASE_URL": session.proxy_url,
            "ANTHROPIC_API_KEY": PLACEHOLDER_KEY,
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_BUG_COMMAND": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "CLAUDE_CODE_DISABLE_TERMINAL_TITLE": "1",
            # The CLI runs its tools' commands with a timeout of its own; loopbot's wall limit wins.
            "BASH_MAX_TIMEOUT_MS": str(int(min(session.wall_seconds, 600) * 1000)),
        }

    def parse(self, stdout: str, stderr: str) -> AgentOutcome:
        result: dict[str, Any] | None = None
        last_text = ""
        turns = 0
        for line in stdout.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue
            if event.get("type") == "assistant":
                turns += 1
                texts = [b.get("text", "") for b in (event.get("message") or {}).get("content") or []
                         if isinstance(b, dict) and b.get("type") == "text"]
                if any(t.strip() for t in texts):
                    last_text = "\n".join(t for t in texts if t.strip())
            elif event.get("type") == "result":
                result = event
        if result is None:
            tail = (stderr.strip() or stdout.strip())[-600:]
            return AgentOutcome(final_message=last_text, approach=approach_from(last_text), turns=turns,
                                error=f"claude ended without a result: {tail or 'no output'}")
        final = str(result.get("result") or "") or last_text
        usage = result.get("usage") or {}
        reported = AgentUsage(input_tokens=int(usage.get("input_tokens") or 0),
                              output_tokens=int(usage.get("output_tokens") or 0),
                              cache_write_tokens=int(usage.get("cache_creation_input_tokens") or 0),
                              cache_read_tokens=int(usage.get("cache_read_input_tokens") or 0),
                              cost_usd=result.get("total_cost_usd"))
        error = None
        subtype = str(result.get("subtype") or "")
        if subtype == "error_max_turns":
            error = None  # the turn limit is an ordinary end: the work so far is evaluated
        elif result.get("is_error") or subtype not in ("", "success"):
            error = f"claude: {subtype or 'error'}: {final.strip()[:300]}"
        notes = []
        if subtype == "error_max_turns":
            notes.append(f"stopped at the turn limit ({result.get('num_turns')} turns)")
        denied = result.get("permission_denials") or []
        if denied:
            notes.append(f"the CLI denied {len(denied)} tool call(s)")
        return AgentOutcome(final_message=final, approach=approach_from(last_text or final), usage=reported,
                            turns=int(result.get("num_turns") or turns), error=error, notes=notes)
