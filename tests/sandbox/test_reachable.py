"""What the host still exposes to a sandboxed command: sockets, homes outside /root and /home,
submodule configs, loopbot's state, credential files in /etc. Each is checked by behaviour: a real
server listens, a real file holds a token, and the sandbox must not reach either.
"""

from __future__ import annotations

import grp
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopbot.config import SandboxConfig
from loopbot.sandbox.bubblewrap import BubblewrapSandbox, toolchain_roots
from loopbot.workspace.git import GitWorkspace, common_dir

TOKEN = "ghp_" + "R" * 20 + "reachable" + "9" * 7
CONFIG = SandboxConfig(max_processes=64, tmp_size_mb=16)
ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="places sockets in /run and /var/run, as a runner's services do")


class Listener:
    """A unix socket server on the host that records every connection it accepts."""

    def __init__(self, path: Path, mode: int = 0o666, group: int | None = None):
        self.path = path
        self.accepted = 0
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        if group is not None:
            os.chown(path, 0, group)
        os.chmod(path, mode)
        self.server.listen(8)
        self.server.settimeout(0.2)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.sendall(b"HTTP/1.0 200 OK\r\n\r\nroot on the runner\n")
            conn.close()

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=2)
        self.server.close()
        self.path.unlink(missing_ok=True)


def _connect_script(paths: list[Path]) -> str:
    lines = ["import socket"]
    for path in paths:
        lines.append(
            f"try:\n s=socket.socket(socket.AF_UNIX); s.connect({str(path)!r}); print('CONNECTED', s.recv(100))\n"
            f"except OSError as e: print('refused', {str(path)!r}, e.strerror)")
    return "\n".join(lines)


@pytest.fixture
def outside_dir() -> Iterator[Path]:
    """A folder outside /tmp, /root and /home (container jobs put HOME at /github/home)."""
    base = Path("/srv") if ROOT else Path(tempfile.gettempdir())
    path = Path(tempfile.mkdtemp(prefix="loopbot-reach-", dir=base))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def repo_box(kv_repo, monkeypatch, outside_dir):
    repo, _ = kv_repo
    state = common_dir(repo) / "loopbot"
    (state / "loopbot.db").parent.mkdir(parents=True, exist_ok=True)
    (state / "loopbot.db").write_text(f"state holding {TOKEN}")
    ws = GitWorkspace.open(repo, state / "worktrees" / "t", "loop/t-x", "HEAD")
    home = outside_dir / "home"
    (home / ".config" / "gh").mkdir(parents=True)
    (home / ".config" / "gh" / "hosts.yml").write_text(f"github.com:\n  oauth_token: {TOKEN}\n")
    (home / ".git-credentials").write_text(f"https://x-access-token:{TOKEN}@github.com\n")
    # An nvm-style toolchain in that home, on PATH: it must keep working.
    tool_bin = home / ".nvm" / "versions" / "node" / "v22.0.0" / "bin"
    tool_bin.mkdir(parents=True)
    (tool_bin / "fake-node").write_text("#!/bin/sh\necho node-from-home-ok\n")
    (tool_bin / "fake-node").chmod(0o755)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PATH", f"{tool_bin}:{os.environ['PATH']}")
    box = BubblewrapSandbox(ws.path, common_dir(repo), CONFIG, state_dir=state)
    yield box, repo, home
    box.close()


def _run(box: BubblewrapSandbox, command: str) -> str:
    return box.run(command, cwd=box.worktree, timeout_seconds=20).output


@pytest.fixture
def sockets(outside_dir, kv_repo) -> Iterator[list[Listener]]:
    repo, _ = kv_repo
    places = [repo.parent / "service.sock", outside_dir / "home-service.sock"]
    if ROOT:
        places += [Path("/run") / f"loopbot-test-{os.getpid()}.sock", Path("/var/run") / f"loopbot-v-{os.getpid()}.sock",
                   Path("/var/tmp") / f"loopbot-t-{os.getpid()}.sock"]
    (outside_dir / "home").mkdir(exist_ok=True)
    listeners = [Listener(p) for p in places]
    yield listeners
    for listener in listeners:
        listener.close()


def test_no_host_unix_socket_is_reachable(repo_box, sockets):
    box, _, _ = repo_box
    seen = _run(box, f"python3 - <<'EOF'\n{_connect_script([s.path for s in sockets])}\nEOF")
    assert seen.count("refused") == len(sockets), seen
    assert "CONNECTED" not in seen and all(s.accepted == 0 for s in sockets)


@needs_root
def test_no_socket_is_reachable_as_a_plain_user_in_the_sockets_group(outside_dir):
    """The runner user is in the docker group: the socket's mode lets it in, the sandbox must not."""
    group = grp.getgrnam("nogroup").gr_gid if _has_group("nogroup") else 65534
    worktree = outside_dir / "wt"
    (worktree / ".git").mkdir(parents=True)
    run_sock = Path("/run") / f"loopbot-group-{os.getpid()}.sock"
    listeners = [Listener(run_sock, mode=0o660, group=group), Listener(outside_dir / "g.sock", mode=0o660, group=group)]
    box = BubblewrapSandbox(worktree, worktree / ".git", CONFIG, toolchain_path="/usr/bin:/bin")
    try:
        script = _connect_script([lst.path for lst in listeners])
        # Outside the sandbox the plain user can connect: the test would catch a group that does not.
        direct = subprocess.run(["setpriv", "--reuid=65534", f"--regid={group}", f"--groups={group}",
                                 "/usr/bin/python3", "-c", script], capture_output=True, text=True, timeout=20)
        assert direct.stdout.count("CONNECTED") == 2, direct.stdout + direct.stderr
        with box.config_fds() as fds:
            argv = box.command_argv("/usr/bin/python3 -c \"$LOOPBOT_PROBE\"", cwd=worktree, timeout_seconds=20,
                                    env={"LOOPBOT_PROBE": script}, network=False, config_fds=fds)
            inside = subprocess.run(["setpriv", "--reuid=65534", f"--regid={group}", f"--groups={group}", *argv],
                                    capture_output=True, text=True, timeout=30, pass_fds=tuple(fds.values()))
        assert inside.stdout.count("refused") == 2 and "CONNECTED" not in inside.stdout, inside.stdout + inside.stderr
        assert sum(lst.accepted for lst in listeners) == 2  # only the direct connections
    finally:
        for listener in listeners:
            listener.close()


