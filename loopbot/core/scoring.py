"""Scores: how close an iteration came, so the loop keeps improvements and rolls back regressions."""

from __future__ import annotations

import re

from loopbot.core.state import CheckerVerdict, Verdict

# A checker rejection (gate gaming, wrong purpose) halves the score: green checks on work the
# checker distrusts must never look like progress worth keeping.
REJECTED_FACTOR = 0.5

_UNITTEST_RAN = re.compile(r"^Ran (\d+) tests? in", re.MULTILINE)
_UNITTEST_FAILED = re.compile(r"^FAILED \(([^)]*)\)", re.MULTILINE)
# The output comes from the code under test (hostile text): no unbounded or nested quantifier
# that could backtrack on a line built to defeat it.
_PYTEST_SUMMARY = re.compile(r"=+ ([^\n]{0,200}?) in [\d.]+s", re.MULTILINE)
# `4 passed in 75.23s (0:01:15)`; `5 passed, 3 subtests passed`.
_PYTEST_SHORT = re.compile(
    r"^(\d+ (?:passed|failed|errors?)(?:, \d+ [a-z]+(?: [a-z]+)?)*)(?: in [\d.]+s(?: \([\d:]+\))?)?$", re.MULTILINE)
_COUNT = re.compile(r"(\d+) (subtests? )?(passed|failed|errors?|error)")


def test_counts(output: str) -> tuple[int, int] | None:
    """(passed, run) read from unittest or pytest output; None when it reports no test run.
    Skipped tests are not counted as run."""
    ran = _UNITTEST_RAN.findall(output)
    if ran:
        total = int(ran[-1])
        failed_match = _UNITTEST_FAILED.findall(output)
        bad = skipped = 0
        if failed_match:
            for part in failed_match[-1].split(","):
                key, _, value = part.strip().partition("=")
                if key in ("failures", "errors") and value.isdigit():
                    bad += int(value)
        found = re.findall(r"^(?:OK|FAILED) \((?:.*?)skipped=(\d+)", output, re.MULTILINE)
        if found:
            skipped = int(found[-1])
        run = max(0, total - skipped)
        return max(0, run - bad), run
    summaries = _PYTEST_SUMMARY.findall(output) or _PYTEST_SHORT.findall(output)
    if summaries:
        counts = {"passed": 0, "failed": 0, "error": 0}
        for number, subtests, word in _COUNT.findall(summaries[-1]):
            if subtests:
                continue  # subtests live inside tests already counted
            counts["error" if word.startswith("error") else word] += int(number)
        return counts["passed"], sum(counts.values())
    return None


def passing_fraction(output: str) -> float | None:
    """Fraction of tests passing, read from unittest or pytest output; None when not a test run."""
    counts = test_counts(output)
    if counts is None or counts[1] == 0:
        return None
    return counts[0] / counts[1]


def held_to_baseline(verdicts: list[Verdict], baseline: list[Verdict], suffix: str) -> list[Verdict]:
    """A passing test command must run at least the tests it ran at the start, and say so.

    Where the base's run reported how many tests it ran, a pass that reports none (the process
    was ended early: `os._exit(0)` at import) or fewer passing than the base ran (tests skipped,
    deselected or not collected) is not a pass, whatever the exit code. `suffix` marks a verdict
    judged again on another tree (its baseline is the one without the suffix).
    """
    at_start = {v.name: v for v in baseline}
    held = []
    for verdict in verdicts:
        base = at_start.get(verdict.name.removesuffix(suffix))
        base_run = base.tests_run if base is not None else None
        if verdict.passed and base_run:
            passed = verdict.tests_passed
            if passed is None or passed < base_run:
                why = ("the test run exited 0 but reported no results (ended early?)" if passed is None else
                       f"only {passed} test(s) passed; the base ran {base_run}")
                verdict = verdict.model_copy(update={
                    "passed": False, "score": min(0.99, (passed or 0) / base_run),
                    "evidence": f"[loopbot: {why}: a pass must run at least the base's tests]\n{verdict.evidence}"})
        held.append(verdict)
    return held


def iteration_score(verdicts: list[Verdict], checker: CheckerVerdict | None) -> float:
    objective = [v for v in verdicts if v.kind != "memory"]
    if not objective:
        return 0.0
    score = sum(v.score for v in objective) / len(objective)
    if checker is not None and checker.decision == "REJECT":
        score *= REJECTED_FACTOR
    return round(score, 6)
