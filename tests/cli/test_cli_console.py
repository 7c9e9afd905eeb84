"""Console safety: text loopbot did not write itself is printed literally on every output path.

Rich reads `[...]` as markup and `:name:` as emoji codes. Model text, check names, guard paths,
push messages, validation errors, file paths and run ids must reach the terminal as written:
never raising MarkupError, never losing a bracketed word.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from rich.console import Console

from loopbot.examples import KVSTORE
from loopbot.examples.setup import make_example_repo

HOSTILE = "[/b] keep [spec] :thumbs_up: [bold red]x[/]"
CHECK = "[/b] [spec] marker check"
REASON = "[/] rejected [spec] because [link=http://x]y[/link]"


def cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    full_env.pop("LOOPBOT_STATE_DIR", None)
    return subprocess.run([sys.executable, "-m", "loopbot", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=300)


def _edit(marker: str) -> dict[str, object]:
    return {"edit": {"path": "kvstore.py", "search": "        self._data: dict[str, Any] = {}\n",
                     "replace": f"        self._data: dict[str, Any] = {{}}\n        # {marker}\n"}}


def _hostile_files(tmp_path: Path) -> tuple[Path, Path]:
    goal = {
        "id": "hostile", "goal": "Add a marker",
        "acceptance": [{"file": "kvstore.py", "contains": "MARKER", "name": CHECK}],
        "scope": {"allow": ["kvstore.py"]},
        "budgets": {"max_iterations": 4, "stagnation_threshold": 10},
    }
    script = {
        "maker": [
            {"iteration": 1, "turns": [{"text": f"APPROACH: {HOSTILE} one", "tools": [_edit("step one")]},
                                       {"tools": [{"done": {"summary": "one"}}]}]},
            {"iteration": 2, "turns": [{"text": f"APPROACH: {HOSTILE} two", "tools": [_edit("MARKER")]},
                                       {"tools": [{"done": {"summary": "two"}}]}]},
            {"iteration": 3, "turns": [{"text": f"APPROACH: {HOSTILE} three",
                                        "tools": [{"write": {"path": "[spec]/[/b]out.txt", "content": "x\n"}}]},
                                       {"tools": [{"done": {"summary": "three"}}]}]},
        ],
        "checker": [{"iteration": "*", "decision": "REJECT", "reasons": [REASON]}],
    }
    goal_path, script_path = tmp_path / "goal.yaml", tmp_path / "script.yaml"
    goal_path.write_text(yaml.safe_dump(goal))
    script_path.write_text(yaml.safe_dump(script))
    return goal_path, script_path


def test_hostile_markup_survives_run_progress_summary_and_status(tmp_path):
    repo, _ = make_example_repo(KVSTORE / "repo", tmp_path / "work")
    goal, script = _hostile_files(tmp_path)
    state_dir = tmp_path / "[/b]state[spec]"
    result = cli("run", str(goal), "--repo", str(repo), "--model", f"scripted:{script}",
                 "--state-dir", str(state_dir))
    both = result.stdout + result.stderr
    assert "MarkupError" not in both and "Traceback" not in both, both
    assert result.returncode == 1, both
    # the approach, as the model wrote it, on the iteration lines
    assert f"{HOSTILE} one" in both and f"{HOSTILE} two" in both
    assert CHECK in both  # the failed check's name (iteration 1)
    assert REASON in both  # the checker's reason (iteration 2)
    assert "[spec]/[/b]out.txt" in both  # the guard's path (iteration 3)
    assert "script has no planner reply for iteration 4" in both  # a failed iteration says why
    assert str(state_dir) in result.stdout  # report and events paths
    listing = cli("status", "--repo", str(repo), "--state-dir", str(state_dir))
    assert listing.returncode == 0 and "hostile" in listing.stdout
    empty = cli("status", "--repo", str(repo), "--state-dir", str(tmp_path / "[/b]none"))
    assert empty.returncode == 0 and str(tmp_path / "[/b]none") in empty.stdout


def test_validation_errors_print_intact(tmp_path):
    goal = tmp_path / "[spec]goal.yaml"
    goal.write_text("id: 'Bad[/b]'\ngoal: g\nacceptance:\n  - run: 'true'\n")
    result = cli("validate", str(goal))
    assert result.returncode == 2
    assert "String should match pattern '^[a-z0-9][a-z0-9._-]{0,62}$'" in result.stderr, result.stderr
    assert str(goal) in result.stderr
    good = tmp_path / "[bold]ok :thumbs_up:.yaml"
    good.write_text("id: x\ngoal: g\nacceptance:\n  - run: 'true'\n")
    ok = cli("validate", str(good))
    assert ok.returncode == 0 and str(good) in ok.stdout, ok.stdout + ok.stderr


def test_run_ids_and_paths_given_by_the_user_print_literally(kv_repo):
    repo, _ = kv_repo
    for command in ("stop", "abandon", "resume"):
        result = cli(command, "[/b]:thumbs_up:", "--repo", str(repo))
        both = result.stdout + result.stderr
        assert "MarkupError" not in both and "Traceback" not in both, both
        if command != "stop":
            assert result.returncode == 2 and "[/b]:thumbs_up:" in result.stderr, both


def test_audit_and_docs_summaries_print_model_text_literally(tmp_path):
    repo, _ = make_example_repo(KVSTORE / "repo", tmp_path / "work")
    title = "Fix [/b] the [spec] store :thumbs_up:"
    plan = {"title": title, "context": "c [/]", "chunks": ["one [spec]"], "scope": ["kvstore.py"],
            "goal": {"id": "p1", "goal": "g [spec]", "acceptance": [{"run": "true"}]}}
    script = {
        "auditor": [{"iteration": "*", "turns": [{"tools": [{"propose_plan": plan}]},
                                                 {"tools": [{"done": {"summary": "s [/b]"}}]}]}],
        "documenter": [{"iteration": "*", "turns": [{"tools": [{"done": {"summary": f"docs {HOSTILE}"}}]}]}],
    }
    script_path = tmp_path / "script.yaml"
    script_path.write_text(yaml.safe_dump(script))
    audited = cli("audit", "--repo", str(repo), "--model", f"scripted:{script_path}")
    assert audited.returncode == 0, audited.stdout + audited.stderr
    assert title in audited.stdout
    documented = cli("docs", "--repo", str(repo), "--since", "HEAD", "--model", f"scripted:{script_path}")
    assert "Traceback" not in documented.stderr and f"docs {HOSTILE}" in documented.stdout, documented.stdout


def test_progress_display_prints_hostile_text_on_a_markup_console(make_loop, tmp_path):
    """The display may be handed a console that reads markup (Rich's default): data must not be read as it."""
    from loopbot.core.events import Pushed
    from loopbot.goal import load_goal
    from loopbot.progress import ProgressDisplay
    from loopbot.testing.scripted import load_script

    goal_path, script_path = _hostile_files(tmp_path)
    loop = make_loop(load_script(script_path), goal=load_goal(goal_path))
    console = Console(record=True, width=80, force_terminal=True, color_system=None)
    display = ProgressDisplay(console, 4)
    display.event(Pushed(pushed=False, message=f"remote said {HOSTILE}", sha="0" * 40), loop.session.state)
    with display:
        loop.session.runner.observers.append(display)
        loop.run()
    text = console.export_text()
    for expected in (f"{HOSTILE} one", CHECK, REASON, "[spec]/[/b]out.txt", f"remote said {HOSTILE}",
                     "script has no planner reply for iteration 4"):
        assert expected in text, text
