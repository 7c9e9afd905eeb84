"""The execution loop end to end, in process: real git, real subprocess evaluators, scripted model."""

from __future__ import annotations

import json
from typing import Any

import pytest

from loopbot.core.budgets import Exhausted
from loopbot.core.state import Decision, Phase, Status, StopReason, SuspendReason
from loopbot.goal import RunCheck
from loopbot.testing.origin import branch_head
from loopbot.testing.scripted import Script
from loopbot.workspace.git import git, resolve_rev

PARTIAL = "partial"  # the demo's first attempt: set() takes ttl_seconds, nothing expires (kept: score rises)
NO_GAIN_EDIT = {"edit": {"path": "kvstore.py", "search": '"""A small in-memory key-value store."""',
                         "replace": '"""A small in-memory key-value store."""\n# expiry: see set()'}}
APPROVE = [{"iteration": "*", "decision": "APPROVE", "reasons": ["ok"]}]
MET = [{"iteration": "*", "criteria": [{"met": True, "evidence": "ok"}]}]


def session(iteration: Any, approach: str, tools: list[dict[str, Any]], **turn: Any) -> dict[str, Any]:
    return {"iteration": iteration, "turns": [
        {"text": f"APPROACH: {approach}", "tools": tools, **turn},
        {"tools": [{"done": {"summary": approach}}]},
    ]}


def demo_edits(demo_script: Script, iteration: int) -> list[dict[str, Any]]:
    """The edit calls of one iteration of the demo script (without reads, runs or done)."""
    turns = next(s for s in demo_script.maker if s.iteration == iteration).turns
    return [t for turn in turns for t in turn.tools if "edit" in t]


def script(*makers: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"maker": list(makers), "checker": APPROVE, "goal_checker": MET, **extra}


def test_demo_story_fails_is_rejected_then_succeeds(make_loop, demo_script):
    loop = make_loop(demo_script)
    main_before = resolve_rev(loop.repo, "main")
    state = loop.run()

    assert state.status == Status.SUCCESS and state.stop_reason is None
    decisions = [(r.number, r.decision, r.kept) for r in state.iterations]
    assert decisions == [(1, Decision.RETRY, True), (2, Decision.RETRY, False), (3, Decision.SUCCESS, True)]
    first, gamed, final = state.iterations
    assert not first.verdicts[0].passed and first.checker is None  # failing check: no checker call spent
    assert all(v.passed for v in gamed.verdicts) and gamed.checker.decision == "REJECT"
    assert "'token'" in gamed.checker.reasons[0]
    assert "REJECT" not in (final.checker.decision,) and final.goal_check.met
    assert "checker rejected" in state.iterations[1].feedback

    pushed = loop.origin_file(state.branch, "kvstore.py")
    assert "def _expired" in pushed and 'k == "c"' not in pushed
    assert resolve_rev(loop.repo, "main") == main_before
    assert git(loop.repo, "status", "--porcelain").stdout == ""
    assert state.chunks_done == [1, 2]
    report = loop.session.files.report_path.read_text()
    assert "SUCCESS" in report and "checker REJECT" in report and "'token'" in report


