"""What a test's bare origin holds: the loop branch's head there, if it was pushed at all."""

from __future__ import annotations

from pathlib import Path

from loopbot.workspace.git import git


def branch_head(origin: Path, branch: str) -> str | None:
    """The commit `branch` points at on `origin`, or None when it was never pushed there."""
    found = git(origin, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}", check=False)
    return found.stdout.strip() if found.returncode == 0 else None
