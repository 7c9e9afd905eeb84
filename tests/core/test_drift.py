"""Spec drift judged by structure (Python AST) and by hunk counts (other languages)."""

from __future__ import annotations

import pytest

from loopbot.core.changes import FileChange
from loopbot.core.drift import drift, parse_hunks, python_drift
from loopbot.core.guards import check_changes

BASE = '''import unittest

import pytest


class MeanTest(unittest.TestCase):
    def test_mean(self):
        self.assertEqual(mean([1, 2, 3]), 2)

    def test_empty(self):
        with self.assertRaises(ValueError):
            mean([])


def test_plain():
    assert mean([4]) == 4
'''


def weakened(old: str, new: str) -> str:
    assert old in BASE
    return BASE.replace(old, new)


@pytest.mark.parametrize(("new", "finding"), [
    (weakened("        self.assertEqual(mean([1, 2, 3]), 2)\n", "        mean([1, 2, 3])\n"),
     "MeanTest.test_mean: 1 assertion(s) removed"),
    (weakened("    def test_mean(self):", "    def check_mean(self):"), "MeanTest.test_mean removed or renamed"),
    (weakened("class MeanTest(unittest.TestCase):\n",
              "class MeanTest(unittest.TestCase):\n    def setUp(self):\n        raise unittest.SkipTest('x')\n\n"),
     "MeanTest.test_mean: now skipped"),
    (weakened("    def test_empty(self):\n", "    def test_empty(self):\n        return\n"),
     "MeanTest.test_empty: returns before its assertions"),
    (weakened("import pytest\n", "import pytest\nfrom unittest import skip as later\n").replace(
        "def test_plain", "@later('x')\ndef test_plain"), "test_plain: now skipped"),
    (weakened("def test_plain():\n", "def test_plain():\n    pytest.skip('later')\n"), "test_plain: now skipped"),
    (weakened("import pytest\n", "import pytest\n\npytestmark = pytest.mark.skip\n"), "test_plain: now skipped"),
    (weakened("def test_plain():\n", "@pytest.mark.xfail\ndef test_plain():\n"), "test_plain: now skipped"),
    (weakened("def test_plain():", "def test_plain(:"), "no longer parses (SyntaxError), so its tests cannot run"),
])
def test_python_drift_by_structure(new: str, finding: str) -> None:
    assert finding in python_drift(BASE, new)


def test_honest_edits_to_tests_are_not_drift() -> None:
    stronger = weakened("        self.assertEqual(mean([1, 2, 3]), 2)\n",
                        "        self.assertEqual(mean([1, 2, 3]), 2)\n        self.assertEqual(mean([2]), 2)\n")
    renamed_helper = BASE + "\n\ndef helper():\n    return 1\n"
    moved_to_helper = weakened("        self.assertEqual(mean([1, 2, 3]), 2)\n",
                               "        self._check([1, 2, 3], 2)\n\n    def _check(self, values, want):\n"
                               "        self.assertEqual(mean(values), want)\n")
    assert python_drift(BASE, stronger) == []
    assert python_drift(BASE, renamed_helper) == []
    assert python_drift(BASE, moved_to_helper) == []
    assert python_drift(BASE, None) == ["3 test(s) deleted with the file"]


def test_hunks_are_read_by_their_counts_so_content_cannot_pose_as_a_header() -> None:
    # The added line `++ 0` is rendered `+++ 0`; a line-sniffing parser took it for a file header
    # and lost the assertion removed below it.
    diff = ("diff --git a/t.js b/t.js\n--- a/t.js\n+++ b/t.js\n@@ -1,3 +1,3 @@\n"
            "+++ 0\n test('x', () => {\n-  expect(f()).toBe(1);\n });\n")
    parsed = parse_hunks("t.js", diff)
    assert parsed.added == ["++ 0"] and parsed.removed == ["  expect(f()).toBe(1);"]
    assert drift("t.js", "old", "new", diff) == ["1 assertion(s) removed"]


def test_drift_findings_become_line_stops_for_unprotected_tests() -> None:
    change = FileChange("tests/test_a.py", "M", "100644", "100644")
    violations = check_changes([change], allow=["**"], protected=[], deny_paths=[],
                               drift={"tests/test_a.py": ["MeanTest.test_mean removed or renamed"]})
    assert [(v.guard, v.path) for v in violations] == [("spec_drift", "tests/test_a.py")]
    assert violations[0].stops_line


def test_workflows_and_loopbot_config_are_always_denied() -> None:
    changed = [".github/workflows/ci.yml", ".github/loopbot.yml", ".github/loopbot/prompts/maker_system.md.j2"]
    violations = check_changes([FileChange(p, "A", "000000", "100644") for p in changed],
                               allow=["**"], protected=[], deny_paths=[])
    assert [v.guard for v in violations] == ["deny_path"] * 3
