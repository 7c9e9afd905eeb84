"""The inbound routing table: every event x actor kind x command, decided by the pure router from
official payloads and tables of facts. Milliseconds: no git, no GitHub."""

from __future__ import annotations

import copy
import functools
from datetime import UTC, datetime
from typing import Any

import pytest

from loopbot.config import Config
from loopbot.core.route import (
    UNKNOWN,
    LatestRun,
    LoopPr,
    Repo,
    StaticFacts,
    approval_key,
    route,
    trigger_of,
)
from loopbot.plans import goal_from_markdown
from tests.github.conftest import example
from tests.github.conftest import ttl_plan_body as _plan_body

ttl_plan_body = functools.cache(_plan_body)

PLAN, PR = 3, 7
BRANCH = f"loop/{PLAN}-kvstore-ttl"
REPO = Repo("acme/kvstore")
NOW = datetime(2026, 12, 2, 12, tzinfo=UTC)
CONFIG = Config.model_validate({"bots": ["renovate"]})

# actor kind → (login, GitHub user type, repository permission)
ACTORS: dict[str, tuple[str, str, str]] = {
    "writer": ("alice", "User", "write"),
    "admin": ("olivia", "User", "admin"),
    "read-only": ("eve", "User", "read"),
    "triage": ("tom", "User", "triage"),
    "unlisted bot": ("dependabot[bot]", "Bot", "write"),
    "listed bot": ("renovate[bot]", "Bot", "none"),
    "loopbot itself": ("github-actions[bot]", "Bot", "write"),
    "lookup failed": ("carol", "User", UNKNOWN),
}
STEERS = {"writer", "admin", "listed bot"}


def facts(*, latest: LatestRun | None = None, prs: tuple[LoopPr, ...] = (LoopPr(PR, BRANCH, "2026-12-01T00:00:00Z"),),
          body: str | None = None) -> StaticFacts:
    return StaticFacts(permissions={login: perm for login, _, perm in ACTORS.values()}, prs=prs,
                       bodies={PLAN: body if body is not None else ttl_plan_body()}, runs={PLAN: latest} if latest else {})


def user(kind: str) -> dict[str, Any]:
    login, type_, _ = ACTORS[kind]
    return {"login": login, "type": type_, "id": 1}


def comment(kind: str, body: str, *, on_pr: bool = False, base: dict[str, Any] | None = None) -> dict[str, Any]:
    payload = base or example("issue_comment", "created")
    payload["issue"].update({"number": PR if on_pr else PLAN, "body": "" if on_pr else ttl_plan_body()})
    payload["issue"].pop("pull_request", None)
    if on_pr:
        payload["issue"]["pull_request"] = {"url": "https://api.github.com/repos/acme/kvstore/pulls/7"}
    payload["comment"].update({"body": body, "user": user(kind), "id": 991})
    return payload


def labeled(kind: str, label: str = "loopbot:run", base: dict[str, Any] | None = None) -> dict[str, Any]:
    payload = base or example("issues", "labeled")
    payload["issue"].update({"number": PLAN, "body": ttl_plan_body()})
    payload["label"]["name"] = label
    payload["sender"] = user(kind)
    return payload


def review(kind: str, state: str = "changes_requested", head_repo: str = "acme/kvstore", ref: str = BRANCH,
           body: str = "please add a test for expiry at the boundary", base: dict[str, Any] | None = None
           ) -> dict[str, Any]:
    payload = base or example("pull_request_review", "submitted")
    payload["review"].update({"state": state, "body": body, "user": user(kind), "id": 55})
    payload["pull_request"].update({"number": PR})
    payload["pull_request"]["head"].update({"ref": ref, "repo": {"full_name": head_repo}})
    return payload


def decide(event: str, payload: dict[str, Any], the_facts: StaticFacts | None = None, **kwargs: Any):
    return route(event, payload, kwargs.pop("config", CONFIG), the_facts or facts(), REPO, now=NOW, **kwargs)


# -- the table: comments -------------------------------------------------------------------------
COMMAND_KINDS = {"/loop run": "run", "/loop retry": "retry", "/loop resume": "run", "/loop status": "status",
                 "/loop stop": "stop", "/loop context keep the API async": "context"}


