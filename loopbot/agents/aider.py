"""aider (PyPI aider-chat) as the maker: one `aider --message-file` session per iteration.

aider talks to the proxy through litellm as an OpenAI-compatible chat completions endpoint
(`openai/<model>`, POST /v1/chat/completions, streamed) and edits files by the blocks of its
edit format in the reply text (SEARCH/REPLACE for `diff`), not by tool calls. It never runs
shell commands unattended (they need an explicit yes, which --yes-always does not give), makes
no commits (loopbot commits), leaves .gitignore alone, and keeps its histories, and the git
index it stages new files in, in the fresh home. Update check, analytics, release notes, the repo map and URL scraping are off.

aider reads a repository's .aider.conf.yml and .env as well; every setting that matters is
given on the command line, which wins over both.

litellm asks an OpenAI-compatible server for streamed usage only on api.openai.com, so the
session asks for it (`stream_options.include_usage`, through aider's `aider/extra_params`
model setting, written into the fresh home before aider starts): without it a streamed answer
carries no usage and aider's figures are its own estimates.

aider has no turn limit: one message, at most three reflections (aider's own cap) for failed
edits or files it asked to add. The proxy's turn limit (the session's max_turns), the wall limit
and the budgets bound it.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import loopbot
from loopbot.agents.base import (
    PLACEHOLDER_KEY,
    AgentOutcome,
    AgentSession,
    AgentUsage,
    Api,
    approach_from,
)

PACKAGE = "aider-chat"
VERSION = "0.86.2"
INSTALL = f"pipx install {PACKAGE}=={VERSION}  (or: uv tool install {PACKAGE}=={VERSION})"
_DEV_VENV = Path(loopbot.__file__).resolve().parents[1] / "tools" / "aider-venv"
SETTINGS = "- name: aider/extra_params\n  extra_params:\n    stream_options:\n      include_usage: true\n"
# Run inside the sandbox before aider: its model settings into the session's home, and git an
# index and object store of its own there (aider `git add`s every file it creates, even with
# --no-auto-commits, and stops when that fails; the sandbox's .git is read-only). The
# repository's objects stay readable as an alternate; nothing of this reaches the repository.
_PREPARE = """printf "%s" "$LOOPBOT_AIDER_SETTINGS" > "$HOME/model-settings.yml" || exit 1
if objects=$(git rev-parse --path-format=absolute --git-path objects 2>/dev/null); then
  index=$(git rev-parse --path-format=absolute --git-path index)
  mkdir -p "$HOME/git/objects" && { [ ! -f "$index" ] || cp "$index" "$HOME/git/index"; } || exit 1
  export GIT_INDEX_FILE="$HOME/git/index" GIT_OBJECT_DIRECTORY="$HOME/git/objects"
  export GIT_ALTERNATE_OBJECT_DIRECTORIES="$objects"
