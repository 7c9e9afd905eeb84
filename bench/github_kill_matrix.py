"""Kill the Action's runner after every GitHub write of a label-to-ready-PR run, one trial per
write, then `/loop resume` on a fresh runner; every trial must end as an uninterrupted run does:
one run, one PR (ready), one progress comment, one review per checker verdict, published.

    python bench/github_kill_matrix.py            # every write position
    python bench/github_kill_matrix.py --every 5  # every fifth
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loopbot.examples import KVSTORE
from loopbot.examples.setup import make_example_repo
from loopbot.testing.fake_github import FakeGitHub
from tests.github import test_action, test_kill_github
from tests.github.conftest import CONTRACTS, Actions, example, ttl_plan_body


def trial(root: Path, kill_at: int | None) -> tuple[dict, int]:
    _, origin = make_example_repo(KVSTORE / "repo", root / "work")
    fake = FakeGitHub(CONTRACTS / "github-openapi.trimmed.json", permissions={"alice": "write"})
    actions = Actions(fake, origin, root / "actions")
    issue = fake.add_issue("Add TTL", ttl_plan_body(), labels=["loopbot:plan"])
    count = [0]

    def nth(_request: object) -> bool:  # counts every write; kills at the chosen one
        count[0] += 1
        return count[0] == kill_at

    transport = test_kill_github.dying_after(fake, nth)
    try:
        test_kill_github.go(actions, "issues", test_action.labeled(issue), transport)
    except test_kill_github.Killed:
        test_kill_github.go(actions, "issue_comment", test_action.comment(issue, "/loop resume"),
                            test_kill_github.dying_after(fake, None), later=True)
    assert fake.violations == [], fake.violations
    return test_kill_github.outcome(actions, issue), count[0]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--every", type=int, default=1)
    args = parser.parse_args()
    test_action._example, test_action._plan = example, ttl_plan_body()
    with tempfile.TemporaryDirectory() as tmp:
        expected, writes = trial(Path(tmp) / "clean", None)
    print(f"uninterrupted: {writes} GitHub writes, outcome {expected}")
    failures, started = 0, time.monotonic()
    for n in range(1, writes + 1, args.every):
        with tempfile.TemporaryDirectory() as tmp:
            got, _ = trial(Path(tmp) / "t", n)
        same = got == expected
        failures += not same
        print(f"kill after write {n:3}: {'same outcome' if same else f'DIFFERENT {got}'}")
    print(f"{failures} of {len(range(1, writes + 1, args.every))} trials differ ({time.monotonic() - started:.0f} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
