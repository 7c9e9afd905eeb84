"""Observers mirror the loop, they never steer it: events arrive after the step's checkpoint, an
observer that fails is retried and logged, and only the runner pushes, leased against the head it
last saw, so a maintainer's commit on the loop branch is never overwritten."""

from __future__ import annotations

import contextlib
import subprocess

from loopbot.core import events
from loopbot.core.state import Status, SuspendReason
from loopbot.workspace.git import git


def test_a_failing_observer_never_ends_or_pauses_the_loop(make_loop, demo_script):
    loop = make_loop(demo_script)

    class Broken:
        calls = 0

        def event(self, event, state):
            self.calls += 1
            raise OSError("422 Validation Failed (a progress comment GitHub would not take)")

    broken = Broken()
    loop.session.runner.observers.insert(0, broken)
    final = loop.run()
    assert final.status == Status.SUCCESS and final.suspended is None
    runner = loop.session.runner
    assert runner.observer_failures and all("Broken failed on" in note for note in runner.observer_failures)
    assert broken.calls == 3 * len(runner.observer_failures)  # each event asked three times
    assert [kind for kind, _, _ in loop.events.items][-1] == "finished"  # the others were still told


def test_events_of_a_step_arrive_after_its_checkpoint(make_loop, demo_script):
    loop = make_loop(demo_script)
    seen = []

    class Reader:
        def event(self, event, state):
            if isinstance(event, (events.Decided, events.Made, events.CheckRan)):
                saved = [name for _, name in loop.session.store.steps(state.run_id)]
                seen.append((event.kind, saved[-1]))

    loop.session.runner.observers.append(Reader())
    loop.run()
    assert seen and all(step == {"decided": "decide", "made": "make", "verdict": "evaluate"}[kind]
                        for kind, step in seen)


def test_the_finished_event_says_the_outcome(make_loop, demo_script):
    loop = make_loop(demo_script)
    final = loop.run()
    (_, data), = loop.events.of("finished")
    assert data == {"outcome": final.status.value} and final.status == Status.SUCCESS


def _maintainer_pushes(origin, branch: str, tmp_path) -> str:
    clone = tmp_path / "maintainer"
    subprocess.run(["git", "clone", "--quiet", "--branch", branch, str(origin), str(clone)], check=True)
    (clone / "NOTES.md").write_text("a maintainer's fixup\n")
    git(clone, "add", "NOTES.md")
    git(clone, "-c", "user.name=m", "-c", "user.email=m@x", "commit", "-qm", "fixup")
    git(clone, "push", "--quiet", "origin", branch)
    return git(clone, "rev-parse", "HEAD").stdout.strip()


def test_a_maintainers_commit_pushed_while_the_loop_runs_is_never_overwritten(make_loop, demo_script, tmp_path):
    loop = make_loop(demo_script)
    loop.session.state.remote_head = ""  # the branch is not on origin yet: every push is leased
    fixups = []

    class Maintainer:
        def event(self, event, state):
            if isinstance(event, events.Pushed) and event.pushed and not fixups:
                fixups.append(_maintainer_pushes(loop.origin, state.branch, tmp_path))

    loop.session.runner.observers.append(Maintainer())
    final = loop.run()
    assert fixups, "the loop pushed its progress once before its end"
    assert git(loop.origin, "rev-parse", final.branch).stdout.strip() == fixups[0]  # kept
    assert final.suspended is not None and final.suspended.reason == SuspendReason.PUSH_PENDING
    assert "a commit loopbot did not make" in final.suspended.detail and "kept, not overwritten" in final.suspended.detail


def test_a_kill_between_a_push_and_its_checkpoint_resumes_and_pushes(make_loop, demo_script):
    loop = make_loop(demo_script)
    loop.session.state.remote_head = ""
    workspace = loop.session.runner.workspace
    push, killed = workspace.push, []

    class Killed(BaseException):
        pass

    def push_then_die(*args, **kwargs):
        result = push(*args, **kwargs)
        if result.pushed and not killed:
            killed.append(result.sha)
            raise Killed()  # the push landed; the checkpoint that records it never did
        return result

    workspace.push = push_then_die
    with contextlib.suppress(Killed):
        loop.run()
    assert killed and git(loop.origin, "rev-parse", loop.session.state.branch).stdout.strip() == killed[0]
    loop.session.store.release(loop.session.state.run_id)  # what the dead process's exit would have done
    final = loop.resume()
    assert final.status == Status.SUCCESS and final.push is not None and final.push.pushed
    assert git(loop.origin, "rev-parse", final.branch).stdout.strip() == final.best.sha
