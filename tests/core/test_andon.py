import pytest

from loopbot.core.andon import FailureClass, classify, infrastructure_failure
from loopbot.core.state import Verdict


@pytest.mark.parametrize(
    ("output", "exit_code", "timed_out", "expected", "min_confidence"),
    [
        ("sh: 1: pytest: not found", 127, False, FailureClass.COMMAND_NOT_FOUND, 0.95),
        ("bash: cargo: command not found", 1, False, FailureClass.COMMAND_NOT_FOUND, 0.85),
        ("ModuleNotFoundError: No module named 'requests'", 1, False, FailureClass.MODULE_MISSING, 0.8),
        ("Error: Cannot find module 'lodash'", 1, False, FailureClass.MODULE_MISSING, 0.8),
        ("open('out.txt', 'w')\nPermissionError: [Errno 13] Permission denied: 'out.txt'", 1, False,
         FailureClass.PERMISSION_DENIED, 0.8),
        ("touch: cannot touch '/usr/x': Read-only file system", 1, False, FailureClass.PERMISSION_DENIED, 0.8),
        ("FileNotFoundError: [Errno 2] No such file or directory: 'data.csv'", 1, False, FailureClass.PATH_MISSING, 0.7),
        ("[loopbot: command timed out after 5s and was killed]", 124, True, FailureClass.TIMEOUT, 0.9),
        ("    assert f(1) == 3\nAssertionError", 1, False, FailureClass.ASSERTION_FAILURE, 0.75),
        ("FAILED (failures=2)", 1, False, FailureClass.ASSERTION_FAILURE, 0.75),
        ('  File "a.py", line 3\n    def f(:\nSyntaxError: invalid syntax', 1, False, FailureClass.SYNTAX_ERROR, 0.8),
        ("something odd happened", 3, False, FailureClass.UNKNOWN, 0.0),
    ],
)
def test_failure_classification(output, exit_code, timed_out, expected, min_confidence):
    found = classify(output, exit_code=exit_code, timed_out=timed_out)
    assert found.failure == expected and found.confidence >= min_confidence
    assert found.confidence <= 1.0


def test_only_environment_failures_at_baseline_are_infrastructure():
    failing_tests = Verdict(name="tests", kind="run", passed=False, score=0.4, exit_code=1,
                            evidence="AssertionError\nFAILED (failures=3)")
    missing_tool = Verdict(name="lint", kind="lint", passed=False, score=0.0, exit_code=127,
                           evidence="sh: 1: ruff: not found")
    assert infrastructure_failure([failing_tests]) is None
    verdict, found = infrastructure_failure([failing_tests, missing_tool])
    assert verdict.name == "lint" and found.failure == FailureClass.COMMAND_NOT_FOUND