@pytest.mark.parametrize("kind", list(ACTORS))
@pytest.mark.parametrize("command", list(COMMAND_KINDS))
@pytest.mark.parametrize("on_pr", [False, True], ids=["on-issue", "on-loop-pr"])
def test_comment_commands(kind, command, on_pr):
    intent = decide("issue_comment", comment(kind, command, on_pr=on_pr))
    if kind == "loopbot itself":
        assert intent.kind == "ignore"
    elif kind == "lookup failed":
        assert (intent.kind, intent.why, intent.exit_code, intent.reply) == ("refuse", "permission_unknown", 2, None)
    elif kind not in STEERS:
        assert (intent.kind, intent.why) == ("refuse", "refused")
        assert intent.reply is not None and "cannot trigger loops" in intent.reply
        assert intent.goal is None
    else:
        assert intent.kind == COMMAND_KINDS[command]
        assert intent.plan == PLAN and intent.where == (PR if on_pr else PLAN)
        if intent.kind in ("run", "retry"):
            assert intent.goal is not None and intent.goal.id == "kvstore-ttl"
            # Only a run on the PR iterates on it with its reviews; resume continues, retry starts over.
            assert intent.feedback_pr == (PR if on_pr and command == "/loop run" else None)


@pytest.mark.parametrize("kind", list(ACTORS))
def test_malformed_commands_get_help_only_when_a_steerer_wrote_them(kind):
    intent = decide("issue_comment", comment(kind, "/loop launch"))
    if kind in STEERS:
        assert intent.kind == "refuse" and intent.why == "bad_command"
        assert intent.reply is not None and "unknown command `/loop launch`" in intent.reply and "/loop run" in intent.reply
    else:
        assert intent.kind == "ignore" and intent.reply is None


@pytest.mark.parametrize("body", ["thanks!", "> /loop run\nquoted, not asked", "see loop/3 for details", ""])
def test_comments_without_a_command_are_ignored(body):
    assert decide("issue_comment", comment("writer", body)).kind == "ignore"


def test_loopbots_own_reply_quoting_a_command_is_never_a_command():
    payload = comment("listed bot", "<!-- loopbot:reply -->\n/loop run was not started")
    assert decide("issue_comment", payload).kind == "ignore"


# -- labels ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(ACTORS))
def test_the_run_label(kind):
    intent = decide("issues", labeled(kind))
    expected = {"loopbot itself": "ignore", "lookup failed": "refuse"}.get(kind, "run" if kind in STEERS else "refuse")
    assert intent.kind == expected
    if expected == "run":
        assert intent.plan == PLAN and intent.goal is not None


@pytest.mark.parametrize("label", ["loopbot:plan", "bug", "loopbot:running"])
def test_other_labels_are_ignored(label):
    assert decide("issues", labeled("writer", label)).kind == "ignore"


# -- reviews -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(ACTORS))
@pytest.mark.parametrize("state", ["changes_requested", "commented", "approved", "dismissed"])
def test_reviews_on_a_loop_pr(kind, state):
    intent = decide("pull_request_review", review(kind, state))
    if state in ("approved", "dismissed") or kind == "loopbot itself":
        assert intent.kind == "ignore"
    elif kind == "lookup failed":
        assert intent.why == "permission_unknown"
    elif kind in STEERS:
        assert (intent.kind, intent.plan, intent.feedback_pr, intent.where) == ("run", PLAN, PR, PR)
    else:
        assert intent.kind == "ignore" and intent.reply is None  # outsiders' reviews ask for no reply


@pytest.mark.parametrize(("head_repo", "ref"), [("mallory/kvstore", BRANCH), ("acme/kvstore", "feature/ttl"),
                                                ("acme/kvstore", "loop/ttl"), ("acme/kvstore", "loop/3-Evil Name")])
def test_reviews_on_other_prs_are_ignored(head_repo, ref):
    assert decide("pull_request_review", review("writer", head_repo=head_repo, ref=ref)).kind == "ignore"


def test_loopbots_own_review_is_not_feedback():
    payload = review("writer", body="<!-- loopbot:review -->\nREJECT: tests fail")
    assert decide("pull_request_review", payload).kind == "ignore"


