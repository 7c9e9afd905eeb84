"""Loop state kept in the repository itself, on `loop/state-<issue>` (never main), so a fresh
Actions runner can resume a loop whose previous run died. One commit per checkpoint."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from loopbot.config import Labels
from loopbot.core.andon import Lesson
from loopbot.core.budgets import Charge, Spend
from loopbot.core.redact import NO_SECRETS
from loopbot.core.state import LoopState, load_state
from loopbot.errors import StateError
from loopbot.store.git_memory import GitMemory
from loopbot.workspace.git import git

STATE_FILE = "state.json"
LEDGER_FILE = "ledger.jsonl"


class GitStateStore:
    def __init__(self, repo: Path, remote: str | None, branch: str, *,
                 cancel_check: Callable[[], bool] = lambda: False, redact: Callable[[str], str] = NO_SECRETS,
                 stop_label: str = Labels().stop):
        if not branch.startswith("loop/"):
            raise StateError("state branches are loop/*")
        self.repo, self.remote, self.branch = repo, remote, branch
        self.cancel_check, self.stop_label = cancel_check, stop_label
        self.redact = redact
        self.ref = f"refs/heads/{branch}"
        self._ledger: list[tuple[str, Charge]] | None = None
        self.memory = GitMemory(repo, remote, redact=redact)

    def fetch(self) -> bool:
        """Bring the remote's state branch here; False when there is none yet."""
        self._ledger = None
        if self.remote is None:
            return git(self.repo, "rev-parse", "--verify", "--quiet", self.ref, check=False).returncode == 0
        result = git(self.repo, "fetch", "--quiet", self.remote, f"+{self.ref}:{self.ref}", check=False)
        return result.returncode == 0

    # One owner per loop on GitHub comes from the workflow's concurrency group per issue; the
    # lease methods are there for the Store port and need do nothing more.
    def create(self, state: LoopState) -> None:
        self.save(state, "created")

    def claim(self, run_id: str) -> None:
        """The concurrency group already serializes runners of one issue."""

    def release(self, run_id: str) -> None:
        """Nothing held: see claim."""

    def delete(self, run_id: str) -> None:
        """A start that failed before its worktree existed: the state branch is left for the next run."""

    def save(self, state: LoopState, step: str) -> None:
        payload = self.redact(json.dumps(state.model_dump(mode="json"), indent=1, sort_keys=True))
        self._commit(payload, f"loopbot state: {state.run_id} after {step} (step {state.steps_completed})",
                     state.workspace_head, push_check=True)

    def _commit(self, payload: str, message: str, workspace_head: str | None, *, push_check: bool) -> None:
        blob = git(self.repo, "hash-object", "-w", "--stdin", input_text=payload).stdout.strip()
        entries = f"100644 blob {blob}\t{STATE_FILE}\n"
        ledger = self._read_ledger()
        if ledger:
            text = "".join(json.dumps({"run_id": run_id, "charge": charge.model_dump()}) + "\n"
                           for run_id, charge in ledger)
            ledger_blob = git(self.repo, "hash-object", "-w", "--stdin", input_text=text).stdout.strip()
            entries += f"100644 blob {ledger_blob}\t{LEDGER_FILE}\n"
        tree = git(self.repo, "mktree", input_text=entries).stdout.strip()
        parent = git(self.repo, "rev-parse", "--verify", "--quiet", self.ref, check=False).stdout.strip()
        args = ["commit-tree", tree, "-m", message]
        if parent:
            args += ["-p", parent]
        # The workspace head rides along as a second parent: pushing the state pushes the loop's
        # commits too, so a fresh runner can reset to it even before the loop branch was pushed.
        if workspace_head and git(self.repo, "cat-file", "-e", f"{workspace_head}^{{commit}}",
                                  check=False).returncode == 0:
            args += ["-p", workspace_head]
        commit = git(self.repo, *args).stdout.strip()
        git(self.repo, "update-ref", self.ref, commit)
        if self.remote is not None:
            git(self.repo, "push", "--quiet", "--force", self.remote, f"{commit}:{self.ref}", check=push_check)

    def _read_ledger(self) -> list[tuple[str, Charge]]:
        if self._ledger is None:
            shown = git(self.repo, "show", f"{self.ref}:{LEDGER_FILE}", check=False)
            lines = shown.stdout.splitlines() if shown.returncode == 0 else []
            entries = [json.loads(line) for line in lines if line.strip()]
            self._ledger = [(str(e["run_id"]), Charge.model_validate(e["charge"])) for e in entries]
        return self._ledger

    def record_spend(self, run_id: str, charge: Charge) -> None:
        """The ledger rides on the state branch: committed, and pushed at once (best effort; the
        next checkpoint's push carries it otherwise), so a runner that dies keeps its bill."""
        ledger = self._read_ledger()
        ledger.append((run_id, charge))
        shown = git(self.repo, "show", f"{self.ref}:{STATE_FILE}", check=False)
        if shown.returncode != 0:
            return  # no state yet: the next save writes the ledger with it
        self._commit(shown.stdout, f"loopbot ledger: {run_id} call {len(ledger)}", None, push_check=False)

    def spent(self, run_id: str) -> Spend | None:
        mine = [charge for owner, charge in self._read_ledger() if owner == run_id]
        if not mine:
            return None
        total = Spend()
        for charge in mine:
            charge.charge_to(total)
        return total

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
        raise StateError(f"on GitHub a loop is stopped with `/loop stop` (the {self.stop_label} label)")

    def cancel_requested(self, run_id: str) -> bool:
        return self.cancel_check()

    def clear_cancel(self, run_id: str) -> None:
        """The stop label is removed by whoever starts the loop again."""

    def close(self) -> None:
        pass

    def add_lessons(self, repo: str, lessons: Sequence[Lesson], run_id: str = "") -> None:
        """The repository's lesson book, on its memory branch: every later runner reads it."""
        self.memory.add_lessons(lessons, run_id)

    def lessons(self, repo: str, limit: int = 12) -> list[str]:
        return self.memory.lessons(limit)
