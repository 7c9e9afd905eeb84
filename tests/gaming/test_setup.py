"""The setup step: ignored build outputs made on the base tree, linked into every tree, and out of
the maker's reach. A virtualenv stands in for any of them (node_modules, a build directory)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

from loopbot.config import Commands, Config, SandboxConfig
from loopbot.core.state import Status, StopReason
from loopbot.testing.gaming import (
    HONEST_FIX,
    edit_tool,
    run_script,
    run_tool,
    script_for,
    write_tool,
)
from loopbot.workspace.git import git

SETUP = "python3 -m venv --without-pip .venv"
ACCEPT = ".venv/bin/python -m unittest discover -s tests"


def ignore_venv(repo: Path) -> None:
    (repo / ".gitignore").write_text("__pycache__/\n*.pyc\n.venv/\n")
    git(repo, "commit", "-qam", "ignore the virtualenv")


def config(setup: str = SETUP, mode: Literal["bubblewrap", "off"] = "bubblewrap") -> Config:
    return Config(commands=Commands(setup=setup), sandbox=SandboxConfig(mode=mode, expose=[sys.prefix]))


def test_an_editable_install_tests_the_snapshot_not_the_base(tmp_path: Path) -> None:
    # A src layout installed in development mode: the outputs point at the worktree's own code.
    def src_layout(repo: Path) -> None:
        (repo / "src").mkdir()
        git(repo, "mv", "stats.py", "src/stats.py")
        (repo / ".gitignore").write_text("__pycache__/\n*.pyc\n.venv/\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "src layout")

    setup = ("python3 -m venv --without-pip .venv && "
             "echo \"$PWD/src\" > \"$(.venv/bin/python -c 'import site; print(site.getsitepackages()[0])')/src.pth\"")
    fix = edit_tool("src/stats.py", "    return sum(values) / (len(values) + 1)\n",
                    "    if not values:\n        raise ValueError(\"empty\")\n    return sum(values) / len(values)\n")
    outcome, _files = run_script(script_for([fix]), "unittest", tmp_path, config=config(setup=setup),
                                 prepare=src_layout, acceptance=ACCEPT)
    assert outcome.pushed_success and outcome.clean_clone_passes, outcome.describe()


def test_setup_outputs_reach_every_check_and_a_clean_clone_agrees(tmp_path: Path) -> None:
    outcome, files = run_script(script_for([HONEST_FIX]), "unittest", tmp_path, config=config(),
                                prepare=ignore_venv, acceptance=ACCEPT)
    assert outcome.pushed_success and outcome.clean_clone_passes, outcome.describe()
    assert outcome.state.setup is not None and outcome.state.setup.outputs == [".venv"]
    worktree = Path(outcome.state.worktree)
    assert (worktree / ".venv" / "bin" / "python").exists() and (worktree / ".venv").is_dir()
    assert '"setup"' in files.events_path.read_text()


def test_a_maker_cannot_replace_the_setup_outputs(tmp_path: Path) -> None:
    # Its own "virtualenv" whose python passes everything: ignored, so cleaned away and relinked.
    fake = [run_tool("rm .venv && mkdir -p .venv/bin"), write_tool(".venv/bin/python", "#!/bin/sh\nexit 0\n"),
            run_tool("chmod +x .venv/bin/python")]
    outcome, _files = run_script(script_for(fake), "unittest", tmp_path, config=config(), prepare=ignore_venv,
                                 acceptance=ACCEPT)
    assert not outcome.pushed_success, outcome.describe()
    assert any(not v.passed for v in outcome.state.iterations[-1].verdicts) or outcome.state.iterations[-1].violations


def test_inside_bubblewrap_the_setup_outputs_are_read_only(tmp_path: Path) -> None:
    tamper = [run_tool("printf '#!/bin/sh\\nexit 0\\n' > .venv/bin/python; echo rc=$?"), HONEST_FIX]
    outcome, _files = run_script(script_for(tamper), "unittest", tmp_path, config=config(), prepare=ignore_venv,
                                 acceptance=ACCEPT)
    tree = Path(outcome.state.worktree)
    assert (tree / ".venv" / "bin" / "python").is_symlink()  # the venv's own interpreter link, untouched
    assert outcome.pushed_success and outcome.clean_clone_passes


def test_without_bubblewrap_tampered_outputs_are_made_again_before_evaluation(tmp_path: Path) -> None:
    tamper = [run_tool("rm .venv/bin/python && printf '#!/bin/sh\\nexit 0\\n' > .venv/bin/python && chmod +x .venv/bin/python")]
    outcome, files = run_script(script_for(tamper), "unittest", tmp_path, config=config(mode="off"),
                                prepare=ignore_venv, acceptance=ACCEPT)
    assert not outcome.pushed_success, outcome.describe()
    assert "setup_restored" in files.events_path.read_text()


def test_setup_that_leaves_unignored_files_stops_with_a_clear_reason(tmp_path: Path) -> None:
    outcome, _files = run_script(script_for([HONEST_FIX]), "unittest", tmp_path,
                                 config=config(setup="python3 -m venv --without-pip env"), acceptance=ACCEPT)
    state = outcome.state
    assert state.status == Status.STOPPED and state.stop_reason == StopReason.ANDON
    assert "created files git does not ignore (env" in (state.stop_detail or "")


def test_committing_over_a_setup_output_is_a_violation(tmp_path: Path) -> None:
    # Un-ignore the virtualenv and commit a "python" that passes everything in its place.
    commit_fake = [write_tool(".gitignore", "__pycache__/\n*.pyc\n"), run_tool("rm .venv && mkdir -p .venv/bin"),
                   write_tool(".venv/bin/python", "#!/bin/sh\nexit 0\n"), run_tool("chmod +x .venv/bin/python")]
    outcome, _files = run_script(script_for(commit_fake), "unittest", tmp_path, config=config(), prepare=ignore_venv,
                                 acceptance=ACCEPT)
    assert not outcome.pushed_success, outcome.describe()
    assert ".venv/bin/python" in [v.path for v in outcome.state.iterations[-1].violations]
