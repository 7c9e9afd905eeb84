"""One external-agent session as loopbot runs it (real CLI, real bubblewrap, loopbot's proxy and
relay) against the replay server, for the adapters' tests: what the agent did, what the proxy
charged, and every file the session left, to look for a key in."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from loopbot.agents.base import AgentAdapter, Upstream
from loopbot.agents.proxy import ProxyCall
from loopbot.agents.session import ExternalMaker, SessionReport
from loopbot.config import SandboxConfig
from loopbot.roles.maker import MakerResult
from loopbot.sandbox.bubblewrap import BubblewrapSandbox
from loopbot.testing.replay import Cassette, ReplayServer

REAL_KEY = "sk-proj-REALKEY-never-in-the-sandbox-0123456789"  # what the proxy holds, and only it


@dataclass
class Ledger:
    """A Billing that admits `allow` calls (None: all) and keeps what the proxy charged."""

    allow: int | None = None
    charged: list[ProxyCall] = field(default_factory=list)
    asked: int = 0

    def admit(self) -> str | None:
        self.asked += 1
        if self.allow is not None and self.asked > self.allow:
            return "max_cost_usd 0.50 used up"
        return None

    def charge(self, call: ProxyCall) -> None:
        self.charged.append(call)


@dataclass
class Outcome:
    report: SessionReport
    result: MakerResult  # what the runner takes from the session (its error, its notes)
    server: ReplayServer
    worktree: Path
    ledger: Ledger

    def left_behind(self) -> dict[str, bytes]:
        """Every file of the session folder (the agent's home, its output, the proxy's record)
        and of the worktree, git's own files included."""
        files = {}
        for root in (self.report.folder, self.worktree):
            for path in root.rglob("*"):
                if path.is_file() and not path.is_symlink():
                    files[str(path)] = path.read_bytes()
        return files


def git_worktree(root: Path, files: dict[str, str]) -> Path:
    worktree = root / "work"
    worktree.mkdir(parents=True)
    for name, text in files.items():
        (worktree / name).parent.mkdir(parents=True, exist_ok=True)
        (worktree / name).write_text(text)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"],
                 ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base"]):
        subprocess.run(["git", *args], cwd=worktree, capture_output=True, check=True)
    return worktree


def run_session(root: Path, adapter: AgentAdapter, cassette: Cassette, *, model: str, task: str,
                files: dict[str, str], ledger: Ledger | None = None, wall_seconds: float = 120,
                max_turns: int = 20) -> Outcome:
    """Run one session; the replay server accepts only REAL_KEY, which only the proxy has."""
    worktree = git_worktree(root, files)
    ledger = ledger or Ledger()
    cassette = cassette.model_copy(update={"api_key": REAL_KEY})
    with ReplayServer(cassette) as server:
        base = server.url + ("/v1" if adapter.api == "openai" else "")
        maker = ExternalMaker(adapter=adapter, upstream=Upstream(api=adapter.api, base_url=base, api_key=REAL_KEY),
                              model=model, run_dir=root / "run", redact=lambda text: text.replace(REAL_KEY, "[key]"),
                              wall_seconds=wall_seconds)
        sandbox = BubblewrapSandbox(worktree, worktree / ".git", SandboxConfig())
        result = maker.run(sandbox, worktree, task, iteration=1, billing=ledger, max_turns=max_turns)
    return Outcome(report=maker.reports[-1], result=result, server=server, worktree=worktree, ledger=ledger)
