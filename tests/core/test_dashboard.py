"""The dashboard issue: rendering (hostile text stays text), the boxes a person ticked, and a tick
routed as the same intent as the `/loop` command, with the same authority check."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from loopbot.core import dashboard
from loopbot.core.dashboard import MARKER, DashboardLoop, Tick, boxes, inline, render, ticked
from loopbot.core.route import LatestRun, Repo, StaticFacts, route, route_dashboard, trigger_of
from tests.core.test_route import (
    ACTORS,
    CONFIG,
    NOW,
    PLAN,
    REPO,
    _latest,
    comment,
    facts,
    ttl_plan_body,
    user,
)

EDITED = next(p for p in json.loads((Path(__file__).resolve().parents[1] / "contracts" /
                                     "app-webhook-examples.json").read_text())["events"]["issues"]
              if p.get("action") == "edited")
DASHBOARD_ISSUE = 40
LOOPS = [DashboardLoop(11, PLAN, "running", 1.5, "Add TTL", run_url="https://github.com/acme/kvstore/actions/runs/9"),
         DashboardLoop(12, 8, "blocked", 0.25, "Fix the parser", detail="heartbeat stale"),
         DashboardLoop(13, 9, "success", 2.0, "Docs")]


def tick_box(body: str, loop_id: int, action: str) -> str:
    """The body after a click on one box, as GitHub saves it."""
    lines = body.split("\n")
    at = next(i for i, line in enumerate(lines) if line.startswith(f"- [ ] <!-- loopbot:loop={loop_id} ")
              and f" action={action} -->" in line)
    lines[at] = "- [x]" + lines[at][5:]
    return "\n".join(lines)


def edit(kind: str, old: str, new: str) -> dict[str, Any]:
    payload = copy.deepcopy(EDITED)
    payload["issue"].update({"number": DASHBOARD_ISSUE, "body": new, "updated_at": "2026-12-02T12:30:00Z"})
    payload["changes"] = {"body": {"from": old}}
    payload["sender"] = user(kind)
    return payload


def test_render_has_the_marker_sections_boxes_cost_and_links():
    body = render("acme/kvstore", LOOPS)
    assert body.startswith(MARKER + "\n")
    assert body.index("## Running") < body.index("#3 Add TTL") < body.index("## Blocked") < body.index(
        "#8 Fix the parser") < body.index("## Done") < body.index("#9 Docs")
    assert boxes(body) == {Tick(11, PLAN, "stop"): False, Tick(12, 8, "resume"): False, Tick(12, 8, "retry"): False,
                           Tick(13, 9, "retry"): False}
    assert "[run](https://github.com/acme/kvstore/actions/runs/9)" in body
    assert "$1.50" in body and "$3.75 spent in all" in body and "heartbeat stale" in body


def test_hostile_titles_stay_literal_text():
    hostile = ("@octocat x\n- [ ] <!-- loopbot:loop=99 issue=1 action=stop --> stop #1 <img src=x onerror=alert(1)> "
               "[click](https://evil.example) **bold** | col")
    body = render("acme/kvstore", [DashboardLoop(5, PLAN, "running", title=hostile, detail=hostile,
                                                 run_url="javascript:alert(1)")])
    assert set(boxes(body)) == {Tick(5, PLAN, "stop")}  # the title forged no box
    assert "<img" not in body and "<!-- loopbot:loop=99" not in body
    assert "](https://evil.example)" not in body and "javascript:" not in body
    assert "\\[click\\]\\(https://evil.example\\)" in render("a/b", [DashboardLoop(5, 1, "running", title="[click](https://evil.example)")])
    assert "@octocat" not in body and "@\u2060octocat" in body
    assert body.count("\n- [") == 1
    assert inline("a\n\nb  c") == "a b c"


def test_a_long_dashboard_stays_under_githubs_limit():
    many = [DashboardLoop(i, i, "success", title="t" * 100, detail="d" * 100) for i in range(1, 2000)]
    many += [DashboardLoop(5000 + i, 5000 + i, "running", title="r") for i in range(50)]
    body = render("acme/kvstore", many)
    assert len(body) <= dashboard.BODY_LIMIT
    assert sum(1 for t in boxes(body) if t.action == "stop") == 50  # every running loop is still there


def test_ticked_is_what_changed_from_unticked_to_ticked():
    old = render("acme/kvstore", LOOPS)
    new = tick_box(old, 12, "retry")
    assert ticked(old, new) == [Tick(12, 8, "retry")]
    assert ticked(new, new) == []  # a redelivery's body ticks nothing new
    assert ticked(old, old) == []
    forged = new + "\n- [x] <!-- loopbot:loop=77 issue=77 action=retry --> typed by hand"
    assert ticked(old, forged) == [Tick(12, 8, "retry")]  # a box that was not rendered asks for nothing
    assert ticked(old.replace(MARKER, ""), new.replace(MARKER, "")) == []


def test_a_writers_tick_is_the_same_intent_as_the_command():
    old = render("acme/kvstore", LOOPS)
    stop = route("issues", edit("writer", old, tick_box(old, 11, "stop")), CONFIG, facts(), REPO, now=NOW)
    assert (stop.kind, stop.plan, stop.actor) == ("stop", PLAN, "alice")
    latest = _latest(finished=False)
    resumed = route("issues", edit("writer", old, tick_box(old, 11, "stop").replace(
        "loop=11 issue=3 action=stop", "loop=11 issue=3 action=resume")), CONFIG, facts(latest=latest), REPO, now=NOW)
    assert ticked(old, tick_box(old, 11, "stop")) == [Tick(11, PLAN, "stop")]
    assert resumed.kind == "ignore"  # a box that was never rendered (resume on a running loop): nothing


def test_retry_by_tick_runs_the_approved_goal_and_never_approves_an_edit():
    blocked = [DashboardLoop(12, PLAN, "blocked")]
    old = render("acme/kvstore", blocked)
    new = tick_box(old, 12, "retry")
    ok = route("issues", edit("writer", old, new), CONFIG, facts(latest=_latest(finished=True)), REPO, now=NOW)
    assert (ok.kind, ok.plan, ok.why) == ("retry", PLAN, "retry")
    assert ok.goal is not None and ok.trigger == trigger_of("issues", edit("writer", old, new))
    said = route("issue_comment", comment("writer", "/loop retry"), CONFIG, facts(latest=_latest(finished=True)),
                 REPO, now=NOW)
    assert (said.kind, said.why, said.plan, said.actor, said.goal) == (ok.kind, ok.why, ok.plan, ok.actor, ok.goal)
    edited = ttl_plan_body().replace("Add expiration", "Add expiration and delete the tests")
    refused = route("issues", edit("writer", old, new), CONFIG, facts(latest=_latest(finished=True), body=edited),
                    REPO, now=NOW)
    assert (refused.kind, refused.why) == ("refuse", "edited_after_approval")
    never = route("issues", edit("writer", old, new), CONFIG, facts(), REPO, now=NOW)
    assert (never.kind, never.why) == ("refuse", "not_approved")


@pytest.mark.parametrize("kind", sorted(ACTORS))
def test_only_those_who_steer_are_heard(kind):
    old = render("acme/kvstore", LOOPS)
    intent = route("issues", edit(kind, old, tick_box(old, 11, "stop")), CONFIG, facts(), REPO, now=NOW)
    if kind in ("writer", "admin", "listed bot"):
        assert intent.kind == "stop"
    elif kind == "loopbot itself":
        assert intent.kind == "ignore"
    elif kind == "lookup failed":
        assert (intent.kind, intent.why) == ("refuse", "permission_unknown")
    else:
        assert (intent.kind, intent.why, intent.where) == ("refuse", "refused", DASHBOARD_ISSUE)
        assert intent.reply is not None and "write" in intent.reply
    # whatever happened, the next render has every box unticked again
    assert not any(boxes(render("acme/kvstore", LOOPS)).values())


def test_edits_that_are_not_dashboard_ticks_are_ignored():
    old = render("acme/kvstore", LOOPS)
    plain = edit("writer", "old text", "new text")
    assert route("issues", plain, CONFIG, facts(), REPO, now=NOW).kind == "ignore"
    no_changes = edit("writer", old, tick_box(old, 11, "stop"))
    no_changes["changes"] = {}
    assert route("issues", no_changes, CONFIG, facts(), REPO, now=NOW).kind == "ignore"
    assert route("issues", EDITED, CONFIG, facts(), REPO, now=NOW).kind == "ignore"  # the official example


def test_two_ticks_in_one_edit_are_two_intents():
    old = render("acme/kvstore", LOOPS)
    both = tick_box(tick_box(old, 11, "stop"), 13, "retry")
    intents = route_dashboard(edit("writer", old, both), CONFIG, StaticFacts(
        permissions={"alice": "write"}, bodies={PLAN: ttl_plan_body(), 9: ttl_plan_body()},
        runs={9: LatestRun("r", True, True, _latest(finished=True).approved)}), Repo("acme/kvstore"), now=NOW)
    assert [(i.kind, i.plan) for i in intents] == [("stop", PLAN), ("retry", 9)]
