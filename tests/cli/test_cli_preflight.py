"""Preflight: each distinct model endpoint is asked once, before anything is made, whether it is
reachable, takes the key and serves the model; a run that cannot talk to its models exits 2 with
the endpoint and the fix, instead of iterating on failed calls and pushing the unchanged base."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
import yaml

from loopbot.examples import KVSTORE
from loopbot.workspace.git import git
from tests.cli.test_cli_console import cli


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def local_model_config(tmp_path: Path, base_url: str) -> Path:
    config = tmp_path / "loopbot.yml"
    config.write_text(yaml.safe_dump({"models": {"openai": {"base_url": base_url},
                                                 "profiles": {"llama3.1": {"input": 0, "output": 0}}}}))
    return config


def loop_branches(repo: Path) -> list[str]:
    return git(repo, "for-each-ref", "--format=%(refname)", "refs/heads/loop/", "refs/remotes/origin/loop/").stdout.split()


def test_an_unreachable_openai_compatible_server_stops_the_run_before_anything_is_made(kv_repo, tmp_path):
    repo, origin = kv_repo
    base_url = f"http://127.0.0.1:{unused_port()}/v1"
    config = local_model_config(tmp_path, base_url)
    started = time.monotonic()
    result = cli("run", str(KVSTORE / "goal.yaml"), "--repo", str(repo), "--config", str(config),
                 "--model", "openai:llama3.1", "-q", env={"OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""})
    elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"cannot reach {base_url}" in result.stderr and "is the server running" in result.stderr, result.stderr
    assert "base_url" in result.stderr and "Traceback" not in result.stderr
    assert elapsed < 20, elapsed  # one refused connection, not iterations of failed calls
    assert loop_branches(repo) == [] and git(origin, "branch", "--list", "loop/*").stdout == ""
    status = cli("status", "--repo", str(repo), "--json")
    assert status.returncode == 0 and status.stdout == "", status.stdout  # no run was recorded
    assert not (repo / ".git" / "loopbot" / "worktrees").exists() or not any(
        (repo / ".git" / "loopbot" / "worktrees").iterdir())


@pytest.mark.parametrize("command", [["audit"], ["docs"]])
def test_audit_and_docs_preflight_their_model_too(kv_repo, tmp_path, command):
    repo, _ = kv_repo
    base_url = f"http://127.0.0.1:{unused_port()}/v1"
    result = cli(*command, "--repo", str(repo), "--config", str(local_model_config(tmp_path, base_url)),
                 "--model", "openai:llama3.1", env={"OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""})
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"cannot reach {base_url}" in result.stderr, result.stderr
    assert git(repo, "branch", "--list", "loop/*").stdout == ""


def test_a_refused_key_and_an_unknown_model_name_the_endpoint_and_the_fix(kv_repo, tmp_path):
    from loopbot.testing.replay import Cassette, ReplayServer

    repo, _ = kv_repo
    with ReplayServer(Cassette(api_key="sk-ant-the-right-key-000")) as server:
        refused = cli("run", str(KVSTORE / "goal.yaml"), "--repo", str(repo), "--model", "anthropic:claude-sonnet-5",
                      env={"ANTHROPIC_API_KEY": "sk-ant-a-wrong-key-0000", "ANTHROPIC_BASE_URL": server.url})
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "the API key for anthropic was refused" in refused.stderr and "ANTHROPIC_API_KEY" in refused.stderr
        assert server.url in refused.stderr
        assert server.received == []  # no model call was made, only the lookup
    with ReplayServer(Cassette()) as server:
        config = tmp_path / "profiles.yml"
        config.write_text(yaml.safe_dump({"models": {"profiles": {"claude-sonnet-9": {"input": 3, "output": 15}}}}))
        unknown = cli("run", str(KVSTORE / "goal.yaml"), "--repo", str(repo), "--config", str(config),
                      "--model", "anthropic:claude-sonnet-9",
                      env={"ANTHROPIC_API_KEY": "sk-ant-any-key-00000", "ANTHROPIC_BASE_URL": server.url})
        assert unknown.returncode == 2, unknown.stdout + unknown.stderr
        assert f"{server.url} does not serve model 'claude-sonnet-9'" in unknown.stderr, unknown.stderr
    assert loop_branches(repo) == []