def test_reworded_approach_is_blocked_after_three_failures_and_refused_unevaluated(make_loop):
    add_dict = {"edit": {"path": "kvstore.py", "search": "        self._data: dict[str, Any] = {}\n",
                         "replace": "        self._data: dict[str, Any] = {}\n        self._expires: dict[str, float] = {}\n"}}
    wordings = [
        "Store the expiry timestamp of each key in a dict",
        "Keep each key's expiry timestamp in a dictionary",
        "Record per-key expiry timestamps in a dict",
        "Store expiry timestamps for every key in a dict, again",
    ]
    planner = [{"iteration": 4, "turns": [
        {"text": "Reading first.", "tools": [{"read": {"path": "kvstore.py"}}]},
        {"tools": [{"diagnose": {"hypotheses": ["expiry is never checked on read", "set() ignores ttl"],
                                 "five_whys": ["tests fail", "get returns stale values", "no deadline check"],
                                 "next_approach": "check the deadline in get()"}}]},
    ]}]
    loop = make_loop(script(*[session(i, w, [add_dict]) for i, w in enumerate(wordings, 1)], planner=planner),
                     budgets={"max_iterations": 4, "stagnation_threshold": 10})
    state = loop.run()

    records = state.iterations
    assert [r.blocked_fingerprint is not None for r in records] == [False, False, False, True]
    assert len(state.memory) == 1 and state.memory[0].blocked and len(state.memory[0].failures) == 4
    refused = records[3]
    assert refused.verdicts == [] and refused.score == 0.0 and not refused.kept
    assert all(it != 4 for it, _ in loop.events.of("verdict"))
    assert [d["phase"] for it, d in loop.events.of("phase") if it == 4] == ["diagnose", "make", "guard", "decide", "finish"]
    assert "REFUSED" in refused.feedback
    # Meta-Andon: the 4th iteration began in plan mode with read-only tools and a diagnosis.
    assert refused.mode == "plan" and "Five whys" in refused.diagnosis
    planner_tools = {t.name for r in loop.model.requests if r.role == "planner" for t in r.tools}
    assert planner_tools == {"list", "read", "search", "diagnose"}
    # The planner's turns and tool calls are in the run's transcript like the maker's.
    lines = (loop.session.files.directory / "transcript.jsonl").read_text().splitlines()
    planned = [e for e in map(json.loads, lines) if e.get("role") == "planner"]
    assert [(e["kind"], e.get("name")) for e in planned] == [
        ("model_turn", None), ("tool_result", "read"), ("model_turn", None), ("tool_result", "diagnose")]
    assert state.stop_label == "BUDGET_EXHAUSTED(iterations)"


def _budget_loop(make_loop, demo_script, budgets, **extra):
    return make_loop(script(session(1, "Add ttl_seconds to set()", demo_edits(demo_script, 1)),
                            session("*", "Mention expiry in the module docstring", [NO_GAIN_EDIT]), **extra),
                     budgets=budgets)


def _assert_best_work_pushed(loop, state):
    assert state.best.iteration == 1
    pushed = loop.origin_file(state.branch, "kvstore.py")
    assert "ttl_seconds" in pushed and "# expiry: see set()" not in pushed
    assert state.push is not None and state.push.pushed


@pytest.mark.parametrize(
    ("budgets", "latency", "label"),
    [
        ({"max_iterations": 2}, 0, "BUDGET_EXHAUSTED(iterations)"),
        ({"max_model_calls": 8}, 0, "BUDGET_EXHAUSTED(model_calls)"),
        ({"max_wall_minutes": 1}, 20, "BUDGET_EXHAUSTED(wall_time)"),
        ({"no_progress_minutes": 1, "stagnation_threshold": 10, "max_iterations": 10}, 20,
         "BUDGET_EXHAUSTED(no_progress)"),
        ({"stagnation_threshold": 2, "max_iterations": 10}, 0, "STAGNATED"),
    ],
)
def test_each_budget_stops_with_its_own_reason_and_keeps_best_work(make_loop, demo_script, budgets, latency, label):
    loop = _budget_loop(make_loop, demo_script, budgets, latency_seconds=latency)
    state = loop.run()
    assert state.status == Status.STOPPED and state.stop_label == label
    _assert_best_work_pushed(loop, state)


@pytest.mark.parametrize(("field", "which"), [("tokens", Exhausted.TOKENS), ("cost_usd", Exhausted.COST)])
def test_token_and_cost_budgets(make_loop, demo_script, field, which):
    # Measure what iteration 1 spends, then allow exactly that: the next model call must be refused.
    reference = _budget_loop(make_loop, demo_script, {"max_iterations": 1}).run()
    spent = getattr(reference.spend, field)
    budget = {"tokens": {"max_tokens": spent}, "cost_usd": {"max_cost_usd": spent}}[field]
    loop = _budget_loop(make_loop, demo_script, budget)
    state = loop.run()
    assert state.exhausted == which and state.stop_reason == StopReason.BUDGET_EXHAUSTED
    assert state.spend.model_calls == reference.spend.model_calls
    _assert_best_work_pushed(loop, state)


