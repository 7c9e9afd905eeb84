from __future__ import annotations

import copy

import pytest

from loopbot.audit import audit
from loopbot.clock import SystemClock
from loopbot.config import Config
from loopbot.errors import InputError
from loopbot.forge.local import LocalForge
from loopbot.plans import Plan, goal_from_markdown, read_marker, render
from loopbot.sandbox.subprocess_runner import SubprocessSandbox
from loopbot.testing.scripted import Script, ScriptedModel


def plan(n: int, **extra) -> dict:
    return {
        "title": f"Improve module number {n} handling", "context": f"Module {n} has a problem worth fixing.",
        "chunks": [f"step {i}" for i in range(1, 3)], "scope": [f"src/m{n}.py", "tests/**"],
        "risks": ["none known"],
        "goal": {"id": f"plan-{n}", "goal": f"Fix the parser bug number {n} in module {n}",
                 "acceptance": [{"run": "python3 -m unittest -q"}]},
        **extra,
    }


def auditor_script(proposals: list[dict]) -> Script:
    return Script.model_validate({"auditor": [{"iteration": "*", "turns": [
        {"text": "Reading.", "tools": [{"list": {}}]},
        {"tools": [{"propose_plan": p} for p in proposals]},
        {"tools": [{"done": {"summary": "proposed"}}]}]}]})


def run_audit(repo, proposals, *, config: Config | None = None):
    forge = LocalForge(repo, repo / ".git" / "loopbot" / "proposals")
    return audit(repo, model=ScriptedModel(auditor_script(proposals)), config=config or Config(), forge=forge,
                 sandbox=SubprocessSandbox(), clock=SystemClock(), lessons=[]), forge


def test_seven_proposals_big_refused_duplicate_skipped_at_most_five_filed(kv_repo):
    repo, _ = kv_repo
    already_open = Plan.model_validate(plan(1))
    (repo / "plans").mkdir()
    (repo / "plans" / "2026-01-01-old.md").write_text(render(already_open))
    big = plan(2, chunks=[f"step {i}" for i in range(12)])
    duplicate = plan(1, title="Improve the handling of module number 1")  # reworded, same plan
    proposals = [big, duplicate, plan(3), plan(4), plan(5), plan(6), plan(7)]
    assert len(proposals) == 7

    result, _ = run_audit(repo, proposals)

    assert len(result.filed) == 5
    assert any("12 chunks" in why for why in result.refused)
    assert [why for title, why in result.skipped] == ["duplicate of open plan plans/2026-01-01-old.md"]
    assert {p.title for p in result.filed} == {f"Improve module number {n} handling" for n in (3, 4, 5, 6, 7)}
    for filed in result.filed:
        body = (repo / filed.ref).read_text()
        goal = goal_from_markdown(body, filed.ref)  # every filed goal passes the schema
        assert goal.objective_checks and len(goal.chunks) <= 10
        assert read_marker(body) == (filed.fingerprint, True)
        for section in ("## Context", "## Chunks", "## Scope", "## Risks", "## Goal"):
            assert section in body
    # The same audit again files nothing: every plan is open already.
    again, _ = run_audit(repo, proposals[2:])
    assert again.filed == [] and len(again.skipped) == 5


def test_circuit_breaker_keeps_the_highest_priority(kv_repo):
    repo, _ = kv_repo
    proposals = [plan(1), plan(2), plan(3, priority="security")]
    config = Config.model_validate({"limits": {"max_plans_per_run": 2}})
    result, _ = run_audit(repo, proposals, config=config)
    assert [p.title for p in result.filed] == ["Improve module number 3 handling", "Improve module number 1 handling"]
    assert result.skipped[0][1].startswith("over the limit of 2")


def test_a_plan_without_objective_acceptance_is_refused(kv_repo):
    repo, _ = kv_repo
    vague = copy.deepcopy(plan(1))
    vague["goal"]["acceptance"] = [{"criterion": "it is better"}]
    result, _ = run_audit(repo, [vague])
    assert result.filed == [] and "objective" in result.refused[0]


def test_plan_goal_errors_point_at_the_markdown_line(tmp_path):
    body = render(Plan.model_validate(plan(1)))
    broken = body.replace("id: plan-1", "id: plan-1\nsurprise: 1")
    line = broken.splitlines().index("surprise: 1") + 1
    with pytest.raises(InputError) as info:
        goal_from_markdown(broken, "plan.md")
    assert str(info.value.problems[0]).startswith(f"plan.md:{line}:1: surprise: unknown key")


def test_a_risk_with_a_comma_stays_one_bullet(kv_repo):
    from loopbot.examples import KVSTORE

    repo, _ = kv_repo
    forge = LocalForge(repo, repo / ".git" / "loopbot" / "proposals")
    result = audit(repo, model=ScriptedModel.from_file(KVSTORE / "script.yaml"), config=Config(), forge=forge,
                   sandbox=SubprocessSandbox(), clock=SystemClock(), lessons=[])
    ttl = next(p for p in result.filed if "TTL" in p.title)
    body = (repo / ttl.ref).read_text()
    risks = body.split("## Risks\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert risks == ["- Existing callers of set(key, value) must keep working unchanged."]
    one = Plan.model_validate(plan(9, risks=["Callers of get(key, default), keys() and len() break, if any"]))
    assert render(one).count("\n- Callers of get(key, default), keys() and len() break, if any\n") == 1
