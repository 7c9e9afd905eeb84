"""Smaller things a first hour trips on: -q, the demo's cost and its temp dir."""

from __future__ import annotations

from pathlib import Path

from loopbot.examples import KVSTORE
from tests.cli.test_cli_console import cli


def test_quiet_hides_the_bar_but_keeps_the_iteration_log(kv_repo):
    repo, _ = kv_repo
    result = cli("run", str(KVSTORE / "goal.yaml"), "--repo", str(repo), "--model",
                 f"scripted:{KVSTORE / 'script.yaml'}", "-q", env={"FORCE_COLOR": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    for line in ("iteration 1: RETRY", "unit tests: exit 1 · FAILED (failures=", "checker REJECT", "iteration 3: SUCCESS"):
        assert line in result.stderr, result.stderr
    assert "━" not in result.stderr and "calls 0/" not in result.stderr  # no bar, even on a terminal
    report = Path(next(line.split(None, 1)[1] for line in result.stdout.splitlines() if line.startswith("report:")))
    cost = next(line for line in report.read_text().splitlines() if line.startswith("- Cost:"))
    assert "simulated" in cost, cost
    # The printed transcript path holds the run's model turns.
    transcript = Path(next(line.split(None, 1)[1] for line in result.stdout.splitlines()
                           if line.startswith("transcript:")))
    assert transcript.name == "transcript.md" and "## Iteration 3 · goal_checker · turn 0" in transcript.read_text()


def test_the_demo_says_its_cost_is_simulated_and_removes_its_temp_dir(tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    result = cli("demo", "-q", env={"TMPDIR": str(temp)})
    assert result.returncode == 0, result.stdout + result.stderr
    cost = next(line for line in result.stdout.splitlines() if line.startswith("cost:"))
    assert "simulated" in cost and "$" in cost
    assert list(temp.iterdir()) == [], list(temp.iterdir())
    assert "--dir" in result.stdout  # how to keep the files next time
