"""No paid work is lost: pushes that fail, steps that crash, replies that are rejected, cancels
that must not wait. In process, on the kvstore example with real git and bubblewrap."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from loopbot.core.state import Status, SuspendReason
from loopbot.messages import ModelReply, ModelRequest, Usage
from loopbot.ports import ModelError
from loopbot.workspace.git import git
from tests.test_runner import APPROVE, MET, demo_edits, script, session

ROLES = ("maker", "planner", "checker", "goal_checker")


def _reject_pushes(origin: Path) -> Path:
    hook = origin / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'rejected by policy' >&2\nexit 1\n")
    hook.chmod(0o755)
    return hook


def test_a_rejected_push_is_never_success_and_the_next_resume_pushes_it(make_loop, demo_script):
    loop = make_loop(demo_script)
    hook = _reject_pushes(loop.origin)
    state = loop.run()
    assert state.status == Status.SUCCESS and not state.finished  # the goal is met, but not handed over
    assert state.suspended is not None and state.suspended.reason == SuspendReason.PUSH_PENDING
    assert "rejected by policy" in state.suspended.detail
    branches = git(loop.origin, "branch", "--list", "loop/*").stdout
    assert state.branch not in branches
    calls = len(loop.model.requests)

    hook.unlink()
    final = loop.resume()
    assert final.finished and final.status == Status.SUCCESS and final.push is not None and final.push.pushed
    assert len(loop.model.requests) == calls  # only the push was retried: nothing paid for twice
    assert "def _expired" in loop.origin_file(final.branch, "kvstore.py")


def test_an_incident_never_claims_a_push_that_failed(make_loop, demo_script):
    loop = make_loop(script(session(1, "Add ttl_seconds to set()", demo_edits(demo_script, 1))),
                     budgets={"max_iterations": 1})
    hook = _reject_pushes(loop.origin)
    state = loop.run()
    assert state.suspended is not None and state.suspended.reason == SuspendReason.PUSH_PENDING
    incident = loop.session.files.incident_path
    assert not incident.exists()  # written once the stop is final, with what really happened
    hook.unlink()
    final = loop.resume()
    assert final.finished and final.stop_label == "BUDGET_EXHAUSTED(iterations)"
    assert "pushed to origin" in incident.read_text()


def test_a_crash_mid_step_keeps_the_spend_it_paid_for(make_loop, demo_script):
    loop = make_loop(demo_script)

    store = loop.session.runner.store
    record_spend, calls = store.record_spend, []

    def crash_after_second_call(run_id, charge):
        # The disk fills just after the second call's bill was written: the step cannot finish.
        record_spend(run_id, charge)
        calls.append(charge)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")

    store.record_spend = crash_after_second_call
    state = loop.run()
    assert state.suspended is not None and state.suspended.reason == SuspendReason.ERROR
    assert "No space left" in state.suspended.detail
    assert store.spent(state.run_id).model_calls == 2 == len(loop.model.requests)  # the ledger has both bills
    final = loop.resume()
    assert final.status == Status.SUCCESS
    # Every reply the provider delivered is counted, the two from the crashed step included.
    assert final.spend.model_calls == len(loop.model.requests)
    assert loop.session.store.spent(final.run_id) == final.spend.model_copy(update={"elapsed_seconds": 0.0})


class _Rejecting:
    """Answers with a bill but an unusable reply, as a provider does with a malformed tool call."""

    name = "rejecting"

    def complete(self, request: ModelRequest) -> ModelReply:
        raise ModelError("malformed tool call 'edit': input is not an object",
                         usage=Usage(input_tokens=1000, output_tokens=50), cost_usd=0.01)


def test_replies_loopbot_rejects_are_charged(make_loop, demo_script):
    loop = make_loop(demo_script, budgets={"max_iterations": 2, "stagnation_threshold": 5})
    loop.session.runner.models = dict.fromkeys(ROLES, _Rejecting())
    state = loop.run()
    assert state.finished and state.status == Status.STOPPED
    assert state.spend.model_calls == 2 and state.spend.input_tokens == 2000
    assert abs(state.spend.cost_usd - 0.02) < 1e-9


class _Hanging:
    """A model call that never answers (a hung connection), until the test ends it."""

    name = "hanging"

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def complete(self, request: ModelRequest) -> ModelReply:
        self.started.set()
        self.release.wait()
        raise ModelError("released")


def test_a_cancel_abandons_an_in_flight_model_call(make_loop, demo_script):
    loop = make_loop(demo_script)
    hanging = _Hanging()
    loop.session.runner.models = dict.fromkeys(ROLES, hanging)
    cancel = loop.session.runner.cancellation
    threading.Thread(target=lambda: hanging.started.wait() and cancel.set("SIGTERM received"), daemon=True).start()
    try:
        state = loop.run()
    finally:
        hanging.release.set()
    assert state.suspended is not None and state.suspended.reason == SuspendReason.CANCELLED
    assert state.suspended.detail == "SIGTERM received" and state.iteration == 1


def _sleep_running(marker: str) -> bool:
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker in cmdline.read_bytes().decode(errors="replace"):
                return True
        except OSError:
            continue
    return False


def test_a_cancel_kills_a_running_command_at_once(make_loop, demo_script):
    marker = "sleep 47.5"
    loop = make_loop(script(session(1, "Wait for the build", [{"run": {"command": marker}}]),
                            checker=APPROVE, goal_checker=MET))
    cancel = loop.session.runner.cancellation

    def cancel_when_running() -> None:
        while not _sleep_running(marker):
            if cancel.wait(0.02):
                return
        cancel.set("SIGINT received")

    threading.Thread(target=cancel_when_running, daemon=True).start()
    started = time.monotonic()
    state = loop.run()
    took = time.monotonic() - started
    assert state.suspended is not None and state.suspended.reason == SuspendReason.CANCELLED
    assert not _sleep_running(marker)
    assert took < 20, took  # the command alone would have held the run for 47.5 s
