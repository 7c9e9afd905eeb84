from pathlib import Path

import pytest

from loopbot.core.state import Verdict
from loopbot.goal import parse_goal
from loopbot.messages import Message, ModelReply, ModelRequest, TextBlock, ToolCall, ToolResult
from loopbot.ports import ModelError
from loopbot.roles.checker import run_checker
from loopbot.roles.goal_checker import run_goal_checker
from loopbot.roles.maker import ELIDED, RESULT_BYTES, elide_old_results, run_session
from loopbot.roles.review import ReviewerUnavailable
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
        if isinstance(item, ModelReply):
            return item
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


def test_a_checker_that_gives_no_verdict_is_unavailable_never_a_rejection():
    """Unreadable twice (one reminder) or unreachable: an infrastructure stop, not review feedback."""
    for reply in ([("verdict", {"decision": "LGTM"})], "looks good to me", [("verdict", {"decision": "APPROVE"})]):
        gate, seen = replying(reply, reply)
        with pytest.raises(ReviewerUnavailable, match="checker is unavailable"):
            run_checker(gate, GOAL, "d", PASSED, iteration=1)
        assert len(seen) == 2 and "verdict" in seen[1].messages[-1].text  # the reminder names the tool
    gate, seen = replying(ModelError("overloaded"))
    with pytest.raises(ReviewerUnavailable, match="overloaded"):
        run_checker(gate, GOAL, "d", PASSED, iteration=1)
    gate, seen = replying(ModelReply(message=Message(role="assistant", content=[TextBlock(text="I won't")]),
                                     stop_reason="refusal"))
    with pytest.raises(ReviewerUnavailable, match="refused"):
        run_checker(gate, GOAL, "d", PASSED, iteration=1)


def test_a_reminded_or_text_verdict_is_read():
    gate, seen = replying("looks good", [("verdict", {"decision": "APPROVE", "reasons": ["ok"]})])
    assert run_checker(gate, GOAL, "d", PASSED, iteration=1).decision == "APPROVE" and len(seen) == 2
    fenced = '```json\n{"decision": "REJECT", "reasons": ["no test"]}\n```'
    gate, _ = replying(fenced)
    assert run_checker(gate, GOAL, "d", PASSED, iteration=1).reasons == ["no test"]
    gate, _ = replying('<tool_call>{"name": "verdict", "arguments": {"decision": "APPROVE", "reasons": []}}</tool_call>')
    assert run_checker(gate, GOAL, "d", PASSED, iteration=1).decision == "APPROVE"


def test_goal_checker_uses_a_model_only_for_criteria():
    gate, seen = replying()
    failed = [Verdict(name="run", kind="run", passed=False, score=0.0)]
    assert not run_goal_checker(gate, GOAL, "d", failed, iteration=1).met and seen == []
    gate, seen = replying([("goal_verdict", {"criteria": [{"met": True, "evidence": "a"},
                                                          {"met": False, "evidence": "adds requests"}]})])
    check = run_goal_checker(gate, GOAL, "d", PASSED, iteration=1)
    assert not check.met and check.objective_met and [c.met for c in check.criteria] == [True, False]
    one = [("goal_verdict", {"criteria": [{"met": True, "evidence": "a"}]})]  # one answer for two criteria
    gate, _ = replying(one, one)
    with pytest.raises(ReviewerUnavailable, match="goal-checker"):
        run_goal_checker(gate, GOAL, "d", PASSED, iteration=1)
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
    # A reply with no tool call gets a reminder, and the session goes on.
    result = run_session(gate, box, role="maker", system="s", context="c", iteration=1, max_turns=5)
    assert result.approach == "set x to two" and result.calls == 3 and (tmp_path / "a.py").read_text() == "x = 2\n"
    assert "no tool call" in seen[1].messages[-1].text and result.summary == "x is 2"
    (tmp_path / "a.py").write_text("x = 1\n")
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
        sloppy = [("goal_verdict", {"criteria": [{"met": value, "evidence": "a"}, {"met": True, "evidence": "b"}]})]
        gate, _ = replying(sloppy, sloppy)
        with pytest.raises(ReviewerUnavailable):
            run_goal_checker(gate, GOAL, "d", PASSED, iteration=1)


def reply_of(blocks, stop="tool_use") -> ModelReply:
    return ModelReply(message=Message(role="assistant", content=blocks), stop_reason=stop)


