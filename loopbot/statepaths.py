"""Where a repository's runs are kept: the SQLite store, each run's files and worktree. Apart from
the session so that commands which only read the store (`status`, `stop`) need none of its adapters."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from loopbot.workspace.git import common_dir


@dataclass
class Paths:
    root: Path

    @classmethod
    def for_repo(cls, repo: Path, override: Path | None = None) -> Paths:
        return cls(override if override is not None else common_dir(repo) / "loopbot")

    @property
    def db(self) -> Path:
        return self.root / "loopbot.db"

    def run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / run_id

    def worktree(self, run_id: str) -> Path:
        return self.root / "worktrees" / run_id
