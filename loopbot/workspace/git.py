"""Git worktree workspace. The user's own checkout and main are never written.

Every git call disables hooks and signing: a snapshot must not run code from the repo outside the
sandbox, nor wait on a passphrase.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from loopbot.core.state import PushResult
from loopbot.errors import WorkspaceError

AUTHOR = ("loopbot", "loopbot@users.noreply.github.com")
_SAFE = ["-c", "core.hooksPath=/dev/null", "-c", "commit.gpgsign=false", "-c", "core.quotepath=off"]


def git(cwd: Path, *args: str, check: bool = True, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": AUTHOR[0],
        "GIT_AUTHOR_EMAIL": AUTHOR[1],
        "GIT_COMMITTER_NAME": AUTHOR[0],
        "GIT_COMMITTER_EMAIL": AUTHOR[1],
    }
    try:
        result = subprocess.run(
            ["git", *_SAFE, *args],
            cwd=cwd,
            env=env,
            input=input_text,
            capture_output=True,
            text=True,
            errors="replace",
        )
    except OSError as exc:  # a missing directory, or no git on PATH
        raise WorkspaceError(f"git {' '.join(args)} could not run in {cwd}: {exc}") from None
    if check and result.returncode != 0:
        raise WorkspaceError(f"git {' '.join(args)} failed in {cwd}: {result.stderr.strip() or result.stdout.strip()}")
    return result


def repo_root(path: Path) -> Path:
    result = git(path, "rev-parse", "--show-toplevel", check=False)
    if result.returncode != 0:
        raise WorkspaceError(f"{path} is not inside a git repository")
    return Path(result.stdout.strip())


def common_dir(repo: Path) -> Path:
    out = git(repo, "rev-parse", "--git-common-dir").stdout.strip()
    return (repo / out).resolve()


def resolve_rev(repo: Path, rev: str) -> str:
    result = git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
    if result.returncode != 0:
        raise WorkspaceError(f"cannot resolve {rev!r} in {repo} (does the repository have a commit?)")
    return result.stdout.strip()


class GitWorkspace:
    def __init__(self, repo: Path, path: Path, branch: str):
        if not branch.startswith("loop/"):
            raise WorkspaceError(f"refusing to work on {branch!r}: loop branches are loop/*")
        self.repo = repo
        self.path = path
        self.branch = branch

    @classmethod
    def open(cls, repo: Path, path: Path, branch: str, base: str) -> GitWorkspace:
        """Create the worktree, or bring back one whose directory was lost (a fresh machine)."""
        ws = cls(repo, path, branch)
        if (path / ".git").exists():
            return ws
        git(repo, "worktree", "prune")
        path.parent.mkdir(parents=True, exist_ok=True)
        exists = git(repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False).returncode == 0
        if exists:
            git(repo, "worktree", "add", "--quiet", str(path), branch)
        else:
            git(repo, "worktree", "add", "--quiet", "-b", branch, str(path), base)
        return ws

    def head(self) -> str:
        return git(self.path, "rev-parse", "HEAD").stdout.strip()

    def snapshot(self, message: str) -> str:
        """Commit everything in the worktree; the same commit back when nothing changed.

        Plumbing after `add -A`: porcelain `commit` would scan the whole tree a second time.
        """
        git(self.path, "add", "-A")
        tree = git(self.path, "write-tree").stdout.strip()
        head = self.head()
        if tree == self.tree(head):
            return head
        sha = git(self.path, "commit-tree", tree, "-p", head, "-m", message).stdout.strip()
        git(self.path, "update-ref", "-m", "loopbot snapshot", "HEAD", sha, head)
        return sha

    def reset(self, sha: str) -> None:
        """Exactly the tree of `sha`: edits undone, files the loop or its commands created removed."""
        git(self.path, "reset", "--quiet", "--hard", sha)
        git(self.path, "clean", "--quiet", "-fd")

    def changed_files(self, base: str, head: str) -> list[str]:
        out = git(self.path, "diff", "--no-renames", "--name-only", "-z", base, head).stdout
        return sorted(p for p in out.split("\0") if p)

    def deleted_files(self, base: str, head: str) -> list[str]:
        out = git(self.path, "diff", "--no-renames", "--diff-filter=D", "--name-only", "-z", base, head).stdout
        return sorted(p for p in out.split("\0") if p)

    def diff(self, base: str, head: str) -> str:
        return git(self.path, "diff", "--no-color", "--no-ext-diff", base, head).stdout

    def diff_stat(self, base: str, head: str) -> str:
        return git(self.path, "diff", "--stat", "--no-color", base, head).stdout

    def tracked_files(self) -> list[str]:
        out = git(self.path, "ls-files", "-z").stdout
        return [p for p in out.split("\0") if p]

    def tree(self, rev: str = "HEAD") -> str:
        return git(self.path, "rev-parse", f"{rev}^{{tree}}").stdout.strip()

    def push(self, remote: str | None) -> PushResult:
        """Push the loop branch (forced: rollbacks rewrite it). Only refs/heads/loop/* is ever pushed."""
        sha = self.head()
        if remote is None:
            return PushResult(remote=None, branch=self.branch, sha=sha, pushed=False, message="no remote configured")
        known = git(self.repo, "remote").stdout.split()
        if remote not in known:
            return PushResult(remote=remote, branch=self.branch, sha=sha, pushed=False,
                              message=f"remote {remote!r} does not exist; the branch is local only")
        ref = f"refs/heads/{self.branch}"
        result = git(self.path, "push", "--quiet", "--force", remote, f"{sha}:{ref}", check=False)
        if result.returncode != 0:
            return PushResult(remote=remote, branch=self.branch, sha=sha, pushed=False,
                              message=f"push failed: {result.stderr.strip()}")
        return PushResult(remote=remote, branch=self.branch, sha=sha, pushed=True, message=f"pushed to {remote}")
