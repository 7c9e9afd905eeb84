import pytest

from loopbot.core.scoring import iteration_score, passing_fraction
from loopbot.core.state import CheckerVerdict, Verdict


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("....\n----\nRan 11 tests in 0.001s\n\nFAILED (failures=2, errors=1)\n", 8 / 11),
        ("Ran 4 tests in 0.1s\n\nOK\n", 1.0),
        ("==== 3 passed, 1 failed in 0.12s ====\n", 0.75),
        ("3 passed, 1 failed, 2 errors in 0.5s\n", 0.5),
        ("make: *** [all] Error 2\n", None),
        ("Ran 0 tests in 0.000s\n\nNO TESTS RAN\n", None),
    ],
)
def test_test_fraction(output, expected):
    got = passing_fraction(output)
    assert got == pytest.approx(expected) if expected is not None else got is None


def _v(score, passed=None):
    return Verdict(name="x", kind="run", passed=score == 1.0 if passed is None else passed, score=score)


def test_checker_rejection_halves_the_score():
    verdicts = [_v(1.0), _v(1.0)]
    assert iteration_score(verdicts, CheckerVerdict(decision="APPROVE")) == 1.0
    assert iteration_score(verdicts, CheckerVerdict(decision="REJECT")) == 0.5
    assert iteration_score([_v(0.5), _v(1.0)], None) == 0.75
    assert iteration_score([], None) == 0.0


def test_test_counts_read_unittest_and_pytest_and_leave_skips_out() -> None:
    from loopbot.core.scoring import test_counts

    assert test_counts("Ran 4 tests in 0.002s\n\nFAILED (failures=3)\n") == (1, 4)
    assert test_counts("Ran 4 tests in 0.002s\n\nOK (skipped=4)\n") == (0, 0)
    assert test_counts("..\n2 passed, 1 skipped in 0.05s\n") == (2, 2)
    assert test_counts("==== 3 failed, 1 passed in 0.10s ====\n") == (1, 4)
    assert test_counts("") is None


def test_a_pass_must_run_at_least_the_bases_tests() -> None:
    from loopbot.core.scoring import held_to_baseline
    from loopbot.core.state import Verdict

    base = [Verdict(name="tests", kind="run", passed=False, score=0.25, tests_passed=1, tests_run=4)]

    def judged(passed: int | None, run: int | None, name: str = "tests") -> Verdict:
        (held,) = held_to_baseline([Verdict(name=name, kind="run", passed=True, score=1.0, tests_passed=passed,
                                            tests_run=run)], base, " (again)")
        return held

    assert judged(4, 4).passed
    assert not judged(None, None).passed and "reported no results" in judged(None, None).evidence
    assert not judged(2, 2).passed and "only 2 test(s) passed; the base ran 4" in judged(2, 2).evidence
    assert not judged(0, 0, name="tests (again)").passed
    quiet = held_to_baseline([Verdict(name="lint", kind="lint", passed=True, score=1.0)], base, " (again)")
    assert quiet[0].passed


def test_counts_read_long_runs_subtests_and_teardown_errors() -> None:
    from loopbot.core.scoring import test_counts

    assert test_counts("4 passed in 75.23s (0:01:15)\n") == (4, 4)
    assert test_counts("5 passed, 3 subtests passed in 0.1s\n") == (5, 5)
    assert test_counts("4 failed, 1 passed, 1 error in 0.2s\n") == (1, 6)
