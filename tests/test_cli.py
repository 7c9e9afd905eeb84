"""The `loopbot` command, run as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loopbot.examples import KVSTORE
from loopbot.examples.setup import make_example_repo
from loopbot.workspace.git import git

GOOD_GOAL = "id: x\ngoal: g\nacceptance:\n  - run: 'true'\n"


def cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    full_env.pop("LOOPBOT_STATE_DIR", None)
    return subprocess.run([sys.executable, "-m", "loopbot", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=300)


def test_demo_runs_offline_and_leaves_the_fix_on_the_branch(tmp_path):
    result = cli("demo", "--dir", str(tmp_path / "demo"), "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    origin = tmp_path / "demo" / "origin.git"
    branch = next(line.split()[1] for line in result.stdout.splitlines() if line.startswith("branch:"))
    assert branch.startswith("loop/")
    code = git(origin, "show", f"{branch}:kvstore.py").stdout
    assert "def _expired" in code and "ttl_seconds" in code
    report_path = Path(next(line.split(None, 1)[1] for line in result.stdout.splitlines() if line.startswith("report:")))
    report = report_path.read_text()
    assert report.count("| RETRY |") >= 1 and "| SUCCESS |" in report
    assert "## Checker rejections" in report and "'token'" in report


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("id: x\ngoal: [oops\n", "goal.yaml:3:1: invalid YAML"),
        ("id: x\ngoal: g\nacceptance:\n  - run: 'true'\nbudgets: {max_iterations: many}\n",
         "goal.yaml:5:11: budgets.max_iterations: Input should be a valid integer"),
        ("id: x\ngoal: g\nacceptance:\n  - run: 'true'\ncolour: blue\n", "goal.yaml:5:1: colour: unknown key"),
        ("id: x\ngoal: g\n", "goal.yaml:1:1: acceptance: Field required"),
    ],
)
def test_malformed_goals_exit_2_with_a_located_message(tmp_path, kv_repo, text, expected):
    repo, _ = kv_repo
    goal = tmp_path / "goal.yaml"
    goal.write_text(text)
    for args in (("validate", str(goal)), ("run", str(goal), "--repo", str(repo), "--model", "scripted:x.yaml")):
        result = cli(*args, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert expected in result.stderr and str(goal) in result.stderr
        assert "Traceback" not in result.stderr + result.stdout


def test_validate_ok_schema_and_bad_places(tmp_path):
    goal = tmp_path / "goal.yaml"
    goal.write_text(GOOD_GOAL)
    assert cli("validate", str(goal)).returncode == 0
    config = tmp_path / "loopbot.yml"
    config.write_text("budgets: {max_iterations: 0}\n")
    bad = cli("validate", str(config))
    assert bad.returncode == 2 and "loopbot.yml:1:11: budgets.max_iterations" in bad.stderr
    schema = json.loads(cli("schema", "goal").stdout)
    assert "acceptance" in schema["required"] and schema["additionalProperties"] is False
    assert "budgets" in json.loads(cli("schema", "config").stdout)["properties"]
    not_repo = cli("run", str(goal), "--repo", str(tmp_path), "--model", "scripted:x.yaml")
    assert not_repo.returncode == 2 and "not inside a git repository" in not_repo.stderr
    assert "Traceback" not in not_repo.stderr
    missing_model = cli("run", str(goal), "--repo", str(tmp_path), "--model", "nope:x")
    assert missing_model.returncode == 2


def test_unknown_run_and_provider_are_clean_errors(kv_repo, tmp_path):
    repo, _ = kv_repo
    result = cli("resume", "no-such-run", "--repo", str(repo))
    assert result.returncode == 2 and "no loopbot runs" in result.stderr
    goal = tmp_path / "goal.yaml"
    goal.write_text(GOOD_GOAL)
    result = cli("run", str(goal), "--repo", str(repo), "--model", "telepathy:big")
    assert result.returncode == 2 and "unknown model provider" in result.stderr and "Traceback" not in result.stderr


def _start(case: Path, env: dict[str, str] | None = None) -> tuple[Path, Path, subprocess.CompletedProcess[str]]:
    repo, origin = make_example_repo(KVSTORE / "repo", case)
    result = cli("run", str(KVSTORE / "goal.yaml"), "--repo", str(repo), "--model",
                 f"scripted:{KVSTORE / 'script.yaml'}", "--quiet", env=env)
    return repo, origin, result


def test_status_lists_runs(kv_repo):
    repo, _ = kv_repo
    assert "no runs" in cli("status", "--repo", str(repo)).stdout
    _start(repo.parent / "again")
    listing = cli("status", "--repo", str(repo.parent / "again" / "kvstore"))
    assert "kvstore-ttl" in listing.stdout and "success" in listing.stdout
