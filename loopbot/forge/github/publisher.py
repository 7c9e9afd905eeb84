"""What a loop shows on GitHub, kept current as it runs: the draft PR, one progress comment, the
checker's reviews, the `loopbot / goal` check run, and labels. Every write is idempotent."""

from __future__ import annotations

import re
import time
from typing import Any

from loopbot.config import Labels
from loopbot.core.events import Decided, Finished, LoopEvent, Pushed, Resumed, RunStarted, Suspended
from loopbot.core.redact import Redactor
from loopbot.core.state import LoopState, Status, StopReason
from loopbot.evaluators import describe
from loopbot.forge.github.forge import (
    ACTIONS_PR_SETTING,
    GitHubError,
    GitHubForge,
    PullRequest,
    PullRequestsNotPermitted,
)
from loopbot.report import render_report


def progress_marker(issue: int) -> str:
    return f"<!-- loopbot:progress issue={issue} -->"


def review_marker(run_id: str, iteration: int) -> str:
    return f"<!-- loopbot:review run={run_id} iteration={iteration} -->"


def refused_marker(issue: int) -> str:
    return f"<!-- loopbot:pr-refused issue={issue} -->"


def not_ready_marker(issue: int) -> str:
    return f"<!-- loopbot:not-ready issue={issue} -->"


def pr_refused_body(state: LoopState, compare: str, refusal: str) -> str:
    """Why there is no pull request, where the work is, and the one setting that fixes it."""
    return "\n".join([
        "**loopbot could not open the pull request**: GitHub refused it — "
        f"\"{refusal.split(': ', 1)[-1]}\"", "",
        f"The work is pushed to `{state.branch}`: [compare it with the base and open the pull request]({compare}).",
        "",
        "To let loopbot open pull requests, a repository admin turns on",
        f"**{ACTIONS_PR_SETTING}** (in an organization, the organization's same setting must allow it "
        "first), or gives loopbot App credentials. The loop went on without it; the link above opens the pull "
        "request by hand.",
    ])


def _fenced(text: str) -> list[str]:
    """Text as a literal block no line of it can close."""
    fence = "~" * max(4, 1 + max((len(m) for m in re.findall(r"~+", text)), default=0))
    return [fence, text, fence]


def effective_goal(state: LoopState) -> list[str]:
    """What runs, as the approver should see it: acceptance, scope, protection, budgets, models."""
    goal, b = state.goal, state.budgets
    text = "\n".join([
        "acceptance:", *[f"  - {line}" for line in describe(goal)],
        f"scope.allow: {', '.join(goal.scope.allow)}",
        f"protected: {', '.join(state.protected) or 'none'}",
        f"deny_paths: {', '.join(goal.boundaries.deny_paths) or 'none'}",
        f"deny_commands: {', '.join(goal.boundaries.deny_commands) or 'none'}",
        f"budgets: {b.max_iterations} iterations, {b.max_model_calls} model calls, {b.max_tokens:,} tokens, "
        f"${b.max_cost_usd:g}, {b.max_wall_minutes:g} minutes",
        "models: " + ", ".join(f"{role} {spec}" for role, spec in sorted(state.models.items())),
    ])
    return ["<details><summary>What this loop runs (the effective goal)</summary>", "", *_fenced(text), "",
            "</details>", ""]


def progress_body(state: LoopState, *, now: float) -> str:
    b, s = state.budgets, state.spend
    status = {Status.RUNNING: f"running: iteration {state.iteration}, step {state.phase.value}",
              Status.SUCCESS: "done: goal met", Status.STOPPED: f"stopped: {state.stop_label}"}[state.status]
    if state.suspended is not None:
        status = (f"suspended ({state.suspended.reason.value}): {state.suspended.detail[:300]} — "
                  "`/loop resume` continues from the last checkpoint")
    lines = [f"**loopbot** — {status}", ""]
    conflict = next((r.spec_conflict for r in reversed(state.iterations) if r.spec_conflict), None)
    if conflict is not None and state.stop_reason == StopReason.SPEC_CONFLICT:
        # The maker's words, shown as data (a fence no line of it can close) for a human to decide.
        lines += ["**The maker reports that the goal cannot be met as specified** — a human decides: change the "
                  "goal or the check, then `/loop run` again. The best work so far is on the branch.", "",
                  *_fenced(conflict.render()), ""]
    if state.goal.chunks:
        lines += [f"- [{'x' if i in state.chunks_done else ' '}] {c}" for i, c in enumerate(state.goal.chunks, 1)]
        lines.append("")
    lines += effective_goal(state)
    lines += [
        "| iterations | model calls | tokens | cost |", "|---|---|---|---|",
        f"| {len(state.iterations)}/{b.max_iterations} | {s.model_calls}/{b.max_model_calls} | {s.tokens:,} | "
        f"${s.cost_usd:.3f} / ${b.max_cost_usd:g} |", "",
        f"Branch `{state.branch}` · run `{state.run_id}` · heartbeat "
        f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(now))}",
    ]
    return "\n".join(lines)


def _earlier_heads(state: LoopState) -> list[str]:
    """The heads recent iterations started from or made: where earlier check runs may still be open
    (a resumed run on a fresh runner knows them only from the state)."""
    return list(dict.fromkeys(sha for record in state.iterations[-3:]
                              for sha in (record.start_sha, record.head_sha) if sha))


def push_refused_marker(issue: int) -> str:
    return f"<!-- loopbot:push-refused issue={issue} -->"


