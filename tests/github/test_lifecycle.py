"""A loop's life on GitHub: stop and resume continue the same run on the same branch, retry starts
over from main, replays never rerun a loop, and a maintainer's commits on the loop branch survive."""

from __future__ import annotations

import subprocess

import pytest

from loopbot.core.state import LoopState
from loopbot.workspace.git import git
from tests.github import test_action
from tests.github.test_action import comment, labeled, run, ttl_plan_body


@pytest.fixture(autouse=True)
def _examples(example, plan_body):
    test_action._example, test_action._plan = example, plan_body


def _one_iteration_plan() -> str:
    return ttl_plan_body().replace("```yaml\n", "```yaml\nbudgets: {max_iterations: 1}\n", 1)


def _runs(actions, issue: int) -> list[str]:
    """The runs recorded on the plan's state branch, newest first."""
    created = git(actions.origin, "log", "--first-parent", "--format=%H", "--grep=after created",
                  f"loop/state-{issue}").stdout.split()
    return created


def _on_pr(fake, pr: dict, body: str) -> dict:
    """A writer's comment on the loop PR (GitHub keeps a PR's comments on its issue)."""
    fake.issues.setdefault(pr["number"], {"number": pr["number"], "title": "t", "body": pr["body"],
                                          "user": {"login": "github-actions[bot]"}, "labels": [], "state": "open",
                                          "pull_request": {}})
    payload = comment(pr["number"], body)
    payload["issue"]["pull_request"] = {"url": "x"}
    return payload


def _state(actions, issue: int) -> LoopState:
    return LoopState.model_validate_json(git(actions.origin, "show", f"loop/state-{issue}:state.json").stdout)


def test_stop_then_resume_continues_the_same_run_on_the_same_branch(actions):
    fake = actions.fake
    issue = fake.add_issue("Add TTL", ttl_plan_body(), labels=["loopbot:plan"])

    def stop_during_iteration_one(state: LoopState) -> None:
        if state.iteration == 1 and state.phase.value == "guard" and "loopbot:stop" not in fake.labels_of(issue):
            fake.issues[issue]["labels"].append({"name": "loopbot:stop"})  # a writer's /loop stop, meanwhile

    assert run(actions, "issues", labeled(issue), on_checkpoint=stop_during_iteration_one) == 1
    stopped = _state(actions, issue)
    assert stopped.suspended is not None and actions.outputs()["status"] == "suspended"

    assert run(actions, "issue_comment", comment(issue, "/loop resume")) == 0
    final = _state(actions, issue)
    assert final.run_id == stopped.run_id and final.branch == stopped.branch and final.suspensions == 1
    assert len(_runs(actions, issue)) == 1 and actions.outputs()["status"] == "success"
    assert len(fake.pulls) == 1


def test_resume_after_a_budget_stop_continues_the_run_with_a_new_allowance(actions):
    """The story needs three iterations; the plan allows two, and `/loop resume` on the PR grants two more."""
    fake = actions.fake
    issue = fake.add_issue("Add TTL", _one_iteration_plan().replace("max_iterations: 1", "max_iterations: 2"),
                           labels=["loopbot:plan"])
    assert run(actions, "issues", labeled(issue)) == 1
    stopped = _state(actions, issue)
    assert stopped.finished and stopped.stop_label == "BUDGET_EXHAUSTED(iterations)"
    (pr,) = fake.pulls.values()

    payload = _on_pr(fake, pr, "/loop resume")
    assert run(actions, "issue_comment", payload) == 0
    final = _state(actions, issue)
    assert final.run_id == stopped.run_id and final.iteration == 3 and final.reopenings == 1
    assert actions.outputs()["status"] == "success" and len(_runs(actions, issue)) == 1
    assert list(fake.pulls) == [pr["number"]]  # the same pull request


def test_resume_of_a_successful_loop_answers_with_its_status(actions):
    fake = actions.fake
    issue = fake.add_issue("Add TTL", ttl_plan_body(), labels=["loopbot:plan"])
    assert run(actions, "issues", labeled(issue)) == 0
    assert run(actions, "issue_comment", comment(issue, "/loop resume")) == 0
    assert actions.outputs()["status"] == "already_succeeded" and len(_runs(actions, issue)) == 1
    assert "SUCCESS" in fake.comments_on(issue)[-1]["body"]


