"""loopbot-run.yml takes the App's dispatches: the inputs the App sends, the run-name it finds its
runs by, the lane of each command and the plan issue of a dispatched number."""

from __future__ import annotations

import pytest

from tests.app.helpers import INPUTS, RUN_NAME
from tests.test_workflows import _event, _gh_calls, _lane, _plan, _run_workflow, job_runs, render


def _dispatched(issue: str, command: str = "run", delivery: str = "d-1") -> dict:
    context = _event("workflow_dispatch", inputs={"issue": issue, "command": command, "delivery": delivery})
    context["inputs"] = {"issue": issue, "command": command, "delivery": delivery}
    return context


def test_the_workflow_declares_exactly_the_inputs_the_app_sends():
    declared = _run_workflow()[True]["workflow_dispatch"]["inputs"]  # yaml reads `on:` as True
    assert {name: spec["required"] for name, spec in declared.items()} == INPUTS
    assert declared["command"]["options"] == ["run", "resume", "retry", "stop", "status"]


def test_a_dispatched_run_is_named_as_the_app_looks_for_it():
    name = _run_workflow()["run-name"]
    assert render(name, _dispatched("12", "resume", "abc-1")) == RUN_NAME.format(
        command="resume", issue="12", delivery="abc-1")
    assert render(name, _event("issues", issue={"number": 3})) == "loopbot issues #3"


def test_route_runs_for_every_dispatch():
    assert job_runs(_run_workflow()["jobs"]["route"], _dispatched("3"))


@pytest.mark.parametrize(("command", "lane"), [("run", "loop"), ("resume", "loop"), ("retry", "loop"),
                                               ("stop", "quick"), ("status", "quick"), ("merge", "quick")])
def test_a_dispatched_command_takes_its_commands_lane(tmp_path, command, lane):
    assert _lane(tmp_path, "workflow_dispatch", COMMAND=command) == lane


def test_a_dispatched_issue_is_its_own_plan(tmp_path):
    result, outputs = _plan(tmp_path, _dispatched("3"), answer="false")
    assert result.returncode == 0, result.stderr
    assert (outputs["plan"], outputs["where"], outputs["is_pr"]) == ("3", "3", "false")
    assert _gh_calls(tmp_path) == [["api", "repos/acme/widgets/issues/3", "--jq", ".pull_request != null"]]


def test_a_dispatched_number_that_is_not_a_number_reaches_no_api(tmp_path):
    result, outputs = _plan(tmp_path, _dispatched("3; touch pwned"))
    assert result.returncode == 0 and outputs["plan"] == ""
    assert _gh_calls(tmp_path) == [] and not (tmp_path / "pwned").exists()
