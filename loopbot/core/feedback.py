"""Structured feedback carried from one iteration into the next."""

from __future__ import annotations

from loopbot.core.state import IterationRecord

EVIDENCE_LINES = 30


def _tail(text: str, lines: int = EVIDENCE_LINES) -> str:
    kept = text.strip().splitlines()[-lines:]
    return "\n".join(kept)


def build_feedback(record: IterationRecord, *, kept: bool, blocked_approach: str | None) -> str:
    parts: list[str] = [f"## Feedback from iteration {record.number}"]
    if record.approach:
        parts.append(f"Your approach was: {record.approach}")
    if blocked_approach is not None:
        parts.append(
            "REFUSED: this approach has already failed 3 times and is blocked "
            f"(\"{blocked_approach}\"). Nothing was evaluated. Choose a genuinely different approach."
        )
    if record.maker_error:
        parts.append(f"The iteration failed before evaluation: {record.maker_error}")
    for violation in record.violations:
        parts.append(f"GUARD {violation.guard}: {violation.path}: {violation.message}")
    failed = [v for v in record.verdicts if not v.passed]
    if failed:
        parts.append("### Failed checks")
        for verdict in failed:
            head = f"- **{verdict.name}** ({verdict.kind}), score {verdict.score:.2f}"
            if verdict.exit_code is not None:
                head += f", exit code {verdict.exit_code}"
            parts.append(head)
            if verdict.evidence.strip():
                parts.append("```\n" + _tail(verdict.evidence) + "\n```")
    passed = [v.name for v in record.verdicts if v.passed]
    if passed:
        parts.append("Passed: " + ", ".join(passed))
    if record.checker is not None and record.checker.decision == "REJECT":
        parts.append("### The checker rejected the change")
        parts.extend(f"- {reason}" for reason in record.checker.reasons)
    if record.goal_check is not None and not record.goal_check.met:
        unmet = [c for c in record.goal_check.criteria if not c.met]
        if unmet:
            parts.append("### Criteria not met")
            parts.extend(f"- {c.criterion}: {c.evidence}" for c in unmet)
    if not kept:
        parts.append("The change was rolled back; you start again from the best version so far.")
    else:
        parts.append("The change scored better than before and was kept; continue from it.")
    return "\n\n".join(parts)