def test_model_call_budget_keeps_the_reviewers_share(make_loop, demo_script):
    """Checked before every call, with the reviewers' calls kept (4: checker and goal-checker with
    a reminder each). Iterations 1 and 2 take two maker calls each and fail their checks; the maker
    of iteration 3 stops after one turn (a second would leave the reviewers short), its work is still evaluated (and
    reviewed had it passed), and no fourth iteration starts that could not be."""
    loop = _budget_loop(make_loop, demo_script, {"max_model_calls": 9})
    state = loop.run()
    assert state.stop_label == "BUDGET_EXHAUSTED(model_calls)" and state.spend.model_calls == 5
    last = state.iterations[-1]
    assert last.number == 3 and last.model_calls == 1 and last.verdicts and last.head_sha
    assert "kept for this iteration's reviewers" in last.summary
    assert len(state.iterations) == 3


def test_scope_violation_is_rolled_back_and_retried(make_loop, demo_script):
    outside = {"write": {"path": "notes.txt", "content": "scratch\n"}}
    loop = make_loop(script(session(1, "Write notes then fix", [outside, *demo_edits(demo_script, 1)]),
                            session(2, "Full lazy expiry", demo_edits(demo_script, 1) + demo_edits(demo_script, 3))))
    state = loop.run()
    first = state.iterations[0]
    assert [v.guard for v in first.violations] == ["scope"] and not first.kept and first.verdicts == []
    assert state.status == Status.SUCCESS
    files = git(loop.origin, "ls-tree", "-r", "--name-only", state.branch).stdout.split()
    assert "notes.txt" not in files


@pytest.mark.parametrize(
    ("command", "guard"),
    [
        ("sed -i 's/assertIsNone/assertIsNotNone/' tests/test_ttl.py", "protected"),
        ("rm tests/test_kvstore.py", "protected"),
        ("mkdir -p .github/workflows && echo 'on: push' > .github/workflows/x.yml", "deny_path"),
    ],
)
def test_spec_drift_and_denied_paths_stop_the_line_and_push_nothing_bad(make_loop, demo_script, command, guard):
    loop = make_loop(script(session(1, "Bend the rules", [*demo_edits(demo_script, 1), {"run": {"command": command}}])))
    state = loop.run()
    assert state.stop_reason == StopReason.ANDON and guard in state.stop_detail
    assert state.iterations[0].violations[0].guard == guard and not state.iterations[0].kept
    assert branch_head(loop.origin, state.branch) is None  # the base alone is never pushed


def test_a_cut_off_reply_is_asked_again_in_smaller_steps(make_loop, demo_script):
    edits = demo_edits(demo_script, 1) + demo_edits(demo_script, 3)
    cut = {"iteration": 1, "turns": [{"text": "APPROACH: everything at once", "tools": edits[:1],
                                      "stop_reason": "max_tokens"},
                                     {"tools": edits}, {"tools": [{"done": {"summary": "done"}}]}]}
    loop = make_loop(script(cut))
    state = loop.run()
    first = state.iterations[0]
    assert first.maker_error is None and state.status == Status.SUCCESS and len(state.iterations) == 1
    cut_off = [r for r in loop.model.requests if r.role == "maker"][1]
    assert "cut off" in cut_off.messages[-1].text


def test_cut_off_again_and_again_fails_the_iteration_not_the_loop(make_loop, demo_script):
    cut = {"iteration": 1, "turns": [{"text": "APPROACH: everything at once", "stop_reason": "max_tokens"}] * 3}
    loop = make_loop(script(cut, session(2, "Full lazy expiry", demo_edits(demo_script, 1) + demo_edits(demo_script, 3))))
    state = loop.run()
    assert "max_tokens" in state.iterations[0].maker_error and state.iterations[0].decision == Decision.RETRY
    assert state.status == Status.SUCCESS


