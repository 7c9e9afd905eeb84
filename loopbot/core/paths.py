"""Path patterns (gitignore-style globs) for scope, protection and denied paths. Pure."""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from fnmatch import fnmatchcase

import pathspec

# Never changed by a loop, whatever the goal says: CI definitions and loopbot's own config/prompts.
ALWAYS_DENIED = [".github/workflows/**", ".github/loopbot.yml", ".github/loopbot.yaml", ".github/loopbot/**"]

TEST_PATTERNS = ["test*.py", "*_test.py", "tests/**", "test/**", "**/tests/**", "**/test/**", "testing/**",
                 "__tests__/**", "*.test.*", "*.spec.*", "__snapshots__/**", "*.snap", "*_test.go",
                 "testdata/**", "spec/**", "*_spec.rb", "*Test.java", "*Tests.cs"]


def spec(patterns: Iterable[str]) -> pathspec.GitIgnoreSpec:
    return pathspec.GitIgnoreSpec.from_lines(list(patterns))


def matches(patterns: Iterable[str], path: str) -> bool:
    patterns = list(patterns)
    return bool(patterns) and spec(patterns).match_file(path)


_TEST_SPEC = spec(TEST_PATTERNS)


def find_test_files(files: Iterable[str]) -> list[str]:
    """Files that look like tests: protected by default when the loop starts."""
    return sorted(f for f in files if _TEST_SPEC.match_file(f) and not f.endswith((".md", ".txt")))


def is_test_path(path: str) -> bool:
    """A test file, or a file in a test directory (a helper there is imported by the tests)."""
    return bool(find_test_files([path])) or path.rsplit("/", 1)[-1] == "conftest.py"


def _simple_commands(command: str) -> list[list[str]]:
    lexer = shlex.shlex(command, posix=True, punctuation_chars=";&|()<>")
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token and set(token) <= set(";&|()"):
            commands.append([])
        elif token and set(token) <= set("<>"):
            continue
        else:
            commands[-1].append(token)
    return [c for c in commands if c]


def command_denied(command: str, patterns: Iterable[str]) -> str | None:
    """The deny pattern a command line matches, judged per simple command on parsed words."""
    patterns = list(patterns)
    if not patterns:
        return None
    try:
        simple = _simple_commands(command)
    except ValueError:
        return "unparseable command"
    for words in simple:
        # `env X=1 curl`, `/usr/bin/curl`: judge the program actually run.
        while words and (words[0] in ("env", "command", "exec", "nohup", "sudo") or "=" in words[0]):
            words = words[1:]
        if not words:
            continue
        program = words[0].rsplit("/", 1)[-1]
        line = " ".join([program, *words[1:]])
        for pattern in patterns:
            if fnmatchcase(line, pattern) or fnmatchcase(program, pattern):
                return pattern
    return None