def test_retry_on_the_loop_pr_starts_over_from_main(actions):
    fake = actions.fake
    issue = fake.add_issue("Add TTL", _one_iteration_plan(), labels=["loopbot:plan"])
    assert run(actions, "issues", labeled(issue)) == 1
    first = _state(actions, issue)
    (pr,) = fake.pulls.values()
    payload = _on_pr(fake, pr, "/loop retry")
    run(actions, "issue_comment", payload)
    second = _state(actions, issue)
    main = git(actions.origin, "rev-parse", "main").stdout.strip()
    assert second.run_id != first.run_id and second.base_sha == main
    assert second.iterations[0].start_sha == main  # not the old run's work
    assert second.feedback is None or "Review feedback" not in second.feedback


def test_a_replayed_label_event_on_a_finished_loop_only_reports(actions):
    fake = actions.fake
    issue = fake.add_issue("Add TTL", ttl_plan_body(), labels=["loopbot:plan"])
    event = labeled(issue)
    event["issue"]["body"] = fake.issues[issue]["body"]
    replay = {**event, "issue": dict(event["issue"])}
    assert run(actions, "issues", event) == 0
    reviews = sum(len(r) for r in fake.reviews.values())
    assert run(actions, "issues", replay) == 0  # a redelivery, or "Re-run jobs"
    assert len(_runs(actions, issue)) == 1 and sum(len(r) for r in fake.reviews.values()) == reviews
    assert actions.outputs()["status"] == "replayed"


def test_a_maintainers_commit_on_the_loop_branch_survives_the_next_run(actions, tmp_path):
    fake = actions.fake
    issue = fake.add_issue("Add TTL", _one_iteration_plan(), labels=["loopbot:plan"])
    assert run(actions, "issues", labeled(issue)) == 1
    branch = _state(actions, issue).branch
    human = tmp_path / "maintainer"
    subprocess.run(["git", "clone", "--quiet", "--branch", branch, str(actions.origin), str(human)], check=True)
    (human / "NOTES.md").write_text("a maintainer's fixup\n")
    git(human, "add", "NOTES.md")
    git(human, "-c", "user.name=m", "-c", "user.email=m@x", "commit", "-qm", "fixup by a maintainer")
    fixup = git(human, "rev-parse", "HEAD").stdout.strip()
    git(human, "push", "--quiet", "origin", branch)

    run(actions, "issue_comment", comment(issue, "/loop run"))
    assert len(_runs(actions, issue)) == 2
    head = git(actions.origin, "rev-parse", branch).stdout.strip()
    assert git(actions.origin, "merge-base", "--is-ancestor", fixup, head, check=False).returncode == 0


def test_the_runs_record_and_failure_memory_outlive_the_runner_and_reach_the_wiki_log(actions, example):
    fake = actions.fake
    issue = fake.add_issue("Add TTL", _one_iteration_plan(), labels=["loopbot:plan"])
    assert run(actions, "issues", labeled(issue)) == 1
    stopped = _state(actions, issue)
    report = git(actions.origin, "show", f"loop/memory:runs/{stopped.run_id}/report.md").stdout
    assert "BUDGET_EXHAUSTED" in report
    assert git(actions.origin, "cat-file", "-e", f"loop/memory:runs/{stopped.run_id}/incident.md",
               check=False).returncode == 0

    # A later run on this plan starts with what the first one learned not to do.
    run(actions, "issue_comment", comment(issue, "/loop retry"))
    later = {record.fingerprint: record for record in _state(actions, issue).memory}
    assert stopped.memory and all(later[r.fingerprint].failures[:len(r.failures)] == r.failures
                                  for r in stopped.memory)
    assert any(len(later[r.fingerprint].failures) > len(r.failures) for r in stopped.memory)  # it failed again

    # A push to main on another runner: the docs loop files the record in the wiki's 90_LOG/.
    payload = example("push")
    main = git(actions.origin, "rev-parse", "main").stdout.strip()
    payload.update({"ref": "refs/heads/main", "before": "0" * 40, "after": main})
    assert run(actions, "push", payload) == 0
    docs_pr = next(p for p in fake.pulls.values() if p["head"]["ref"].startswith("loop/wiki-"))
    logged = git(actions.origin, "show", f"{docs_pr['head']['ref']}:wiki/90_LOG/{stopped.run_id}.md").stdout
    assert "BUDGET_EXHAUSTED" in logged and "Incident" in logged