def test_an_unavailable_checker_pauses_the_run_and_is_never_review_feedback(make_loop, demo_script):
    loop = make_loop({"maker": [session(1, "Full lazy expiry", demo_edits(demo_script, 1) + demo_edits(demo_script, 3))],
                      "goal_checker": MET}, budgets={"max_iterations": 1})
    state = loop.run()  # no checker script: every checker call fails
    assert state.suspended is not None and state.suspended.reason == SuspendReason.ERROR
    assert "checker is unavailable" in state.suspended.detail
    assert state.phase == Phase.CHECK and state.iterations == [] and not state.feedback
    assert state.status != Status.SUCCESS


def test_a_cancel_suspends_the_run_with_best_work_pushed_and_resume_finishes_it(make_loop, demo_script):
    loop = _budget_loop(make_loop, demo_script, {"max_iterations": 3})

    class CancelAfterFirstIteration:
        def event(self, event, state):
            if event.kind == "decided" and event.iteration == 1:
                loop.session.store.request_cancel(state.run_id)

    loop.session.runner.observers.append(CancelAfterFirstIteration())
    state = loop.run()
    assert not state.finished and state.suspended is not None
    assert state.suspended.reason == SuspendReason.CANCELLED and len(state.iterations) == 1
    assert state.suspended.push is not None and state.suspended.push.pushed
    assert "ttl_seconds" in loop.origin_file(state.branch, "kvstore.py")
    assert loop.session.store.lessons(state.repo) == []  # a pause is no incident

    loop.session.store.clear_cancel(state.run_id)
    final = loop.resume()
    assert final.finished and final.suspended is None and final.suspensions == 1
    assert final.stop_label == "BUDGET_EXHAUSTED(iterations)" and len(final.iterations) == 3
    _assert_best_work_pushed(loop, final)


def test_every_step_is_checkpointed(make_loop, demo_script):
    loop = make_loop(demo_script)
    state = loop.run()
    steps = [name for _, name in loop.session.store.steps(state.run_id)]
    assert steps[0] == "created" and steps[1] == "baseline" and steps[-1] == "finish"
    assert steps.count("decide") == 3 and steps.count("make") == 3
    assert len(steps) == state.steps_completed + 1


def test_a_vanished_worktree_suspends_the_run_and_resume_recreates_it(make_loop, demo_script):
    import shutil

    loop = make_loop(demo_script)

    class DeleteWorktreeOnce:
        done = False

        def event(self, event, state):
            if event.kind == "made" and not self.done:
                self.done = True
                shutil.rmtree(loop.session.runner.workspace.path)

    loop.session.runner.observers.append(DeleteWorktreeOnce())
    state = loop.run()
    assert state.suspended is not None and state.suspended.reason == SuspendReason.ERROR
    assert not state.finished
    final = loop.resume()
    assert final.status == Status.SUCCESS and final.finished, (final.stop_label, final.stop_detail,
                                                                [(r.decision, r.maker_error, r.violations) for r in final.iterations])
    assert "def _expired" in loop.origin_file(final.branch, "kvstore.py")


def test_missing_tool_at_baseline_stops_the_line_before_any_model_call(make_loop, demo_goal, demo_script):
    goal = demo_goal.model_copy(update={"acceptance": [*demo_goal.acceptance, RunCheck(run="definitely-not-a-tool -x")]})
    loop = make_loop(demo_script, goal=goal)
    state = loop.run()
    assert state.stop_reason == StopReason.ANDON and "command_not_found" in state.stop_detail
    assert state.spend.model_calls == 0 and state.iterations == []
    incident = loop.session.files.incident_path.read_text()
    assert "command_not_found" in incident and "L4 alert" in incident


def test_incident_lessons_reach_the_next_loop_in_the_same_repo(make_loop, demo_script):
    first = make_loop(script(session(1, "Bend the rules", [{"run": {"command": "rm tests/test_ttl.py"}}])))
    state = first.run()
    assert state.stop_reason == StopReason.ANDON
    incident = first.session.files.incident_path.read_text()
    assert "Guard violations" in incident and "tests/test_ttl.py" in incident and "L2 auto-detect" in incident
    second = make_loop(demo_script)
    second.run()
    context = second.model.requests[0].messages[0].text
    assert "Lessons from earlier loops" in context and "Never change, delete or weaken existing tests" in context
