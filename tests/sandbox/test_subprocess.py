import os
import subprocess
import tempfile
import time
from pathlib import Path

from loopbot.sandbox import debris
from loopbot.sandbox.output import CappedOutput
from loopbot.sandbox.pids import own_cgroup_dirs
from loopbot.sandbox.subprocess_runner import SubprocessSandbox


def test_secrets_in_loopbot_environment_do_not_reach_commands(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret-value")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_secretvalue")
    result = SubprocessSandbox().run("env", cwd=tmp_path, timeout_seconds=10)
    assert result.exit_code == 0
    assert "sk-ant-secret-value" not in result.output and "ghp_secretvalue" not in result.output
    assert "ANTHROPIC_API_KEY" not in result.output and "PATH=" in result.output


def test_timeout_kills_the_whole_process_group(tmp_path):
    marker = tmp_path / "survivor"
    command = f"(sleep 3; touch {marker}) & sleep 30"
    result = SubprocessSandbox().run(command, cwd=tmp_path, timeout_seconds=0.5)
    assert result.timed_out and result.exit_code == 124 and "timed out" in result.output
    # The background child was in the group: it must not survive to create the marker.
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline and not marker.exists():
        time.sleep(0.2)
    assert not marker.exists()


def test_background_child_cannot_hold_the_command_open(tmp_path):
    result = SubprocessSandbox().run("sleep 30 & echo started", cwd=tmp_path, timeout_seconds=20)
    assert result.exit_code == 0 and "started" in result.output and result.duration_seconds < 10


def test_output_is_capped_head_and_tail(tmp_path):
    result = SubprocessSandbox(output_cap_bytes=2000).run(
        "echo FIRST; head -c 5000000 /dev/zero | tr '\\0' x; echo; echo LAST", cwd=tmp_path, timeout_seconds=20)
    assert result.output.startswith("FIRST") and result.output.rstrip().endswith("LAST")
    assert result.truncated_bytes > 4_000_000 and len(result.output) < 2200


def test_capped_output_keeps_everything_under_the_cap():
    capped = CappedOutput(100)
    for part in (b"a" * 30, b"b" * 30):
        capped.feed(part)
    assert capped.text() == "a" * 30 + "b" * 30 and capped.dropped == 0


def test_exit_code_and_cwd(tmp_path):
    (tmp_path / "here.txt").write_text("x")
    result = SubprocessSandbox().run("ls; exit 3", cwd=tmp_path, timeout_seconds=10)
    assert result.exit_code == 3 and "here.txt" in result.output


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie not yet reaped by init counts as gone.
    return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"


def test_a_detached_grandchild_holding_the_output_open_neither_hangs_nor_survives(tmp_path):
    pidfile = tmp_path / "pid"
    command = f"setsid sh -c 'echo $$ > {pidfile}; exec sleep 100' & while [ ! -s {pidfile} ]; do :; done; echo started"
    result = SubprocessSandbox().run(command, cwd=tmp_path, timeout_seconds=60)
    assert result.exit_code == 0 and "started" in result.output
    assert result.duration_seconds < 30  # bounded by the drain, not by the grandchild's 100 s
    assert not _alive(int(pidfile.read_text()))


def test_the_timeout_holds_when_a_detached_grandchild_holds_the_pipe(tmp_path):
    result = SubprocessSandbox().run("setsid sleep 100 & sleep 100", cwd=tmp_path, timeout_seconds=1)
    assert result.timed_out and result.exit_code == 124 and result.duration_seconds < 30


def test_a_command_that_closes_its_output_still_runs_to_its_end(tmp_path):
    result = SubprocessSandbox().run("echo before; exec >&- 2>&-; sleep 0.5; touch done", cwd=tmp_path,
                                     timeout_seconds=30)
    assert result.exit_code == 0 and "before" in result.output and (tmp_path / "done").exists()


def test_no_scratch_directory_is_left_by_a_run(tmp_path):
    before = set(Path(tempfile.gettempdir()).glob(f"loopbot-*-{os.getpid()}-*"))
    SubprocessSandbox().run("true", cwd=tmp_path, timeout_seconds=10)
    assert set(Path(tempfile.gettempdir()).glob(f"loopbot-*-{os.getpid()}-*")) == before


def test_what_dead_processes_left_is_swept(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f"loopbot-home-{dead.pid}-abc"
    stale.mkdir()
    live = tmp_path / f"loopbot-home-{os.getpid()}-abc"
    live.mkdir()
    cgroups: list[Path] = []
    if os.geteuid() == 0:
        for parent in own_cgroup_dirs():
            candidate = parent / f"loopbot-{dead.pid}-0123abcd"
            try:
                candidate.mkdir()
            except OSError:
                continue
            cgroups.append(candidate)
            break
    found = debris.sweep(temp_dir=tmp_path)
    assert not stale.exists() and live.exists()
    assert any(str(stale) in line for line in found)
    for cgroup in cgroups:
        assert not cgroup.exists()
