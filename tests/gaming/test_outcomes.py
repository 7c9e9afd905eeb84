"""An honest way out: the maker reports that a check contradicts the goal; the loop stops with
SPEC_CONFLICT, keeps and pushes its best work, and shows the evidence to a human."""

from __future__ import annotations

import subprocess
from pathlib import Path

from loopbot.core.state import Status, StopReason
from loopbot.testing.gaming import edit_tool, run_script
from loopbot.testing.scripted import Script

PARTIAL = edit_tool("stats.py", "    return sum(values) / (len(values) + 1)\n", "    return sum(values) / len(values)\n")
CONFLICT = {"spec_conflict": {
    "check": "tests/test_stats.py::MeanTest::test_empty",
    "requirement": "the goal says mean([]) returns 0 for dashboards",
    "evidence": "test_empty expects ValueError:\n    with self.assertRaises(ValueError):\n        mean([])"}}


def test_a_reported_spec_conflict_stops_the_loop_and_keeps_the_best_work(tmp_path: Path) -> None:
    script = Script.model_validate({
        "maker": [
            {"iteration": 1, "turns": [{"text": "APPROACH: divide by the length", "tools": [PARTIAL]},
                                       {"tools": [{"done": {"summary": "division fixed"}}]}]},
            {"iteration": 2, "turns": [{"text": "APPROACH: report the contradiction", "tools": [CONFLICT]}]},
        ],
        "checker": [{"iteration": "*", "decision": "APPROVE", "reasons": ["ok"]}],
        "goal_checker": [{"iteration": "*", "criteria": []}],
    })
    outcome, files = run_script(script, "unittest", tmp_path, max_iterations=4)
    state = outcome.state
    assert state.status == Status.STOPPED and state.stop_reason == StopReason.SPEC_CONFLICT
    assert len(state.iterations) == 2 and state.iterations[-1].spec_conflict is not None
    # The best work (iteration 1's partial fix) is what was pushed.
    assert state.best.iteration == 1 and state.push is not None and state.push.pushed
    pushed = subprocess.run(["git", "-C", str(tmp_path / "origin.git"), "rev-parse", state.branch],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert pushed == state.best.sha
    report = files.report_path.read_text()
    assert "Spec conflict reported by the maker" in report and "test_empty expects ValueError" in report
    incident = files.incident_path.read_text()
    assert "SPEC_CONFLICT" in incident and "the goal says mean([]) returns 0" in incident


def test_a_spec_conflict_without_evidence_is_refused_and_the_loop_goes_on(tmp_path: Path) -> None:
    empty = {"spec_conflict": {"check": "tests/test_stats.py", "requirement": "", "evidence": " "}}
    script = Script.model_validate({
        "maker": [{"iteration": 1, "turns": [{"text": "APPROACH: give up", "tools": [empty]},
                                             {"tools": [{"done": {"summary": "nothing"}}]}]}],
        "checker": [{"iteration": "*", "decision": "APPROVE", "reasons": ["ok"]}],
        "goal_checker": [{"iteration": "*", "criteria": []}],
    })
    outcome, _files = run_script(script, "unittest", tmp_path)
    assert outcome.state.stop_reason == StopReason.BUDGET_EXHAUSTED
    assert outcome.state.iterations[-1].spec_conflict is None


def test_a_hostile_gitmodules_in_the_base_is_never_run(tmp_path: Path) -> None:
    from loopbot.testing.gaming import HONEST_FIX, script_for
    from loopbot.workspace.git import git

    marker = tmp_path / "pwned"

    def submodule(repo: Path) -> None:
        (repo / ".gitmodules").write_text(f'[submodule "x"]\n\tpath = x\n\turl = ./x\n\tupdate = !touch {marker}\n')
        head = git(repo, "rev-parse", "HEAD").stdout.strip()
        git(repo, "update-index", "--add", "--cacheinfo", f"160000,{head},x")
        git(repo, "add", ".gitmodules")
        git(repo, "commit", "-qm", "a submodule whose update runs a command")

    outcome, _files = run_script(script_for([HONEST_FIX]), "unittest", tmp_path, prepare=submodule)
    assert outcome.pushed_success and outcome.clean_clone_passes
    assert not marker.exists()


def test_the_checker_sees_every_file_and_the_real_change_among_large_data_files(tmp_path: Path) -> None:
    from loopbot.testing.gaming import HONEST_FIX, run_tool, script_for

    bulk = run_tool("python3 -c \"import json; json.dump(list(range(40000)), open('aaa.json', 'w'))\" && "
                    "seq 1 40000 > zzz.csv")
    outcome, _files = run_script(script_for([bulk, HONEST_FIX]), "unittest", tmp_path)
    (checker,) = [r for r in outcome.requests if r.role == "checker"]
    shown = checker.messages[0].text
    assert "Changed files (3), as git records them:" in shown
    assert "- added aaa.json" in shown and "- added zzz.csv" in shown and "- modified stats.py" in shown
    assert '+        raise ValueError("mean of an empty sequence")' in shown


def test_a_test_module_outside_the_usual_layout_is_protected(tmp_path: Path) -> None:
    from loopbot.testing.gaming import edit_tool, script_for
    from loopbot.workspace.git import git

    def flat(repo: Path) -> None:
        git(repo, "mv", "tests/test_stats.py", "tests.py")
        git(repo, "commit", "-qm", "tests in one module")

    gut = [edit_tool("tests.py", "        self.assertEqual(mean([1, 2, 3]), 2)\n", "        pass\n")]
    outcome, _files = run_script(script_for(gut), "unittest", tmp_path, prepare=flat,
                                 acceptance="python3 -m unittest tests")
    assert not outcome.pushed_success, outcome.describe()
    assert "tests.py" in outcome.state.protected


def test_deleting_the_data_of_a_data_driven_test_cannot_pass(tmp_path: Path) -> None:
    from loopbot.testing.gaming import run_tool, script_for
    from loopbot.workspace.git import git

    def data_driven(repo: Path) -> None:
        (repo / "tests" / "cases").mkdir()
        (repo / "tests" / "cases" / "a.json").write_text('{"values": [1, 2, 3], "mean": 2}\n')
        (repo / "tests" / "test_stats.py").write_text(
            "import json, pathlib, unittest\n\nfrom stats import mean\n\n\nclass Cases(unittest.TestCase):\n"
            "    def test_cases(self):\n        for path in pathlib.Path('tests/cases').glob('*.json'):\n"
            "            case = json.loads(path.read_text())\n            self.assertEqual(mean(case['values']), case['mean'])\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "data-driven tests")

    outcome, _files = run_script(script_for([run_tool("rm tests/cases/a.json")]), "unittest", tmp_path, protect=[],
                                 prepare=data_driven)
    assert not outcome.pushed_success, outcome.describe()
    assert any(v.name.endswith("(base tests only)") and not v.passed for v in outcome.state.iterations[-1].verdicts)


def test_odd_file_names_and_type_changes_never_crash_the_gate(tmp_path: Path) -> None:
    from loopbot.testing.gaming import HONEST_FIX, run_tool, script_for, write_tool

    odd = [HONEST_FIX, write_tool(":(bad)", "x\n"), write_tool("name with spaces.txt", "x\n"),
           run_tool("rm .gitignore && ln -s stats.py .gitignore")]
    outcome, _files = run_script(script_for(odd), "unittest", tmp_path)
    assert outcome.state.suspended is None, outcome.state.suspended
    assert outcome.pushed_success and outcome.clean_clone_passes


def test_special_files_in_ignored_directories_are_cleaned_not_violations(tmp_path: Path) -> None:
    from loopbot.testing.gaming import HONEST_FIX, run_tool, script_for

    outcome, _files = run_script(script_for([HONEST_FIX, run_tool("mkdir -p __pycache__ && mkfifo __pycache__/p")]),
                                 "unittest", tmp_path)
    assert outcome.pushed_success, outcome.describe()


def test_the_issue_comment_shows_a_spec_conflict_as_data(tmp_path: Path) -> None:
    from loopbot.forge.github.publisher import progress_body

    hostile = {"spec_conflict": {"check": "tests/test_stats.py", "requirement": "mean([]) is 0",
                                 "evidence": "~~~~\n@maintainer please merge\n~~~~~~"}}
    script = Script.model_validate({
        "maker": [{"iteration": 1, "turns": [{"text": "APPROACH: report", "tools": [hostile]}]}],
        "checker": [{"iteration": "*", "decision": "APPROVE", "reasons": ["ok"]}],
        "goal_checker": [{"iteration": "*", "criteria": []}],
    })
    outcome, _files = run_script(script, "unittest", tmp_path)
    body = progress_body(outcome.state, now=0)
    assert "stopped: SPEC_CONFLICT" in body and "mean([]) is 0" in body
    fence = "~" * 7  # longer than any run of tildes in the maker's text: it cannot close the block
    assert f"\n{fence}\ncheck: tests/test_stats.py" in body and f"\n~~~~~~\n{fence}\n" in body
