"""The run report: markdown a reviewer reads (and later the PR body)."""

from __future__ import annotations

from loopbot.core.fence import fenced
from loopbot.core.outputtail import output_tail
from loopbot.core.scoring import iteration_score
from loopbot.core.sparkline import sparkline
from loopbot.core.state import IterationRecord, LoopState, Status
from loopbot.core.weblinks import branch_url, compare_url

ROLE_ORDER = ("maker", "planner", "checker", "goal_checker")


def _cell(text: str, limit: int = 90) -> str:
    one = " ".join(text.split()).replace("|", "\\|")
    return one if len(one) <= limit else one[: limit - 1] + "…"


def iteration_result(record: IterationRecord) -> str:
    if record.blocked_fingerprint:
        return "refused: blocked approach"
    if record.maker_error:
        return f"failed: {_cell(record.maker_error, 60)}"
    if record.violations:
        return "guard: " + ", ".join(f"{v.guard} {v.path}" for v in record.violations)
    failed = [v.name for v in record.verdicts if not v.passed]
    if failed:
        return "checks failed: " + ", ".join(failed)
    if record.checker and record.checker.decision == "REJECT":
        return "checker REJECT"
    if record.goal_check and not record.goal_check.met:
        return "goal NOT MET"
    if record.decision and record.decision.value == "SUCCESS":
        return "checks pass, checker APPROVE, goal MET"
    return "incomplete"


def simulated(state: LoopState) -> bool:
    """Every role is a scripted model: its token counts and cost are made up, not billed."""
    return bool(state.models) and all(spec.startswith("scripted:") for spec in state.models.values())


PUSH_LINE = "- Push: "
PUSHED = "pushed to "  # the start of a push's message when the branch reached its remote (GitWorkspace.push)


def says_pushed(report: str) -> bool:
    """Whether a report written by `render_report` says the run's branch reached a remote."""
    return any(line.startswith(PUSH_LINE + PUSHED) for line in report.splitlines())


def iteration_seconds(record: IterationRecord) -> float:
    """An iteration's wall time: its steps' times (the evaluators' own wall time is inside evaluate)."""
    return sum(seconds for step, seconds in record.timings.items() if step != "evaluate_wall")


def _score_trend(state: LoopState) -> list[str]:
    scores = [r.score for r in state.iterations if r.score is not None]
    if not scores:
        return []
    start = [iteration_score(state.baseline, None)] if state.baseline else []
    numbers = ", ".join(f"{score:.2f}" for score in scores)
    told = f"baseline {start[0]:.2f}, then {numbers}" if start else numbers
    return [f"- Score trend: `{sparkline(start + scores)}` ({told})"]


def _links(state: LoopState, web_url: str | None) -> list[str]:
    """Only where the branch is known to be on GitHub: a local remote, or no push yet, has no page."""
    if web_url is None or state.push is None or not state.push.pushed:
        return []
    return [f"- On GitHub: [the branch]({branch_url(web_url, state.branch)}) · "
            f"[compare with the base]({compare_url(web_url, state.base_sha, state.branch)})"]


def _cost_and_time(state: LoopState) -> list[str]:
    records = state.iterations
    roles = [r for r in ROLE_ORDER if any(r in record.role_costs for record in records)]
    if not records:
        return []

    def cell(cost: float, seconds: float) -> str:
        return f"${cost:.4f} · {seconds:.1f}s"

    lines = ["", "## Cost and time", "", "Model cost and time per role; time is the iteration's wall time.", "",
             "| # | time | cost | " + " | ".join(roles) + " |", "|---|---|---|" + "---|" * len(roles)]
    for record in records:
        lines.append(f"| {record.number} | {iteration_seconds(record):.1f}s | ${sum(record.role_costs.values()):.4f} | "
                     + " | ".join(cell(record.role_costs.get(r, 0.0), record.role_seconds.get(r, 0.0)) for r in roles)
                     + " |")
    totals = [cell(sum(x.role_costs.get(r, 0.0) for x in records), sum(x.role_seconds.get(r, 0.0) for x in records))
              for r in roles]
    lines.append(f"| all | {sum(iteration_seconds(r) for r in records):.1f}s | "
                 f"${sum(sum(r.role_costs.values()) for r in records):.4f} | " + " | ".join(totals) + " |")
    return lines


def _failing_checks(state: LoopState) -> list[str]:
    """Per failed iteration, each failed check: the command, its exit code and the end of its output."""
    failed = [(r, [v for v in r.verdicts if not v.passed]) for r in state.iterations]
    failed = [(r, verdicts) for r, verdicts in failed if verdicts]
    if not failed:
        return []
    lines = ["", "## Failing checks", ""]
    for record, verdicts in failed:
        for verdict in verdicts:
            exit_note = f"exit {verdict.exit_code}" if verdict.exit_code is not None else "failed"
            lines += [f"**Iteration {record.number}** · {_cell(verdict.name, 80)} · {exit_note}", ""]
            body = output_tail(verdict.evidence)
            lines += [fenced(f"$ {verdict.command}\n{body}" if verdict.command else body, "text"), ""]
    return lines[:-1]


