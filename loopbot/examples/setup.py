"""Materialise a bundled example as a real git repository with a local bare `origin`."""

from __future__ import annotations

import shutil
from pathlib import Path

from loopbot.workspace.git import git


def init_repo(path: Path, *, message: str = "Initial commit") -> None:
    git(path, "init", "--quiet", "--initial-branch=main")
    git(path, "add", "-A")
    git(path, "commit", "--quiet", "-m", message)


def add_bare_origin(repo: Path, origin: Path) -> None:
    git(origin.parent, "init", "--quiet", "--bare", "--initial-branch=main", str(origin))
    # A stand-in for the forge, which keeps its own repositories tidy: no `git gc --auto` process
    # after each of the loop's pushes (a GitHub loop in the tests pushes its state ~35 times).
    git(origin, "config", "receive.autogc", "false")
    git(repo, "remote", "add", "origin", str(origin))
    git(repo, "push", "--quiet", "origin", "main")


def make_example_repo(source: Path, dest: Path) -> tuple[Path, Path]:
    """Copy `source` to dest/<name>, commit it on main, and give it a bare origin at dest/origin.git."""
    dest.mkdir(parents=True, exist_ok=True)
    repo = dest / source.parent.name if source.name == "repo" else dest / source.name
    shutil.copytree(source, repo, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    init_repo(repo)
    origin = dest / "origin.git"
    add_bare_origin(repo, origin)
    return repo, origin
