"""The bubblewrap sandbox: the worktree read-write, everything else read-only, .git read-only, no
network, fresh /proc, private /tmp, homes and credentials hidden, cleared environment, resource
limits, a wall timeout that kills everything, capped output.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from loopbot.cancel import Cancellation
from loopbot.config import SandboxConfig
from loopbot.ports import CommandResult
from loopbot.sandbox.pids import PidsCgroup
from loopbot.sandbox.subprocess_runner import clean_env, stream_capped

# Paths hidden inside the sandbox: homes (credentials, tokens, ssh keys) and host secret stores.
HIDDEN_DIRS = ("/root", "/home", "/run/secrets", "/var/run/secrets", "/etc/ssh", "/var/lib/docker", "/run/user")
HIDDEN_FILES = ("/etc/shadow", "/etc/gshadow", "/etc/sudoers")
# Credential files that live inside toolchain folders (cargo keeps registry tokens there).
TOOLCHAIN_CREDENTIALS = ("credentials", "credentials.toml", ".credentials.json", "auth.json", ".netrc")
SANDBOX_HOME = "/tmp/home"
# Only these sections of the repo's git config are visible: remotes may embed tokens, and
# http.extraheader (actions/checkout) always does.
_SAFE_CONFIG_SECTIONS = ("core", "extensions")


class SandboxUnavailable(Exception):
    pass


def toolchain_roots(path_variable: str) -> list[str]:
    """Toolchains on PATH that live in a hidden home (pyenv, rustup, nvm…): shown again, read-only.

    For /root/.pyenv/shims that is /root/.pyenv; for /home/u/.cargo/bin, /home/u/.cargo.
    """
    roots: list[str] = []
    for entry in path_variable.split(":"):
        parts = Path(entry).parts
        if len(parts) >= 3 and parts[1] == "root":
            root = os.path.join(*parts[:3])
        elif len(parts) >= 4 and parts[1] == "home":
            root = os.path.join(*parts[:4])
        else:
            continue
        if root not in roots and os.path.isdir(root) and not Path(root).name.startswith((".ssh", ".gnupg", ".aws")):
            roots.append(root)
    return roots


def sanitized_git_config(text: str) -> str:
    keep: list[str] = []
    keeping = False
    for line in text.splitlines():
        header = re.match(r"\s*\[\s*([A-Za-z0-9.-]+)", line)
        if header:
            keeping = header.group(1).lower() in _SAFE_CONFIG_SECTIONS
        if keeping:
            keep.append(line)
    return "\n".join(keep) + "\n"


@dataclass
class BubblewrapSandbox:
    """One sandbox per loop: it knows the worktree (read-write) and the git common dir (read-only)."""

    worktree: Path
    git_common_dir: Path
    config: SandboxConfig
    output_cap_bytes: int = 64_000
    name: str = "bubblewrap"
    cancel: Cancellation | None = None
    _siblings: dict[Path, BubblewrapSandbox] = field(default_factory=dict, init=False, repr=False)
    _read_only: list[Path] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        self.bwrap = shutil.which("bwrap")
        self.prlimit = shutil.which("prlimit")
        self._scratch = Path(tempfile.mkdtemp(prefix=f"loopbot-sandbox-{os.getpid()}-"))
        config_path = self.git_common_dir / "config"
        try:
            original = config_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            original = ""
        self._git_config = self._scratch / "gitconfig"
        self._git_config.write_text(sanitized_git_config(original))
        self._empty = self._scratch / "empty"
        self._empty.write_text("")

    def share_read_only(self, path: Path) -> None:
        if path not in self._read_only:
            self._read_only.append(path)
        for sibling in self._siblings.values():
            sibling.share_read_only(path)

    def clear_read_only(self) -> None:
        self._read_only.clear()
        for sibling in self._siblings.values():
            sibling.clear_read_only()

    def for_tree(self, tree: Path) -> BubblewrapSandbox:
        """A sibling sandbox writing to `tree` instead of the worktree (made once, reused)."""
        if tree.resolve() == self.worktree.resolve():
            return self
        sibling = self._siblings.get(tree)
        if sibling is None:
            sibling = BubblewrapSandbox(tree, self.git_common_dir, self.config, self.output_cap_bytes,
                                        cancel=self.cancel)
            for path in self._read_only:
                sibling.share_read_only(path)
            self._siblings[tree] = sibling
        return sibling

    # -- construction ----------------------------------------------------------------------
    def _bwrap_args(self, cwd: Path, network: bool = False) -> list[str]:
        assert self.bwrap is not None
        worktree = str(self.worktree.resolve())
        common = str(self.git_common_dir.resolve())
        args = [
            self.bwrap, "--die-with-parent", "--new-session", "--unshare-all", *(["--share-net"] if network else []),
            "--cap-drop", "ALL",
            "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
            "--size", str(self.config.tmp_size_mb * 1024 * 1024), "--tmpfs", "/tmp",
            "--dir", SANDBOX_HOME,
        ]
        for hidden in HIDDEN_DIRS:
            if os.path.isdir(hidden):
                args += ["--tmpfs", hidden]
        for hidden in HIDDEN_FILES:
            if os.path.exists(hidden):
                args += ["--ro-bind", str(self._empty), hidden]
        exposed = [os.path.expanduser(p) for p in self.config.expose if os.path.exists(os.path.expanduser(p))]
        for root in [*toolchain_roots(os.environ.get("PATH", "")), *exposed]:
            args += ["--ro-bind", root, root]
            for name in TOOLCHAIN_CREDENTIALS:
                if os.path.isfile(os.path.join(root, name)):
                    args += ["--ro-bind", str(self._empty), os.path.join(root, name)]
        # Brought back after the hiding above, in this order: git objects read-only, with a config
        # that holds no credentials; then the worktree read-write, its .git pointer read-only.
        args += ["--ro-bind", common, common, "--ro-bind", str(self._git_config), os.path.join(common, "config")]
        args += ["--bind", worktree, worktree]
        if os.path.exists(os.path.join(worktree, ".git")):
            args += ["--ro-bind", os.path.join(worktree, ".git"), os.path.join(worktree, ".git")]
        # Last, so they win over the read-write worktree: the setup outputs, read-only everywhere.
        for shared in self._read_only:
            if shared.resolve() != self.worktree.resolve() and shared.exists():
                args += ["--ro-bind", str(shared.resolve()), str(shared.resolve())]
        args += ["--clearenv", "--chdir", str(cwd.resolve())]
        return args

    def _env(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        return clean_env(extra, SANDBOX_HOME, tmpdir="/tmp", allow=tuple(self.config.env_allow))

    def _limits(self, timeout_seconds: float) -> list[str]:
        if self.prlimit is None:
            return []
        cpu = max(1, min(self.config.cpu_seconds, int(timeout_seconds) + 5))
        return [self.prlimit, f"--as={self.config.memory_mb * 1024 * 1024}",
                f"--nproc={self.config.max_processes}", f"--fsize={self.config.max_file_size_mb * 1024 * 1024}",
                f"--cpu={cpu}", "--core=0", "--"]

    # -- running ---------------------------------------------------------------------------
    def run(
        self,
        command: str,
        *,
        cwd: Path,
        timeout_seconds: float,
        env: Mapping[str, str] | None = None,
        network: bool = False,
    ) -> CommandResult:
        if self.bwrap is None:
            raise SandboxUnavailable("bwrap is not installed")
        argv = [*self._limits(timeout_seconds), *self._bwrap_args(cwd, network)]
        for key, value in self._env(env).items():
            argv += ["--setenv", key, value]
        argv += ["--", "/bin/sh", "-c", command]
        cgroup = PidsCgroup.open(self.config.max_processes)
        if cgroup is not None:
            # Enter the cgroup first, then become bwrap: every descendant is counted.
            argv = ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(cgroup.procs), *argv]
        started = time.monotonic()
        try:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, start_new_session=True, env={"PATH": os.defpath})
            output, timed_out = stream_capped(process, timeout_seconds, self.output_cap_bytes, self.cancel)
        finally:
            if cgroup is not None:
                cgroup.close()
        text = output.text()
        if timed_out:
            text += f"\n[loopbot: command timed out after {timeout_seconds:g}s and was killed]"
        return CommandResult(exit_code=124 if timed_out else process.returncode, output=text,
                             duration_seconds=time.monotonic() - started, timed_out=timed_out,
                             truncated_bytes=output.dropped)

    def self_test(self, probe_dir: Path | None = None) -> str:
        """Prove the sandbox can be built and isolates; returns a one-line description.

        `probe_dir` stands in for a worktree not yet made: the check runs before any side effect.
        """
        if self.bwrap is None:
            raise SandboxUnavailable("bubblewrap (bwrap) is not installed")
        # Read-only host, writable worktree, and a network namespace with nothing but loopback.
        probe = ("test ! -w /usr && test -w . && test \"$(grep -c : /proc/net/dev)\" = 1 "
                 "&& echo sandbox-ok")
        if probe_dir is not None:
            probe_sandbox = BubblewrapSandbox(probe_dir, self.git_common_dir, self.config, self.output_cap_bytes)
            try:
                result = probe_sandbox.run(probe, cwd=probe_dir, timeout_seconds=20)
            finally:
                probe_sandbox.close()
        else:
            result = self.run(probe, cwd=self.worktree, timeout_seconds=20)
        if "sandbox-ok" not in result.output:
            raise SandboxUnavailable(f"bubblewrap could not build the sandbox: {result.output.strip()[-500:]}")
        limits = "rlimits" if self.prlimit else "no rlimits (prlimit missing)"
        if os.geteuid() == 0:
            cgroup = PidsCgroup.open(self.config.max_processes)
            if cgroup is not None:
                cgroup.close()
                limits += ", pids cgroup"
            else:
                limits += ", no process limit (root without a writable pids cgroup)"
        return f"bubblewrap (no network, read-only host, private /tmp, hidden homes; {limits})"

    def close(self) -> None:
        for sibling in self._siblings.values():
            sibling.close()
        shutil.rmtree(self._scratch, ignore_errors=True)
