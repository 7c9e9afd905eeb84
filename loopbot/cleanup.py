"""`loopbot gc`: what dead runs left behind, found from the store's records and removed.

Every branch loopbot makes is recorded (with its worktree) before it is made, so debris is known
by name, never guessed from a branch pattern: a user's own loop/* branches are never touched.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from loopbot.core.state import LoopState, StopReason
from loopbot.sandbox import debris
from loopbot.store.sqlite import SqliteStore
from loopbot.workspace.git import git, variant_owner


@dataclass(frozen=True)
class Debris:
    repo: str
    branch: str
    run_id: str
    worktree: str


def collect(repo: Path, state_root: Path, store: SqliteStore, *, dry_run: bool = False) -> list[str]:
    """Remove (or, with dry_run, list) orphan worktrees, branches and scratch directories."""
    found: list[str] = []
    repo_key = str(repo)
    states: dict[str, LoopState] = {}
    for run_id in store.run_ids():
        try:
            states[run_id] = store.load(run_id)
        except Exception:  # an unreadable state is left for a human; it is listed by `status`
            continue
    kept_worktrees: set[str] = set()
    for state in states.values():
        # Any repository's: one state directory may serve several (LOOPBOT_STATE_DIR).
        if not state.finished or store.live_owner(state.run_id):
            kept_worktrees.add(str(Path(state.worktree).resolve()))
    recorded = {str(Path(w).resolve()): r for r, _b, _i, w in store.branches()}
    recorded.update({str(Path(st.worktree).resolve()): st.repo for st in states.values()})

    def remove_worktree(path: str, why: str) -> None:
        if Path(path).exists():
            found.append(f"worktree {path} ({why})")
            if not dry_run:
                shutil.rmtree(path, ignore_errors=True)

    def remove_branch(branch: str, why: str) -> None:
        exists = git(repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False).returncode == 0
        if exists:
            found.append(f"branch {branch} ({why})")
            if not dry_run:
                git(repo, "branch", "-D", branch, check=False)

    for entry_repo, branch, run_id, worktree in store.branches():
        if entry_repo != repo_key or str(Path(worktree).resolve()) in kept_worktrees:
            continue
        known = states.get(run_id)
        if known is None:
            remove_worktree(worktree, "run not recorded: a start that failed")
            if not dry_run:
                git(repo, "worktree", "prune", check=False)
            remove_branch(branch, "run not recorded: a start that failed")
            if not dry_run:
                store.forget_branch(entry_repo, branch)
        elif known.finished:
            remove_worktree(worktree, f"run {run_id} finished")
            if known.stop_reason == StopReason.ABANDONED:
                if not dry_run:
                    git(repo, "worktree", "prune", check=False)
                remove_branch(branch, f"run {run_id} abandoned")

    worktrees = state_root / "worktrees"
    if worktrees.is_dir():
        for child in sorted(worktrees.iterdir()):
            owner = variant_owner(child)
            key = str((owner or child).resolve())
            if key not in kept_worktrees and child.is_dir() and recorded.get(key, repo_key) == repo_key:
                remove_worktree(str(child), "no resumable run uses it")
    if not dry_run:
        git(repo, "worktree", "prune", check=False)

    found += debris.sweep(dry_run=dry_run)
    return found
