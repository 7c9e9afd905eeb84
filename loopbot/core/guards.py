"""Guards (no model): scope, protected tests, denied paths. Pure."""

from __future__ import annotations

from loopbot.core.paths import matches, spec
from loopbot.core.state import GuardViolation


def check_changes(
    changed: list[str], *, allow: list[str], protected: list[str], deny_paths: list[str]
) -> list[GuardViolation]:
    violations: list[GuardViolation] = []
    allowed = spec(allow)
    protected_set = set(protected)
    for path in changed:
        if deny_paths and matches(deny_paths, path):
            violations.append(GuardViolation(guard="deny_path", path=path, message="path is denied by boundaries"))
        elif path in protected_set:
            violations.append(GuardViolation(guard="protected", path=path,
                                             message="protected test changed or deleted (spec drift)"))
        elif not allowed.match_file(path):
            violations.append(GuardViolation(guard="scope", path=path, message="outside scope.allow"))
    return violations
