"""The CLI in scripts: machine-readable output, full ids at any width, -h, --config, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from loopbot.examples import KVSTORE
from loopbot.examples.setup import make_example_repo
from loopbot.workspace.git import git
from tests.cli.test_cli_console import cli

SCRIPT = f"scripted:{KVSTORE / 'script.yaml'}"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    """One finished run for the tests that only read it (status and its JSON never write)."""
    repo, _ = make_example_repo(KVSTORE / "repo", tmp_path_factory.mktemp("finished") / "work")
    result = cli("run", str(KVSTORE / "goal.yaml"), "--repo", str(repo), "--model", SCRIPT, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout  # stdout is the JSON object alone; the human summary is on stderr
    return repo, json.loads(lines[0])


def test_run_json_is_one_final_object(finished_run):
    _, record = finished_run
    assert record["status"] == "success" and record["outcome"] == "SUCCESS" and record["exit_code"] == 0
    assert str(record["branch"]).startswith("loop/") and record["pushed"] is True
    assert isinstance(record["cost_usd"], float) and record["cost_usd"] > 0 and record["cost_simulated"] is True
    report = Path(str(record["report"]))
    assert report.is_file() and str(record["run_id"]) in report.read_text()
    assert Path(str(record["events"])).is_file()


def test_status_json_is_json_lines_with_full_ids(finished_run):
    repo, record = finished_run
    listing = cli("status", "--repo", str(repo), "--json")
    lines = listing.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("{") and " " not in lines[0].split('"goal"')[0]
    row = json.loads(lines[0])
    assert row["run_id"] == record["run_id"] and row["status"] == "success" and row["branch"] == record["branch"]


@pytest.mark.parametrize("env", [{"COLUMNS": "80"}, {"COLUMNS": "120"}, {"COLUMNS": "80", "FORCE_COLOR": "1"},
                                 {"COLUMNS": "40", "TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1"}])
def test_status_never_truncates_run_ids(finished_run, env):
    repo, record = finished_run
    listing = cli("status", "--repo", str(repo), env=env)
    assert listing.returncode == 0
    row = next(line for line in listing.stdout.splitlines() if "kvstore-ttl" in line and "loop/" in line)
    assert str(record["run_id"]) in row and str(record["branch"]) in row and "…" not in listing.stdout


COMMANDS = [[], ["run"], ["resume"], ["abandon"], ["status"], ["gc"], ["stop"], ["validate"], ["schema"], ["demo"],
            ["audit"], ["docs"], ["wiki"], ["wiki", "lint"], ["replay"], ["replay", "serve"], ["replay", "record"],
            ["action"], ["serve"], ["worker"], ["completion"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "loopbot")
def test_dash_h_is_help_everywhere(command):
    result = cli(*command, "-h")
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout and "--help" in result.stdout and "-h" in result.stdout


@pytest.mark.parametrize("command", [["run", str(KVSTORE / "goal.yaml"), "--model", SCRIPT],
                                     ["audit", "--model", SCRIPT], ["docs", "--model", SCRIPT], ["wiki", "lint"]])
def test_config_option_everywhere_and_a_missing_file_is_an_error(kv_repo, tmp_path, command):
    repo, _ = kv_repo
    missing = tmp_path / "nope.yml"
    result = cli(*command, "--repo", str(repo), "--config", str(missing))
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{missing}: no such config file (--config)" in result.stderr and "Traceback" not in result.stderr
    bad = tmp_path / "bad.yml"
    bad.write_text("budgets: {max_iterations: 0}\n")
    result = cli(*command, "--repo", str(repo), "--config", str(bad))
    assert result.returncode == 2 and f"{bad}:1:11: budgets.max_iterations" in result.stderr, result.stderr


def test_audit_reads_the_config_it_is_given(kv_repo, tmp_path):
    repo, _ = kv_repo
    config = tmp_path / "c.yml"
    config.write_text(f"models: {{auditor: '{SCRIPT}'}}\n")
    result = cli("audit", "--repo", str(repo), "--config", str(config))
    assert result.returncode == 0 and "Filed 2 plan(s)" in result.stdout, result.stdout + result.stderr


def _failing_script(tmp_path: Path) -> str:
    path = tmp_path / "silent.yaml"  # a model that answers nothing: every call fails
    path.write_text(yaml.safe_dump({"model": "silent"}))
    return f"scripted:{path}"


def test_audit_exits_non_zero_when_every_model_call_failed(kv_repo, tmp_path):
    repo, _ = kv_repo
    result = cli("audit", "--repo", str(repo), "--model", _failing_script(tmp_path))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "every model call failed" in result.stderr and "script has no auditor reply" in result.stderr


def test_docs_exits_non_zero_and_pushes_nothing_when_every_model_call_failed(kv_repo, tmp_path):
    repo, origin = kv_repo
    result = cli("docs", "--repo", str(repo), "--since", "HEAD~1", "--model", _failing_script(tmp_path),
                 "--remote", "origin")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "every model call failed" in result.stderr and "script has no documenter reply" in result.stderr
    assert git(origin, "branch", "--list", "loop/*").stdout.strip() == ""
    assert git(repo, "branch", "--list", "loop/*").stdout.strip() == ""


@pytest.mark.parametrize("state_dir", ["/proc/loopbot-state", "/proc", "/dev/null/x"])
@pytest.mark.parametrize("command", [["run", str(KVSTORE / "goal.yaml"), "--model", SCRIPT],
                                     ["audit", "--model", SCRIPT], ["docs", "--model", SCRIPT], ["gc"],
                                     ["stop", "x"], ["abandon", "x"]])
def test_an_unusable_state_dir_is_a_clear_error(kv_repo, command, state_dir):
    repo, _ = kv_repo
    result = cli(*command, "--repo", str(repo), "--state-dir", state_dir)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert f"--state-dir {state_dir}: cannot hold loopbot's runs" in result.stderr, result.stderr
