"""Codex (npm @openai/codex) as the maker: one `codex exec --json` session per iteration.

Codex speaks the OpenAI Responses API (POST /v1/responses, streamed) to a provider of loopbot's
own (`model_providers.loopbot`, all given as `-c` overrides: the fresh CODEX_HOME holds no
config and no secret), with its own tools: exec_command (a shell), write_stdin, apply_patch
(a freeform patch) and view_image. Its web search (a hosted tool, run by the provider), sub-agents,
goals, apps, plugins, memories and tool search are off; so are analytics, feedback, OpenTelemetry,
the update check and the repository's AGENTS.md (a file an earlier iteration could have written).
`--strict-config` makes a renamed setting an error instead of a silently ignored one.

Codex's own sandbox is a bubblewrap of its own (codex-resources/bwrap): nested inside loopbot's
(no capabilities, user namespace already unshared) it cannot start, and every command would
fail. So the session runs `--sandbox danger-full-access` with approvals never asked: loopbot's
bubblewrap, with the network unshared, is the sandbox. Codex has no turn limit of its own: the
proxy refuses the call after the session's max_turns, and the wall limit and budgets bound it too.
Its x-codex-turn-metadata header (installation id, worktree path, git HEAD, sandbox mode) is one
the proxy does not forward.

The native binary is run directly (the npm package's `codex` is a node launcher that only
execs it), so the sandbox needs no node.
"""

from __future__ import annotations

import json
import platform
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import loopbot
from loopbot.agents.base import (
    PLACEHOLDER_KEY,
    AgentOutcome,
    AgentSession,
    AgentUsage,
    Api,
    approach_from,
)

PACKAGE = "@openai/codex"
VERSION = "0.171.0"
INSTALL = f"npm install -g {PACKAGE}@{VERSION}"
# The npm package's native build per machine: (platform package, target triple).
_NATIVE = {"x86_64": ("codex-linux-x64", "x86_64-unknown-linux-musl"),
           "aarch64": ("codex-linux-arm64", "aarch64-unknown-linux-musl")}
_DEV_PACKAGE = Path(loopbot.__file__).resolve().parents[1] / "tools" / "node_modules" / "@openai" / "codex"
# Settings for an unattended, contained session (each one checked by --strict-config).
SETTINGS = (
    'approval_policy="never"',
    "analytics.enabled=false",
    "feedback.enabled=false",
    "check_for_update_on_startup=false",
    'otel.exporter="none"',
    'history.persistence="none"',
    "project_doc_max_bytes=0",
    'web_search="disabled"',
    "features.multi_agent=false",
    "features.goals=false",
    "features.tool_search=false",
    "features.image_generation=false",
    "features.apps=false",
    "features.plugins=false",
    "features.memories=false",
)
_ACTIONS = ("command_execution", "file_change", "mcp_tool_call", "web_search")


def _toml(value: str) -> str:
    return json.dumps(value)  # a TOML basic string: JSON's escapes are TOML's


def find_binary(package: Path | None = None, machine: str | None = None) -> Path | None:
    """Codex's native binary: inside the npm package that `codex` on PATH belongs to (or
    `package`), else a development checkout's tools/node_modules; or a native `codex` on PATH."""
    native = _NATIVE.get(machine or platform.machine())
    on_path = shutil.which("codex") if package is None else None
    roots = [package] if package is not None else []
    if on_path:
        resolved = Path(on_path).resolve()
        if resolved.suffix != ".js":
            return resolved  # a release binary, brew or cargo install
        roots.append(resolved.parent.parent)  # <prefix>/node_modules/@openai/codex/bin/codex.js
    if package is None:
        roots.append(_DEV_PACKAGE)
    if native is None:
        return None
    name, triple = native
    for root in roots:
        # npm puts the platform package beside the launcher's package or inside it.
        for folder in (root / "node_modules" / "@openai" / name, root.parent / name):
            candidate = folder / "vendor" / triple / "bin" / "codex"
            if candidate.is_file():
                return candidate
    return None


