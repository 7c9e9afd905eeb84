"""Loop state kept in the repository itself, on `loop/state-<issue>` (never main), so a fresh
Actions runner can resume a loop whose previous run died. One commit per checkpoint.

One runner per plan, also outside the workflow's concurrency group (another workflow, a manual
dispatch, the App): the ref's tip holds a lease (run id, runner, heartbeat) and every write is a
compare-and-swap of the ref against the tip this runner last saw (`--force-with-lease=<ref>:<tip>`,
never a blind force). A second runner finds a fresh lease and is busy; a stale one may be taken
over; the runner it was taken from has its next write refused (LeaseLost) and stops.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from loopbot.config import Labels
from loopbot.core.andon import Lesson
from loopbot.core.budgets import Charge, Spend
from loopbot.core.lease import LEASE_SECONDS, Lease, may_take
from loopbot.core.redact import NO_SECRETS
from loopbot.core.state import LoopState, load_state
from loopbot.errors import LeaseHeld, LeaseLost, StateError
from loopbot.store.git_memory import GitMemory
from loopbot.workspace.git import commits_of, git, write_blobs

STATE_FILE = "state.json"
LEDGER_FILE = "ledger.jsonl"
LEASE_FILE = "lease.json"
CLAIM_ATTEMPTS = 3


class LeaseBusy(LeaseHeld):
    """Another runner holds the plan's lease and renewed it lately: this one starts nothing."""

    status = "busy"

    def __init__(self, run_id: str, lease: Lease, limit: float):
        super().__init__(run_id, lease.runner)
        self.lease = lease
        self.args = (f"run {lease.run_id} of this plan is being run by {lease.runner} (its lease was renewed "
                     f"{_ago(lease)}); nothing was started. `/loop stop` stops it; once it has ended, or from "
                     f"{lease.free_at(limit)} if it stops renewing its lease, `/loop resume` continues it",)


def _ago(lease: Lease) -> str:
    return time.strftime("at %H:%M:%S UTC", time.gmtime(lease.heartbeat))


