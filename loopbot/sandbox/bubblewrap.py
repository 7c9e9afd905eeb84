"""The bubblewrap sandbox: a minimal root (the system's read-only directories, the toolchains on
PATH, empty tmpfs where the host keeps its sockets, homes and state), the worktree read-write, git
objects read-only with sanitised configs, no network, fresh /proc, cleared environment, resource
limits, a wall timeout that kills everything, capped output.

Nothing is bound from the host unless it is on the allow-list: a read-only bind does not stop
`connect()` on a unix socket (docker.sock is root on a runner), so sockets must be absent, not
read-only. See docs/sandbox.md.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from loopbot.cancel import Cancellation
from loopbot.config import SandboxConfig
from loopbot.ports import Bind, CommandResult
from loopbot.sandbox.pids import PidsCgroup
from loopbot.sandbox.subprocess_runner import clean_env, stream_capped
from loopbot.workspace.git import git_configs

# The system, read-only. Symlinked ones (merged /usr) are recreated as the same symlinks.
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/nix/store")
# Empty and private: where services keep sockets and runtime state, and every home.
EMPTY_DIRS = ("/run", "/var", "/home", "/root")
# Credential stores inside /etc, hidden (files read as empty, directories as empty tmpfs).
HIDDEN_FILES = ("/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/sudoers",
                "/etc/security/opasswd", "/etc/gitconfig",  # commands run with GIT_CONFIG_NOSYSTEM anyway
                "/etc/krb5.keytab", "/etc/containers/auth.json")
HIDDEN_DIRS = ("/etc/ssh", "/etc/sudoers.d", "/etc/ssl/private", "/etc/wireguard", "/etc/ipsec.d",
               "/etc/NetworkManager/system-connections", "/etc/letsencrypt", "/etc/kubernetes", "/etc/rancher",
               "/etc/docker", "/etc/cups/ssl", "/etc/openvpn")
# Runtime folders whose contents are never a toolchain (sockets, other jobs' scratch).
_RUNTIME_DIRS = ("/tmp", "/var/tmp", "/run", "/var/run", "/dev/shm")
# Credential files that live inside toolchain folders (cargo keeps registry tokens there).
TOOLCHAIN_CREDENTIALS = ("credentials", "credentials.toml", ".credentials.json", "auth.json", ".netrc")
# Folders in a home that hold credentials: never shown, even when PATH points into them.
CREDENTIAL_DIRS = (".ssh", ".gnupg", ".aws", ".config", ".docker", ".kube", ".azure", ".gcloud", ".password-store")
SANDBOX_HOME = "/tmp/home"
# Only these sections of the repo's git config are visible: remotes may embed tokens, and
# http.extraheader (actions/checkout) always does.
_SAFE_CONFIG_SECTIONS = ("core", "extensions")
_BIN_DIRS = ("bin", "sbin", "shims")


class SandboxUnavailable(Exception):
    pass


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _home_roots(home: str | None) -> list[str]:
    roots = ["/root", *(str(p) for p in _children("/home"))]
    if home and home != "/" and home not in roots:
        roots.append(home)
    return roots


def _children(path: str) -> list[Path]:
    try:
        return [p for p in Path(path).iterdir() if p.is_dir()]
    except OSError:
        return []


def _venv_home(entry: str) -> str | None:
    """A virtualenv's bin on PATH: its base interpreter lives elsewhere (pyvenv.cfg says where)."""
    try:
        text = (Path(entry).parent / "pyvenv.cfg").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    found = re.search(r"^\s*home\s*=\s*(.+?)\s*$", text, re.MULTILINE)
    return found.group(1) if found else None


def toolchain_roots(path_variable: str, home: str | None = None, *, keep_out: tuple[str, ...] = ()) -> list[str]:
    """The folders the toolchains on PATH need, shown read-only: pyenv, nvm, rustup, a hosted
    tool cache, a virtualenv and its base interpreter.

    In a home that is the home's top folder (/root/.pyenv for /root/.pyenv/shims); elsewhere the
    folder above bin/ (/opt/hostedtoolcache/Python/3.12/x64). Never a credential folder, never the
    root or a folder holding the repository (`keep_out`): its siblings are not the sandbox's.
    """
    homes = _home_roots(home)
    roots: list[str] = []
    candidates: list[str] = []
    for entry in path_variable.split(":"):
        if not entry.startswith("/"):
            continue
        candidates += [os.path.normpath(entry), os.path.realpath(entry)]
        venv_home = _venv_home(entry)
        if venv_home:
            candidates.append(os.path.realpath(venv_home))
    for path in candidates:
        if any(_under(path, system) for system in SYSTEM_PATHS) or not os.path.isdir(path):
            continue
        owner = next((h for h in homes if _under(path, h) and path != h), None)
        if owner is None and any(_under(path, runtime) for runtime in _RUNTIME_DIRS):
            continue
        if owner is not None:
            first = Path(path).relative_to(owner).parts[0]
            if first in CREDENTIAL_DIRS or first.startswith(".git-credentials"):
                continue
            root = os.path.join(owner, first)
        elif os.path.basename(path) in _BIN_DIRS and len(Path(path).parts) > 3:
            root = os.path.dirname(path)
        else:
            root = path  # /opt/bin alone, not all of /opt
        if any(_under(out, root) for out in keep_out):
            continue
        if root not in roots and not any(_under(root, r) for r in roots):
            roots = [r for r in roots if not _under(r, root)] + [root]
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