# -- which issue a PR belongs to -----------------------------------------------------------------
def test_a_pr_no_loop_opened_gets_a_reply_saying_loops_run_from_plan_issues():
    intent = decide("issue_comment", comment("writer", "/loop run", on_pr=True), facts(prs=()))
    assert (intent.kind, intent.why, intent.where) == ("refuse", "not_a_loop_pr", PR)
    assert intent.reply is not None and "loops run from plan issues" in intent.reply


def test_a_plan_issues_text_never_chooses_another_issue():
    body = ttl_plan_body() + "\n\nFixes #1's follow-up; closes #2.\n"
    payload = comment("writer", "/loop run")
    payload["issue"]["body"] = body
    intent = decide("issue_comment", payload, facts(body=body))
    assert intent.kind == "run" and intent.plan == PLAN


# -- the approved goal ---------------------------------------------------------------------------
def test_an_edit_after_approval_refuses():
    payload = labeled("writer")
    intent = decide("issues", payload, facts(body=ttl_plan_body().replace("TTL", "TTL and delete the tests")))
    assert (intent.kind, intent.why) == ("refuse", "edited_after_approval")


def test_an_invalid_goal_is_answered_with_its_problems():
    body = "```yaml\nid: x\ngoal: g\n```\n"
    payload = labeled("writer")
    payload["issue"]["body"] = body
    intent = decide("issues", payload, facts(body=body))
    assert (intent.kind, intent.why, intent.where) == ("refuse", "invalid_goal", PLAN)
    assert intent.reply is not None and "acceptance" in intent.reply


def test_a_goal_naming_a_model_spec_is_refused_with_the_field():
    body = ttl_plan_body().replace("```yaml\n", "```yaml\nmodels: {checker: 'scripted:approve.yaml'}\n", 1)
    payload = labeled("writer")
    payload["issue"]["body"] = body
    intent = decide("issues", payload, facts(body=body))
    assert intent.why == "invalid_goal" and intent.reply is not None and "models.checker" in intent.reply


def test_budgets_above_the_config_are_lowered_to_it():
    body = ttl_plan_body().replace("```yaml\n", "```yaml\nbudgets: {max_cost_usd: 900, max_model_calls: 5000}\n", 1)
    payload = labeled("writer")
    payload["issue"]["body"] = body
    config = Config.model_validate({"budgets": {"max_cost_usd": 5, "max_model_calls": 40}})
    intent = decide("issues", payload, facts(body=body), config=config)
    assert intent.goal is not None
    assert (intent.goal.budgets.max_cost_usd, intent.goal.budgets.max_model_calls) == (5, 40)


def _latest(*, finished: bool, success: bool = False, goal_body: str | None = None, trigger: str | None = None):
    goal = goal_from_markdown(goal_body or ttl_plan_body(), f"issue #{PLAN}")
    from loopbot.core.github_goal import constrain

    return LatestRun("kvstore-ttl-3-1", finished, success, approval_key(constrain(goal, CONFIG, "x")), trigger)


def test_a_pr_command_needs_the_goal_the_loop_ran():
    edited = ttl_plan_body().replace("Add expiration", "Add expiration and rewrite everything")
    intent = decide("issue_comment", comment("writer", "/loop run", on_pr=True),
                    facts(body=edited, latest=_latest(finished=True)))
    assert (intent.kind, intent.why, intent.where) == ("refuse", "edited_after_approval", PR)
    same = decide("issue_comment", comment("writer", "/loop run", on_pr=True), facts(latest=_latest(finished=True)))
    assert same.kind == "run" and same.feedback_pr == PR


def test_an_unfinished_run_is_resumed_and_retry_starts_over():
    unfinished = facts(latest=_latest(finished=False))
    assert decide("issue_comment", comment("writer", "/loop run"), unfinished).kind == "resume"
    assert decide("issue_comment", comment("writer", "/loop resume"), unfinished).kind == "resume"
    assert decide("issue_comment", comment("writer", "/loop retry"), unfinished).kind == "retry"