class GitStateStore:
    def __init__(self, repo: Path, remote: str | None, branch: str, *,
                 cancel_check: Callable[[], bool] = lambda: False, redact: Callable[[str], str] = NO_SECRETS,
                 stop_label: str = Labels().stop, runner: str = "", clock: Callable[[], float] = time.time,
                 lease_seconds: float = LEASE_SECONDS, heartbeat_seconds: float | None = None,
                 job: str = "", holder_ended: Callable[[Lease], bool] = lambda lease: False):
        """`runner` names who writes (the Action passes its workflow run and host); `heartbeat_seconds`
        renews a held lease from a background thread between checkpoints (None: only writes renew it);
        `job` is this runner's job handle in the lease, and `holder_ended` tells whether another
        holder's job has ended (asked only of a fresh lease held by someone else)."""
        if not branch.startswith("loop/"):
            raise StateError("state branches are loop/*")
        self.repo, self.remote, self.branch = repo, remote, branch
        self.cancel_check, self.stop_label = cancel_check, stop_label
        self.redact = redact
        self.ref = f"refs/heads/{branch}"
        self.runner = runner or "a runner"
        self.holder = f"{self.runner} #{uuid.uuid4().hex[:12]}"
        self.clock, self.lease_seconds, self.heartbeat_seconds = clock, lease_seconds, heartbeat_seconds
        self.job, self.holder_ended = job, holder_ended
        self._ledger: list[tuple[str, Charge]] | None = None
        self._seen: str | None = None  # the remote's tip as this runner last saw or wrote it ("" = none)
        self._held: str | None = None  # the run id whose lease this runner holds
        self._lost: LeaseLost | None = None  # fenced out: every later write is refused
        self._lock = threading.RLock()  # the heartbeat thread writes too
        self._beating: tuple[threading.Event, threading.Thread] | None = None
        self.memory = GitMemory(repo, remote, redact=redact)

    def fetch(self) -> bool:
        """Bring the remote's state branch here; False when there is none yet."""
        self._ledger = None
        if self.remote is None:
            found = self._local_tip()
            self._seen = found
            return bool(found)
        result = git(self.repo, "fetch", "--quiet", self.remote, f"+{self.ref}:{self.ref}", check=False)
        # A failed fetch (no such ref yet, or no network) expects no ref: a push then fails safe.
        self._seen = self._local_tip() if result.returncode == 0 else ""
        return result.returncode == 0

    # -- the lease --------------------------------------------------------------------------------
    def create(self, state: LoopState) -> None:
        """A new run on the plan: the lease is taken in the same compare-and-swap as its first state."""
        with self._lock:
            for _ in range(CLAIM_ATTEMPTS):
                self._check_free(state.run_id)
                payload = self._state_text(state)
                if self._write(payload, f"loopbot state: {state.run_id} after created (step {state.steps_completed})",
                               state.workspace_head, self._lease(state.run_id), must=True, contended=True):
                    self._took(state.run_id)
                    return
            self._check_free(state.run_id)
            raise StateError(f"could not take the lease on {self.branch}: {CLAIM_ATTEMPTS} pushes were rejected")

    def claim(self, run_id: str) -> None:
        """Take the plan's lease to resume `run_id`: LeaseBusy while another runner's lease is fresh."""
        with self._lock:
            for _ in range(CLAIM_ATTEMPTS):
                self._check_free(run_id)
                shown = git(self.repo, "show", f"{self.ref}:{STATE_FILE}", check=False)
                if shown.returncode != 0:
                    raise StateError(f"no loop state on {self.branch}")
                if self._write(shown.stdout, f"loopbot lease: {self.runner} takes {run_id}", None,
                               self._lease(run_id), must=True, contended=True):
                    self._took(run_id)
                    return
            self._check_free(run_id)
            raise StateError(f"could not take the lease on {self.branch}: {CLAIM_ATTEMPTS} pushes were rejected")

    def renew(self) -> None:
        """The heartbeat: the held lease renewed now (LeaseLost when another runner took it)."""
        with self._lock:
            if self._held is None:
                return
            shown = git(self.repo, "show", f"{self.ref}:{STATE_FILE}", check=False)
            if shown.returncode == 0:
                self._write(shown.stdout, f"loopbot lease: heartbeat of {self.runner}", None,
                            self._lease(self._held), must=False)

    def release(self, run_id: str) -> None:
        """Let the lease go (a start that failed): best effort, a lease not renewed goes stale anyway."""
        self._stop_heartbeat()
        with self._lock:
            if self._held != run_id or self._lost is not None:
                return
            self._held = None
            shown = git(self.repo, "show", f"{self.ref}:{STATE_FILE}", check=False)
            if shown.returncode == 0:
                with contextlib.suppress(LeaseLost):  # taken over meanwhile: nothing of ours to let go
                    self._write(shown.stdout, f"loopbot lease: {self.runner} lets {run_id} go", None, None, must=False)

    def delete(self, run_id: str) -> None:
        """A start that failed before its worktree existed: the state branch is left for the next run,
        the lease let go so that run need not wait for it to go stale."""
        self.release(run_id)

    def _lease(self, run_id: str) -> Lease:
        return Lease(run_id=run_id, runner=self.runner, holder=self.holder, heartbeat=self.clock(), job=self.job)

    def _current_lease(self) -> Lease | None:
        shown = git(self.repo, "show", f"{self.ref}:{LEASE_FILE}", check=False)
        if shown.returncode != 0 or not shown.stdout.strip():
            return None
        try:
            return Lease.model_validate_json(shown.stdout)
        except ValueError:
            return None  # a damaged lease holds nobody: the compare-and-swap still decides

    def _check_free(self, run_id: str) -> None:
        """Fetch, and raise LeaseBusy when another runner's lease on the plan is fresh."""
        self.fetch()
        lease = self._current_lease()
        if may_take(lease, self.holder, self.clock(), self.lease_seconds):
            return
        assert lease is not None
        if not self.holder_ended(lease):
            raise LeaseBusy(run_id, lease, self.lease_seconds)

    def _took(self, run_id: str) -> None:
        self._held, self._lost = run_id, None
        if self.heartbeat_seconds is not None and self._beating is None:
            stop = threading.Event()
            every = self.heartbeat_seconds

            def beat() -> None:
                while not stop.wait(every) and self.repo.is_dir():
                    try:
                        self.renew()
                    except LeaseLost:
                        return  # the next checkpoint raises it too, and the runner stops
                    except Exception:  # a failed beat is tried again; the lease's age decides
                        continue

            thread = threading.Thread(target=beat, name=f"lease-{self.branch}", daemon=True)
            self._beating = (stop, thread)
            thread.start()

    def _stop_heartbeat(self) -> None:
        if self._beating is not None:
            stop, thread = self._beating
            self._beating = None
            stop.set()
            if thread is not threading.current_thread():
                thread.join(timeout=30)

    # -- writing ----------------------------------------------------------------------------------
    def save(self, state: LoopState, step: str) -> None:
        """A checkpoint, leased: LeaseLost when another runner took the plan over. A final or
        suspended state lets the lease go (a `/loop resume` needs no wait)."""
        final = state.finished or state.suspended is not None
        with self._lock:
            if self._held is None and self._lost is None and not final:
                self._check_free(state.run_id)  # a save without a claim takes the lease like one
                self._held = state.run_id
            lease = None if final else self._lease(state.run_id)
            self._write(self._state_text(state),
                        f"loopbot state: {state.run_id} after {step} (step {state.steps_completed})",
                        state.workspace_head, lease, must=True)
            if final:
                self._held = None
        if final:
            self._stop_heartbeat()

    def _state_text(self, state: LoopState) -> str:
        return self.redact(json.dumps(state.model_dump(mode="json"), indent=1, sort_keys=True))

    def _write(self, payload: str, message: str, workspace_head: str | None, lease: Lease | None, *,
               must: bool, contended: bool = False) -> bool:
        """Commit the state, the ledger and `lease`, and compare-and-swap the remote ref against the
        tip last seen. True when it landed; False when nothing landed for want of the network (and
        not `must`), or, `contended`, when another runner moved the ref first. Otherwise a moved
        ref is LeaseLost (this runner is fenced out from then on); a failed `must` push a StateError."""
        if self._lost is not None:
            raise self._lost
        if self._seen is None:
            self.fetch()
        expected = self._seen or ""
        commit = self._commit(payload, message, workspace_head, lease)
        if self.remote is None:
            # The local ref is the shared one: update-ref compares and swaps it.
            swapped = git(self.repo, "update-ref", self.ref, commit, expected, check=False).returncode == 0
            if swapped:
                self._seen = commit
                return True
            return self._moved(contended)
        pushed = self._push_leased(commit, expected)
        if pushed.returncode == 0:
            self._landed(commit)
            return True
        actual = self._remote_tip()
        if actual == commit:  # it landed; only the answer was lost
            self._landed(commit)
            return True
        if actual and actual != expected and self._own_earlier(actual, commit):
            # An earlier write of this runner's landed though its answer was lost (it was kept here
            # and the new commit builds on it): not another runner's, so push again against it.
            if self._push_leased(commit, actual).returncode == 0:
                self._landed(commit)
                return True
            actual = self._remote_tip()
        if actual is None or actual == expected:
            # Nothing landed and nobody else wrote: the network, or a refusal that is no lease's.
            if must:
                raise StateError(f"could not push {self.ref} to {self.remote}: {pushed.stderr.strip()[-300:]}")
            git(self.repo, "update-ref", self.ref, commit)  # kept here: the next push carries it
            return False
        return self._moved(contended)

    def _push_leased(self, commit: str, expected: str) -> subprocess.CompletedProcess[str]:
        """Compare-and-swap of the remote ref: `commit` lands only where the ref is still `expected`."""
        assert self.remote is not None
        return git(self.repo, "push", "--quiet", f"--force-with-lease={self.ref}:{expected}", self.remote,
                   f"{commit}:{self.ref}", check=False)

    def _own_earlier(self, tip: str, commit: str) -> bool:
        """Whether the remote's `tip` is one of this runner's own commits that `commit` descends from."""
        return git(self.repo, "merge-base", "--is-ancestor", tip, commit, check=False).returncode == 0

    def _landed(self, commit: str) -> None:
        git(self.repo, "update-ref", self.ref, commit)
        self._seen = commit

    def _moved(self, contended: bool) -> bool:
        """Another runner wrote the ref since this one last saw it."""
        if contended:
            return False  # a claim lost a race: it looks again
        self.fetch()
        lease = self._current_lease()
        run_id = self._held or (lease.run_id if lease else "") or self.branch
        self._lost = LeaseLost(run_id, lease.runner if lease else "another runner")
        self._held = None
        raise self._lost

    def _remote_tip(self) -> str | None:
        """The remote's tip of the ref ("" when it has none); None when the remote cannot be asked."""
        assert self.remote is not None
        listed = git(self.repo, "ls-remote", self.remote, self.ref, check=False)
        if listed.returncode != 0:
            return None
        return listed.stdout.split()[0] if listed.stdout.strip() else ""

    def _local_tip(self) -> str:
        found = git(self.repo, "rev-parse", "--verify", "--quiet", self.ref, check=False)
        return found.stdout.strip() if found.returncode == 0 else ""

    def _commit(self, payload: str, message: str, workspace_head: str | None, lease: Lease | None) -> str:
        files = {STATE_FILE: payload}
        ledger = self._read_ledger()
        if ledger:
            files[LEDGER_FILE] = "".join(json.dumps({"run_id": run_id, "charge": charge.model_dump()}) + "\n"
                                         for run_id, charge in ledger)
        if lease is not None:
            files[LEASE_FILE] = lease.model_dump_json(indent=1) + "\n"
        names = sorted(files)
        blobs = write_blobs(self.repo, [files[name] for name in names])
        entries = "".join(f"100644 blob {blob}\t{name}\n" for name, blob in zip(names, blobs, strict=True))
        tree = git(self.repo, "mktree", input_text=entries).stdout.strip()
        # Built on this clone's tip: a ledger commit whose push failed rides along with the next one.
        # The workspace head rides along as a second parent: pushing the state pushes the loop's
        # commits too, so a fresh runner can reset to it even before the loop branch was pushed.
        found = commits_of(self.repo, [self.ref, workspace_head] if workspace_head else [self.ref])
        args = ["commit-tree", tree, "-m", message]
        for parent in found:  # the tip, then the workspace head; either may not exist
            if parent:
                args += ["-p", parent]
        return git(self.repo, *args).stdout.strip()

    def _read_ledger(self) -> list[tuple[str, Charge]]:
        if self._ledger is None:
            shown = git(self.repo, "show", f"{self.ref}:{LEDGER_FILE}", check=False)
            lines = shown.stdout.splitlines() if shown.returncode == 0 else []
            entries = [json.loads(line) for line in lines if line.strip()]
            self._ledger = [(str(e["run_id"]), Charge.model_validate(e["charge"])) for e in entries]
        return self._ledger

    def record_spend(self, run_id: str, charge: Charge) -> None:
        """The ledger rides on the state branch: committed, and pushed at once (best effort; the
        next checkpoint's push carries it otherwise), so a runner that dies keeps its bill. A
        runner fenced out is told at once (LeaseLost): its bill never lands on the other's."""
        with self._lock:
            if self._lost is not None:
                raise self._lost
            ledger = self._read_ledger()
            shown = git(self.repo, "show", f"{self.ref}:{STATE_FILE}", check=False)
            if shown.returncode != 0:
                ledger.append((run_id, charge))
                return  # no state yet: the next save writes the ledger with it
            ledger.append((run_id, charge))
            lease = self._lease(self._held) if self._held is not None else None
            try:
                self._write(shown.stdout, f"loopbot ledger: {run_id} call {len(ledger)}", None, lease, must=False)
            except LeaseLost:
                ledger.pop()
                raise

    # -- reading ----------------------------------------------------------------------------------
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
        self._stop_heartbeat()

    def add_lessons(self, repo: str, lessons: Sequence[Lesson], run_id: str = "") -> None:
        """The repository's lesson book, on its memory branch: every later runner reads it."""
        self.memory.add_lessons(lessons, run_id)

    def lessons(self, repo: str, limit: int = 12) -> list[str]:
        return self.memory.lessons(limit)