def test_done_beside_a_failed_call_does_not_finish(tmp_path: Path):
    (tmp_path / "a.py").write_text("x = 1\n")
    box = ToolBox(root=tmp_path, sandbox=SubprocessSandbox())
    gate, seen = replying(
        [("edit", {"path": "a.py", "search": "no such text", "replace": "y"}), ("done", {"summary": "all done"})],
        [("edit", {"path": "a.py", "search": "x = 1", "replace": "x = 2"}), ("done", {"summary": "really done"})],
    )
    result = run_session(gate, box, role="maker", system="s", context="c", iteration=1, max_turns=5)
    assert result.summary == "really done" and len(seen) == 2
    first_results = seen[1].messages[-1].content
    assert all(r.is_error for r in first_results) and "not finished" in first_results[1].content


def test_a_cut_off_reply_runs_nothing_and_the_session_goes_on(tmp_path: Path):
    box = ToolBox(root=tmp_path, sandbox=SubprocessSandbox())
    cut = reply_of([TextBlock(text="writing"), ToolCall(id="t1", name="write", input={"path": "big.py"})], "max_tokens")
    gate, seen = replying(cut, [("write", {"path": "b.py", "content": "ok\n"})], [("done", {"summary": "s"})])
    result = run_session(gate, box, role="maker", system="s", context="c", iteration=1, max_turns=5)
    assert result.error is None and result.summary == "s" and (tmp_path / "b.py").exists()
    assert not (tmp_path / "big.py").exists() and "cut off" in seen[1].messages[-1].text
    assert all(not isinstance(b, ToolCall) for m in seen[1].messages for b in m.content)


def test_a_refusal_ends_the_session_with_its_reason(tmp_path: Path):
    box = ToolBox(root=tmp_path, sandbox=SubprocessSandbox())
    gate, _ = replying(reply_of([TextBlock(text="I can't help with that")], "refusal"))
    result = run_session(gate, box, role="maker", system="s", context="c", iteration=1, max_turns=5)
    assert result.error and "refused" in result.error and "can't help" in result.error


def test_tool_results_are_capped_in_bytes_and_old_ones_elided(tmp_path: Path):
    (tmp_path / "wide.csv").write_text(("x" * 5000 + "\n") * 300)
    box = ToolBox(root=tmp_path, sandbox=SubprocessSandbox())
    gate, seen = replying([("read", {"path": "wide.csv"})], [("done", {"summary": "s"})])
    run_session(gate, box, role="maker", system="s", context="c", iteration=1, max_turns=5)
    content = seen[1].messages[-1].content[0].content
    assert len(content.encode()) < RESULT_BYTES + 200 and "bytes of this output omitted" in content
    messages = [Message(role="user", content=[TextBlock(text="c")])]
    for i in range(6):
        messages.append(Message(role="assistant", content=[ToolCall(id=f"t{i}", name="read", input={})]))
        messages.append(Message(role="user", content=[ToolResult(tool_use_id=f"t{i}", content="y" * 10_000)]))
    assert elide_old_results(messages, 30_000)
    results = [m.content[0].content for m in messages[2::2]]
    assert results[0] == ELIDED and results[-1] == "y" * 10_000 and results[-2] == "y" * 10_000


def test_prompt_too_long_elides_old_results_and_retries_once(tmp_path: Path):
    box = ToolBox(root=tmp_path, sandbox=SubprocessSandbox())
    (tmp_path / "f.txt").write_text("data\n" * 50)
    gate, seen = replying([("read", {"path": "f.txt"})], [("read", {"path": "f.txt"})],
                          ModelError("anthropic API error 400: prompt is too long: 210000 tokens > 200000 maximum"),
                          [("done", {"summary": "s"})])
    result = run_session(gate, box, role="maker", system="s", context="c", iteration=1, max_turns=6)
    assert result.error is None and result.summary == "s" and "too long" in result.notes[0]
    retried = seen[-1].messages
    assert retried[2].content[0].content == ELIDED


def test_a_model_that_never_calls_a_tool_is_named_as_such(tmp_path: Path):
    box = ToolBox(root=tmp_path, sandbox=SubprocessSandbox())
    gate, seen = replying("I will now add the feature.", "Adding it now.", "Done, I think.")
    result = run_session(gate, box, role="maker", system="s", context="c", iteration=1, max_turns=6)
    assert len(seen) == 3 and result.error and "tool_protocol: text" in result.error


def test_an_unreadable_call_is_answered_with_its_error_not_run(tmp_path: Path):
    box = ToolBox(root=tmp_path, sandbox=SubprocessSandbox())
    broken = ModelReply(message=Message(role="assistant", content=[
        ToolCall(id="b1", name="write", input={}, error="the arguments were not valid JSON")]), stop_reason="tool_use")
    gate, seen = replying(broken, [("done", {"summary": "s"})])
    result = run_session(gate, box, role="maker", system="s", context="c", iteration=1, max_turns=4)
    answer = seen[1].messages[-1].content[0]
    assert answer.is_error and "not valid JSON" in answer.content and result.summary == "s"