fi
exec "$@"
"""
_TOKENS = re.compile(r"^Tokens: (?P<sent>[\d.]+k?) sent(?:, (?P<write>[\d.]+k?) cache write)?"
                     r"(?:, (?P<hit>[\d.]+k?) cache hit)?, (?P<received>[\d.]+k?) received\."
                     r"(?: Cost: \$(?P<message>[\d.]+) message, \$(?P<session>[\d.]+) session\.)?")
# aider's own lines around the model's reply (with --no-pretty they are plain text).
_CHROME = re.compile(r"^(Aider v|Model: |Main model: |Weak model: |Git repo: |Repo-map: |Analytics have been |Detected |"
                     r"Applied edit to |Added .* to the chat|Tokens: |https://aider\.chat/|Update git |"
                     r"Did not apply edit|Warning: )")
_FAILED = re.compile(r"^(litellm\.\w+Error|openai\.\w+Error|The API provider|Unable to .*|.*Exception - )(.*)$")


def find_aider(venv: Path | None = None) -> Path | None:
    """aider's entry script: `aider` on PATH (pipx, uv tool), else a development checkout's
    tools/aider-venv (where `make test` installs it)."""
    if venv is not None:
        candidate = venv / "bin" / "aider"
        return candidate if candidate.is_file() else None
    found = shutil.which("aider")
    if found:
        return Path(found)
    candidate = _DEV_VENV / "bin" / "aider"
    return candidate if candidate.is_file() else None


def _venv_of(entry: Path) -> Path:
    """The environment an entry script runs in: the folder above bin/, as its shebang names it."""
    try:
        shebang = entry.read_text(encoding="utf-8", errors="replace").splitlines()[0]
    except (OSError, IndexError):
        return entry.resolve().parent.parent
    interpreter = Path(shebang[2:].strip().split()[0]) if shebang.startswith("#!") else entry
    return interpreter.parent.parent


@dataclass
class Aider:
    venv: Path | None = None  # aider's virtualenv; default: found as find_aider does
    name: str = "aider"
    api: Api = "openai"
    edit_format: str | None = None  # None: aider's default for the model
    extra_args: list[str] = field(default_factory=list)

    def _entry(self) -> Path | None:
        return find_aider(self.venv)

    def check_installed(self) -> str | None:
        if self._entry() is None:
            return f"aider is not installed (no `aider` on PATH): {INSTALL}"
        return None

    def host_paths(self) -> list[Path]:
        entry = self._entry()
        if entry is None:
            return []
        venv = _venv_of(entry)
        paths = [venv.resolve()]
        config = venv / "pyvenv.cfg"
        if config.is_file():
            # The interpreter the virtualenv was made from (a uv- or pyenv-managed Python).
            for line in config.read_text(encoding="utf-8", errors="replace").splitlines():
                key, _, value = line.partition("=")
                if key.strip() == "home" and value.strip():
                    paths.append(Path(value.strip()).resolve().parent)
        return list(dict.fromkeys(paths))

    def command(self, session: AgentSession) -> list[str]:
        entry = self._entry()
        assert entry is not None, "check_installed() first"
        home = session.config_dir
        model = f"openai/{session.model}"
        argv = [str(entry), "--model", model, "--weak-model", model,
                "--openai-api-base", f"{session.proxy_url}/v1", "--openai-api-key", PLACEHOLDER_KEY,
                "--message-file", session.task_file, "--yes-always",
                "--no-auto-commits", "--no-dirty-commits", "--no-gitignore", "--no-auto-test",
                "--no-suggest-shell-commands", "--no-detect-urls", "--no-check-update", "--no-show-release-notes",
                "--analytics-disable", "--no-show-model-warnings", "--map-tokens", "0",
                "--no-pretty", "--no-fancy-input", "--encoding", "utf-8", "--no-restore-chat-history",
                "--model-settings-file", f"{home}/model-settings.yml",
                "--input-history-file", f"{home}/input.history",
                "--chat-history-file", f"{home}/chat.history.md",
                "--llm-history-file", f"{home}/llm.history"]
        if self.edit_format:
            argv += ["--edit-format", self.edit_format]
        return ["/bin/sh", "-c", _PREPARE, "aider-session", *argv, *self.extra_args]

    def env(self, session: AgentSession) -> dict[str, str]:
        return {
            "HOME": session.config_dir,
            "OPENAI_API_KEY": PLACEHOLDER_KEY,
            "OPENAI_API_BASE": f"{session.proxy_url}/v1",
            "LOOPBOT_AIDER_SETTINGS": SETTINGS,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # litellm's bundled prices, not a download
            "NO_COLOR": "1",
            "TERM": "dumb",
            "COLUMNS": "10000",  # aider wraps its output at the terminal's width: an error would be cut
            # aider writes a placeholder author into the repository's config when git has none,
            # and the sandbox's .git is read-only: an author from the environment instead.
            "GIT_CONFIG_COUNT": "2",
            "GIT_CONFIG_KEY_0": "user.name", "GIT_CONFIG_VALUE_0": "loopbot maker (aider)",
            "GIT_CONFIG_KEY_1": "user.email", "GIT_CONFIG_VALUE_1": "maker@loopbot.invalid",
        }

    def parse(self, stdout: str, stderr: str) -> AgentOutcome:
        lines = stdout.splitlines()
        reports = [(i, found) for i, line in enumerate(lines) if (found := _TOKENS.match(line.strip()))]
        usage: AgentUsage | None = None
        if reports:
            cost = reports[-1][1].group("session")
            usage = AgentUsage(
                input_tokens=sum(_count(m.group("sent")) - _count(m.group("hit")) for _, m in reports),
                output_tokens=sum(_count(m.group("received")) for _, m in reports),
                cache_write_tokens=sum(_count(m.group("write")) for _, m in reports),
                cache_read_tokens=sum(_count(m.group("hit")) for _, m in reports),
                cost_usd=float(cost) if cost else None)
        # The last reply: after aider's header, or after the report of the call before it.
        start = max((i for i, line in enumerate(lines) if line.startswith("Repo-map: ")), default=-1) + 1
        if len(reports) > 1:
            start = max(start, reports[-2][0] + 1)
        end = reports[-1][0] if reports else len(lines)
        reply = [line for line in lines[start:end] if not _CHROME.match(line)]
        error = None
        failed = next((i for i, line in enumerate(reply) if _FAILED.match(line.strip())), None)
        if failed is not None:
            # The error and its continuation lines, up to the next blank line.
            tail = reply[failed:]
            length = next((i for i, line in enumerate(tail) if not line.strip()), len(tail))
            error = "aider: " + " ".join(line.strip() for line in tail[:length])[:300]
            reply = reply[:failed] + tail[length:]
        elif any(_FAILED.match(line.strip()) for line in stderr.splitlines()):
            error = "aider: " + next(line.strip() for line in stderr.splitlines() if _FAILED.match(line.strip()))
        final = "\n".join(_without_edit_blocks(_without_file_list(reply))).strip()
        if error is None and not reports:
            last = (stderr.strip() or stdout.strip())[-600:]
            error = f"aider ended without an answer from the model: {last or 'no output'}"
        edits = sum(1 for line in lines if line.startswith("Applied edit to "))
        notes = [line.strip() for line in lines if line.startswith("Did not apply edit")][:3]
        # The APPROACH line may sit in an earlier reply than the last (a reflection's answer).
        said = [line for line in lines[:end] if line.lstrip("* ").upper().startswith("APPROACH")]
        approach = approach_from(final if "APPROACH" in final.upper() or not said else said[-1])
        return AgentOutcome(final_message=final, approach=approach, usage=usage, turns=len(reports),
                            error=error, notes=notes + ([f"{edits} edit(s) applied"] if edits else []))


def _count(text: str | None) -> int:
    """aider's rounded token counts: 812, 2.4k, 31k."""
    if not text:
        return 0
    return round(float(text[:-1]) * 1000) if text.endswith("k") else int(float(text))


def _without_file_list(lines: list[str]) -> list[str]:
    """The reply without the list of files in the chat that aider prints before it: the leading
    lines that are a path alone (no spaces), and the blank lines between them."""
    for index, line in enumerate(lines):
        if line.strip() and (" " in line.strip() or line.startswith("```")):
            return lines[index:]
    return lines


def _without_edit_blocks(lines: list[str]) -> list[str]:
    """The reply without its fenced edit blocks and the path line above each: what it says."""
    kept: list[str] = []
    fenced = False
    for line in lines:
        if line.startswith("```"):
            if not fenced and kept and kept[-1].strip() and " " not in kept[-1].strip():
                kept.pop()  # the file path aider names above the block
            fenced = not fenced
            continue
        if not fenced:
            kept.append(line)
    return kept
