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


# Each shell's own script, whatever shell the command runs under: `--show-completion` guesses from
# the parent process, and under sh (make, CI, a Dockerfile) it fails with "Shell sh not supported".
MARKERS = {"bash": "complete -o default -F", "zsh": "#compdef loopbot", "fish": "complete --command loopbot",
           "powershell": "Register-ArgumentCompleter"}


@pytest.mark.parametrize("shell", sorted(MARKERS))
def test_completion_prints_the_named_shells_script_even_under_sh(shell):
    if not LOOPBOT.is_file():
        pytest.skip("the loopbot console script is not installed beside this interpreter")
    # `; :` keeps sh as the parent (a last command would be exec'd in its place).
    result = subprocess.run(["sh", "-c", f"'{LOOPBOT}' completion {shell}; :"], capture_output=True, text=True,
                            timeout=60)
    assert result.stderr == ""
    assert MARKERS[shell] in result.stdout and "_LOOPBOT_COMPLETE" in result.stdout.upper()
    assert all(marker not in result.stdout for other, marker in MARKERS.items() if other != shell)


def test_completion_of_an_unknown_shell_names_the_choices():
    result = run("completion", "tcsh")
    assert result.returncode == 2 and "bash" in result.stderr and "Traceback" not in result.stderr


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
