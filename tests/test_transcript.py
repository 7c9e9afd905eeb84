"""The run's transcript (every model turn and tool call, as it happens, redacted and fenced), and
a loop that changed nothing pushes no branch."""

from __future__ import annotations

import json
import re
from typing import Any

from loopbot.core.events import ModelCalled
from loopbot.testing.origin import branch_head
from loopbot.testing.scripted import Script
from tests.test_runner import MET, _budget_loop, script

SECRET = "hunter2-but-longer-0042"
HOSTILE = "```\n# not a heading\n~~~~\n````"


def _transcript(loop: Any) -> tuple[list[dict[str, Any]], str]:
    directory = loop.session.files.directory
    lines = (directory / "transcript.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines], (directory / "transcript.md").read_text(encoding="utf-8")


def _fenced_lines(markdown: str) -> tuple[set[int], list[str]]:
    """CommonMark's fences: the numbers of the lines inside one, and the lines outside all of them."""
    inside, outside, fence = set(), [], ""
    for number, text in enumerate(markdown.splitlines()):
        if fence:
            if re.fullmatch(rf"{re.escape(fence[0])}{{{len(fence)},}}\s*", text):
                fence = ""
            else:
                inside.add(number)
            continue
        opened = re.match(r"(`{3,}|~{3,})", text)
        if opened:
            fence = opened.group(1)
        else:
            outside.append(text)
    assert not fence, "a fence was left open"
    return inside, outside


def test_the_transcript_holds_every_turn_of_every_role_and_every_tool_call_as_the_run_goes(make_loop, demo_script):
    loop = make_loop(demo_script)
    seen: list[tuple[int, int]] = []

    class Reader:
        def event(self, event, state):
            if isinstance(event, ModelCalled) and event.role == "maker":
                entries, _ = _transcript(loop)
                seen.append((sum(e["kind"] == "model_turn" for e in entries),
                             sum(e["kind"] == "tool_result" for e in entries)))

    loop.session.runner.observers.append(Reader())
    state = loop.run()
    # Written before the step's checkpoint: the turn just made is there, and the calls of the turn before.
    assert seen[:3] == [(1, 0), (2, 1), (3, 3)]
    entries, markdown = _transcript(loop)
    turns = [e for e in entries if e["kind"] == "model_turn"]
    assert len(turns) == state.spend.model_calls
    assert {t["role"] for t in turns} == {"maker", "checker", "goal_checker"}
    first = turns[0]
    assert (first["iteration"], first["turn"], first["role"], first["model"]) == (1, 0, "maker", "scripted:demo")
    assert first["text"].startswith("APPROACH: Add a ttl_seconds parameter")
    assert first["tool_calls"] == [{"id": "call_1_0_0", "name": "read", "input": {"path": "kvstore.py"}}]
    assert first["usage"]["input_tokens"] > 0 and first["cost_usd"] > 0
    assert abs(sum(t["cost_usd"] for t in turns) - state.spend.cost_usd) < 1e-6
    checker = next(t for t in turns if t["role"] == "checker" and t["iteration"] == 2)
    assert checker["tool_calls"][0]["name"] == "verdict" and "'token'" in json.dumps(checker["tool_calls"])
    results = [e for e in entries if e["kind"] == "tool_result"]
    read = next(r for r in results if r["call_id"] == "call_1_0_0")
    assert read["name"] == "read" and "class KVStore" in read["result"] and not read["is_error"]
    maker_calls = [c for t in turns if t["role"] == "maker" for c in t["tool_calls"]]
    assert [r["call_id"] for r in results] == [c["id"] for c in maker_calls]  # each call answered, in order
    assert "## Iteration 1 · maker · turn 0" in markdown and "## Iteration 3 · goal_checker · turn 0" in markdown
    assert "class KVStore" in markdown and "ttl_seconds must be positive" in markdown


def test_the_transcript_is_redacted_fenced_and_clipped(make_loop, demo_script):
    noisy = {"run": {"command": f"printf '%s\\n' '{HOSTILE}' '{SECRET}'; python3 -c \"print('x' * 20000)\""}}
    maker = {"iteration": 1, "turns": [
        {"text": f"APPROACH: print things\n{HOSTILE}\nthe key is {SECRET}", "tools": [noisy]},
        {"tools": [{"done": {"summary": "printed"}}]}]}
    loop = make_loop(script(maker), budgets={"max_iterations": 1}, secrets=(SECRET,))
    loop.run()
    entries, markdown = _transcript(loop)
    raw = (loop.session.files.directory / "transcript.jsonl").read_text()
    assert SECRET not in raw and SECRET not in markdown and "[REDACTED]" in markdown
    (result,) = [e for e in entries if e["kind"] == "tool_result" and e["name"] == "run"]
    assert result["result_bytes"] > 8_000 and len(result["result"].encode()) < 4_600
    assert "bytes omitted" in result["result"] and result["result"].rstrip().endswith("x")
    inside, outside = _fenced_lines(markdown)
    # The model's and the command's text stay inside fences: no line of it closes one early.
    assert "# not a heading" not in outside and "```" not in outside
    assert sum(1 for n, text in enumerate(markdown.splitlines()) if text == "# not a heading" and n in inside) == 2



def test_a_resumed_run_appends_to_the_same_transcript(make_loop, demo_script):
    loop = _budget_loop(make_loop, demo_script, {"max_iterations": 2})

    class CancelAfterFirstIteration:
        def event(self, event, state):
            if event.kind == "decided" and event.iteration == 1:
                loop.session.store.request_cancel(state.run_id)

    loop.session.runner.observers.append(CancelAfterFirstIteration())
    loop.run()
    before, first_markdown = _transcript(loop)
    loop.session.store.clear_cancel(loop.session.state.run_id)
    loop.resume()
    after, markdown = _transcript(loop)
    assert after[:len(before)] == before and markdown.startswith(first_markdown)
    assert [e["kind"] for e in after].count("resumed") == 1
    assert {e["iteration"] for e in after if e["kind"] == "model_turn"} == {1, 2}


def test_a_loop_that_changed_nothing_pushes_nothing(make_loop):
    loop = make_loop(Script.model_validate({"checker": [], "goal_checker": MET}), budgets={"max_iterations": 1})
    state = loop.run()  # the script has no maker reply: the one iteration fails, the best is the base
    assert state.finished and state.suspended is None and state.best.sha == state.base_sha
    assert state.push is not None and not state.push.pushed and state.push.message == "nothing pushed: no change"
    assert branch_head(loop.origin, state.branch) is None and branch_head(loop.origin, "main")
    assert "- Push: nothing pushed: no change" in loop.session.files.report_path.read_text()
