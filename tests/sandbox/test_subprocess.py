import time

from loopbot.sandbox.output import CappedOutput
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
