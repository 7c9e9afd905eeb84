from loopbot import evaluators
from loopbot.config import Commands
from loopbot.goal import parse_goal
from loopbot.sandbox.subprocess_runner import SubprocessSandbox


def _goal(acceptance: str):
    return parse_goal(f"id: t\ngoal: g\nacceptance:\n{acceptance}", "g.yaml")


def test_each_check_kind_gives_a_verdict(tmp_path):
    (tmp_path / "a.py").write_text("ttl_seconds = 1\n")
    goal = _goal(
        "  - run: 'exit 0'\n"
        "  - run: 'echo boom; exit 2'\n"
        "  - file: a.py\n    contains: ttl_seconds\n    not_contains: TODO\n"
        "  - file: a.py\n    regex: '^missing'\n"
        "  - file: ../outside.py\n"
        "  - metric: p95\n    run: 'echo p95_ms=30'\n    pattern: 'p95_ms=([0-9.]+)'\n    max: 40\n"
        "  - metric: p99\n    run: 'echo p99_ms=80'\n    pattern: 'p99_ms=([0-9.]+)'\n    max: 40\n"
    )
    verdicts = evaluators.run_parallel(evaluators.build(goal, Commands(lint="exit 1")), tmp_path, SubprocessSandbox())
    summary = [(v.kind, v.passed, round(v.score, 2)) for v in verdicts]
    assert summary == [
        ("run", True, 1.0), ("run", False, 0.0), ("file", True, 1.0), ("file", False, 0.0),
        ("file", False, 0.0), ("metric", True, 1.0), ("metric", False, 0.5), ("lint", False, 0.0),
    ]
    assert "boom" in verdicts[1].evidence and verdicts[1].exit_code == 2
    assert verdicts[6].value == 80 and "outside the worktree" in verdicts[4].evidence


def test_failing_test_command_gets_partial_credit_below_one(tmp_path):
    goal = _goal("  - run: 'printf \"Ran 4 tests in 0.1s\\n\\nFAILED (failures=1)\\n\"; exit 1'\n")
    (verdict,) = evaluators.run_parallel(evaluators.build(goal, Commands()), tmp_path, SubprocessSandbox())
    assert not verdict.passed and verdict.score == 0.75


def test_evaluators_run_concurrently(tmp_path):
    # A barrier: each command announces itself, then waits until all four have started. Run one
    # after another, the first would wait for the others forever and fail at its deadline.
    barrier = (
        "touch started.{i}; n=0; "
        "while [ $(ls started.* | wc -l) -lt 4 ]; do n=$((n+1)); [ $n -gt 100 ] && exit 1; sleep 0.05; done"
    )
    goal = _goal("".join(f"  - run: '{barrier.format(i=i)}'\n    timeout_seconds: 20\n" for i in range(4)))
    verdicts = evaluators.run_parallel(evaluators.build(goal, Commands()), tmp_path, SubprocessSandbox())
    assert [v.passed for v in verdicts] == [True] * 4, [v.evidence for v in verdicts]
