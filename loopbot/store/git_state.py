"""Loop state kept in the repository itself, on `loop/state-<issue>` (never main), so a fresh
Actions runner can resume a loop whose previous run died. One commit per checkpoint."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from loopbot.core.andon import Lesson
from loopbot.core.redact import NO_SECRETS
from loopbot.core.state import LoopState, load_state
from loopbot.errors import StateError
from loopbot.workspace.git import git

STATE_FILE = "state.json"


class GitStateStore:
    def __init__(self, repo: Path, remote: str | None, branch: str, *,
                 cancel_check: Callable[[], bool] = lambda: False, redact: Callable[[str], str] = NO_SECRETS):
        if not branch.startswith("loop/"):
            raise StateError("state branches are loop/*")
        self.repo, self.remote, self.branch = repo, remote, branch
        self.cancel_check = cancel_check
        self.redact = redact
        self.ref = f"refs/heads/{branch}"

    def fetch(self) -> bool:
        """Bring the remote's state branch here; False when there is none yet."""
        if self.remote is None:
            return git(self.repo, "rev-parse", "--verify", "--quiet", self.ref, check=False).returncode == 0
        result = git(self.repo, "fetch", "--quiet", self.remote, f"+{self.ref}:{self.ref}", check=False)
        return result.returncode == 0

    def save(self, state: LoopState, step: str) -> None:
        payload = self.redact(json.dumps(state.model_dump(mode="json"), indent=1, sort_keys=True))
        blob = git(self.repo, "hash-object", "-w", "--stdin", input_text=payload).stdout.strip()
        tree = git(self.repo, "mktree", input_text=f"100644 blob {blob}\t{STATE_FILE}\n").stdout.strip()
        parent = git(self.repo, "rev-parse", "--verify", "--quiet", self.ref, check=False).stdout.strip()
        args = ["commit-tree", tree, "-m", f"loopbot state: {state.run_id} after {step} (step {state.steps_completed})"]
        if parent:
            args += ["-p", parent]
        # The workspace head rides along as a second parent: pushing the state pushes the loop's
        # commits too, so a fresh runner can reset to it even before the loop branch was pushed.
        if git(self.repo, "cat-file", "-e", f"{state.workspace_head}^{{commit}}", check=False).returncode == 0:
            args += ["-p", state.workspace_head]
        commit = git(self.repo, *args).stdout.strip()
        git(self.repo, "update-ref", self.ref, commit)
        if self.remote is not None:
            git(self.repo, "push", "--quiet", "--force", self.remote, f"{commit}:{self.ref}")

    def load(self, run_id: str) -> LoopState:
        shown = git(self.repo, "show", f"{self.ref}:{STATE_FILE}", check=False)
        if shown.returncode != 0:
            raise StateError(f"no loop state on {self.branch}")
        state = load_state(json.loads(shown.stdout))
        if run_id and state.run_id != run_id:
            raise StateError(f"{self.branch} holds run {state.run_id}, not {run_id}")
        return state

    def latest(self) -> LoopState | None:
        return self.load("") if self.fetch() else None

    def list_runs(self) -> Sequence[LoopState]:
        latest = self.latest()
        return [latest] if latest else []

    def request_cancel(self, run_id: str) -> None:
        raise StateError("on GitHub a loop is stopped with `/loop stop` (the loopbot:stop label)")

    def cancel_requested(self, run_id: str) -> bool:
        return self.cancel_check()

    def clear_cancel(self, run_id: str) -> None:
        """The stop label is removed by whoever starts the loop again."""

    def close(self) -> None:
        pass

    def add_lessons(self, repo: str, lessons: Sequence[Lesson]) -> None:
        """On GitHub, lessons travel in the incident records the documentation loop files in 90_LOG/."""

    def lessons(self, repo: str, limit: int = 12) -> list[str]:
        return []
