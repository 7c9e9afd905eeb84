"""`loopbot init` and `loopbot new goal`: a repository gets the config, the workflows pinned to a
release of the action and a first goal, from what ships with loopbot; nothing is overwritten
without --force."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from loopbot.config import Config, load_config
from loopbot.goal import load_goal
from loopbot.scaffold import ACTION_REF, WORKFLOWS, templates
from tests.cli.test_cli_console import cli

ROOT = Path(__file__).resolve().parents[2]
FILES = [".github/loopbot.yml", *(f".github/workflows/{name}" for name in WORKFLOWS)]


@pytest.fixture
def fresh_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "project"
    repo.mkdir()
    subprocess.run(["git", "init", "--quiet", str(repo)], check=True)
    return repo


def test_init_writes_config_workflows_and_a_first_goal(fresh_repo):
    result = cli("init", "--repo", str(fresh_repo), "--goal", "bug-fix")
    assert result.returncode == 0, result.stdout + result.stderr
    for path in [*FILES, "goals/bug-fix.yaml"]:
        assert (fresh_repo / path).is_file(), path
        assert f"wrote {path}" in result.stdout
    # The config is every default, commented out: valid as written, and it changes nothing.
    assert load_config(fresh_repo / ".github" / "loopbot.yml") == Config()
    assert "#   max_iterations: 6" in (fresh_repo / ".github" / "loopbot.yml").read_text()
    assert load_goal(fresh_repo / "goals" / "bug-fix.yaml").objective_checks
    for name in WORKFLOWS:
        written = (fresh_repo / ".github" / "workflows" / name).read_text()
        ours = (ROOT / ".github" / "workflows" / name).read_text()
        assert "uses: ./" not in written and f"uses: {ACTION_REF}" in written
        # Exactly this repository's workflow, with only the action's reference changed.
        assert written.split("\n", 1)[1] == ours.replace("uses: ./", f"uses: {ACTION_REF}")
        assert yaml.safe_load(written)["jobs"]
    assert "ANTHROPIC_API_KEY" in result.stdout and "gh label create loopbot:run" in result.stdout


def test_the_written_workflows_are_actionlint_clean(fresh_repo):
    from tests.test_workflows import actionlint

    assert cli("init", "--repo", str(fresh_repo)).returncode == 0
    checked = actionlint(*(fresh_repo / ".github" / "workflows" / name for name in WORKFLOWS))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_init_refuses_to_overwrite_anything_without_force(fresh_repo):
    workflow = fresh_repo / ".github" / "workflows" / "loopbot-docs.yml"
    workflow.parent.mkdir(parents=True)
    workflow.write_text("mine\n")
    result = cli("init", "--repo", str(fresh_repo), "--goal", "feature")
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{workflow}: exists; nothing was written (--force overwrites it)" in result.stderr
    assert workflow.read_text() == "mine\n"
    assert not (fresh_repo / ".github" / "loopbot.yml").exists() and not (fresh_repo / "goals").exists()
    forced = cli("init", "--repo", str(fresh_repo), "--force")
    assert forced.returncode == 0, forced.stderr
    assert "uses: " in workflow.read_text()


def test_an_existing_config_is_kept_even_with_force(fresh_repo):
    """The workflows are written from it: a config reset to defaults would disagree with them."""
    config = fresh_repo / ".github" / "loopbot.yml"
    config.parent.mkdir()
    config.write_text("budgets: {max_iterations: 2}\n")
    for flags in ((), ("--force",)):
        result = cli("init", "--repo", str(fresh_repo), *flags)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "kept .github/loopbot.yml" in result.stdout
        assert config.read_text() == "budgets: {max_iterations: 2}\n"


def test_force_replaces_a_link_and_never_writes_through_it(fresh_repo, tmp_path):
    outside = tmp_path / "outside.yml"
    outside.write_text("precious\n")
    (fresh_repo / ".github").mkdir()
    os.symlink(outside, fresh_repo / ".github" / "loopbot.yml")
    assert cli("init", "--repo", str(fresh_repo)).returncode == 2
    assert cli("init", "--repo", str(fresh_repo), "--force").returncode == 0
    assert outside.read_text() == "precious\n"
    assert not (fresh_repo / ".github" / "loopbot.yml").is_symlink()


def test_init_outside_a_git_repository_is_a_clear_error(tmp_path):
    result = cli("init", "--repo", str(tmp_path))
    assert result.returncode == 2 and "not inside a git repository" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_readme_and_docs_name_the_ref_init_pins():
    assert f"uses: {ACTION_REF}" in (ROOT / "README.md").read_text()
    assert ACTION_REF in (ROOT / "docs" / "github-setup.md").read_text()
    assert ACTION_REF in (ROOT / "docs" / "github-workflows.md").read_text()


@pytest.mark.parametrize("template", sorted(templates()))
def test_new_goal_from_every_template_is_a_valid_goal(tmp_path, template):
    result = cli("new", "goal", "--template", template, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    goal = load_goal(tmp_path / "goals" / f"{template}.yaml")
    assert goal.objective_checks and f"loopbot validate goals/{template}.yaml" in result.stdout


def test_new_goal_names_the_templates_sets_the_id_and_keeps_existing_files(tmp_path):
    assert {"bug-fix", "feature", "refactor", "performance", "docs"} <= set(templates())
    wrong = cli("new", "goal", "--template", "bugfix", cwd=tmp_path)
    assert wrong.returncode == 2 and "did you mean 'bug-fix'?" in wrong.stderr and "refactor" in wrong.stderr
    made = cli("new", "goal", "-t", "refactor", "--id", "split-config", "--out", "my.yaml", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert load_goal(tmp_path / "my.yaml").id == "split-config"
    again = cli("new", "goal", "-t", "bug-fix", "--out", "my.yaml", cwd=tmp_path)
    assert again.returncode == 2 and "exists" in again.stderr
    assert load_goal(tmp_path / "my.yaml").id == "split-config"
    bad_id = cli("new", "goal", "-t", "bug-fix", "--id", "Not A Slug!", "--out", "other.yaml", cwd=tmp_path)
    assert bad_id.returncode == 2 and "id" in bad_id.stderr and not (tmp_path / "other.yaml").exists()


@pytest.mark.parametrize("command", [["init"], ["new"], ["new", "goal"]], ids=" ".join)
def test_dash_h_on_the_new_commands(command):
    result = cli(*command, "-h")
    assert result.returncode == 0 and "Usage:" in result.stdout, result.stderr
