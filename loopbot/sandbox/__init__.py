"""Sandboxes that run the maker's and evaluators' commands."""

from __future__ import annotations

from pathlib import Path

from loopbot.config import Config
from loopbot.errors import InputError, Problem
from loopbot.ports import Sandbox
from loopbot.sandbox.bubblewrap import BubblewrapSandbox, SandboxUnavailable
from loopbot.sandbox.subprocess_runner import SubprocessSandbox

OFF_NOTE = ("OFF: commands ran WITHOUT isolation (`sandbox: off` in config) — cleared environment and "
            "timeouts only; the filesystem and network were reachable")

HOW_TO_ENABLE = (
    "install bubblewrap (apt-get install bubblewrap) and allow unprivileged user namespaces "
    "(Ubuntu 24.04: sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0); "
    "or set `sandbox: off` in .github/loopbot.yml to run agent commands unsandboxed (not recommended)"
)


def build_sandbox(config: Config, worktree: Path, git_common_dir: Path, *, allow_fallback: bool = False
                  ) -> tuple[Sandbox, str]:
    """The configured sandbox after its self-test, and the line every report shows about it.

    When bubblewrap cannot be built, agent commands are refused (an InputError) unless the config
    says `sandbox: off`; `allow_fallback` is for the bundled demo, whose commands are our own.
    """
    cap = config.execution.output_cap_bytes
    if config.sandbox.mode == "off":
        return SubprocessSandbox(cap), OFF_NOTE
    sandbox = BubblewrapSandbox(worktree, git_common_dir, config.sandbox, output_cap_bytes=cap)
    try:
        return sandbox, sandbox.self_test()
    except SandboxUnavailable as exc:
        sandbox.close()
        if allow_fallback:
            return SubprocessSandbox(cap), f"{OFF_NOTE} (demo fallback: {exc})"
        raise InputError([Problem("sandbox", None, None, "", f"{exc}. Agent commands are refused: {HOW_TO_ENABLE}")]
                         ) from None
