"""Evaluators: objective checks that each return a Verdict; run in parallel."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from loopbot.config import Commands
from loopbot.core.paths import matches
from loopbot.core.regex import SafePattern
from loopbot.core.scoring import passing_fraction, test_counts
from loopbot.core.state import Verdict
from loopbot.goal import FileCheck, Goal, MetricCheck, RunCheck
from loopbot.ports import Sandbox
from loopbot.tools import safefile
from loopbot.tools.confine import PathRefused, confine

FILE_CHECK_MAX_BYTES = 16 * 1024 * 1024

EVIDENCE_CHARS = 4000


def _tail(text: str, limit: int = EVIDENCE_CHARS) -> str:
    return text if len(text) <= limit else "[…]\n" + text[-limit:]


def _short(command: str, limit: int = 60) -> str:
    one_line = " ".join(command.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"


@dataclass(frozen=True)
class Evaluator:
    name: str
    kind: str
    check: Callable[[Path, Sandbox], Verdict]
    command: str | None = None  # the shell command a run or metric check runs

    def __call__(self, root: Path, sandbox: Sandbox) -> Verdict:
        started = time.monotonic()
        try:
            verdict = self.check(root, sandbox)
        except Exception as exc:  # an evaluator bug must be a failed verdict, never a dead loop
            verdict = Verdict(name=self.name, kind=self.kind, passed=False, score=0.0,
                              evidence=f"evaluator error: {type(exc).__name__}: {exc}")
        if not verdict.duration_seconds:
            verdict = verdict.model_copy(update={"duration_seconds": time.monotonic() - started})
        if verdict.command is None and self.command is not None:
            verdict = verdict.model_copy(update={"command": self.command})
        return verdict


def _command(name: str, kind: str, command: str, timeout: float, expect_exit: int = 0) -> Evaluator:
    def check(root: Path, sandbox: Sandbox) -> Verdict:
        result = sandbox.run(command, cwd=root, timeout_seconds=timeout)
        passed = result.exit_code == expect_exit and not result.timed_out
        counts = test_counts(result.output)
        fraction = passing_fraction(result.output)
        # Partial credit from test counts, never a full score for a failing command.
        partial = min(fraction, 0.99) if fraction is not None else 0.0
        score = 1.0 if passed else partial
        return Verdict(name=name, kind=kind, passed=passed, score=score, evidence=_tail(result.output),
                       duration_seconds=result.duration_seconds, exit_code=result.exit_code,
                       tests_passed=counts[0] if counts else None, tests_run=counts[1] if counts else None)

    return Evaluator(name, kind, check, command)


def _file(check_: FileCheck) -> Evaluator:
    name = check_.name or f"file: {check_.file}"

    def check(root: Path, _sandbox: Sandbox) -> Verdict:
        try:
            path = confine(root, check_.file)
        except PathRefused as exc:
            return Verdict(name=name, kind="file", passed=False, score=0.0, evidence=str(exc))
        if not os.path.lexists(path):
            return Verdict(name=name, kind="file", passed=False, score=0.0, evidence=f"{check_.file} does not exist")
        try:
            text = safefile.read_text(path, FILE_CHECK_MAX_BYTES)
        except OSError as exc:  # a FIFO, device, link or oversized file: refused, never waited on
            return Verdict(name=name, kind="file", passed=False, score=0.0, evidence=f"{check_.file}: {exc}")
        results: list[tuple[bool, str]] = []
        if check_.contains is not None:
            results.append((check_.contains in text, f"contains {check_.contains!r}"))
        if check_.regex is not None:
            results.append((SafePattern(check_.regex, multiline=True).search(text), f"matches /{check_.regex}/"))
        if check_.not_contains is not None:
            results.append((check_.not_contains not in text, f"does not contain {check_.not_contains!r}"))
        if not results:
            results.append((True, "exists"))
        met = sum(ok for ok, _ in results)
        evidence = "; ".join(f"{'ok' if ok else 'NOT'}: {what}" for ok, what in results)
        return Verdict(name=name, kind="file", passed=met == len(results), score=met / len(results),
                       evidence=f"{check_.file}: {evidence}")

    return Evaluator(name, "file", check)


def _metric(check_: MetricCheck) -> Evaluator:
    name = f"metric: {check_.metric}"
    pattern = SafePattern(check_.pattern, multiline=True)

    def check(root: Path, sandbox: Sandbox) -> Verdict:
        result = sandbox.run(check_.run, cwd=root, timeout_seconds=check_.timeout_seconds)
        found = pattern.findall(result.output)
        if result.exit_code != 0 or not found:
            why = f"exit code {result.exit_code}" if result.exit_code != 0 else f"pattern /{check_.pattern}/ not found"
            return Verdict(name=name, kind="metric", passed=False, score=0.0, exit_code=result.exit_code,
                           evidence=f"{why}\n{_tail(result.output)}", duration_seconds=result.duration_seconds)
        last = found[-1]
        raw = last[0] if isinstance(last, tuple) else last
        try:
            value = float(raw)
        except ValueError:
            return Verdict(name=name, kind="metric", passed=False, score=0.0, exit_code=0,
                           evidence=f"captured {raw!r}, not a number", duration_seconds=result.duration_seconds)
        score = 1.0
        if check_.max is not None and value > check_.max:
            score = min(score, check_.max / value if value > 0 else 0.0)
        if check_.min is not None and value < check_.min:
            score = min(score, value / check_.min if check_.min > 0 and value > 0 else 0.0)
        passed = score == 1.0
        bounds = " and ".join(b for b in (f">= {check_.min:g}" if check_.min is not None else "",
                                          f"<= {check_.max:g}" if check_.max is not None else "") if b)
        return Verdict(name=name, kind="metric", passed=passed, score=max(0.0, min(score, 1.0 if passed else 0.99)),
                       value=value, exit_code=0, duration_seconds=result.duration_seconds,
                       evidence=f"{check_.metric} = {value:g} (target {bounds})")

    return Evaluator(name, "metric", check, check_.run)


def build(goal: Goal, commands: Commands) -> list[Evaluator]:
    evaluators: list[Evaluator] = []
    for check in goal.objective_checks:
        if isinstance(check, RunCheck):
            evaluators.append(_command(check.name or f"run: {_short(check.run)}", "run", check.run,
                                       check.timeout_seconds, check.expect_exit))
        elif isinstance(check, FileCheck):
            evaluators.append(_file(check))
        elif isinstance(check, MetricCheck):
            evaluators.append(_metric(check))
    taken = {ev.name for ev in evaluators}
    # Names are keys (baselines, reports): the config's commands never share one with a goal check.
    if commands.test:
        name = "tests" if "tests" not in taken else "tests (commands.test)"
        evaluators.append(_command(name, "test", commands.test, commands.timeout_seconds))
    if commands.lint:
        name = "lint" if "lint" not in taken else "lint (commands.lint)"
        evaluators.append(_command(name, "lint", commands.lint, commands.timeout_seconds))
    return evaluators


def run_parallel(evaluators: Sequence[Evaluator], root: Path, sandbox: Sandbox) -> list[Verdict]:
    """Every evaluator at once; verdicts come back in the evaluators' order."""
    return run_jobs([(ev, root, sandbox) for ev in evaluators])