@dataclass
class Codex:
    package: Path | None = None  # the @openai/codex package folder; default: found as find_binary does
    name: str = "codex"
    api: Api = "openai"
    extra_args: list[str] = field(default_factory=list)

    def _binary(self) -> Path | None:
        return find_binary(self.package)

    def check_installed(self) -> str | None:
        if _NATIVE.get(platform.machine()) is None and shutil.which("codex") is None:
            return f"Codex has no build for this machine ({platform.machine()}) in npm's {PACKAGE}"
        if self._binary() is None:
            return f"Codex is not installed (no `codex` on PATH, or its native build is missing): {INSTALL}"
        return None

    def host_paths(self) -> list[Path]:
        binary = self._binary()
        if binary is None:
            return []
        # The npm build keeps rg (codex-path) and its resources beside bin/: show the whole folder.
        folder = binary.parent.parent if binary.parent.name == "bin" else binary.parent
        return [folder]

    def command(self, session: AgentSession) -> list[str]:
        binary = self._binary()
        assert binary is not None, "check_installed() first"
        provider = (f"{{name={_toml('loopbot proxy')}, base_url={_toml(session.proxy_url + '/v1')}, "
                    f"env_key={_toml('OPENAI_API_KEY')}, wire_api={_toml('responses')}}}")
        overrides = ['model_provider="loopbot"', f"model_providers.loopbot={provider}", *SETTINGS]
        argv = [str(binary), "exec", "--json", "--color", "never", "--strict-config", "--skip-git-repo-check",
                "--ignore-rules", "--sandbox", "danger-full-access", "--cd", session.worktree,
                "--model", session.model]
        for override in overrides:
            argv += ["-c", override]
        # The task comes on stdin ("-"): a prompt with long feedback may pass an argument's size limit.
        return ["/bin/sh", "-c", 'exec "$@" < "$0"', session.task_file, *argv, *self.extra_args, "-"]

    def env(self, session: AgentSession) -> dict[str, str]:
        return {
            "HOME": session.config_dir,
            "CODEX_HOME": session.config_dir,  # it must exist: the fresh folder itself
            "XDG_CONFIG_HOME": f"{session.config_dir}/.config",
            "OPENAI_API_KEY": PLACEHOLDER_KEY,
            "NO_COLOR": "1",
            "TERM": "dumb",
        }

    def parse(self, stdout: str, stderr: str) -> AgentOutcome:
        messages: list[str] = []
        usage = AgentUsage()
        turns_done = 0
        actions = 0
        failure: str | None = None
        notes: list[str] = []
        for line in stdout.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue
            kind = event.get("type")
            given = event.get("item")
            item: dict[str, Any] = given if isinstance(given, dict) else {}
            item_kind = str(item.get("type") or "")
            if kind == "item.completed" and item_kind == "agent_message":
                messages.append(str(item.get("text") or ""))
            elif kind == "item.completed" and item_kind in _ACTIONS:
                actions += 1
            elif kind == "item.completed" and item_kind == "error":
                notes.append(f"codex: {str(item.get('message') or '')[:200]}")
            elif kind == "turn.completed":
                turns_done += 1
                usage = _add(usage, event.get("usage") or {})
            elif kind == "turn.failed":
                failure = _message(str((event.get("error") or {}).get("message") or "the turn failed"))
            elif kind == "error":
                failure = _message(str(event.get("message") or "error"))
        final = next((m for m in reversed(messages) if m.strip()), "")
        if failure is None and turns_done == 0:
            tail = (stderr.strip() or stdout.strip())[-600:]
            failure = f"codex ended without finishing its turn: {tail or 'no output'}"
        return AgentOutcome(final_message=final, approach=approach_from(final), usage=usage, turns=actions,
                            error=f"codex: {failure[:300]}" if failure else None, notes=notes)


def _add(total: AgentUsage, reported: dict[str, Any]) -> AgentUsage:
    def number(key: str) -> int:
        value = reported.get(key)
        return value if isinstance(value, int) else 0

    cached = number("cached_input_tokens")
    return AgentUsage(input_tokens=total.input_tokens + number("input_tokens") - cached,
                      output_tokens=total.output_tokens + number("output_tokens"),
                      cache_write_tokens=total.cache_write_tokens + number("cache_write_input_tokens"),
                      cache_read_tokens=total.cache_read_tokens + cached)


def _message(text: str) -> str:
    """An API error codex passes on as the body's JSON: its message alone."""
    try:
        body = json.loads(text)
    except ValueError:
        return text
    error = body.get("error") if isinstance(body, dict) else None
    return str(error.get("message") or text) if isinstance(error, dict) else text
