"""One external agent session: the maker step of an iteration, run by an agent CLI.

The session folder (the agent's fresh HOME, the task, the CLI's output) is kept in the run's
folder for whoever looks afterwards; the proxy's socket lives in a short private folder (a
socket path has at most 107 bytes). Inside the sandbox the relay gives the agent its base URL;
outside, the proxy holds the key and the budget.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import socket
import stat
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from loopbot.agents.base import AgentAdapter, AgentOutcome, AgentSession, Upstream, approach_from
from loopbot.agents.proxy import AgentProxy, Billing
from loopbot.ports import Bind, CommandResult
from loopbot.roles.maker import MakerResult

RELAY = Path(__file__).with_name("relay.py")
OUTPUT_BYTES = 8 * 1024 * 1024  # of the CLI's stdout read back for parsing (its tail when longer)


# Where bubblewrap shows the worktree to the agent: Claude Code refuses to edit any path under a
# .git/ folder (even with its permission checks off), and loopbot's worktrees are in .git/loopbot.
WORKSPACE = Path("/workspace")


class BindingSandbox(Protocol):
    name: str

    def run(self, command: str, *, cwd: Path, timeout_seconds: float, env: dict[str, str] | None = None,
            network: bool = False, binds: tuple[Bind, ...] = ()) -> CommandResult: ...


@dataclass
class SessionReport:
    """What a session left: the outcome, the model calls the proxy forwarded and refused."""

    outcome: AgentOutcome
    calls: int
    refused: list[str]
    folder: Path
    exit_code: int
    timed_out: bool


@dataclass
class ExternalMaker:
    """The maker step with an agent CLI: `run` is called once per iteration by the runner."""

    adapter: AgentAdapter
    upstream: Upstream
    model: str  # the provider's model id
    run_dir: Path
    redact: Callable[[str], str]
    wall_seconds: float = 900.0
    max_turns: int | None = None
    reports: list[SessionReport] = field(default_factory=list)

    def run(self, sandbox: BindingSandbox, worktree: Path, task: str, *, iteration: int, billing: Billing,
            max_turns: int) -> MakerResult:
        report = self.session(sandbox, worktree, task, iteration=iteration, billing=billing,
                              max_turns=self.max_turns or max_turns)
        self.reports.append(report)
        outcome = report.outcome
        result = MakerResult(approach=outcome.approach, summary=outcome.final_message.strip()[:2000],
                             calls=report.calls, notes=list(outcome.notes))
        if report.refused:
            # The budget ended the session: its work is evaluated, as when the built-in maker's
            # calls run out. Not the agent's error.
            result.notes.append(f"the proxy refused a model call: {report.refused[0]}")
        elif report.timed_out:
            result.notes.append(f"the session was killed at its wall limit ({self.wall_seconds:g}s)")
        elif outcome.error:
            result.error = f"{self.adapter.name}: {outcome.error}"
        elif report.exit_code != 0 and not outcome.final_message:
            result.error = f"{self.adapter.name} exited {report.exit_code} without a final message"
        result.summary = result.summary or (result.notes[-1] if result.notes else "")
        return result

    def session(self, sandbox: BindingSandbox, worktree: Path, task: str, *, iteration: int, billing: Billing,
                max_turns: int) -> SessionReport:
        folder = self._fresh_folder(iteration)
        home = folder / "home"
        home.mkdir(mode=0o700)
        (folder / "task.md").write_text(task, encoding="utf-8")
        shutil.copyfile(RELAY, folder / "relay.py")
        sockets = Path(tempfile.mkdtemp(prefix="loopbot-proxy-"))
        socket_path = sockets / "proxy.sock"
        port = _free_port()
        # Without bubblewrap nothing can be shown elsewhere: the agent works at the real path.
        view = WORKSPACE / worktree.name if sandbox.name == "bubblewrap" else worktree.resolve()
        session = AgentSession(task_file=str(folder / "task.md"), task=task, worktree=str(view),
                               config_dir=str(home), proxy_url=f"http://127.0.0.1:{port}", model=self.model,
                               max_turns=max_turns, wall_seconds=self.wall_seconds)
        argv = self.adapter.command(session)
        command = shlex.join([_python(), str(folder / "relay.py"), str(socket_path), str(port),
                              str(folder / "stdout.jsonl"), str(folder / "stderr.log"), "--", *argv])
        binds = (Bind(folder, writable=True), Bind(sockets), *(Bind(p) for p in self.adapter.host_paths()),
                 *([Bind(worktree, writable=True, at=view)] if view != worktree.resolve() else []))
        # Opened before the agent starts and written only through this descriptor: the folder is
        # the agent's to write, and a path opened later could be its symlink to a host file.
        log = os.open(folder / "proxy.jsonl", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_NOFOLLOW, 0o600)
        lock = threading.Lock()

        def record(entry: dict[str, Any]) -> None:
            with lock:
                os.write(log, (json.dumps(entry) + "\n").encode())

        try:
            # The turn limit is the proxy's too: Codex and aider have no flag for it, and a command
            # template's CLI may ignore its {max_turns}.
            with AgentProxy(socket_path, self.upstream, billing, record, self.redact, max_calls=max_turns) as proxy:
                result = sandbox.run(f"exec {command}", cwd=view, timeout_seconds=self.wall_seconds,
                                     env=self.adapter.env(session), binds=binds)
        finally:
            shutil.rmtree(sockets, ignore_errors=True)
            os.close(log)
        stdout = _tail(folder / "stdout.jsonl")
        stderr = _tail(folder / "stderr.log")
        if result.exit_code != 0 and not stderr.strip():
            # The relay's own complaint (the CLI could not start) is in the sandbox's output.
            stderr = result.output
        outcome = self.adapter.parse(stdout, stderr)
        if not outcome.approach:
            outcome.approach = approach_from(outcome.final_message)
        return SessionReport(outcome=outcome, calls=proxy.calls, refused=list(proxy.refused), folder=folder,
                             exit_code=result.exit_code, timed_out=result.timed_out)

    def _fresh_folder(self, iteration: int) -> Path:
        base = self.run_dir / "agent"
        base.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, 1000):
            # A step replayed after a kill gets a new folder: the old one is evidence, not state.
            folder = base / f"iteration-{iteration}" if attempt == 1 else base / f"iteration-{iteration}.{attempt}"
            with contextlib.suppress(FileExistsError):
                folder.mkdir(mode=0o700)
                return folder
        raise RuntimeError(f"no free session folder under {base}")


def _python() -> str:
    """An interpreter the sandbox shows: the system's, else the one running loopbot (its real path,
    never a virtualenv inside the repository, which the sandbox hides)."""
    system = shutil.which("python3", path="/usr/bin:/bin")
    return system or os.path.realpath(sys.executable)


def _free_port() -> int:
    # Inside bubblewrap the loopback is the sandbox's own, so any port is free; without it (sandbox
    # off) a port free on the host is taken.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _tail(path: Path) -> str:
    """The end of a file the agent wrote; "" for anything it may have put there instead of a
    regular file (a symlink to a host file, a FIFO that would block the read)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return ""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        with os.fdopen(fd, "rb") as handle:
            fd = -1
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - OUTPUT_BYTES))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    finally:
        if fd >= 0:
            os.close(fd)