def test_a_refused_progress_comment_never_stops_the_loop(actions):
    fake = actions.fake
    issue = fake.add_issue("Add TTL", ttl_plan_body(), labels=["loopbot:plan"])
    fake.refuse("PATCH", r"/issues/comments/\d+$", 422, "Validation Failed", times=3)  # one update, each retry
    assert run(actions, "issues", labeled(issue)) == 0
    assert actions.outputs()["status"] == "success" and len(fake.pulls) == 1


def test_a_push_github_refuses_is_said_on_the_issue_and_the_work_is_kept(actions):
    """A ruleset or a workflow file the token may not write: origin's pre-receive hook refuses the
    loop branch, as GitHub does, and says why. Origin is served over real smart HTTP, where the
    server's hooks run (a local-path push would carry loopbot's hooksPath=/dev/null to them)."""
    from loopbot.testing.git_http import serve

    hook = actions.origin / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\nwhile read old new ref; do case $ref in refs/heads/loop/[0-9]*-*)\n"
                    "  echo 'GH013: Repository rule violations found for '$ref >&2; exit 1;; esac; done\n")
    hook.chmod(0o755)
    fake = actions.fake
    issue = fake.add_issue("Add TTL", ttl_plan_body(), labels=["loopbot:plan"])
    with serve(actions.origin.parent, require_auth=False) as server:
        actions.clone_url = f"{server.url}/{actions.origin.name}"
        assert run(actions, "issues", labeled(issue)) == 1
    said = [c["body"] for c in fake.comments_on(issue) if "loopbot:push-refused" in c["body"]]
    assert len(said) == 1 and "GH013: Repository rule violations" in said[0]
    assert actions.outputs()["status"] == "suspended" and fake.pulls == {}
    final = _state(actions, issue)  # the state branch is loopbot's own, not the ruleset's: the work is in it
    assert final.suspended is not None and final.suspended.reason.value == "PUSH_PENDING"
    assert git(actions.origin, "cat-file", "-e", f"{final.best.sha}^{{commit}}", check=False).returncode == 0


def test_with_app_credentials_loop_pushes_carry_the_installation_token(actions):
    """So the repository's own CI runs on every loop push; loopbot's state pushes keep the job's
    token (they start no workflows), and the installation token is written nowhere."""
    import os

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from loopbot.action import run_action
    from loopbot.testing.git_http import serve

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    fake = actions.fake
    fake.permissions["loopbot[bot]"] = "write"
    issue = fake.add_issue("Add TTL", ttl_plan_body(), labels=["loopbot:plan"])
    payload = labeled(issue)
    payload["issue"]["body"] = fake.issues[issue]["body"]
    with serve(actions.origin.parent, require_auth=False) as server:
        actions.clone_url = f"{server.url}/{actions.origin.name}"
        env = {**os.environ, **actions.runner("issues", payload), "LOOPBOT_APP_ID": "12345",
               "LOOPBOT_APP_PRIVATE_KEY": pem, "GITHUB_SERVER_URL": server.url}
        assert run_action(env, transport=fake.transport(), sleep=actions.slept.append) == 0
    loop_pushes = [p for p in server.pushes if any(r.startswith("refs/heads/loop/1-") for r in p.refs)]
    state_pushes = [p for p in server.pushes if any(r.startswith("refs/heads/loop/state-") for r in p.refs)]
    assert loop_pushes and all(p.password == fake.installation_token for p in loop_pushes)
    assert state_pushes and all(p.password != fake.installation_token for p in state_pushes)
    checkout = actions.root / f"runner{actions.runs}"
    found = subprocess.run(["grep", "-rl", fake.installation_token, str(checkout)], capture_output=True, text=True)
    assert found.stdout == ""  # not in .git/config, the worktree, the run's files or the report


