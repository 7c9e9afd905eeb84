"""What the tools tell a model about themselves, and the arguments added for real models."""

from pathlib import Path
from typing import Any

import pytest

from loopbot.sandbox.subprocess_runner import SubprocessSandbox
from loopbot.tools.toolbox import Done, ToolBox


@pytest.fixture
def box(tmp_path: Path) -> ToolBox:
    root = tmp_path / "wt"
    root.mkdir()
    (root / "mod.py").write_text("def f(x):\n    y = x + 1\n    return y\n\n\ndef g(x):\n    y = x + 1\n    return y\n")
    return ToolBox(root=root, sandbox=SubprocessSandbox())


def _undescribed(schema: Any, where: str) -> list[str]:
    """Every property, at any depth (items, $defs, nested objects), that has no description."""
    missing: list[str] = []
    if isinstance(schema, dict):
        for name, prop in (schema.get("properties") or {}).items():
            if not (isinstance(prop, dict) and str(prop.get("description", "")).strip()):
                missing.append(f"{where}.{name}")
        for key, value in schema.items():
            missing += _undescribed(value, f"{where}.{key}")
    elif isinstance(schema, list):
        for i, value in enumerate(schema):
            missing += _undescribed(value, f"{where}[{i}]")
    return missing


@pytest.mark.parametrize("options", [{"plan_mode": False}, {"plan_mode": True}, {"mode": "audit"}, {"mode": "docs"}])
def test_every_tool_parameter_has_a_description(tmp_path, options):
    specs = ToolBox(root=tmp_path, sandbox=SubprocessSandbox(), **options).specs()
    assert specs
    missing = [m for spec in specs for m in _undescribed(spec.input_schema, spec.name)]
    assert missing == []
    assert all(spec.description.strip() for spec in specs)


def test_read_and_edit_describe_the_line_number_prefix(box):
    specs = {s.name: s for s in box.specs()}
    assert "   12 | " in specs["read"].description
    assert "   12 | " in specs["edit"].description
    negative = specs["read"].input_schema["properties"]["end_line"]["description"]
    assert "-1" in negative and "end" in negative


def test_edit_replace_all_through_the_toolbox(box):
    many = box.call("edit", {"path": "mod.py", "search": "y = x + 1", "replace": "y = x + 2"})
    assert many.is_error and "2 places" in many.content and "replace_all" in many.content
    done = box.call("edit", {"path": "mod.py", "search": "y = x + 1", "replace": "y = x + 2", "replace_all": True})
    assert not done.is_error and (box.root / "mod.py").read_text().count("y = x + 2") == 2


def test_edit_replace_all_must_be_a_boolean(box):
    outcome = box.call("edit", {"path": "mod.py", "search": "return y", "replace": "return 0", "replace_all": "yes"})
    assert outcome.is_error and "replace_all" in outcome.content


def test_text_pasted_from_read_edits_the_file(box):
    shown = box.call("read", {"path": "mod.py", "start_line": 6, "end_line": 7}).content
    pasted = "\n".join(shown.splitlines()[:2])
    outcome = box.call("edit", {"path": "mod.py", "search": pasted, "replace": "def g(x):\n    y = x - 1"})
    assert not outcome.is_error and "line-number prefix" in outcome.content
    assert (box.root / "mod.py").read_text().endswith("def g(x):\n    y = x - 1\n    return y\n")


def test_done_carries_the_approach(box):
    outcome = box.call("done", {"summary": "s", "chunks_completed": [1], "approach": "clamp x before adding"})
    assert outcome.done == Done(summary="s", chunks_completed=[1], approach="clamp x before adding")
    assert box.call("done", {"summary": "s"}).done == Done(summary="s", chunks_completed=[])
    assert Done(summary="s", chunks_completed=[]).approach == ""


def test_an_approach_is_one_bounded_line(box):
    outcome = box.call("done", {"summary": "s", "approach": "  first\n  second  " + "x" * 1000})
    assert outcome.done is not None
    assert outcome.done.approach.startswith("first second") and len(outcome.done.approach) <= 300


def test_an_approach_of_the_wrong_type_is_an_input_error(box):
    outcome = box.call("done", {"summary": "s", "approach": ["a"]})
    assert outcome.is_error and outcome.done is None and "approach" in outcome.content
