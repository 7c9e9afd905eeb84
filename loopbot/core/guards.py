"""Guards (no model): scope, protected tests, denied paths, spec drift, nested repositories and
sizes. Pure: the runner supplies what git says changed and the drift found in each test file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from loopbot.core.changes import GITLINK, FileChange
from loopbot.core.paths import ALWAYS_DENIED, matches, spec
from loopbot.core.state import GuardViolation

MB = 1024 * 1024


def check_changes(
    changes: Sequence[FileChange], *, allow: list[str], protected: list[str], deny_paths: list[str],
    drift: Mapping[str, list[str]] | None = None, max_file_bytes: int | None = None,
) -> list[GuardViolation]:
    """Every guard violation in one iteration's change."""
    violations: list[GuardViolation] = []
    allowed = spec(allow)
    denied = [*ALWAYS_DENIED, *deny_paths]
    protected_set = set(protected)
    for change in changes:
        path = change.path
        if matches(denied, path):
            violations.append(GuardViolation(guard="deny_path", path=path, message="path is denied by boundaries"))
        elif path in protected_set:
            violations.append(GuardViolation(guard="protected", path=path,
                                             message="protected test changed or deleted (spec drift)"))
        elif not allowed.match_file(path):
            violations.append(GuardViolation(guard="scope", path=path, message="outside scope.allow"))
        if change.new_mode == GITLINK and not change.deleted:
            violations.append(GuardViolation(
                guard="special_file", path=path,
                message="a gitlink (nested repository): its files would be evaluated but never pushed"))
        if max_file_bytes is not None and change.growth and change.new_size > max_file_bytes:
            violations.append(GuardViolation(
                guard="size", path=path,
                message=f"{change.new_size / MB:.1f} MB is over the {max_file_bytes / MB:g} MB per-file cap (gate.max_file_mb)"))
    flagged = {v.path for v in violations if v.guard != "size"}
    for path, findings in (drift or {}).items():
        if path not in flagged:
            violations += [GuardViolation(guard="spec_drift", path=path, message=m) for m in findings]
    return violations


def check_growth(changes_since_base: Sequence[FileChange], max_growth_bytes: int) -> list[GuardViolation]:
    """The whole loop's additions, against the total growth cap."""
    grown = sum(c.growth for c in changes_since_base)
    if grown <= max_growth_bytes:
        return []
    largest = sorted(changes_since_base, key=lambda c: c.growth, reverse=True)[:3]
    names = ", ".join(f"{c.path} ({c.growth / MB:.1f} MB)" for c in largest)
    return [GuardViolation(guard="size", path=largest[0].path,
                           message=f"the loop's files grew by {grown / MB:.1f} MB, over the {max_growth_bytes / MB:g} MB "
                                   f"cap (gate.max_growth_mb); largest: {names}")]