def _sockets_in(directory: Path) -> list[Path]:
    """Unix sockets directly in a folder that is bound (git's fsmonitor daemon keeps one in .git)."""
    try:
        return [p for p in directory.iterdir() if stat.S_ISSOCK(p.lstat().st_mode)]
    except OSError:
        return []


@dataclass
class BubblewrapSandbox:
    """One sandbox per loop: it knows the worktree (read-write), the git common dir (read-only)
    and the state directory (never visible)."""

    worktree: Path
    git_common_dir: Path
    config: SandboxConfig
    output_cap_bytes: int = 64_000
    name: str = "bubblewrap"
    cancel: Cancellation | None = None
    state_dir: Path | None = None
    # Where toolchains are looked for: PATH and the interpreter running loopbot, unless given.
    toolchain_path: str | None = None
    # Where read-only shares may come from: the loop's own worktree (siblings inherit it).
    share_root: Path | None = None
    _siblings: dict[Path, BubblewrapSandbox] = field(default_factory=dict, init=False, repr=False)
    _read_only: list[Path] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        self.bwrap = shutil.which("bwrap")
        self.prlimit = shutil.which("prlimit")
        common = self.git_common_dir.resolve()
        # Read once: the sanitised text each run binds over every config (from memory, no files).
        self._configs: dict[str, str] = {}
        for path in git_configs(common):
            try:
                original = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                original = ""
            self._configs[str(path)] = sanitized_git_config(original)
        self._common_sockets = [str(p) for p in _sockets_in(common)]
        home = os.environ.get("HOME")
        self._home = os.path.realpath(home) if home else None
        keep_out = tuple(str(p) for p in (self.worktree.resolve(), common, common.parent))
        search = (self.toolchain_path if self.toolchain_path is not None
                  else f"{os.environ.get('PATH', '')}:{os.path.join(sys.prefix, 'bin')}")
        self._toolchains = toolchain_roots(search, self._home, keep_out=keep_out)
        self._exposed = [os.path.realpath(os.path.expanduser(p)) for p in self.config.expose
                         if os.path.exists(os.path.expanduser(p))]

    def _shareable(self, path: Path) -> bool:
        absolute = os.path.abspath(path)
        real = os.path.realpath(path)
        root = os.path.realpath(self.share_root or self.worktree)
        return real == absolute and _under(real, root) and real != root and os.path.lexists(real)

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
                                        cancel=self.cancel, state_dir=self.state_dir,
                                        toolchain_path=self.toolchain_path,
                                        share_root=self.share_root or self.worktree)
            for path in self._read_only:
                sibling.share_read_only(path)
            self._siblings[tree] = sibling
        return sibling

    # -- construction ----------------------------------------------------------------------
    def _root_args(self) -> list[str]:
        """The minimal root: system paths, private empties, hidden credentials, toolchains."""
        args: list[str] = []
        for path in SYSTEM_PATHS:
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                args += ["--ro-bind", path, path]
        args += ["--dev", "/dev", "--proc", "/proc"]
        for empty in EMPTY_DIRS:
            args += ["--tmpfs", empty]
        args += ["--dir", "/var/tmp", "--size", str(self.config.tmp_size_mb * 1024 * 1024), "--tmpfs", "/tmp",
                 "--dir", SANDBOX_HOME]
        if self._home and not any(_under(self._home, p) for p in (*EMPTY_DIRS, "/tmp")) and self._home != "/":
            args += ["--tmpfs", self._home]
        for hidden in HIDDEN_FILES:
            if os.path.isfile(hidden):
                args += ["--ro-bind", "/dev/null", hidden]
        for hidden in HIDDEN_DIRS:
            if os.path.isdir(hidden):
                args += ["--tmpfs", hidden]
        for root in [*self._toolchains, *self._exposed]:
            args += ["--ro-bind", root, root]
            for name in TOOLCHAIN_CREDENTIALS:
                if os.path.isfile(os.path.join(root, name)):
                    args += ["--ro-bind", "/dev/null", os.path.join(root, name)]
        return args

    def _bwrap_args(self, cwd: Path, network: bool, config_fds: Mapping[str, int],
                    binds: Sequence[Bind] = ()) -> list[str]:
        assert self.bwrap is not None
        worktree = str(self.worktree.resolve())
        common = str(self.git_common_dir.resolve())
        args = [self.bwrap, "--die-with-parent", "--new-session", "--unshare-all",
                *(["--share-net"] if network else []), "--cap-drop", "ALL", *self._root_args()]
        # Git objects read-only, every config replaced by its sanitised text, sockets gone, and
        # loopbot's state directory (by default inside it) an empty folder.
        args += ["--ro-bind", common, common]
        for path, fd in config_fds.items():
            args += ["--ro-bind-data", str(fd), path]
        for sock in self._common_sockets:
            args += ["--ro-bind", "/dev/null", sock]
        if self.state_dir is not None:
            state = str(self.state_dir.resolve())
            if _under(state, common) and state != common:
                args += ["--tmpfs", state]
        # Then the worktree read-write, its .git pointer read-only.
        args += ["--bind", worktree, worktree]
        if os.path.exists(os.path.join(worktree, ".git")):
            args += ["--ro-bind", os.path.join(worktree, ".git"), os.path.join(worktree, ".git")]
        # Last, so they win over the read-write worktree: the setup outputs, read-only everywhere.
        # Only real paths inside the loop's worktree: a setup output that is (or passes through) a
        # symlink would otherwise bind its target — /root/.ssh, a host socket — over the tmpfs.
        for shared in self._read_only:
            if self._shareable(shared):
                args += ["--ro-bind", str(shared), str(shared)]
        # This command's own: given on purpose by loopbot (an agent's session folder and socket).
        for bind in binds:
            real = str(bind.path.resolve())
            args += ["--bind" if bind.writable else "--ro-bind", real, str(bind.at or real)]
            if real == worktree and bind.at is not None:
                # The worktree shown a second time (an agent CLI refuses edits under any .git/
                # path, and loopbot's worktrees live in .git/loopbot): read-only as it is above.
                view = str(bind.at)
                for inner in [os.path.join(worktree, ".git"), *(str(p) for p in self._read_only
                                                               if self._shareable(p))]:
                    if os.path.lexists(inner):
                        args += ["--ro-bind", inner, view + inner[len(worktree):]]
        args += ["--clearenv", "--chdir", str(cwd.resolve())]
        return args

    @contextlib.contextmanager
    def config_fds(self) -> Iterator[dict[str, int]]:
        """One memfd per sanitised config, for --ro-bind-data: nothing is written to disk."""
        fds: dict[str, int] = {}
        try:
            for path, text in self._configs.items():
                fd = os.memfd_create("loopbot-gitconfig", 0)
                fds[path] = fd
                os.write(fd, text.encode())
                os.lseek(fd, 0, os.SEEK_SET)
            yield fds
        finally:
            for fd in fds.values():
                with contextlib.suppress(OSError):
                    os.close(fd)

    def command_argv(self, command: str, *, cwd: Path, timeout_seconds: float, env: Mapping[str, str] | None,
                     network: bool, config_fds: Mapping[str, int], binds: Sequence[Bind] = ()) -> list[str]:
        """The whole argv of one sandboxed command (without the cgroup wrapper)."""
        argv = [*self._limits(timeout_seconds), *self._bwrap_args(cwd, network, config_fds, binds)]
        for key, value in self._env(env).items():
            argv += ["--setenv", key, value]
        return [*argv, "--", "/bin/sh", "-c", command]

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
        binds: Sequence[Bind] = (),
    ) -> CommandResult:
        if self.bwrap is None:
            raise SandboxUnavailable("bwrap is not installed")
        started = time.monotonic()
        cgroup = PidsCgroup.open(self.config.max_processes)
        try:
            with self.config_fds() as fds:
                argv = self.command_argv(command, cwd=cwd, timeout_seconds=timeout_seconds, env=env,
                                         network=network, config_fds=fds, binds=binds)
                if cgroup is not None:
                    # Enter the cgroup first, then become bwrap: every descendant is counted.
                    argv = ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(cgroup.procs), *argv]
                process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                           stderr=subprocess.STDOUT, start_new_session=True,
                                           env={"PATH": os.defpath}, pass_fds=tuple(fds.values()))
            output, timed_out = stream_capped(process, timeout_seconds, self.output_cap_bytes, self.cancel,
                                              kill=cgroup.kill if cgroup is not None else None)
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
            probe_sandbox = BubblewrapSandbox(probe_dir, self.git_common_dir, self.config, self.output_cap_bytes,
                                              state_dir=self.state_dir, toolchain_path=self.toolchain_path)
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
        return f"bubblewrap (minimal read-only root, no network, no host sockets, private /tmp, hidden homes; {limits})"

    def close(self) -> None:
        """Nothing on disk to remove: configs are memfds, cgroups go with each command."""
        for sibling in self._siblings.values():
            sibling.close()
