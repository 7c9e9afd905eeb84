"""Scores: how close an iteration came, so the loop keeps improvements and rolls back regressions."""

from __future__ import annotations

import re

from loopbot.core.state import CheckerVerdict, Verdict

# A checker rejection (gate gaming, wrong purpose) halves the score: green checks on work the
# checker distrusts must never look like progress worth keeping.
REJECTED_FACTOR = 0.5

_UNITTEST_RAN = re.compile(r"^Ran (\d+) tests? in", re.MULTILINE)
_UNITTEST_FAILED = re.compile(r"^FAILED \(([^)]*)\)", re.MULTILINE)
_PYTEST_SUMMARY = re.compile(r"=+ (.*?) in [\d.]+s", re.MULTILINE)
_PYTEST_SHORT = re.compile(r"^(\d+ (?:passed|failed|errors?)(?:, \d+ \w+)*)(?: in [\d.]+s)?$", re.MULTILINE)
_COUNT = re.compile(r"(\d+) (passed|failed|errors?|error)")


def passing_fraction(output: str) -> float | None:
    """Fraction of tests passing, read from unittest or pytest output; None when not a test run."""
    ran = _UNITTEST_RAN.findall(output)
    if ran:
        total = int(ran[-1])
        if total == 0:
            return None
        failed_match = _UNITTEST_FAILED.findall(output)
        bad = 0
        if failed_match:
            for part in failed_match[-1].split(","):
                key, _, value = part.strip().partition("=")
                if key in ("failures", "errors") and value.isdigit():
                    bad += int(value)
        return max(0.0, (total - bad) / total)
    summaries = _PYTEST_SUMMARY.findall(output) or _PYTEST_SHORT.findall(output)
    if summaries:
        counts = {"passed": 0, "failed": 0, "error": 0}
        for number, word in _COUNT.findall(summaries[-1]):
            counts["error" if word.startswith("error") else word] += int(number)
        total = sum(counts.values())
        if total:
            return counts["passed"] / total
    return None


def iteration_score(verdicts: list[Verdict], checker: CheckerVerdict | None) -> float:
    objective = [v for v in verdicts if v.kind != "memory"]
    if not objective:
        return 0.0
    score = sum(v.score for v in objective) / len(objective)
    if checker is not None and checker.decision == "REJECT":
        score *= REJECTED_FACTOR
    return round(score, 6)
