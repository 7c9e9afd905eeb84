"""A plain-subprocess sandbox: cleared environment, wall timeout that kills the whole process
group, capped output. It does not isolate the filesystem or network; the bubblewrap sandbox does.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import selectors
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from loopbot.cancel import Cancellation
from loopbot.ports import Bind, CommandResult
from loopbot.sandbox.output import CappedOutput
from loopbot.sandbox.pids import PidsCgroup

# Output still arriving after a command exited (from children it could not take with it) is read
# this long, then the pipe is closed: the run never waits on a process it cannot see.
DRAIN_SECONDS = 2.0
# Without a pidfd the exit of a quiet command is noticed this often.
POLL_SECONDS = 0.05
MARK_VARIABLE = "LOOPBOT_COMMAND_ID"

# The only variables a command inherits from loopbot's own environment. Secrets never pass.
ENV_ALLOW = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM")


def clean_env(extra: Mapping[str, str] | None, home: str, *, tmpdir: str | None = None,
              allow: tuple[str, ...] = ()) -> dict[str, str]:
    """The whole environment a command gets: an allow-list of loopbot's own, never a secret."""
    env = {key: os.environ[key] for key in (*ENV_ALLOW, *allow) if key in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update(
        {
            "HOME": home,
            "TMPDIR": tmpdir or home,
            "GIT_CONFIG_NOSYSTEM": "1",
            "CI": "true",
            "PYTHONDONTWRITEBYTECODE": "1",  # no __pycache__ in the worktree snapshots
            "PYTHONUNBUFFERED": "1",
            "GIT_TERMINAL_PROMPT": "0",
        }
    )
    if extra:
        env.update(extra)
    return env


class SubprocessSandbox:
    name = "subprocess"

    def __init__(self, output_cap_bytes: int = 64_000, cancel: Cancellation | None = None, max_processes: int = 512):
        self.output_cap_bytes = output_cap_bytes
        self.cancel = cancel
        self.max_processes = max_processes

    def share_read_only(self, path: Path) -> None:
        pass  # the whole filesystem is reachable already

    def clear_read_only(self) -> None:
        pass

    def for_tree(self, tree: Path) -> SubprocessSandbox:
        return self  # nothing is bound: any tree is as reachable as the worktree

    def run(
        self,
        command: str,
        *,
        cwd: Path,
        timeout_seconds: float,
        env: Mapping[str, str] | None = None,
        network: bool = False,  # never isolated here
        binds: Sequence[Bind] = (),  # every path is reachable already
    ) -> CommandResult:
        started = time.monotonic()
        # Descendants that leave the process group (setsid, daemons) are found by this mark, or
        # by the cgroup when loopbot runs as root: none outlives the command.
        mark = f"{MARK_VARIABLE}={secrets.token_hex(8)}"
        cgroup = PidsCgroup.open(self.max_processes)
        with tempfile.TemporaryDirectory(prefix=f"loopbot-home-{os.getpid()}-") as home:
            try:
                argv = ["/bin/sh", "-c", command]
                if cgroup is not None:
                    argv = ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(cgroup.procs), *argv]
                process = subprocess.Popen(
                    argv,
                    cwd=cwd,
                    env={**clean_env(env, home), MARK_VARIABLE: mark.split("=", 1)[1]},
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own session and group, so a timeout kills every child
                )

                # The cgroup holds every descendant; without one, the mark finds them in /proc.
                kill_rest = cgroup.kill if cgroup is not None else functools.partial(kill_marked, mark.encode())
                output, timed_out = stream_capped(process, timeout_seconds, self.output_cap_bytes, self.cancel,
                                                  kill=kill_rest)
            finally:
                if cgroup is not None:
                    cgroup.close()
        text = output.text()
        if timed_out:
            text += f"\n[loopbot: command timed out after {timeout_seconds:g}s and was killed]"
        return CommandResult(
            exit_code=124 if timed_out else process.returncode,
            output=text,
            duration_seconds=time.monotonic() - started,
            timed_out=timed_out,
            truncated_bytes=output.dropped,
        )


def kill_marked(mark: bytes) -> None:
    """SIGKILL every process of ours whose environment carries the mark (those a setsid took out
    of the command's process group)."""
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as environ:
                found = mark in environ.read().split(b"\0")
        except OSError:
            continue
        if found:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)


def stream_capped(process: subprocess.Popen[bytes], timeout_seconds: float, cap_bytes: int,
                  cancel: Cancellation | None = None, kill: Callable[[], None] | None = None
                  ) -> tuple[CappedOutput, bool]:
    """Read a started process's output under the cap, in this thread, from the raw pipe; kill its
    whole group (and `kill` the rest: a cgroup, marked escapees) at the timeout, at once when the
    run is cancelled, and after it exits: background children must not outlive the command.

    Nothing here blocks on a grandchild: the pipe is read non-blocking with a deadline, and output
    still arriving after the command exited is read for at most DRAIN_SECONDS.
    """
    output = CappedOutput(cap_bytes)
    assert process.stdout is not None
    fd = process.stdout.fileno()
    os.set_blocking(fd, False)

    def kill_all() -> None:
        _kill_group(process.pid)
        if kill is not None:
            kill()

    deadline = time.monotonic() + timeout_seconds
    exited_at: float | None = None
    eof = False
    timed_out = False
    pidfd = _pidfd(process.pid)
    guard = cancel.on_cancel(kill_all) if cancel is not None else contextlib.nullcontext()
    try:
        with selectors.DefaultSelector() as selector, guard:
            selector.register(fd, selectors.EVENT_READ)
            if pidfd is not None:
                selector.register(pidfd, selectors.EVENT_READ)
            while not (eof and exited_at is not None):
                now = time.monotonic()
                if exited_at is None and process.poll() is not None:
                    exited_at = now
                    kill_all()
                    if pidfd is not None:
                        selector.unregister(pidfd)
                    continue  # it may be all done already (the output ended first)
                limit = deadline if exited_at is None else min(deadline, exited_at + DRAIN_SECONDS)
                if now >= limit:
                    timed_out = exited_at is None
                    break
                # With a pidfd the exit wakes the select; without one, look again every POLL_SECONDS.
                wait = limit - now if pidfd is not None else min(limit - now, POLL_SECONDS)
                for key, _ in selector.select(timeout=wait):
                    if key.fd != fd:
                        continue
                    try:
                        chunk = os.read(fd, 65536)
                    except BlockingIOError:
                        continue
                    if chunk:
                        output.feed(chunk)
                    else:
                        eof = True
                        selector.unregister(fd)
    finally:
        kill_all()
        process.wait()
        process.stdout.close()
        if pidfd is not None:
            os.close(pidfd)
    return output, timed_out


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
