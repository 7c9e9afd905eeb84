"""Guards (no model): scope, protected tests, spec drift, denied paths. Pure."""

from __future__ import annotations

from loopbot.core.drift import drift, parse_unified
from loopbot.core.paths import ALWAYS_DENIED, find_test_files, matches, spec
from loopbot.core.state import GuardViolation


def check_changes(
    changed: list[str], *, allow: list[str], protected: list[str], deny_paths: list[str], diff: str = ""
) -> list[GuardViolation]:
    """Every guard violation in an iteration's change; `diff` is the unified diff of that change."""
    violations: list[GuardViolation] = []
    allowed = spec(allow)
    denied = [*ALWAYS_DENIED, *deny_paths]
    protected_set = set(protected)
    for path in changed:
        if matches(denied, path):
            violations.append(GuardViolation(guard="deny_path", path=path, message="path is denied by boundaries"))
        elif path in protected_set:
            violations.append(GuardViolation(guard="protected", path=path,
                                             message="protected test changed or deleted (spec drift)"))
        elif not allowed.match_file(path):
            violations.append(GuardViolation(guard="scope", path=path, message="outside scope.allow"))
    flagged = {v.path for v in violations}
    tests = set(find_test_files(changed)) - flagged
    if tests and diff:
        for path, file_diff in parse_unified(diff).items():
            if path in tests:
                for finding in drift(file_diff):
                    violations.append(GuardViolation(guard="spec_drift", path=path, message=finding))
    return violations
