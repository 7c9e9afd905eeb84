"""Keep file tools inside the worktree: no absolute escapes, no `..`, no symlink escapes, no .git."""

from __future__ import annotations

from pathlib import Path

from loopbot.core.paths import matches


class PathRefused(Exception):
    pass


def confine(root: Path, relative: str, *, deny: list[str] | None = None, for_write: bool = False) -> Path:
    if not relative or "\0" in relative:
        raise PathRefused("empty or invalid path")
    root = root.resolve()
    candidate = (root / relative) if not Path(relative).is_absolute() else Path(relative)
    resolved = candidate.resolve()
    if resolved != root and root not in resolved.parents:
        raise PathRefused(f"{relative}: outside the worktree")
    rel = resolved.relative_to(root).as_posix() if resolved != root else "."
    if rel == ".git" or rel.startswith(".git/"):
        raise PathRefused(f"{relative}: .git is off limits")
    if for_write and deny and matches(deny, rel):
        raise PathRefused(f"{relative}: denied by boundaries.deny_paths")
    if for_write and resolved.is_file() and resolved.stat().st_nlink > 1:
        # A hard link may lead to a file outside the worktree; loopbot writes it unsandboxed.
        raise PathRefused(f"{relative}: has several hard links; refusing to write through it")
    return resolved
