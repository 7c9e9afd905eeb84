"""Spec drift in test files: assertions removed, skip markers added. Judged on a unified diff. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

ASSERTION = re.compile(
    r"\bassert\b|\bself\.assert\w*\(|\bexpect\(|\bassert_\w*!?\(|\bassert\w*\(|\bshould\b|\bt\.(Error|Fatal|Fail)\w*\(|\brequire\.\w+\("
)
SKIP = re.compile(
    r"@pytest\.mark\.(skip|skipif|xfail)\b|\bpytest\.(skip|xfail)\(|@unittest\.(skip|skipIf|skipUnless|expectedFailure)\b"
    r"|\bself\.skipTest\(|\b(it|test|describe)\.(skip|todo)\(|\bx(it|describe|test)\(|@Disabled\b|@Ignore\b"
    r"|\bt\.Skip\w*\(|#\[ignore\]"
)


@dataclass
class FileDiff:
    path: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def parse_unified(diff: str) -> dict[str, FileDiff]:
    files: dict[str, FileDiff] = {}
    current: FileDiff | None = None
    for line in diff.splitlines():
        if line.startswith("diff --git "):
            current = None
        elif line.startswith("+++ ") or line.startswith("--- "):
            path = line[4:].strip()
            if path != "/dev/null":
                path = path[2:] if path[:2] in ("a/", "b/") else path
                current = files.setdefault(path, FileDiff(path))
        elif current is not None and line.startswith("+"):
            current.added.append(line[1:])
        elif current is not None and line.startswith("-"):
            current.removed.append(line[1:])
    return files


def _count(pattern: re.Pattern[str], lines: list[str]) -> int:
    return sum(1 for line in lines if pattern.search(line) and not line.lstrip().startswith(("#", "//")))


def drift(diff: FileDiff) -> list[str]:
    """What in this test file's change weakens the specification."""
    found = []
    lost = _count(ASSERTION, diff.removed) - _count(ASSERTION, diff.added)
    if lost > 0:
        found.append(f"{lost} assertion(s) removed")
    skips = _count(SKIP, diff.added) - _count(SKIP, diff.removed)
    if skips > 0:
        found.append(f"{skips} skip marker(s) added")
    return found
