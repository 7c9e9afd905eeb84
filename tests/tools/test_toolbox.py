import os
from pathlib import Path

import pytest

from loopbot.sandbox.subprocess_runner import SubprocessSandbox
from loopbot.tools.toolbox import ToolBox


@pytest.fixture
def box(tmp_path: Path) -> ToolBox:
    root = tmp_path / "wt"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "mod.py").write_text("def f():\n    return 1\n")
    (root / ".git").write_text("gitdir: elsewhere\n")
    (root / ".github").mkdir()
    (tmp_path / "secret.txt").write_text("TOKEN=abc\n")
    return ToolBox(root=root, sandbox=SubprocessSandbox(), deny_paths=[".github/**"], deny_commands=["curl*"])


@pytest.mark.parametrize("path", ["../secret.txt", "/etc/passwd", "pkg/../../secret.txt", ".git", ".git/config"])
def test_reads_outside_the_worktree_or_into_git_are_refused(box, path):
    outcome = box.call("read", {"path": path})
    assert outcome.is_error and outcome.content.startswith("refused")


def test_symlink_escape_is_refused(box, tmp_path):
    os.symlink(tmp_path / "secret.txt", box.root / "link.txt")
    os.symlink(tmp_path, box.root / "linkdir")
    assert box.call("read", {"path": "link.txt"}).is_error
    assert box.call("write", {"path": "linkdir/evil.txt", "content": "x"}).is_error
    assert not (tmp_path / "evil.txt").exists()


def test_writes_to_denied_paths_are_refused(box):
    outcome = box.call("write", {"path": ".github/workflows/ci.yml", "content": "on: push"})
    assert outcome.is_error and "deny_paths" in outcome.content
    assert not (box.root / ".github" / "workflows").exists()


def test_edit_that_breaks_python_syntax_is_reverted(box):
    outcome = box.call("edit", {"path": "pkg/mod.py", "search": "return 1", "replace": "return (1"})
    assert outcome.is_error and "would not parse" in outcome.content
    assert (box.root / "pkg" / "mod.py").read_text() == "def f():\n    return 1\n"


def test_read_with_line_range_and_search(box):
    (box.root / "big.txt").write_text("".join(f"line {i}\n" for i in range(1, 51)))
    outcome = box.call("read", {"path": "big.txt", "start_line": 10, "end_line": 12})
    assert outcome.content.splitlines()[:3] == ["   10 | line 10", "   11 | line 11", "   12 | line 12"]
    assert box.call("search", {"pattern": r"return \d"}).content == "pkg/mod.py:2: return 1"


def test_denied_command_is_refused_and_allowed_command_runs(box):
    assert box.call("run", {"command": "curl http://example.com"}).is_error
    outcome = box.call("run", {"command": "echo hello"})
    assert not outcome.is_error and "hello" in outcome.content


def test_plan_mode_is_read_only(tmp_path):
    root = tmp_path / "r"
    root.mkdir()
    box = ToolBox(root=root, sandbox=SubprocessSandbox(), plan_mode=True)
    assert {s.name for s in box.specs()} == {"list", "read", "search", "diagnose"}
    outcome = box.call("write", {"path": "a.txt", "content": "x"})
    assert outcome.is_error and "plan mode" in outcome.content and not (root / "a.txt").exists()
    bad = box.call("diagnose", {"hypotheses": ["one"], "five_whys": ["a", "b", "c"], "next_approach": "x"})
    assert bad.is_error and bad.diagnosis is None
    good = box.call("diagnose", {"hypotheses": ["h1", "h2"], "five_whys": ["a", "b", "c"], "next_approach": "x"})
    assert good.diagnosis is not None and not good.is_error


def test_unknown_tool_and_bad_arguments(box):
    assert box.call("teleport", {}).is_error
    assert "invalid input" in box.call("read", {"file": "x"}).content


def test_writing_through_a_hard_link_is_refused(box, tmp_path):
    outside = box.root / "pkg" / "mod.py"
    os.link(outside, box.root / "alias.py")
    outcome = box.call("write", {"path": "alias.py", "content": "x = 1\n"})
    assert outcome.is_error and "hard links" in outcome.content
    assert outside.read_text() == "def f():\n    return 1\n"
    assert [r.guard for r in box.refusals] == ["refused_write"]


@pytest.mark.parametrize(("name", "args", "expected"), [
    ("run", {"command": "true", "timeout_seconds": "thirty"}, "timeout_seconds"),
    ("run", {"command": "echo a\0b"}, "NUL"),
    ("done", {"summary": ["a", "b"]}, "summary"),
    ("done", {"summary": None}, "summary"),
    ("edit", {"path": "pkg/mod.py", "search": "x"}, "replace"),
    ("read", {"path": "pkg/mod.py", "start_line": 1.5}, "start_line"),
    ("write", {"path": "pkg", "content": "x"}, "directory"),
    ("read", {"path": "pkg/mod.py", "colour": "red"}, "colour"),
])
def test_bad_tool_input_is_a_plain_tool_error_with_the_schema_message(box, name, args, expected):
    outcome = box.call(name, args)
    assert outcome.is_error and outcome.done is None and expected in outcome.content
    for internal in ("ToolBox", "positional argument", "Traceback", "_edit()", "NoneType"):
        assert internal not in outcome.content
    assert box.refusals == []  # a malformed call is a mistake, not a boundary crossing


def test_a_handler_that_raises_becomes_a_tool_error(box, monkeypatch):
    def broken(**_):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(box, "_list", broken)
    outcome = box.call("list", {})
    assert outcome.is_error and "list failed" in outcome.content


def test_negative_line_numbers_count_from_the_end(box):
    (box.root / "ten.txt").write_text("".join(f"line{n}\n" for n in range(1, 11)))
    tail = box.call("read", {"path": "ten.txt", "start_line": -3})
    assert "line8" in tail.content and "line10" in tail.content and "line7" not in tail.content
    whole = box.call("read", {"path": "ten.txt", "end_line": -1})
    assert "line1\n" in whole.content + "\n" and "line10" in whole.content


def test_search_accepts_a_file_path(box):
    outcome = box.call("search", {"pattern": "return", "path": "pkg/mod.py"})
    assert "pkg/mod.py:2" in outcome.content
