"""Andon: classify failures, write incident records, derive lessons with a prevention level. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from loopbot.core.state import LoopState, Status, StopReason, Verdict


class FailureClass(StrEnum):
    COMMAND_NOT_FOUND = "command_not_found"
    MODULE_MISSING = "module_missing"
    PERMISSION_DENIED = "permission_denied"
    PATH_MISSING = "path_missing"
    TIMEOUT = "timeout"
    ASSERTION_FAILURE = "assertion_failure"
    SYNTAX_ERROR = "syntax_error"
    UNKNOWN = "unknown"


class Level(StrEnum):
    """Prevention levels, strongest first."""

    L1_POKA_YOKE = "L1 poka-yoke"
    L2_AUTO_DETECT = "L2 auto-detect"
    L3_DOCUMENT = "L3 document"
    L4_ALERT = "L4 alert"


# Infrastructure failures: not the maker's fault, and retrying cannot fix them.
INFRASTRUCTURE = {FailureClass.COMMAND_NOT_FOUND, FailureClass.PERMISSION_DENIED}

# Command output is hostile text: every gap is bounded (.{0,300}, not .*), so no line makes a
# rule backtrack quadratically.
_RULES: list[tuple[FailureClass, re.Pattern[str], float]] = [
    (FailureClass.COMMAND_NOT_FOUND, re.compile(r"command not found|: not found$|executable file not found in \$PATH", re.M), 0.9),
    (FailureClass.MODULE_MISSING, re.compile(r"ModuleNotFoundError|No module named|Cannot find module|ImportError|cannot find package"), 0.85),
    (FailureClass.SYNTAX_ERROR, re.compile(r"SyntaxError|IndentationError|TabError|ParseError|syntax error|unexpected token", re.I), 0.85),
    (FailureClass.PERMISSION_DENIED, re.compile(r"Permission denied|EACCES|Read-only file system|Operation not permitted|EPERM"), 0.85),
    (FailureClass.ASSERTION_FAILURE, re.compile(r"AssertionError|assert .{0,300} (==|!=)|FAILED|FAIL:|Expected .{0,300} (to|but)|\d+ failed"), 0.8),
    (FailureClass.PATH_MISSING, re.compile(r"No such file or directory|FileNotFoundError|ENOENT|does not exist"), 0.75),
]


@dataclass(frozen=True)
class Classification:
    failure: FailureClass
    confidence: float
    evidence: str

    @property
    def infrastructure(self) -> bool:
        return self.failure in INFRASTRUCTURE and self.confidence >= 0.8


def classify(output: str, *, exit_code: int | None = None, timed_out: bool = False) -> Classification:
    if timed_out or exit_code == 124:
        return Classification(FailureClass.TIMEOUT, 0.95 if timed_out else 0.6, "the command hit its time limit")
    if exit_code == 127:
        evidence = _matching_line(output, _RULES[0][1]) or "exit code 127"
        return Classification(FailureClass.COMMAND_NOT_FOUND, 0.97, evidence)
    for failure, pattern, confidence in _RULES:
        found = _matching_line(output, pattern)
        if found is not None:
            return Classification(failure, confidence, found)
    return Classification(FailureClass.UNKNOWN, 0.3, output.strip().splitlines()[-1][:200] if output.strip() else "")


def _matching_line(text: str, pattern: re.Pattern[str]) -> str | None:
    for line in reversed(text.splitlines()):
        if pattern.search(line):
            return line.strip()[:200]
    return None


def classify_verdict(verdict: Verdict) -> Classification:
    return classify(verdict.evidence, exit_code=verdict.exit_code, timed_out="timed out after" in verdict.evidence)


def infrastructure_failure(baseline: list[Verdict]) -> tuple[Verdict, Classification] | None:
    """A check that cannot run at all before any change: stop the line instead of burning budget."""
    for verdict in baseline:
        if verdict.passed or verdict.kind == "file":
            continue
        found = classify_verdict(verdict)
        if found.infrastructure:
            return verdict, found
    return None


@dataclass(frozen=True)
class Lesson:
    text: str
    level: Level
    source: str


def stop_classification(state: LoopState) -> Classification | None:
    """What the last failing evidence of the run says went wrong."""
    if not state.iterations:
        broken = infrastructure_failure(state.baseline)
        if broken is not None:
            return broken[1]
    for record in reversed(state.iterations):
        failed = [v for v in record.verdicts if not v.passed]
        if failed:
            return classify_verdict(failed[0])
        if record.maker_error:
            return classify(record.maker_error)
    failed = [v for v in state.baseline if not v.passed]
    return classify_verdict(failed[0]) if failed else None


def lessons_for(state: LoopState) -> list[Lesson]:
    """Lessons a stop teaches future loops in this repository (their prompts include them)."""
    if state.status == Status.SUCCESS:
        return []
    lessons: list[Lesson] = []
    for record in state.iterations:
        for v in record.violations:
            if v.guard in ("protected", "spec_drift"):
                lessons.append(Lesson(f"Never change, delete or weaken existing tests (here {v.path}: {v.message}); "
                                      "the spec-drift guard stops the loop.", Level.L2_AUTO_DETECT, "guard"))
            elif v.guard == "scope":
                lessons.append(Lesson(f"Stay inside the goal's scope; {v.path} was outside it and the change was "
                                      "rolled back.", Level.L2_AUTO_DETECT, "guard"))
            elif v.guard == "harness":
                lessons.append(Lesson(f"The test harness is part of the spec: {v.path} ({v.message}) may not be added, "
                                      "changed or deleted; report a spec conflict instead.", Level.L1_POKA_YOKE, "guard"))
            elif v.guard in ("special_file", "size"):
                lessons.append(Lesson(f"Only what git commits is evaluated and pushed: {v.path} ({v.message}).",
                                      Level.L2_AUTO_DETECT, "guard"))
            elif v.guard == "secret":
                lessons.append(Lesson(f"Never write a credential into the repository or a commit ({v.path}); "
                                      "the exit filter stops the loop and nothing is pushed.", Level.L1_POKA_YOKE,
                                      "guard"))
            elif v.guard in ("deny_path", "deny_command", "refused_write"):
                lessons.append(Lesson(f"{v.path} is off limits ({v.message}).", Level.L1_POKA_YOKE, "guard"))
    for approach in state.blocked_approaches():
        lessons.append(Lesson(f"For goal {state.goal.id}, the approach \"{approach.approach}\" failed "
                              f"{len(approach.failures)} times ({approach.failures[-1].signature}).",
                              Level.L3_DOCUMENT, "failure memory"))
    found = stop_classification(state)
    if found is not None and found.infrastructure:
        lessons.append(Lesson(f"Infrastructure: {found.failure.value} ({found.evidence}); a human must fix the "
                              "environment before loops can succeed.", Level.L4_ALERT, "andon"))
    unique: dict[str, Lesson] = {}
    for lesson in lessons:
        unique.setdefault(lesson.text, lesson)
    return list(unique.values())


def _pushed(state: LoopState) -> str:
    """What happened to the best work, as the push result says: never a claim it does not back."""
    if state.push is None:
        return "not pushed yet"
    if state.push.pushed:
        return f"pushed to {state.push.remote}"
    return f"not pushed ({state.push.message})"


def incident_markdown(state: LoopState, lessons: list[Lesson], found: Classification | None) -> str:
    lines = [
        f"# Incident: loop `{state.run_id}` stopped — {state.stop_label}",
        "",
        f"- Goal `{state.goal.id}`: {state.goal.goal}",
        f"- Branch `{state.branch}`; best work at iteration {state.best.iteration} (`{state.best.sha[:10]}`), "
        f"{_pushed(state)}; nothing was pushed from a violating state",
        f"- Detail: {state.stop_detail or '-'}",
        f"- Iterations {len(state.iterations)}, model calls {state.spend.model_calls}, cost ${state.spend.cost_usd:.4f}",
    ]
    if found is not None:
        lines.append(f"- Classification: **{found.failure.value}** (confidence {found.confidence:.2f}): {found.evidence}")
    violations = [(r.number, v) for r in state.iterations for v in r.violations]
    if violations:
        lines += ["", "## Guard violations", ""]
        lines += [f"- iteration {n}: {v.guard} `{v.path}`: {v.message}" for n, v in violations]
    conflicts = [(r.number, r.spec_conflict) for r in state.iterations if r.spec_conflict is not None]
    if conflicts:
        lines += ["", "## Spec conflict (the goal and a check contradict each other)", ""]
        lines += [f"- iteration {n}:\n\n```\n{c.render()}\n```" for n, c in conflicts]
    if state.diagnosis:
        lines += ["", "## Diagnosis (plan mode)", "", state.diagnosis]
    if lessons:
        lines += ["", "## Lessons", ""]
        lines += [f"- [{lesson.level.value}] {lesson.text}" for lesson in lessons]
    if state.stop_reason in (StopReason.ANDON, StopReason.SPEC_CONFLICT):
        lines += ["", "The loop is blocked until a human looks at it (label `loopbot:blocked` on GitHub)."]
    return "\n".join(lines) + "\n"
