"""Spec drift in test files: what a change does to the tests that already existed. Pure.

Python tests are compared by structure (the AST of the base and of the snapshot): tests by name,
assertions per test, skips by decorator, call or raise, skips in fixtures, early returns. Other
languages are judged on one file's unified diff, read by its hunk headers' line counts, so no
content line can pass for a header.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

ASSERTION = re.compile(
    r"\bassert\b|\bself\.assert\w*\(|\bexpect\(|\bassert_\w*!?\(|\bassert\w*\(|\bshould\b|\bt\.(Error|Fatal|Fail)\w*\(|\brequire\.\w+\("
)
SKIP = re.compile(
    r"@pytest\.mark\.(skip|skipif|xfail)\b|\bpytest\.(skip|xfail)\(|@unittest\.(skip|skipIf|skipUnless|expectedFailure)\b"
    r"|\bself\.skipTest\(|\bSkipTest\b|\b(it|test|describe)\.(skip|todo)\(|\bx(it|describe|test)\(|@Disabled\b|@Ignore\b"
    r"|\bt\.Skip\w*\(|#\[ignore\]"
)
_HUNK = re.compile(r"^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@")


@dataclass
class FileDiff:
    path: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def parse_hunks(path: str, diff: str) -> FileDiff:
    """One file's unified diff: lines are taken by the counts in each hunk header, so a content
    line such as `++ 0` (shown as `+++ 0`) is content, never a header."""
    result = FileDiff(path)
    old_left = new_left = 0
    for line in diff.splitlines():
        if old_left > 0 or new_left > 0:
            tag, text = line[:1], line[1:]
            if tag == "+":
                result.added.append(text)
                new_left -= 1
            elif tag == "-":
                result.removed.append(text)
                old_left -= 1
            elif tag == "\\":
                continue  # "\ No newline at end of file"
            else:
                old_left -= 1
                new_left -= 1
            continue
        found = _HUNK.match(line)
        if found:
            old_left = int(found.group(1)) if found.group(1) is not None else 1
            new_left = int(found.group(2)) if found.group(2) is not None else 1
    return result


def _count(pattern: re.Pattern[str], lines: list[str]) -> int:
    return sum(1 for line in lines if pattern.search(line) and not line.lstrip().startswith(("#", "//")))


def text_drift(diff: FileDiff) -> list[str]:
    """For files with no structural reader: assertion and skip lines gained or lost."""
    found = []
    lost = _count(ASSERTION, diff.removed) - _count(ASSERTION, diff.added)
    if lost > 0:
        found.append(f"{lost} assertion(s) removed")
    skips = _count(SKIP, diff.added) - _count(SKIP, diff.removed)
    if skips > 0:
        found.append(f"{skips} skip marker(s) added")
    return found


# -- Python, by structure -----------------------------------------------------------------
_SKIP_NAMES = {"skip", "skipIf", "skipUnless", "expectedFailure", "skipif", "xfail", "skipTest", "SkipTest",
               "Skipped", "importorskip"}
_FIXTURES = {"setUp", "setUpClass", "setUpModule", "asyncSetUp", "setup_method", "setup_class", "setup_module",
             "setup_function", "setup"}


@dataclass
class TestShape:
    assertions: int = 0
    skipped: bool = False
    returns_early: bool = False


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Call):
        return _dotted(node.func)
    return ""


class _Names:
    """Aliases from imports: `from unittest import skip as later` makes `later` a skip."""

    def __init__(self, tree: ast.Module):
        self.alias: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                for name in node.names:
                    self.alias[name.asname or name.name] = name.name
            elif isinstance(node, ast.Import):
                for name in node.names:
                    if name.asname:
                        self.alias[name.asname] = name.name

    def last(self, node: ast.AST) -> str:
        dotted = _dotted(node)
        head, _, rest = dotted.partition(".")
        dotted = ".".join(p for p in (self.alias.get(head, head), rest) if p)
        return dotted.rsplit(".", 1)[-1]

    def is_skip(self, node: ast.AST) -> bool:
        return self.last(node) in _SKIP_NAMES


def _is_assertion(node: ast.AST, names: _Names) -> bool:
    if isinstance(node, ast.Assert):
        return True
    if isinstance(node, ast.Call):
        last = names.last(node.func)
        return last.startswith(("assert", "fail")) or last in ("raises", "warns", "expect", "deprecated_call")
    return False


def _skips_inside(body: list[ast.stmt], names: _Names) -> bool:
    for node in ast.walk(ast.Module(body=body, type_ignores=[])):
        if isinstance(node, ast.Raise) and node.exc is not None and names.is_skip(node.exc):
            return True
        if isinstance(node, ast.Call) and names.is_skip(node.func):
            return True
    return False


def _helper_calls(func: ast.FunctionDef | ast.AsyncFunctionDef, helpers: dict[str, int]) -> int:
    """Assertions a test makes through helpers of its module or class (`self._check(...)`, one
    level deep): moving assertions into a helper is a refactor, not drift."""
    total = 0
    for node in ast.walk(func):
        if isinstance(node, ast.Call):
            func_node = node.func
            if isinstance(func_node, ast.Name):
                total += helpers.get(func_node.id, 0)
            elif isinstance(func_node, ast.Attribute) and isinstance(func_node.value, ast.Name) \
                    and func_node.value.id in ("self", "cls"):
                total += helpers.get(f"self.{func_node.attr}", 0)
    return total


def _own_assertions(func: ast.FunctionDef | ast.AsyncFunctionDef, names: _Names) -> int:
    return sum(1 for n in ast.walk(func) if _is_assertion(n, names))


def _shape(func: ast.FunctionDef | ast.AsyncFunctionDef, names: _Names, inherited_skip: bool,
           helpers: dict[str, int]) -> TestShape:
    assertions = [n for n in ast.walk(func) if _is_assertion(n, names)]
    last_assertion = max((getattr(n, "lineno", 0) for n in assertions), default=0)
    returns = [n for n in ast.walk(func) if isinstance(n, ast.Return)]
    return TestShape(
        assertions=len(assertions) + _helper_calls(func, helpers),
        skipped=inherited_skip or any(names.is_skip(d) for d in func.decorator_list) or _skips_inside(func.body, names),
        returns_early=any(r.lineno < last_assertion for r in returns),
    )


def _marks_skip(body: list[ast.stmt], names: _Names) -> bool:
    """`pytestmark = pytest.mark.skip` at module or class level."""
    for node in body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets):
            values = node.value.elts if isinstance(node.value, (ast.List, ast.Tuple)) else [node.value]
            if any(names.is_skip(v) for v in values):
                return True
    return False


def _fixture_skips(body: list[ast.stmt], names: _Names) -> bool:
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            fixture = node.name in _FIXTURES or any(names.last(d) == "fixture" for d in node.decorator_list)
            if fixture and _skips_inside(node.body, names):
                return True
    return False


def python_tests(source: str) -> dict[str, TestShape]:
    """Every test in a module by qualified name (`Class.test_x`), with what makes it count."""
    tree = ast.parse(source)
    names = _Names(tree)
    module_skip = _marks_skip(tree.body, names) or _fixture_skips(tree.body, names)
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    module_helpers = {n.name: _own_assertions(n, names) for n in tree.body
                      if isinstance(n, functions) and not n.name.startswith("test")}
    tests: dict[str, TestShape] = {}
    for node in tree.body:
        if isinstance(node, functions) and node.name.startswith("test"):
            tests[node.name] = _shape(node, names, module_skip, module_helpers)
        elif isinstance(node, ast.ClassDef):
            class_skip = (module_skip or any(names.is_skip(d) for d in node.decorator_list)
                          or _marks_skip(node.body, names) or _fixture_skips(node.body, names))
            helpers = {**module_helpers, **{f"self.{m.name}": _own_assertions(m, names) for m in node.body
                                            if isinstance(m, functions) and not m.name.startswith("test")}}
            for item in node.body:
                if isinstance(item, functions) and item.name.startswith("test"):
                    tests[f"{node.name}.{item.name}"] = _shape(item, names, class_skip, helpers)
    return tests


def python_drift(old: str, new: str | None) -> list[str]:
    """How the snapshot's version of a test module weakens the base's; `new` None: deleted."""
    try:
        before = python_tests(old)
    except (SyntaxError, ValueError):
        return []  # the base did not parse: there was no structure to weaken
    if new is None:
        return [f"{len(before)} test(s) deleted with the file"] if before else []
    try:
        after = python_tests(new)
    except (SyntaxError, ValueError) as exc:
        return [f"no longer parses ({exc.__class__.__name__}), so its tests cannot run"]
    found = []
    for name, shape in before.items():
        now = after.get(name)
        if now is None:
            found.append(f"{name} removed or renamed")
            continue
        if now.assertions < shape.assertions:
            found.append(f"{name}: {shape.assertions - now.assertions} assertion(s) removed")
        if now.skipped and not shape.skipped:
            found.append(f"{name}: now skipped")
        if now.returns_early and not shape.returns_early:
            found.append(f"{name}: returns before its assertions")
    return found


def drift(path: str, old: str | None, new: str | None, diff: str) -> list[str]:
    """What this change to an existing test file does to the specification."""
    if old is None:
        return []  # a new file: the base-tests check judges it
    if path.endswith(".py"):
        return python_drift(old, new)
    return text_drift(parse_hunks(path, diff))
