"""A workflow_dispatch with a loop command (the App's, or a writer's by hand) routes by the same
rules as the command: only the approved body runs, a loop PR maps to its plan, readers are refused."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from loopbot.core.route import LatestRun, approval_key, route, trigger_of
from loopbot.plans import goal_from_markdown
from tests.core.test_route import ACTORS, CONFIG, NOW, PLAN, PR, REPO, facts, ttl_plan_body, user
from tests.github.conftest import example


def dispatch(command: str, issue: int = PLAN, *, sender: str = "loopbot app", approved: str | None = "body",
             delivery: str = "d-1") -> dict[str, Any]:
    payload = example("workflow_dispatch")
    inputs = {"issue": str(issue), "command": command, "delivery": delivery}
    if approved == "body":
        inputs["approved"] = hashlib.sha256(ttl_plan_body().strip().encode()).hexdigest()
    elif approved is not None:
        inputs["approved"] = approved
    payload["inputs"] = inputs
    payload["sender"] = ({"login": "loopbot-app[bot]", "type": "Bot", "id": 9} if sender == "loopbot app"
                         else user(sender))
    return payload


def decide(payload: dict[str, Any], **kwargs: Any):
    return route("workflow_dispatch", payload, CONFIG, kwargs.pop("the_facts", None) or facts(**kwargs), REPO, now=NOW)


def _latest(**changes: Any) -> LatestRun:
    goal = goal_from_markdown(ttl_plan_body(), f"issue #{PLAN}")
    return LatestRun(**{"run_id": "r1", "finished": False, "success": False, "approved": approval_key(goal),
                        "trigger": None, **changes})


def test_the_apps_run_dispatch_runs_the_approved_body():
    intent = decide(dispatch("run"))
    assert (intent.kind, intent.plan, intent.where) == ("run", PLAN, PLAN)
    assert intent.goal is not None and intent.trigger == "dispatch:d-1"
    assert trigger_of("workflow_dispatch", dispatch("run")) == "dispatch:d-1"


def test_a_body_edited_after_the_apps_approval_does_not_run():
    intent = decide(dispatch("run", approved=hashlib.sha256(b"what the writer saw").hexdigest()))
    assert (intent.kind, intent.why) == ("refuse", "edited_after_approval")


def test_without_a_digest_only_a_loop_a_writer_approved_goes_on():
    assert decide(dispatch("resume", approved=None)).why == "not_approved"
    intent = decide(dispatch("resume", approved=None), latest=_latest())
    assert intent.kind == "resume"
    edited = decide(dispatch("resume", approved=None), latest=_latest(approved="another goal"))
    assert (edited.kind, edited.why) == ("refuse", "edited_after_approval")


@pytest.mark.parametrize("who", ["writer", "admin", "unlisted bot"])
def test_dispatchers_github_let_dispatch_may(who):
    assert decide(dispatch("run", sender=who)).kind == "run"


@pytest.mark.parametrize("who", ["read-only", "triage"])
def test_a_reader_named_as_dispatcher_is_refused(who):
    intent = decide(dispatch("run", sender=who))
    assert (intent.kind, intent.why) == ("refuse", "refused")
    assert ACTORS[who][0] in (intent.reply or "")


def test_a_permission_that_cannot_be_read_is_not_no_access():
    intent = decide(dispatch("run", sender="lookup failed"))
    assert (intent.why, intent.exit_code) == ("permission_unknown", 2)


def test_stop_and_status_on_a_loop_pr_map_to_its_plan():
    for verb in ("stop", "status"):
        intent = decide(dispatch(verb, PR))
        assert (intent.kind, intent.plan, intent.where) == (verb, PLAN, PR)


def test_a_run_on_a_loop_pr_iterates_on_it():
    intent = decide(dispatch("run", PR), latest=_latest(finished=True, success=True))
    assert (intent.kind, intent.plan, intent.feedback_pr) == ("run", PLAN, PR)


@pytest.mark.parametrize(("command", "issue"), [("context", "3"), ("merge", "3"), ("run", "x"), ("run", "0")])
def test_malformed_dispatch_inputs_are_refused(command, issue):
    payload = dispatch(command)
    payload["inputs"]["issue"] = issue
    intent = decide(payload)
    assert (intent.kind, intent.why, intent.exit_code) == ("refuse", "bad_dispatch", 2)


def test_a_dispatch_without_a_command_is_still_the_audit():
    payload = example("workflow_dispatch")
    payload.pop("inputs", None)
    assert decide(payload).kind == "audit"
