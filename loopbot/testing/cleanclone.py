"""What a human gets: a fresh clone of the pushed branch, judged by the goal's own objective
acceptance checks outside loopbot. Every pushed SUCCESS in the test suite is held to it."""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

from loopbot.goal import FileCheck, Goal, MetricCheck, RunCheck

_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1", "HOME": "/tmp"}


def run_in_clone(origin: Path, branch: str, commands: list[tuple[str, int]], setup: str | None = None) -> list[str]:
    """Clone `branch` afresh, run the setup command (as a user would), then each (command, exit
    code expected); the failures, as text."""
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="loopbot-clone-") as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", "--branch", branch, str(origin), str(clone)], check=True,
                       capture_output=True)
        if setup:
            done = subprocess.run(setup, shell=True, cwd=clone, capture_output=True, timeout=300, env=_ENV)
            if done.returncode:
                return [f"setup `{setup}` exited {done.returncode}"]
        for command, expected in commands:
            result = subprocess.run(command, shell=True, cwd=clone, capture_output=True, text=True, timeout=300,
                                    env=_ENV)
            if result.returncode != expected:
                failures.append(f"`{command}` exited {result.returncode}: {(result.stdout + result.stderr)[-800:]}")
    return failures


def clean_clone_failures(origin: Path, branch: str, goal: Goal, setup: str | None = None) -> list[str]:
    """The goal's run, metric and file checks on a fresh clone of what was pushed."""
    commands = [(c.run, c.expect_exit) for c in goal.objective_checks if isinstance(c, RunCheck)]
    commands += [(c.run, 0) for c in goal.objective_checks if isinstance(c, MetricCheck)]
    failures = run_in_clone(origin, branch, commands, setup)
    for check in goal.objective_checks:
        if isinstance(check, FileCheck):
            text = subprocess.run(["git", "-C", str(origin), "show", f"{branch}:{check.file}"], capture_output=True,
                                  text=True).stdout
            if (check.contains is not None and check.contains not in text) or (
                    check.regex is not None and not re.search(check.regex, text, re.MULTILINE)) or (
                    check.not_contains is not None and check.not_contains in text):
                failures.append(f"file check on {check.file} fails on the pushed branch")
    return failures