# -- writers' context ------------------------------------------------------------------------------
def test_context_comes_from_those_who_steer_only():
    thread = [{"body": f"/loop context {login} says hi", "user": user(kind)} for kind, (login, _, _) in ACTORS.items()]
    thread.append({"body": "<!-- loopbot:reply -->\n/loop context my own echo", "user": user("listed bot")})
    thread.append({"body": "/loop context no author", "user": None})
    the_facts = StaticFacts(permissions={login: perm for login, _, perm in ACTORS.values()},
                            bodies={PLAN: ttl_plan_body()}, threads={PLAN: thread})
    intent = decide("issues", labeled("writer"), the_facts)
    assert intent.goal is not None and intent.goal.context is not None
    said = {login for login, _, _ in ACTORS.values() if f"{login} says hi" in intent.goal.context}
    assert said == {"alice", "olivia", "renovate[bot]"}
    assert "my own echo" not in intent.goal.context and "no author" not in intent.goal.context


# -- limits, modes, replays --------------------------------------------------------------------
def test_new_loops_wait_when_too_many_loop_prs_are_open():
    others = tuple(LoopPr(100 + n, f"loop/{50 + n}-x", "2026-11-01T00:00:00Z") for n in range(5))
    intent = decide("issues", labeled("writer"), facts(prs=others))
    assert (intent.kind, intent.why) == ("limited", "limited") and intent.reply is not None
    own = (LoopPr(PR, BRANCH, NOW.isoformat()), *others[:4])
    assert decide("issues", labeled("writer"), facts(prs=own)).kind == "run"  # its own PR never counts


def test_new_loops_wait_when_too_many_opened_in_the_last_hour():
    recent = tuple(LoopPr(100 + n, f"loop/{50 + n}-x", "2026-12-02T11:30:00Z") for n in range(2))
    assert decide("issues", labeled("writer"), facts(prs=recent)).kind == "limited"


@pytest.mark.parametrize(("event", "mode", "kind"), [
    ("schedule", "auto", "audit"), ("workflow_dispatch", "auto", "audit"), ("push", "auto", "docs"),
    ("issues", "audit", "audit"), ("push", "docs", "docs"), ("push", "run", "ignore"), ("pull_request", "auto", "ignore"),
])
def test_modes_and_scheduled_events(event, mode, kind):
    payload = example("push") if event == "push" else labeled("writer")
    if event == "push":
        payload["ref"] = "refs/heads/main"
    assert decide(event, payload, mode=mode).kind == kind


def test_a_push_to_another_branch_is_not_documented():
    payload = example("push")
    payload["ref"] = "refs/heads/feature"
    assert decide("push", payload).kind == "ignore"


def test_events_carry_a_trigger_that_replays_repeat():
    assert trigger_of("issue_comment", comment("writer", "/loop run")) == "comment:991"
    assert trigger_of("pull_request_review", review("writer")) == "review:55"
    assert decide("issues", labeled("writer")).trigger == trigger_of("issues", labeled("writer"))


# -- every payload the schema allows ---------------------------------------------------------------
READ = ("action", "ref", "before", "comment", "issue", "review", "pull_request", "label", "sender")
SKIP = ("reactions", "repo", "base", "_links", "milestone", "assignee", "assignees", "labels", "performed_via_github_app")


def _paths(value: Any, prefix: tuple[str, ...] = (), depth: int = 3):
    """Each field the router could read: the event's own objects, three levels down."""
    if isinstance(value, dict) and depth:
        for key, item in value.items():
            if (not prefix and key not in READ) or (prefix and key in SKIP and prefix[-1] != "head"):
                continue
            yield (*prefix, key)
            yield from _paths(item, (*prefix, key), depth - 1)


def _variant(payload: dict[str, Any], path: tuple[str, ...], how: str) -> dict[str, Any]:
    changed = copy.deepcopy(payload)
    parent = changed
    for key in path[:-1]:
        parent = parent[key]
    if how == "null":
        parent[path[-1]] = None
    else:
        del parent[path[-1]]
    return changed


