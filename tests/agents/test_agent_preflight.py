"""An agent maker that cannot run is an exit-2 error before anything is made, naming the fix."""

from __future__ import annotations

from pathlib import Path

import yaml

from loopbot.agents.claude_code import ClaudeCode
from loopbot.examples import KVSTORE
from loopbot.testing.replay import Cassette, ReplayServer
from loopbot.workspace.git import git
from tests.cli.test_cli_console import cli


def goal_with_maker(tmp_path: Path, maker: dict[str, object]) -> Path:
    goal = yaml.safe_load((KVSTORE / "goal.yaml").read_text())
    goal["maker"] = maker
    path = tmp_path / "goal.yaml"
    path.write_text(yaml.safe_dump(goal))
    return path


def test_a_missing_claude_code_names_the_install_command(tmp_path):
    problem = ClaudeCode(package=tmp_path).check_installed()
    assert problem is not None and "npm install -g @anthropic-ai/claude-code@2.1.112" in problem


def test_a_missing_agent_cli_exits_2_before_anything_is_made(kv_repo, tmp_path):
    repo, origin = kv_repo
    goal = goal_with_maker(tmp_path, {"command": ["no-such-agent-cli", "{task_file}"]})
    with ReplayServer(Cassette()) as server:
        result = cli("run", str(goal), "--repo", str(repo), "--model", "anthropic:claude-sonnet-4-5", "-q",
                     env={"ANTHROPIC_API_KEY": "sk-ant-preflight-key-0000", "ANTHROPIC_BASE_URL": server.url})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "no-such-agent-cli" in result.stderr and "not on PATH" in result.stderr and "Traceback" not in result.stderr
    assert git(repo, "branch", "--list", "loop/*").stdout == "" and git(origin, "branch", "--list", "loop/*").stdout == ""
    assert cli("status", "--repo", str(repo), "--json").stdout == ""  # no run recorded


def test_an_agent_maker_needs_an_api_model_it_can_proxy(kv_repo, tmp_path):
    repo, _ = kv_repo
    goal = goal_with_maker(tmp_path, {"agent": "claude-code"})
    script = tmp_path / "script.yaml"
    script.write_text((KVSTORE / "script.yaml").read_text())
    result = cli("run", str(goal), "--repo", str(repo), "--model", f"scripted:{script}", "-q")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "must be an API model" in result.stderr and "Traceback" not in result.stderr


def test_an_agent_maker_with_the_sandbox_off_exits_2_saying_it_needs_the_sandbox(kv_repo, tmp_path):
    # Off, an agent CLI's commands run on the host with the network, and Claude Code cannot edit
    # loopbot's worktrees (under .git/; the /workspace view exists only in bubblewrap).
    repo, origin = kv_repo
    goal = goal_with_maker(tmp_path, {"agent": "claude-code"})
    config = tmp_path / "loopbot.yml"
    config.write_text("sandbox: off\n")
    with ReplayServer(Cassette()) as server:
        result = cli("run", str(goal), "--repo", str(repo), "--model", "anthropic:claude-sonnet-4-5", "-q",
                     "--config", str(config),
                     env={"ANTHROPIC_API_KEY": "sk-ant-preflight-key-0000", "ANTHROPIC_BASE_URL": server.url})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "agent makers need the sandbox" in result.stderr and "sandbox: off" in result.stderr
    assert "Traceback" not in result.stderr
    assert git(origin, "branch", "--list", "loop/*").stdout == ""
    assert cli("status", "--repo", str(repo), "--json").stdout == ""  # no run recorded
