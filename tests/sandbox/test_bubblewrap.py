from pathlib import Path

import pytest

from loopbot.config import Config, SandboxConfig
from loopbot.errors import InputError
from loopbot.sandbox import OFF_NOTE, build_sandbox
from loopbot.sandbox.bubblewrap import BubblewrapSandbox, sanitized_git_config, toolchain_roots
from loopbot.workspace.git import GitWorkspace, common_dir


@pytest.fixture
def box(kv_repo, tmp_path):
    repo, _ = kv_repo
    ws = GitWorkspace.open(repo, repo / ".git" / "loopbot" / "worktrees" / "t", "loop/t-x", "HEAD")
    sandbox = BubblewrapSandbox(ws.path, common_dir(repo), SandboxConfig(max_processes=64, tmp_size_mb=16))
    yield sandbox
    sandbox.close()


def test_self_test_describes_the_isolation(box):
    assert "no network" in box.self_test()


def test_worktree_is_writable_and_git_read_only(box):
    result = box.run("echo hi > new.txt && cat new.txt; git status --short; touch .git; "
                     "echo x > \"$(git rev-parse --git-common-dir)/HEAD\"", cwd=box.worktree, timeout_seconds=10)
    assert "hi" in result.output and "?? new.txt" in result.output
    assert result.output.count("Read-only file system") >= 1
    assert (box.worktree / "new.txt").read_text() == "hi\n"


def test_private_tmp_and_fresh_proc(box, tmp_path):
    (tmp_path / "host-file").write_text("host")
    inside = Path("/tmp") / f"loopbot-private-{tmp_path.name}"  # a name nothing else on the host uses
    result = box.run(f"cat {tmp_path}/host-file; echo t > {inside} && cat {inside}; ls /proc | grep -c '^[0-9]'",
                     cwd=box.worktree, timeout_seconds=10)
    lines = result.output.split()
    assert "host" not in lines and "t" in lines
    assert int(lines[-1]) < 10  # only the sandbox's own processes are visible
    assert not inside.exists()  # the sandbox's /tmp is its own


def test_git_config_is_stripped_of_credentials():
    text = ("[core]\n\tbare = false\n[remote \"origin\"]\n\turl = https://x:tok@github.com/a/b\n"
            "[http \"https://github.com/\"]\n\textraheader = AUTHORIZATION: basic dG9r\n[extensions]\n\tworktreeConfig = true\n")
    clean = sanitized_git_config(text)
    assert "bare = false" in clean and "worktreeConfig" in clean
    assert "tok@" not in clean and "extraheader" not in clean


def test_toolchains_in_homes_are_found(tmp_path, monkeypatch):
    assert toolchain_roots("/usr/bin:/bin") == []
    roots = toolchain_roots("/root/.pyenv/shims:/usr/bin:/root/.pyenv/bin")
    assert roots == (["/root/.pyenv"] if Path("/root/.pyenv").is_dir() else [])


def test_refused_without_bubblewrap_unless_off_or_demo(kv_repo, monkeypatch):
    repo, _ = kv_repo
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(InputError) as info:
        build_sandbox(Config(), repo, common_dir(repo))
    assert "Agent commands are refused" in str(info.value) and "sandbox: off" in str(info.value)
    sandbox, note = build_sandbox(Config(), repo, common_dir(repo), allow_fallback=True)
    assert sandbox.name == "subprocess" and note.startswith("OFF")
    sandbox, note = build_sandbox(Config.model_validate({"sandbox": "off"}), repo, common_dir(repo))
    assert sandbox.name == "subprocess" and note == OFF_NOTE


def test_a_detached_grandchild_cannot_hold_a_sandboxed_command_open(box):
    result = box.run("setsid sleep 100 & echo started", cwd=box.worktree, timeout_seconds=60)
    assert result.exit_code == 0 and "started" in result.output and result.duration_seconds < 30
    result = box.run("setsid sleep 100 & sleep 100", cwd=box.worktree, timeout_seconds=1)
    assert result.timed_out and result.duration_seconds < 30


def test_no_scratch_directory_is_made_on_disk(box):
    import os
    import tempfile

    before = set(Path(tempfile.gettempdir()).glob(f"loopbot-*-{os.getpid()}-*"))
    box.run("cat \"$(git rev-parse --git-common-dir)/config\"", cwd=box.worktree, timeout_seconds=10)
    assert set(Path(tempfile.gettempdir()).glob(f"loopbot-*-{os.getpid()}-*")) == before


def test_the_refusal_says_the_install_command_as_it_is_typed(kv_repo, monkeypatch):
    repo, _ = kv_repo
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(InputError) as info:
        build_sandbox(Config(), repo, common_dir(repo))
    assert "sudo apt-get install bubblewrap" in str(info.value)
    assert "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0" in str(info.value)