def _has_group(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def test_a_home_outside_root_and_home_is_hidden_but_its_toolchain_runs(repo_box):
    box, _, home = repo_box
    seen = _run(box, f"fake-node; cat {home}/.git-credentials {home}/.config/gh/hosts.yml ~/.git-credentials; "
                     f"echo LISTING; ls -a {home}")
    assert "node-from-home-ok" in seen
    assert TOKEN not in seen and "No such file" in seen
    assert seen.split("LISTING")[1].split() == [".", "..", ".nvm"]


def test_submodule_and_worktree_configs_are_sanitised(repo_box):
    box, repo, _ = repo_box
    module = common_dir(repo) / "modules" / "vendor" / "lib"
    module.mkdir(parents=True)
    header = f'[core]\n\tbare = false\n[http "https://github.com/"]\n\textraheader = AUTHORIZATION: bearer {TOKEN}\n'
    (module / "config").write_text(header)
    (common_dir(repo) / "config.worktree").write_text(header)
    fresh = BubblewrapSandbox(box.worktree, common_dir(repo), CONFIG, state_dir=box.state_dir)
    seen = _run(fresh, f"cat {module}/config {common_dir(repo)}/config.worktree; "
                       f"grep -r extraheader {common_dir(repo)} ; echo searched")
    assert "bare = false" in seen and "searched" in seen
    assert TOKEN not in seen and "extraheader" not in seen


def test_the_state_directory_is_not_visible(repo_box):
    box, repo, _ = repo_box
    state = common_dir(repo) / "loopbot"
    seen = _run(box, f"ls -a {state}; cat {state}/loopbot.db; git status --short | head -3; echo listed")
    assert "listed" in seen and "loopbot.db" not in seen.replace(f"{state}/loopbot.db: No such file", "")
    assert TOKEN not in seen and "No such file" in seen


def test_only_the_allow_list_of_the_host_is_there(repo_box):
    box, repo, _ = repo_box
    seen = _run(box, f"ls /; ls {repo.parent}; echo; cat /etc/shadow | wc -c; ls -A /etc/ssh | wc -l; "
                     "ls -A /run | wc -l; ls -A /var; echo end")
    top = set(seen.split("\n\n")[0].split())
    assert {"usr", "etc", "tmp", "proc", "dev"} <= top
    assert not top & {"opt", "mnt", "boot", "media", "old_root", "lost+found"}
    assert "origin.git" not in seen  # the repository's siblings are not shown
    lines = seen.strip().splitlines()
    assert lines[-5:] == ["0", "0", "0", "tmp", "end"]


def test_git_still_works_inside(repo_box):
    box, _, _ = repo_box
    seen = _run(box, "echo x > new.txt; git status --short; git log --oneline | wc -l")
    assert "?? new.txt" in seen


def test_toolchains_are_found_wherever_they_live(tmp_path, outside_dir):
    home = tmp_path / "home"
    for sub in (".pyenv/shims", ".nvm/versions/node/v20/bin", ".ssh/bin", ".config/tool/bin"):
        (home / sub).mkdir(parents=True)
    cache = outside_dir / "opt" / "hostedtoolcache" / "Python" / "3.12" / "x64" / "bin"
    cache.mkdir(parents=True)
    path = f"{home}/.pyenv/shims:{home}/.nvm/versions/node/v20/bin:{home}/.ssh/bin:{home}/.config/tool/bin:{cache}:/usr/bin"
    roots = toolchain_roots(path, str(home), keep_out=(str(tmp_path / "repo"),))
    assert roots == [f"{home}/.pyenv", f"{home}/.nvm", str(cache.parent)]
    # A runtime folder is never a toolchain (another job's scratch, sockets).
    (tmp_path / "scratch" / "bin").mkdir(parents=True)
    assert toolchain_roots(f"{tmp_path}/scratch/bin", str(home)) == []
    # A PATH entry above the repository would show its siblings: left out.
    (outside_dir / "bin").mkdir()
    assert toolchain_roots(f"{outside_dir}/bin", str(home), keep_out=(str(outside_dir / "repo"),)) == []


def test_a_setup_output_that_is_a_symlink_shares_nothing_of_the_host(repo_box, outside_dir):
    """Setup runs the base's own command: an ignored symlink it leaves must not bind its target."""
    box, _, _ = repo_box
    secret_dir = outside_dir / "keys"
    secret_dir.mkdir()
    (secret_dir / "id_test").write_text(TOKEN)
    (box.worktree / "node_modules").symlink_to(secret_dir)
    real = box.worktree / "build"
    real.mkdir()
    (real / "out.txt").write_text("built\n")
    box.share_read_only(box.worktree / "node_modules")
    box.share_read_only(box.worktree / "build")
    seen = _run(box, f"cat {secret_dir}/id_test node_modules/id_test; cat build/out.txt; touch build/x 2>&1")
    assert TOKEN not in seen and "built" in seen and "Read-only" in seen
    box.clear_read_only()