def _adapted() -> list[tuple[str, dict[str, Any]]]:
    """Every official example, adapted as the Action tests adapt them (a writer acting on the plan)."""
    from tests.github.conftest import EXAMPLES

    adapted = []
    for event, payloads in EXAMPLES.items():
        for index in range(len(payloads)):
            payload = copy.deepcopy(payloads[index])
            if event == "issue_comment":
                payload = comment("writer", "/loop run", base=payload)
            elif event == "issues":
                payload = labeled("writer", base=payload)
            elif event == "pull_request_review":
                payload = review("writer", base=payload)
            adapted.append((event, payload))
    return adapted


@pytest.mark.parametrize(("event", "payload"), _adapted(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_null_or_missing_field_routes_without_a_crash(event, payload):
    expected = decide(event, payload)
    if event == "push":
        assert expected.kind == ("docs" if payload.get("ref") == "refs/heads/main" else "ignore")
    else:
        assert expected.kind == {"workflow_dispatch": "audit"}.get(event, "run")
    for path in _paths(payload):
        for how in ("null", "missing"):
            intent = decide(event, _variant(payload, path, how))
            assert intent.kind in ("run", "docs", "audit", "ignore", "refuse", "limited"), (path, how)
            if intent.kind == "run":  # a variant that still runs runs the same loop
                assert (intent.plan, intent.goal) == (expected.plan, expected.goal), (path, how)


# -- resume, retry and replays ---------------------------------------------------------------------
@pytest.mark.parametrize(("latest", "command", "kind", "why"), [
    (dict(finished=True, reopenable=True), "/loop resume", "resume", "resume"),  # a budget or andon stop
    (dict(finished=True, success=True), "/loop resume", "status", "already_succeeded"),
    (dict(finished=True), "/loop resume", "run", "resume"),  # abandoned: nothing to continue
    (dict(finished=False), "/loop resume", "resume", "resume"),
    (dict(finished=True, reopenable=True), "/loop retry", "retry", "retry"),
    (dict(finished=True, reopenable=True), "/loop run", "run", "run"),
])
def test_resume_continues_whatever_did_not_succeed(latest, command, kind, why):
    run_ = LatestRun("r", latest["finished"], latest.get("success", False), _latest(finished=True).approved,
                     reopenable=latest.get("reopenable", False))
    intent = decide("issue_comment", comment("writer", command), facts(latest=run_))
    assert (intent.kind, intent.why) == (kind, why)


@pytest.mark.parametrize(("finished", "kind"), [(True, "status"), (False, "resume")])
def test_a_replayed_event_never_starts_a_second_run(finished, kind):
    payload = labeled("writer")
    run_ = _latest(finished=finished, trigger=trigger_of("issues", payload))
    intent = decide("issues", payload, facts(latest=run_))
    assert intent.kind == kind
    fresh = decide("issues", {**payload, "issue": {**payload["issue"], "updated_at": "2027-01-01T00:00:00Z"}},
                   facts(latest=run_))
    assert fresh.kind == ("run" if finished else "resume")  # a new label event is a new approval


def test_a_request_that_waited_is_not_started_when_a_writer_said_stop_after_it():
    payload = comment("writer", "/loop run")
    payload["comment"]["created_at"] = "2026-12-02T10:00:00Z"
    stop = {"body": "/loop stop", "user": user("admin"), "created_at": "2026-12-02T10:05:00Z"}
    outsider = {"body": "/loop stop", "user": user("read-only"), "created_at": "2026-12-02T10:06:00Z"}
    the_facts = StaticFacts(permissions={login: perm for login, _, perm in ACTORS.values()},
                            bodies={PLAN: ttl_plan_body()}, threads={PLAN: [stop]})
    intent = decide("issue_comment", payload, the_facts)
    assert (intent.kind, intent.why) == ("refuse", "stopped_meanwhile") and "@olivia" in (intent.reply or "")
    later = {**payload, "comment": {**payload["comment"], "created_at": "2026-12-02T10:07:00Z", "id": 992}}
    assert decide("issue_comment", later, the_facts).kind == "run"  # a request after the stop runs
    only_outsider = StaticFacts(permissions=the_facts.permissions, bodies=the_facts.bodies,
                                threads={PLAN: [outsider]})
    assert decide("issue_comment", payload, only_outsider).kind == "run"  # an outsider cannot stop loops
