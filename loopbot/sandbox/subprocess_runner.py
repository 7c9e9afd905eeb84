"""A plain-subprocess sandbox: cleared environment, wall timeout that kills the whole process
group, capped output. It does not isolate the filesystem or network; the bubblewrap sandbox does.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import cast

from loopbot.cancel import Cancellation
from loopbot.ports import CommandResult
from loopbot.sandbox.output import CappedOutput

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

    def __init__(self, output_cap_bytes: int = 64_000, cancel: Cancellation | None = None):
        self.output_cap_bytes = output_cap_bytes
        self.cancel = cancel

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
    ) -> CommandResult:
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix=f"loopbot-home-{os.getpid()}-") as home:
            process = subprocess.Popen(
                ["/bin/sh", "-c", command],
                cwd=cwd,
                env=clean_env(env, home),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so a timeout kills every child
            )
            output, timed_out = stream_capped(process, timeout_seconds, self.output_cap_bytes, self.cancel)
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


def stream_capped(process: subprocess.Popen[bytes], timeout_seconds: float, cap_bytes: int,
                  cancel: Cancellation | None = None) -> tuple[CappedOutput, bool]:
    """Read a started process's output under the cap; kill its whole group at the timeout, or at
    once when the run is cancelled.

    The group is killed after a clean exit too: background children must not outlive the
    command or hold the output pipe open.
    """
    output = CappedOutput(cap_bytes)
    assert process.stdout is not None
    # Popen with bufsize=-1 gives a BufferedReader; read1 returns what is there, not a full block.
    stream = cast(io.BufferedReader, process.stdout)

    def pump() -> None:
        for chunk in iter(lambda: stream.read1(65536), b""):
            output.feed(chunk)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    timed_out = False
    try:
        if cancel is None:
            process.wait(timeout=timeout_seconds)
        else:
            with cancel.on_cancel(lambda: _kill_group(process.pid)):
                process.wait(timeout=timeout_seconds)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        _kill_group(process.pid)
        process.wait()
    reader.join(timeout=5)
    stream.close()
    return output, timed_out


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
