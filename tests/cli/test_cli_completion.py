"""Shell completion: the installed `loopbot` command prints its completion script and completes
commands and template names."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

LOOPBOT = Path(sys.executable).parent / "loopbot"  # the console script, as a shell runs it


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    if not LOOPBOT.is_file():
        pytest.skip("the loopbot console script is not installed beside this interpreter")
    return subprocess.run([str(LOOPBOT), *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_the_completion_options_are_offered():
    result = run("--help")
    assert "--install-completion" in result.stdout and "--show-completion" in result.stdout


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_show_completion_prints_the_script_for_each_shell(shell):
    result = run("--show-completion", shell)
    assert result.returncode == 0, result.stderr
    assert "_LOOPBOT_COMPLETE" in result.stdout and "loopbot" in result.stdout


def complete(words: str) -> list[str]:
    cword = str(len(words.split()) - (0 if words.endswith(" ") else 1))
    result = run(env={"_LOOPBOT_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": cword})
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_commands_and_template_names_complete():
    assert complete("loopbot ne") == ["new"]
    assert "resume" in complete("loopbot re")
    assert complete("loopbot new goal --template b") == ["bug-fix"]
    assert {"feature", "refactor"} <= set(complete("loopbot init --goal "))