class GitHubPublisher:
    """Mirrors the loop's state on GitHub. It never pushes (the runner does, leased and filtered)
    and never decides anything: what it shows is what the runner checkpointed."""

    def __init__(self, forge: GitHubForge, *, issue: int, base_branch: str, labels: Labels, redact: Redactor,
                 sandbox_note: str, clock: Any, web_url: str | None = None):
        self.forge, self.issue = forge, issue
        self.web_url = web_url  # the repository's page, for the report's branch and compare links
        self.base_branch, self.labels = base_branch, labels
        self.redact, self.sandbox_note, self.clock = redact, sandbox_note, clock
        self.pr: PullRequest | None = None
        self._pr_refused = False  # GitHub refused this run a pull request: asked once, explained once

    def _report(self, state: LoopState) -> str:
        return self.redact(f"Closes #{self.issue}\n\n" + render_report(state, sandbox_note=self.sandbox_note,
                                                                        web_url=self.web_url))

    def _progress(self, state: LoopState) -> None:
        self.forge.comment(self.issue, self.redact(progress_body(state, now=self.clock.wall())),
                           marker=progress_marker(self.issue))

    def event(self, event: LoopEvent, state: LoopState) -> None:
        if isinstance(event, (RunStarted, Resumed)):
            self.forge.add_labels(self.issue, self.labels.running)
            for stale in (self.labels.blocked, self.labels.done):
                self.forge.remove_label(self.issue, stale)
            self.pr = self.forge.find_pr(state.branch)
            self._progress(state)
        elif isinstance(event, Pushed):
            self._pushed(state, event)
        elif isinstance(event, Decided):
            self._after_iteration(state)
        elif isinstance(event, Finished):
            self._finished(state)
        elif isinstance(event, Suspended):
            # Paused, not over: the progress comment says why and how to continue.
            self.forge.remove_label(self.issue, self.labels.running)
            self._progress(state)

    def _pushed(self, state: LoopState, event: Pushed) -> None:
        if event.nothing_to_push:
            return  # no branch to show; the progress comment says how the loop ended
        if not event.pushed:
            # GitHub (a ruleset, a workflow file the token may not write) or a maintainer's commit
            # refused the push: said on the issue at once, not found out when the PR cannot open.
            self.forge.comment(self.issue, self.redact(
                f"**loopbot could not push `{state.branch}`**: {event.message}\n\nThe work is kept in the loop's "
                "state; the loop goes on and pushes again at its end."), marker=push_refused_marker(self.issue))
            return
        self.pr = self._open_pr(state)
        if self.pr is not None:
            self.forge.update_pr(self.pr, self._report(state))

    def _pushed_head(self, state: LoopState) -> str | None:
        """The head GitHub has: a check run on a commit it has not seen is refused."""
        return state.push.sha if state.push is not None and state.push.pushed else None

    def _after_iteration(self, state: LoopState) -> None:
        record = state.iterations[-1]
        if self.pr is not None and record.checker is not None and record.checker.decision != "SKIPPED":
            reject = record.checker.decision == "REJECT"
            reasons = "\n".join(f"- {r}" for r in record.checker.reasons)
            body = self.redact(f"**Checker: {record.checker.decision}** (iteration {record.number})\n\n{reasons}")
            self.forge.review(self.pr, body, marker=review_marker(state.run_id, record.number), request_changes=reject)
        head = self._pushed_head(state)
        if head is not None:
            self.forge.check_run(head, status="in_progress", title=f"iteration {record.number}: {record.decision}",
                                 summary=self._report(state), supersedes=_earlier_heads(state))
        self._progress(state)

    def _open_pr(self, state: LoopState) -> PullRequest | None:
        """The loop's PR, opened or found; None where the repository lets no Actions token open one:
        the branch stays pushed and the issue says how to open it and what to change."""
        if self._pr_refused:
            return self.pr
        try:
            return self.forge.open_pr(state.branch, self.base_branch, f"loopbot: {state.goal.goal[:100]}",
                                      self._report(state))
        except PullRequestsNotPermitted as exc:
            self._pr_refused = True
            compare = self.forge.compare_url(self.base_branch, state.branch)
            self.forge.comment(self.issue, self.redact(pr_refused_body(state, compare, str(exc))),
                               marker=refused_marker(self.issue))
            return None

    def _mark_ready(self, pr: PullRequest) -> None:
        """Ready for review; where GitHub refuses (a GraphQL error, a limit that held), the issue says so."""
        try:
            self.forge.mark_ready(pr)
        except GitHubError as exc:
            self.forge.comment(self.issue, self.redact(
                f"The goal is met, but GitHub refused to mark #{pr.number} ready for review: {exc}\n\n"
                "A maintainer can mark it ready by hand; the work is complete on the branch."),
                marker=not_ready_marker(self.issue))

    def _finished(self, state: LoopState) -> None:
        head = self._pushed_head(state)
        self._progress(state)
        self.forge.remove_label(self.issue, self.labels.running)
        if self.pr is None and head is not None and head != state.base_sha:
            self.pr = self._open_pr(state)
        if self.pr is not None:
            self.forge.update_pr(self.pr, self._report(state))
        if state.status == Status.SUCCESS:
            if head is not None:
                self.forge.check_run(head, status="completed", conclusion="success", title="goal met",
                                     summary=self._report(state), supersedes=_earlier_heads(state))
            if self.pr is not None:
                self._mark_ready(self.pr)
            self.forge.add_labels(self.issue, self.labels.done)
        else:
            # A line stop or a reported spec conflict waits for a human.
            blocked = state.stop_reason in (StopReason.ANDON, StopReason.SPEC_CONFLICT)
            if head is not None:
                self.forge.check_run(head, status="completed", title=f"stopped: {state.stop_label}",
                                     conclusion="action_required" if blocked else "failure",
                                     summary=self._report(state), supersedes=_earlier_heads(state))
            if blocked:
                self.forge.add_labels(self.issue, self.labels.blocked)