def render_report(state: LoopState, *, sandbox_note: str = "", web_url: str | None = None) -> str:
    spend = state.spend
    outcome = {
        Status.SUCCESS: "SUCCESS: goal met",
        Status.STOPPED: f"STOPPED: {state.stop_label}" + (f" ({state.stop_detail})" if state.stop_detail else ""),
        Status.RUNNING: f"running: iteration {state.iteration}, next step {state.phase.value}",
    }[state.status]
    lines = [
        f"# loopbot run `{state.run_id}`",
        "",
        f"**Goal** `{state.goal.id}`: {state.goal.goal}",
        "",
        f"**Outcome**: {outcome}",
        "",
        f"- Branch: `{state.branch}` (best work: iteration {state.best.iteration}, score {state.best.score:.2f}, "
        f"commit `{state.best.sha[:10]}`)",
        f"- Base: `{state.base_sha[:10]}`",
    ]
    if state.push is not None:
        lines.append(f"{PUSH_LINE}{state.push.message}")
    lines += _links(state, web_url)
    lines += [
        f"- Iterations: {len(state.iterations)} of {state.budgets.max_iterations}; model calls "
        f"{spend.model_calls} of {state.budgets.max_model_calls}",
        f"- Tokens: {spend.input_tokens:,} in, {spend.output_tokens:,} out "
        f"(cache: {spend.cache_write_tokens:,} written, {spend.cache_read_tokens:,} read)",
        f"- Cost: ${spend.cost_usd:.4f} of ${state.budgets.max_cost_usd:g}"
        + (" (simulated: a scripted model, nothing billed)" if simulated(state) else "")
        + f"; active time {spend.elapsed_seconds:.1f}s",
        "- Models: " + "; ".join(
            f"{', '.join(r for r, s in state.models.items() if s == spec)} `{spec}`"
            for spec in dict.fromkeys(state.models.values())
        ),
    ]
    lines += _score_trend(state)
    if sandbox_note:
        lines.append(f"- Sandbox: {sandbox_note}")
    if state.goal.chunks:
        lines += ["", "## Chunks", ""]
        lines += [f"- [{'x' if i in state.chunks_done else ' '}] {c}" for i, c in enumerate(state.goal.chunks, 1)]
    lines += ["", "## Iterations", "", "| # | approach | result | score | decision | kept |", "|---|---|---|---|---|---|"]
    for record in state.iterations:
        score = f"{record.score:.2f}" if record.score is not None else "-"
        decision = record.decision.value if record.decision else "-"
        kept = "yes" if record.kept else "rolled back"
        lines.append(f"| {record.number} | {_cell(record.approach or '-')} | {iteration_result(record)} | "
                     f"{score} | {decision} | {kept} |")
    lines += _cost_and_time(state)
    conflict = next((r for r in reversed(state.iterations) if r.spec_conflict), None)
    if conflict is not None and conflict.spec_conflict is not None:
        reported = conflict.spec_conflict
        lines += ["", f"## Spec conflict reported by the maker (iteration {conflict.number}): a human decides", "",
                  f"- **Check**: {reported.check}", f"- **Requirement**: {reported.requirement}", "",
                  "Evidence:", "", *[f"> {line}" for line in reported.evidence.splitlines()], "",
                  "Change the goal or the check, then run the loop again; the best work so far is on the branch."]
    summarised = next((r for r in reversed(state.iterations) if r.summary), None)
    if summarised is not None:
        lines += ["", f"## Maker's summary (iteration {summarised.number})", "", summarised.summary]
    rejected = [r for r in state.iterations if r.checker and r.checker.decision == "REJECT"]
    if rejected:
        lines += ["", "## Checker rejections", ""]
        for record in rejected:
            assert record.checker is not None
            lines.append(f"Iteration {record.number}:")
            lines += [f"- {reason}" for reason in record.checker.reasons]
    final = next((r for r in reversed(state.iterations) if r.verdicts), None)
    if final is not None:
        lines += ["", f"## Checks (iteration {final.number})", "", "| check | result | score | time |",
                  "|---|---|---|---|"]
        for v in final.verdicts:
            lines.append(f"| {_cell(v.name, 60)} | {'pass' if v.passed else 'FAIL'} | {v.score:.2f} | "
                         f"{v.duration_seconds:.2f}s |")
        if final.goal_check and final.goal_check.criteria:
            lines += ["", "Criteria judged by the goal-checker:"]
            lines += [f"- {'MET' if c.met else 'NOT MET'}: {c.criterion} — {c.evidence}" for c in final.goal_check.criteria]
    lines += _failing_checks(state)
    blocked = state.blocked_approaches()
    if blocked:
        lines += ["", "## Blocked approaches", ""]
        lines += [f"- \"{r.approach}\" ({len(r.failures)} failures; files {', '.join(r.files) or '-'})" for r in blocked]
    if state.diagnosis:
        lines += ["", "## Plan-mode diagnosis", "", state.diagnosis]
    return "\n".join(lines) + "\n"
