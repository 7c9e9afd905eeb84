from loopbot.core.drift import drift, parse_unified
from loopbot.core.guards import check_changes

DIFF = """diff --git a/tests/test_a.py b/tests/test_a.py
--- a/tests/test_a.py
+++ b/tests/test_a.py
@@ -1,6 +1,6 @@
 def test_one():
-    assert f(1) == 2
+    f(1)
+@pytest.mark.skip(reason="flaky")
 def test_two():
-    self.assertEqual(g(), 3)
+    self.assertEqual(g(), 3)  # unchanged in substance
diff --git a/tests/test_new.py b/tests/test_new.py
--- /dev/null
+++ b/tests/test_new.py
@@ -0,0 +1,2 @@
+def test_new():
+    assert h() == 1
"""


def test_parse_and_judge_a_diff():
    files = parse_unified(DIFF)
    assert set(files) == {"tests/test_a.py", "tests/test_new.py"}
    assert drift(files["tests/test_a.py"]) == ["1 assertion(s) removed", "1 skip marker(s) added"]
    assert drift(files["tests/test_new.py"]) == []


def test_weakening_an_unprotected_test_is_spec_drift():
    violations = check_changes(["tests/test_a.py", "tests/test_new.py"], allow=["**"], protected=[],
                               deny_paths=[], diff=DIFF)
    assert [(v.guard, v.path) for v in violations] == [("spec_drift", "tests/test_a.py")] * 2
    assert all(v.stops_line for v in violations)


def test_workflows_and_loopbot_config_are_always_denied():
    changed = [".github/workflows/ci.yml", ".github/loopbot.yml", ".github/loopbot/prompts/maker_system.md.j2"]
    violations = check_changes(changed, allow=["**"], protected=[], deny_paths=[])
    assert [v.guard for v in violations] == ["deny_path"] * 3