def test_the_push_token_is_minted_again_shortly_before_it_expires(actions):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from loopbot.forge.github.forge import TOKEN_MARGIN_SECONDS, connect

    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    expiry = 4_070_908_800.0  # the fake's tokens expire 2099-01-01T00:00:00Z
    now = [expiry - 3600]
    forge = connect(owner="acme", repo="kvstore", api_url="https://api.github.com", app_id="1", private_key=pem,
                    transport=actions.fake.transport(), sleep=lambda s: None, wall=lambda: now[0])
    minted = lambda: actions.fake.auth_seen.count("installation-token")  # noqa: E731
    assert forge.push_token() == actions.fake.installation_token
    before = minted()
    assert forge.push_token() and minted() == before  # cached
    now[0] = expiry - TOKEN_MARGIN_SECONDS + 1
    assert forge.push_token() and minted() == before + 1  # minted again before it runs out


def test_a_loop_whose_best_work_is_its_base_pushes_nothing_and_says_no_failed_push(actions, tmp_path):
    """Every iteration rolled back (here: an edit outside the plan's scope): no branch, no PR, and
    no "could not push" alarm on the issue, only the stop in the progress comment."""
    import os

    from loopbot.action import run_action

    script = tmp_path / "outside.yaml"
    script.write_text(
        "model: demo\nprice: {input_per_mtok: 3.0, output_per_mtok: 15.0}\nmaker:\n"
        "  - iteration: '*'\n    turns:\n"
        "      - text: 'APPROACH: Document TTL in a new notes file.'\n"
        "        tools:\n          - write: {path: NOTES.md, content: \"ttl\\n\"}\n"
        "      - tools:\n          - done: {summary: notes, chunks_completed: []}\n"
        "checker:\n  - iteration: '*'\n    decision: APPROVE\n    reasons: [fine]\n"
        "goal_checker:\n  - iteration: '*'\n    criteria:\n      - met: false\n        evidence: not yet\n")
    fake = actions.fake
    issue = fake.add_issue("Add TTL", _one_iteration_plan(), labels=["loopbot:plan"])
    payload = labeled(issue)
    payload["issue"]["body"] = fake.issues[issue]["body"]
    env = {**actions.runner("issues", payload), "LOOPBOT_MODEL": f"scripted:{script}"}
    run_action({**os.environ, **env}, transport=fake.transport(), sleep=actions.slept.append)

    state = _state(actions, issue)
    assert state.finished and state.best.sha == state.base_sha
    assert state.push is not None and not state.push.pushed
    assert fake.pulls == {}
    assert git(actions.origin, "branch", "--list", state.branch).stdout.strip() == ""
    bodies = [c["body"] for c in fake.comments_on(issue)]
    assert not any("could not push" in body for body in bodies), bodies
    assert actions.outputs()["status"] != "success"


def test_the_reports_links_go_to_the_server_the_job_runs_on(actions):
    """GitHub Enterprise: the branch and compare links use GITHUB_SERVER_URL, not the clone's URL."""
    import os

    from loopbot.action import run_action

    fake = actions.fake
    issue = fake.add_issue("Add TTL", ttl_plan_body(), labels=["loopbot:plan"])
    payload = labeled(issue)
    payload["issue"]["body"] = fake.issues[issue]["body"]
    env = {**actions.runner("issues", payload), "GITHUB_SERVER_URL": "https://ghe.example.com"}
    assert run_action({**os.environ, **env}, transport=fake.transport(), sleep=actions.slept.append) == 0
    (pr,) = fake.pulls.values()
    branch = pr["head"]["ref"]
    assert f"https://ghe.example.com/acme/kvstore/tree/{branch}" in pr["body"]
    assert "https://ghe.example.com/acme/kvstore/compare/" in pr["body"]
