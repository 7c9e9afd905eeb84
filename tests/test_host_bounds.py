"""Host-side code that reads hostile files and text is bounded: FIFOs and devices are refused,
never waited on; model and goal regexes run in linear time; YAML bombs, deep nesting and huge
documents are refused with a location; the plan-body parser is linear; the docs loop writes no
link. Each call runs in a thread joined with a bound, so a regression fails instead of hanging.
"""

from __future__ import annotations

import os
import threading
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from loopbot.config import load_config
from loopbot.errors import InputError
from loopbot.evaluators import _file
from loopbot.goal import FileCheck, parse_goal
from loopbot.plans import goal_from_markdown, yaml_blocks
from loopbot.sandbox.subprocess_runner import SubprocessSandbox
from loopbot.testing.scripted import load_script
from loopbot.tools.syntax import syntax_error
from loopbot.tools.toolbox import ToolBox
from loopbot.yamlfile import parse_yaml

BOUND_SECONDS = 20  # the findings took minutes or for ever; a bounded call takes well under a second
GOAL = "goal: g\nacceptance:\n  - run: 'true'\n"
LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))


def bounded(call: Callable[[], Any]) -> Any:
    """The call's result (or exception), failing the test if it does not finish within the bound."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(BOUND_SECONDS)
    assert not worker.is_alive(), f"still running after {BOUND_SECONDS}s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


@pytest.fixture
def tools(tmp_path: Path) -> ToolBox:
    root = tmp_path / "wt"
    root.mkdir()
    (root / "mod.py").write_text("x = 1\n")
    return ToolBox(root=root, sandbox=SubprocessSandbox())


# -- file tools ----------------------------------------------------------------------------------

def test_a_fifo_is_refused_by_every_file_tool_not_waited_on(tools):
    os.mkfifo(tools.root / "pipe")
    os.mkfifo(tools.root / "pipe.py")
    read = bounded(lambda: tools.call("read", {"path": "pipe"}))
    assert read.is_error and "FIFO" in read.content
    searched = bounded(lambda: tools.call("search", {"pattern": "x"}))
    assert "mod.py:1" in searched.content
    for name, args in (("write", {"path": "pipe", "content": "x"}),
                       ("edit", {"path": "pipe.py", "search": "x", "replace": "y"})):
        outcome = bounded(lambda n=name, a=args: tools.call(n, a))
        assert outcome.is_error and "refused" in outcome.content
    assert [v.guard for v in tools.refusals] == ["refused_write", "refused_write"]


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_a_device_node_in_the_worktree_is_not_read(tools):
    os.mknod(tools.root / "zero", 0o666 | 0o020000, os.makedev(1, 5))  # /dev/zero
    outcome = bounded(lambda: tools.call("read", {"path": "zero"}))
    assert outcome.is_error and "device" in outcome.content
    assert "no matches" in bounded(lambda: tools.call("search", {"pattern": "never-there"})).content


def test_writing_a_directory_or_through_a_link_inside_is_refused(tools):
    (tools.root / "pkg").mkdir()
    assert bounded(lambda: tools.call("write", {"path": "pkg", "content": "x"})).is_error
    os.symlink("mod.py", tools.root / "alias.py")
    outcome = tools.call("write", {"path": "alias.py", "content": "y = 2\n"})
    # Resolved inside the worktree to mod.py: the real file is written, the link is untouched.
    assert not outcome.is_error and (tools.root / "mod.py").read_text() == "y = 2\n"
    assert os.path.islink(tools.root / "alias.py")


# -- regexes from a model or a goal ----------------------------------------------------------------

def test_a_catastrophic_search_pattern_answers_at_once(tools):
    (tools.root / "a.txt").write_text("a" * 100_000 + "b\n")
    outcome = bounded(lambda: tools.call("search", {"pattern": "^(a+)+$"}))
    assert outcome.content == "no matches"
    refused = tools.call("search", {"pattern": r"(a)\1"})
    assert refused.is_error and "RE2" in refused.content


def test_a_goal_regex_is_linear_and_unsupported_syntax_is_located(tmp_path):
    (tmp_path / "big.txt").write_text("a" * 200_000 + "!")
    verdict = bounded(lambda: _file(FileCheck(file="big.txt", regex="^(a+)+$")).check(tmp_path, SubprocessSandbox()))
    assert not verdict.passed
    with pytest.raises(InputError) as info:
        parse_goal(GOAL + "  - file: big.txt\n    regex: '(?<=a)b'\n", "goal.yaml")
    problem = next(p for p in info.value.problems if "RE2" in p.message)
    assert problem.line == 5 and problem.field == "acceptance.1.regex"


# -- YAML -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    (GOAL + LAUGHS, "expands"),
    (GOAL + "".join(f"k{i}: &k{i} [*a]\n" for i in range(300)).replace("[*a]", "[1]", 1), "aliases"),
    ("a: " + "[" * 100_000 + "]" * 100_000 + "\n", "nest"),
    ("a: " + "[" * 60 + "]" * 60 + "\nb: " + "{x: " * 70 + "1" + "}" * 70 + "\n", "nested more than 64"),
    ("goal: " + "x" * 50_000_000 + "\n", "byte limit"),
])
def test_hostile_yaml_is_refused_with_a_location_in_bounded_time_and_memory(text, expected):
    tracemalloc.start()
    try:
        with pytest.raises(InputError) as info:
            bounded(lambda: parse_yaml(text, "goal.yaml"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert expected in info.value.problems[0].message
    assert peak < 200 * 1024 * 1024


def test_an_expansion_bomb_under_the_alias_count_is_refused_too():
    few = "a: &a [" + ", ".join(["x"] * 1000) + "]\nb: &b [" + ", ".join(["*a"] * 150) + "]\nc: [*b, *b, *b]\n"
    with pytest.raises(InputError) as info:
        bounded(lambda: parse_yaml(few, "goal.yaml"))
    assert "expands" in info.value.problems[0].message and info.value.problems[0].line == 1


def test_ordinary_anchors_still_work():
    data, _ = parse_yaml("base: &b {x: 1}\nother: *b\n", "c.yaml")
    assert data == {"base": {"x": 1}, "other": {"x": 1}}


def test_every_yaml_entry_point_uses_the_bounded_loader(tmp_path):
    bomb = GOAL + LAUGHS
    for path, load in ((tmp_path / "loopbot.yml", load_config), (tmp_path / "script.yaml", load_script)):
        path.write_text(bomb.replace(GOAL, "maker: []\n") if path.name == "script.yaml" else LAUGHS)
        with pytest.raises(InputError) as info:
            bounded(lambda p=path, f=load: f(p))
        assert "expands" in info.value.problems[0].message
    with pytest.raises(InputError):
        bounded(lambda: goal_from_markdown(f"# Plan\n\n```yaml\n{bomb}```\n", "#7"))
    assert bounded(lambda: syntax_error("fixtures.yaml", bomb)) is None  # composing shares nodes: no blow-up
    assert "nested more than" in (syntax_error("deep.yaml", "[" * 500 + "]" * 500) or "")
    assert syntax_error("deep.json", "[" * 100_000 + "]" * 100_000) is not None
    assert syntax_error("deep.toml", "a = " + "[" * 100_000 + "]" * 100_000) is not None


def test_a_fifo_given_as_a_config_file_is_refused(tmp_path):
    os.mkfifo(tmp_path / "loopbot.yml")
    with pytest.raises(InputError) as info:
        bounded(lambda: load_config(tmp_path / "loopbot.yml"))
    assert "not a regular file" in info.value.problems[0].message


# -- plan bodies -------------------------------------------------------------------------------------

def test_the_plan_body_parser_is_linear():
    body = "```yaml\n" * 65_000
    blocks = bounded(lambda: yaml_blocks(body))
    assert len(blocks) == 1  # the first fence opens a block that never closes
    plan = "# Plan\n\ntext\n\n````yaml\n" + GOAL + "```\nstill inside\n````\nafter\n"
    assert yaml_blocks(plan)[0][1].endswith("still inside")
    assert yaml_blocks(plan)[0][0] == 5


@pytest.mark.parametrize("value", ["1" * 5000, "2001-13-45"])
def test_values_python_cannot_build_are_located_errors_not_tracebacks(value):
    with pytest.raises(InputError) as info:
        parse_yaml(f"x: {value}\n", "goal.yaml")
    assert "cannot be read" in info.value.problems[0].message


def test_one_search_call_reads_a_bounded_amount(tools, monkeypatch):
    monkeypatch.setattr("loopbot.tools.toolbox.SEARCH_BYTES_LIMIT", 3_000)
    for i in range(5):
        (tools.root / f"gen{i}.txt").write_text("z\n" * 1000)
    outcome = bounded(lambda: tools.call("search", {"pattern": "never"}))
    assert "stopped after" in outcome.content


def test_an_edit_on_a_large_file_answers_in_bounded_time():
    from loopbot.tools.edit import apply_edit

    text = "a\n" * 20_000
    missing = bounded(lambda: apply_edit(text, "a\n" * 200 + "b\n", "x"))
    assert missing.status == "missing" and "nearest match" in missing.message
    indented = "    x = 1\n" * 20_000
    drifted = bounded(lambda: apply_edit(indented, " x = 1 \n" * 50 + "y\n", "z"))
    assert drifted.status == "missing"


def test_failure_classification_is_linear_in_the_output():
    from loopbot.core.andon import classify

    for text in ("assert " * 200_000, "Expected " * 150_000):
        assert bounded(lambda t=text: classify(t, exit_code=1)) is not None


def test_reading_test_counts_is_linear_in_hostile_output():
    from loopbot.core.scoring import test_counts

    for text in ("1 passed, " * 50_000 + "x", "= " * 100_000, "5 passed, 3 subtests passed in 0.2s"):
        bounded(lambda t=text: test_counts(t))
    assert test_counts("1 passed, 2 skipped, 3 warnings in 1.0s (0:00:01)") == (1, 1)


def test_tool_calls_written_as_text_are_read_in_linear_time():
    """A model reply full of unclosed <tool_call> tags or fences (5,000 tags took 12.6 s with a
    lazy-gap regex, 150,000 for ever) is read at once; real calls in it are still found."""
    from loopbot.core.textcalls import parse_text_calls

    assert bounded(lambda: parse_text_calls("<tool_call>x" * 150_000, {"done"})) == []
    assert bounded(lambda: parse_text_calls("```\n" * 150_001, {"done"})) == []
    mixed = "```\n" * 1000 + '```json\n{"tool": "done", "input": {"summary": "s"}}\n```'
    assert [c.name for c in bounded(lambda: parse_text_calls(mixed, {"done"}))] == ["done"]
    call = '<tool_call>{"name": "done", "arguments": {"summary": "s"}}</tool_call>'
    noisy = "<tool_call>x" * 100_000 + call
    assert [c.input for c in bounded(lambda: parse_text_calls(noisy, {"done"}))] == [{"summary": "s"}]
    assert [c.input for c in parse_text_calls("text " + call, {"done"})] == [{"summary": "s"}]
