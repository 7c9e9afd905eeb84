"""Sandboxes that run the maker's and evaluators' commands."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from loopbot.cancel import Cancellation
from loopbot.config import Config
from loopbot.errors import InputError, Problem
from loopbot.ports import Sandbox
from loopbot.sandbox import debris
from loopbot.sandbox.bubblewrap import BubblewrapSandbox, SandboxUnavailable
from loopbot.sandbox.subprocess_runner import SubprocessSandbox

OFF_NOTE = ("OFF: commands ran WITHOUT isolation (`sandbox: off` in config) — cleared environment and "
            "timeouts only; the filesystem and network were reachable")

HOW_TO_ENABLE = (
    "install bubblewrap (sudo apt-get install bubblewrap) and allow unprivileged user namespaces "
    "(Ubuntu 24.04: sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0); "
    "or set `sandbox: off` in .github/loopbot.yml to run agent commands unsandboxed (not recommended)"
)


def build_sandbox(config: Config, worktree: Path, git_common_dir: Path, *, allow_fallback: bool = False,
                  cancel: Cancellation | None = None, state_dir: Path | None = None) -> tuple[Sandbox, str]:
    """The configured sandbox after its self-test, and the line every report shows about it.

    When bubblewrap cannot be built, agent commands are refused (an InputError) unless the config
    says `sandbox: off`; `allow_fallback` is for the bundled demo, whose commands are our own.
    The self-test runs in a scratch directory when the worktree does not exist yet, so a start
    that fails here has made nothing. What killed runs left on the host (scratch directories,
    cgroups) is swept first. `state_dir` is never visible inside.
    """
    debris.sweep()
    cap = config.execution.output_cap_bytes
    plain = SubprocessSandbox(cap, cancel=cancel, max_processes=config.sandbox.max_processes)
    if config.sandbox.mode == "off":
        return plain, OFF_NOTE
    sandbox = BubblewrapSandbox(worktree, git_common_dir, config.sandbox, output_cap_bytes=cap, cancel=cancel,
                                state_dir=state_dir)
    try:
        if worktree.is_dir():
            return sandbox, sandbox.self_test()
        with tempfile.TemporaryDirectory(prefix=f"loopbot-probe-{os.getpid()}-") as probe:
            return sandbox, sandbox.self_test(Path(probe))
    except SandboxUnavailable as exc:
        sandbox.close()
        if allow_fallback:
            return plain, f"{OFF_NOTE} (demo fallback: {exc})"
        raise InputError([Problem("sandbox", None, None, "", f"{exc}. Agent commands are refused: {HOW_TO_ENABLE}")]
                         ) from None