def run_jobs(jobs: Sequence[tuple[Evaluator, Path, Sandbox]]) -> list[Verdict]:
    """Evaluators on their own trees, all at once; verdicts in the jobs' order."""
    if not jobs:
        return []
    with ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="evaluator") as pool:
        return list(pool.map(lambda job: job[0](job[1], job[2]), jobs))


BASE_TESTS_SUFFIX = " (base tests only)"


def on_base_tests(evaluators: Sequence[Evaluator], note: str) -> list[Evaluator]:
    """The command checks again, for the tree that holds only the base's test files: a pass must
    not rest on test files the maker added or changed. `note` says what that tree left out."""

    def renamed(ev: Evaluator) -> Evaluator:
        name = ev.name + BASE_TESTS_SUFFIX

        def check(root: Path, sandbox: Sandbox) -> Verdict:
            verdict = ev.check(root, sandbox)
            return verdict.model_copy(update={"name": name, "kind": "base_tests",
                                              "evidence": f"{note}\n{verdict.evidence}"})

        return Evaluator(name, "base_tests", check, ev.command)

    return [renamed(ev) for ev in evaluators if ev.kind in ("run", "metric", "test")]


def new_tests_present(patterns: Sequence[str], added: Sequence[str]) -> Evaluator:
    """A test-writing goal's named tests must be among the files the loop added."""
    def check(_root: Path, _sandbox: Sandbox) -> Verdict:
        missing = [p for p in patterns if not any(matches([p], f) for f in added)]
        evidence = ("missing: " + ", ".join(missing)) if missing else "present: " + ", ".join(
            f for f in added if matches(patterns, f))
        return Verdict(name="new tests exist", kind="file", passed=not missing,
                       score=1 - len(missing) / len(patterns), evidence=evidence)

    return Evaluator("new tests exist", "file", check)


def describe(goal: Goal) -> list[str]:
    """One line per acceptance check, for the maker's context."""
    lines = []
    for check in goal.acceptance:
        if isinstance(check, RunCheck):
            lines.append(f"`{check.run}` exits {check.expect_exit}")
        elif isinstance(check, FileCheck):
            parts = [f"`{check.file}`"]
            if check.contains is not None:
                parts.append(f"contains `{check.contains}`")
            if check.regex is not None:
                parts.append(f"matches /{check.regex}/")
            if check.not_contains is not None:
                parts.append(f"does not contain `{check.not_contains}`")
            lines.append(" ".join(parts))
        elif isinstance(check, MetricCheck):
            lines.append(f"metric {check.metric} from `{check.run}` within min={check.min} max={check.max}")
        else:
            lines.append(f"criterion (judged): {check.criterion}")
    return lines
