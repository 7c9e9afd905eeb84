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
