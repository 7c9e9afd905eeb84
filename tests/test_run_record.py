"""What a run leaves behind says what happened: the failing checks' commands and output, why each
failed iteration failed (on the console too), cost and time per iteration and role, a score
trend, and links to the branch where it is on GitHub."""

from __future__ import annotations

import json
import re

from rich.console import Console

from loopbot.progress import ProgressDisplay
from loopbot.report import iteration_seconds
from tests.test_runner import demo_edits, script, session


def test_the_console_says_why_each_failed_iteration_failed(make_loop, demo_script):
    loop = make_loop(script(session(1, "Only the parameter", demo_edits(demo_script, 1))),
                     budgets={"max_iterations": 2})
    console = Console(record=True, width=100, force_terminal=True, color_system=None)
    display = ProgressDisplay(console, 2)
    with display:
        loop.session.runner.observers.append(display)
        loop.run()
    text = console.export_text()
    # Iteration 1: its failed check with the command's exit and the last line it printed.
    assert re.search(r"failed check unit tests: exit 1 · FAILED \(failures=\d+", text), text
    # Iteration 2: no maker reply in the script; the reason is printed as the script gave it.
    assert "script has no maker reply for iteration 2" in text


def test_the_console_prints_an_unmet_goal(make_loop, demo_script):
    not_met = [{"iteration": 1, "criteria": [{"met": False, "evidence": "old [set] calls break"}]}]
    full = demo_edits(demo_script, 1) + demo_edits(demo_script, 3)
    loop = make_loop({"maker": [session(1, "Full lazy expiry", full)], "checker": [
        {"iteration": "*", "decision": "APPROVE", "reasons": ["ok"]}], "goal_checker": not_met},
        budgets={"max_iterations": 1})
    console = Console(record=True, width=100, force_terminal=True, color_system=None)
    with ProgressDisplay(console, 1) as display:
        loop.session.runner.observers.append(display)
        loop.run()
    text = console.export_text()
    assert "goal NOT MET: Keys set without a TTL never expire" in text and "old [set] calls break" in text


def test_the_report_and_event_log_show_failing_checks_cost_and_time_per_iteration_and_role_and_a_trend(
        make_loop, demo_script):
    loop = make_loop(demo_script.model_copy(update={"latency_seconds": 1.5}))  # each call takes 1.5 s
    state = loop.run()
    report = loop.session.files.report_path.read_text()
    by_role = {role: sum(r.role_costs.get(role, 0.0) for r in state.iterations)
               for role in ("maker", "checker", "goal_checker")}
    assert abs(sum(by_role.values()) - state.spend.cost_usd) < 1e-6
    assert all(cost > 0 for cost in by_role.values())
    table = report.split("## Cost and time", 1)[1].split("\n## ", 1)[0]
    assert "| # | time | cost | maker | checker | goal_checker |" in table
    rows = [line for line in table.splitlines() if re.match(r"\| \d+ \|", line)]
    assert len(rows) == 3
    third = state.iterations[2]
    assert f"${third.role_costs['goal_checker']:.4f} · 1.5s |" in rows[2]
    first = state.iterations[0]
    assert first.role_seconds == {"maker": 3 * 1.5} and f"${first.role_costs['maker']:.4f} · 4.5s" in rows[0]
    assert iteration_seconds(first) >= 4.5 and f"| 1 | {iteration_seconds(first):.1f}s |" in rows[0]
    assert f"| all | {sum(iteration_seconds(r) for r in state.iterations):.1f}s" in table
    # The trend: the baseline, then iterations 1-3 (rising, the gamed one rolled back, then 1.00).
    trend = re.search(r"Score trend: `([▁▂▃▄▅▆▇█]+)`", report)
    assert trend is not None and len(trend.group(1)) == 4 and trend.group(1)[-1] == "█"
    assert trend.group(1)[0] < trend.group(1)[1]
    # The failing check of iteration 1, in the event log and the report.
    files = loop.session.files
    verdicts = [json.loads(line) for line in files.events_path.read_text().splitlines()]
    failed = [v for v in verdicts if v["event"] == "verdict" and not v["passed"]]
    (unit,) = [v for v in failed if v["iteration"] == 1]
    assert unit["name"] == "unit tests" and unit["command"] == "python3 -m unittest discover -s tests -q"
    assert unit["exit_code"] == 1 and "FAILED (" in unit["output_tail"]
    passed = next(v for v in verdicts if v["event"] == "verdict" and v["passed"])
    assert passed["output_tail"] == ""  # only a failure's output is logged
    section = report.split("## Failing checks", 1)[1]
    assert "Iteration 1" in section and "python3 -m unittest discover -s tests -q" in section
    assert "exit 1" in section and "FAILED (" in section
    assert "Iteration 3" not in section  # it passed


def test_links_to_the_branch_and_the_compare_view_only_where_the_branch_is_on_github(make_loop, demo_script):
    from loopbot.core.state import PushResult
    from loopbot.core.weblinks import repo_web_url
    from loopbot.report import render_report

    assert repo_web_url("https://x-access-token:ghs_abc@github.com/octo/kv.git") == "https://github.com/octo/kv"
    assert repo_web_url("git@github.com:octo/kv.git") == "https://github.com/octo/kv"
    assert repo_web_url("/tmp/work/origin.git") is None and repo_web_url("https://gitlab.com/o/r") is None
    state = make_loop(demo_script).session.state
    state.push = PushResult(remote="origin", branch=state.branch, sha=state.base_sha, pushed=True,
                            message="pushed to origin")
    linked = render_report(state, web_url="https://github.com/octo/kv")
    assert f"https://github.com/octo/kv/tree/{state.branch}" in linked
    assert f"https://github.com/octo/kv/compare/{state.base_sha}...{state.branch}" in linked
    assert "/compare/" not in render_report(state)  # a local remote: no links
    state.push = state.push.model_copy(update={"pushed": False, "message": "push failed: no"})
    assert "/compare/" not in render_report(state, web_url="https://github.com/octo/kv")
