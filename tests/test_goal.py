from pathlib import Path

import pytest

from loopbot.errors import InputError
from loopbot.goal import Criterion, FileCheck, MetricCheck, RunCheck, load_goal, parse_goal

REPO = Path(__file__).resolve().parents[1]
TEMPLATES = sorted((REPO / "goals").glob("*.yaml"))


def problems(text: str) -> list[str]:
    with pytest.raises(InputError) as info:
        parse_goal(text, "g.yaml")
    return [str(p) for p in info.value.problems]


def test_every_template_named_in_design_ships_and_is_valid():
    names = {p.stem for p in TEMPLATES}
    assert {"bug-fix", "vulnerability-fix", "test-generation", "performance", "api-change",
            "ci-self-healing", "docs"} <= names
    for path in TEMPLATES:
        goal = load_goal(path)
        assert goal.objective_checks, path


def test_design_example_parses_with_every_check_kind():
    goal = parse_goal(
        """
id: kvstore-ttl
goal: Add TTL
chunks: [one, two]
acceptance:
  - run: python -m pytest -q
  - file: kvstore.py
    contains: ttl_seconds
  - metric: p95_ms
    run: python bench.py
    pattern: 'p95=([0-9.]+)'
    max: 120
  - criterion: The README explains TTL.
budgets: {max_iterations: 4}
""",
        "g.yaml",
    )
    kinds = [type(c) for c in goal.acceptance]
    assert kinds == [RunCheck, FileCheck, MetricCheck, Criterion]
    assert goal.budgets.max_iterations == 4
    assert goal.scope.allow == ["**"] and goal.scope.protect is None


def test_bad_yaml_is_located():
    found = problems("id: x\ngoal: [unclosed\n")
    assert len(found) == 1
    assert found[0].startswith("g.yaml:3:") and "invalid YAML" in found[0]


def test_wrong_type_names_line_and_field():
    found = problems("id: x\ngoal: g\nacceptance:\n  - run: 'true'\nbudgets:\n  max_iterations: lots\n")
    assert found == ["g.yaml:6:3: budgets.max_iterations: Input should be a valid integer, "
                     "unable to parse string as an integer"]


def test_unknown_keys_are_rejected_at_their_line():
    found = problems("id: x\ngoal: g\nacceptance:\n  - run: 'true'\n    retries: 3\nowner: me\n")
    assert "g.yaml:5:5: acceptance.0.retries: unknown key (allowed: run, name, expect_exit, timeout_seconds)" in found
    assert "g.yaml:6:1: owner: unknown key (allowed: id, goal, chunks, acceptance, scope, boundaries, budgets, " \
        "models, maker, priority, context)" in found


def test_missing_acceptance_is_rejected():
    assert problems("id: x\ngoal: g\n") == ["g.yaml:1:1: acceptance: Field required"]


def test_criteria_alone_are_not_objective():
    found = problems("id: x\ngoal: g\nacceptance:\n  - criterion: it is nicer\n")
    assert len(found) == 1 and "acceptance" in found[0] and "objective" in found[0]


def test_unrecognised_acceptance_item_says_what_is_allowed():
    found = problems("id: x\ngoal: g\nacceptance:\n  - shell: make\n")
    assert found == ["g.yaml:4:5: acceptance.0: each acceptance item needs one of: run, file, metric, criterion"]


def test_metric_needs_group_and_threshold():
    found = problems("id: x\ngoal: g\nacceptance:\n  - metric: m\n    run: r\n    pattern: 'no group'\n")
    assert any("capturing group" in f for f in found)
    found = problems("id: x\ngoal: g\nacceptance:\n  - metric: m\n    run: r\n    pattern: '(\\d+)'\n")
    assert any("min, max or both" in f for f in found)


def test_duplicate_keys_are_refused():
    found = problems("id: x\ngoal: g\ngoal: h\nacceptance:\n  - run: 'true'\n")
    assert found == ["g.yaml:3:1: goal: duplicate key (YAML keeps only the last one)"]


def test_more_than_ten_chunks_is_rejected():
    chunks = "\n".join(f"  - c{i}" for i in range(11))
    found = problems(f"id: x\ngoal: g\nchunks:\n{chunks}\nacceptance:\n  - run: 'true'\n")
    assert len(found) == 1 and found[0].startswith("g.yaml:3:1: chunks:") and "at most 10" in found[0]


def test_bad_id_and_non_mapping():
    assert any("id:" in f for f in problems("id: Not An Id\ngoal: g\nacceptance:\n  - run: 'true'\n"))
    assert problems("- just\n- a list\n") == ["g.yaml:1: a goal must be a YAML mapping, got list"]


def test_missing_file(tmp_path):
    with pytest.raises(InputError) as info:
        load_goal(tmp_path / "nope.yaml")
    assert "no such file" in str(info.value)


def test_unknown_keys_suggest_the_key_meant_at_every_level():
    found = problems(
        "id: x\ngoal: g\nacceptence: []\nacceptance:\n  - run: 'true'\n    nmae: unit\n  - file: a.py\n"
        "    contians: b\nbudgets: {max_iteration: 3}\nscope: {alow: ['**']}\n")
    assert "g.yaml:3:1: acceptence: unknown key; did you mean 'acceptance'?" in found
    assert "g.yaml:6:5: acceptance.0.nmae: unknown key; did you mean 'name'?" in found
    assert "g.yaml:8:5: acceptance.1.contians: unknown key; did you mean 'contains'?" in found
    assert "g.yaml:9:11: budgets.max_iteration: unknown key; did you mean 'max_iterations'?" in found
    assert "g.yaml:10:9: scope.alow: unknown key; did you mean 'allow'?" in found


def test_an_unknown_key_with_no_near_miss_lists_the_keys_allowed():
    found = problems("id: x\ngoal: g\nacceptance:\n  - run: 'true'\nscope: {zzz: 1}\n")
    assert found == ["g.yaml:5:9: scope.zzz: unknown key (allowed: allow, protect, new_tests)"]


def test_errors_are_sorted_by_line_and_name_no_python_classes():
    found = problems("budgets: {max_iterations: x}\ngoal: ''\nid: 'Bad'\nacceptance:\n  - 3\nscope: [a]\n")
    lines = [int(p.split(":")[1]) for p in found]
    assert lines == sorted(lines), found
    text = "\n".join(found)
    for name in ("Scope", "BudgetOverrides", "RunCheck", "instance of"):
        assert name not in text, text
    assert "g.yaml:6:1: scope: Input should be a mapping (key: value)" in found, found
