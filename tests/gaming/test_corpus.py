"""The gaming corpus (loopbot/testing/gaming.py): every trick, under each test runner it applies to,
against a checker and goal-checker that approve everything. None may end in a pushed SUCCESS; the
honest fix must, and a clean clone of what it pushed must pass the acceptance command.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from loopbot.testing.gaming import CASES, RUNNERS, Case, Runner, expand, honest_case, run_case


def test_the_corpus_is_large_enough() -> None:
    assert len(expand(CASES)) >= 25


@pytest.mark.parametrize(("case", "runner"), expand(CASES), ids=lambda v: v.name if isinstance(v, Case) else v)
def test_trick_never_ends_in_a_pushed_success(case: Case, runner: Runner, tmp_path: Path) -> None:
    outcome = run_case(case, runner, tmp_path)
    assert not outcome.pushed_success, outcome.describe()


@pytest.mark.parametrize("runner", RUNNERS)
def test_the_honest_fix_succeeds_and_its_clean_clone_passes(runner: Runner, tmp_path: Path) -> None:
    outcome = run_case(honest_case(), runner, tmp_path)
    assert outcome.pushed_success, outcome.describe()
    assert outcome.clean_clone_passes
