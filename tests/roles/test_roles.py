from pathlib import Path

from loopbot.core.state import Verdict
from loopbot.goal import parse_goal
from loopbot.messages import Message, ModelReply, ModelRequest, TextBlock, ToolCall
from loopbot.ports import ModelError
from loopbot.roles.checker import run_checker
from loopbot.roles.goal_checker import run_goal_checker
from loopbot.roles.maker import run_session
from loopbot.sandbox.subprocess_runner import SubprocessSandbox
from loopbot.tools.toolbox import ToolBox

GOAL = parse_goal("id: g\ngoal: do it\nacceptance:\n  - run: 'true'\n  - criterion: docs updated\n"
                  "  - criterion: no new deps\n", "g.yaml")
PASSED = [Verdict(name="run", kind="run", passed=True, score=1.0)]


def replying(*replies):
    """A gate that records requests and answers with the given tool calls / texts in turn."""
    seen: list[ModelRequest] = []
    queue = list(replies)

    def gate(request: ModelRequest) -> ModelReply:
        seen.append(request)
        item = queue.pop(0)
        if isinstance(item, Exception):
            raise item
        blocks = [ToolCall(id=f"c{len(seen)}", name=n, input=a) for n, a in item] if isinstance(item, list) \
            else [TextBlock(text=item)]
        return ModelReply(message=Message(role="assistant", content=blocks),
                          stop_reason="tool_use" if isinstance(item, list) else "end_turn")

    return gate, seen


def test_checker_sees_goal_diff_and_evidence_only():
    gate, seen = replying([("verdict", {"decision": "APPROVE", "reasons": ["fine"]})])
    verdict = run_checker(gate, GOAL, "diff --git a/x b/x\n+secret plan: I will game the tests", PASSED, iteration=2)
    assert verdict.decision == "APPROVE" and verdict.reasons == ["fine"]
    (request,) = seen
    assert request.role == "checker" and request.tool_choice == "verdict" and len(request.messages) == 1
    text = request.messages[0].text
    assert "do it" in text and "<untrusted-data" in text and "APPROACH" not in text


def test_checker_never_approves_what_it_cannot_read():
    for reply in ([("verdict", {"decision": "LGTM"})], "looks good to me", ModelError("overloaded")):
        gate, _ = replying(reply)
        assert run_checker(gate, GOAL, "d", PASSED, iteration=1).decision == "REJECT"


def test_goal_checker_uses_a_model_only_for_criteria():
    gate, seen = replying()
    failed = [Verdict(name="run", kind="run", passed=False, score=0.0)]
    assert not run_goal_checker(gate, GOAL, "d", failed, iteration=1).met and seen == []
    gate, seen = replying([("goal_verdict", {"criteria": [{"met": True, "evidence": "a"},
                                                          {"met": False, "evidence": "adds requests"}]})])
    check = run_goal_checker(gate, GOAL, "d", PASSED, iteration=1)
    assert not check.met and check.objective_met and [c.met for c in check.criteria] == [True, False]
    gate, _ = replying([("goal_verdict", {"criteria": [{"met": True, "evidence": "a"}]})])  # one answer for two
    assert not run_goal_checker(gate, GOAL, "d", PASSED, iteration=1).met
    no_criteria = parse_goal("id: g\ngoal: x\nacceptance:\n  - run: 'true'\n", "g.yaml")
    gate, seen = replying()
    assert run_goal_checker(gate, no_criteria, "d", PASSED, iteration=1).met and seen == []


def test_maker_session_states_approach_uses_tools_and_finishes(tmp_path: Path):
    (tmp_path / "a.py").write_text("x = 1\n")
    box = ToolBox(root=tmp_path, sandbox=SubprocessSandbox())
    gate, seen = replying(
        "APPROACH: set x to two\nfirst I look",
        [("edit", {"path": "a.py", "search": "x = 1", "replace": "x = 2"})],
        [("done", {"summary": "x is 2", "chunks_completed": [1]})],
    )
    # A reply with no tool call ends the session; here the first reply is text only.
    result = run_session(gate, box, role="maker", system="s", context="c", iteration=1, max_turns=5)
    assert result.approach == "set x to two" and result.calls == 1 and (tmp_path / "a.py").read_text() == "x = 1\n"
    gate, seen = replying(
        [("edit", {"path": "a.py", "search": "x = 1", "replace": "x = 2"})],
        [("done", {"summary": "x is 2", "chunks_completed": [1]})],
    )
    result = run_session(gate, box, role="maker", system="s", context="c", iteration=1, max_turns=5)
    assert result.summary == "x is 2" and result.chunks_completed == [1] and result.error is None
    assert (tmp_path / "a.py").read_text() == "x = 2\n"
    tool_result = seen[1].messages[-1].content[0]
    assert tool_result.tool_use_id == "c1" and "applied" in tool_result.content


def test_maker_turn_limit_and_model_failure(tmp_path: Path):
    box = ToolBox(root=tmp_path, sandbox=SubprocessSandbox())
    gate, _ = replying(*[[("list", {})] for _ in range(3)])
    result = run_session(gate, box, role="maker", system="s", context="c", iteration=1, max_turns=3)
    assert result.calls == 3 and "without calling done" in result.summary and result.error is None
    gate, _ = replying(ModelError("529 overloaded"))
    result = run_session(gate, box, role="maker", system="s", context="c", iteration=1, max_turns=3)
    assert result.error and "529" in result.error
    gate, _ = replying("I have no diagnosis")
    result = run_session(gate, box, role="planner", system="s", context="c", iteration=1, max_turns=3)
    assert result.error == "plan mode ended without a diagnosis"


def test_the_goal_checker_counts_only_a_json_true_as_met():
    for value in ("false", "no", "true", 1, "yes", None, [True], {"v": True}):
        gate, _ = replying([("goal_verdict", {"criteria": [{"met": value, "evidence": "a"},
                                                          {"met": True, "evidence": "b"}]})])
        check = run_goal_checker(gate, GOAL, "d", PASSED, iteration=1)
        assert not check.met and check.criteria[0].met is False, value
