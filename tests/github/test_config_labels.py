"""`labels.*` and `push.remote` rule on GitHub: every label loopbot reads or sets and every remote it
pushes to is the config's, never the default written into the code; `loopbot init` writes the
configured run label into the workflow, and the Action refuses a workflow whose label disagrees."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from loopbot.action import run_action
from loopbot.config import Config, Labels, parse_config
from loopbot.core.route import Repo, StaticFacts, route
from loopbot.errors import StateError
from loopbot.examples import KVSTORE
from loopbot.forge.github.forge import GitHubForge, connect
from loopbot.plans import Plan, render
from loopbot.scaffold import init_files, workflow_text
from loopbot.store.git_state import GitStateStore
from loopbot.testing.scripted import load_script
from loopbot.workspace.git import git
from tests.github import test_action
from tests.github.test_action import labeled, ttl_plan_body

CUSTOM_TEXT = """\
labels:
  plan: "bot: plan"
  run: "bot: go"
  running: "bot: busy"
  blocked: "bot: stuck"
  done: "bot: ok"
  stop: "bot: halt"
  draft: "bot: not ready"
push:
  remote: upstream
"""
CUSTOM = parse_config(CUSTOM_TEXT, "custom")
CONFIGS = {"default": Config(), "custom": CUSTOM}


@pytest.fixture(autouse=True)
def _examples(example, plan_body):
    test_action._example, test_action._plan = example, plan_body


def forge_for(fake) -> GitHubForge:
    return connect(owner="acme", repo="kvstore", api_url="https://api.github.com", token="ghs_" + "F" * 36,
                   transport=fake.transport(), sleep=lambda s: None)


def commit_on_main(kv_repo, files: dict[str, str]) -> None:
    repo, _ = kv_repo
    for path, text in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
        git(repo, "add", path)
    git(repo, "commit", "-q", "-m", "configure loopbot")
    git(repo, "push", "-q", "origin", "HEAD:main")


def refs(bare: Path) -> list[str]:
    return git(bare, "for-each-ref", "--format=%(refname)").stdout.split()


def labels_added(fake) -> tuple[httpx.MockTransport, list[str]]:
    """The fake, through a transport that notes every label loopbot adds."""
    added: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/labels"):
            added.extend(json.loads(request.content)["labels"])
        return fake.handle(request)

    return httpx.MockTransport(handle), added


# -- the router, the forge, the state store --------------------------------------------------------
@pytest.mark.parametrize("name", list(CONFIGS))
def test_the_router_starts_loops_on_the_configured_run_label_only(example, name):
    config = CONFIGS[name]
    payload = example("issues", "labeled")
    payload["issue"].pop("pull_request", None)
    payload["sender"].update({"login": "alice", "type": "User"})
    facts = StaticFacts(permissions={"alice": "write"}, bodies={payload["issue"]["number"]: ttl_plan_body()})
    payload["issue"]["body"] = ttl_plan_body()
    for label, kind in ((config.labels.run, "run"), ("loopbot:run" if name == "custom" else "bot: go", "ignore")):
        payload["label"]["name"] = label
        assert route("issues", payload, config, facts, Repo("acme/kvstore")).kind == kind, label


@pytest.mark.parametrize("name", list(CONFIGS))
def test_plans_are_filed_and_found_by_the_configured_plan_label(fake, name):
    labels = CONFIGS[name].labels
    forge = forge_for(fake)
    forge.labels = labels
    script = load_script(KVSTORE / "script.yaml")
    plan = Plan.model_validate(script.auditor[0].turns[1].tools[0]["propose_plan"])
    filed = forge.file_plan(plan, render(plan), date="2026-12-02")
    number = int(filed.ref[1:])
    assert fake.labels_of(number) == [labels.plan]
    assert [p.ref for p in forge.plans()] == [filed.ref]
    other = "loopbot:plan" if name == "custom" else "bot: plan"
    fake.issues[number]["labels"] = [{"name": other}]
    assert forge.plans() == []  # a plan under another label is not this repository's plan


@pytest.mark.parametrize("name", list(CONFIGS))
def test_a_repository_without_drafts_gets_the_configured_not_ready_label(fake, name):
    labels = CONFIGS[name].labels
    fake.drafts_supported = False
    forge = forge_for(fake)
    forge.labels = labels
    pr = forge.open_pr("loop/1-x", "main", "t", "b")
    assert fake.labels_of(pr.number) == [labels.draft]
    forge.mark_ready(pr)
    assert fake.labels_of(pr.number) == []


@pytest.mark.parametrize("name", list(CONFIGS))
def test_the_state_store_names_the_configured_stop_label(tmp_path, name):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    store = GitStateStore(tmp_path, None, "loop/state-1", stop_label=CONFIGS[name].labels.stop)
    with pytest.raises(StateError, match=f"the {CONFIGS[name].labels.stop} label"):
        store.request_cancel("r")


# -- loopbot init ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(CONFIGS))
def test_init_writes_the_configured_run_label_into_the_run_workflow(name):
    config = CONFIGS[name]
    written = {f.path: f.text for f in init_files(None, config)}
    run = yaml.safe_load(written[".github/workflows/loopbot-run.yml"])
    condition = run["jobs"]["route"]["if"]
    assert f"github.event.label.name == '{config.labels.run}'" in condition
    if name == "custom":
        assert "'loopbot:run'" not in condition


def test_init_quotes_a_label_with_a_quote_as_the_expression_language_does():
    config = Config(labels=Labels(run="it's go"))
    text = workflow_text("loopbot-run.yml", labels=config.labels)
    assert "github.event.label.name == 'it''s go'" in text


def test_init_keeps_an_existing_config_and_uses_its_labels(tmp_path):
    from tests.cli.test_cli_console import cli

    repo = tmp_path / "project"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / ".github").mkdir()
    (repo / ".github" / "loopbot.yml").write_text(CUSTOM_TEXT)
    result = cli("init", "--repo", str(repo))
    assert result.returncode == 0, result.stdout + result.stderr
    assert (repo / ".github" / "loopbot.yml").read_text() == CUSTOM_TEXT  # never overwritten
    workflow = (repo / ".github" / "workflows" / "loopbot-run.yml").read_text()
    assert "github.event.label.name == 'bot: go'" in workflow
    assert "gh label create 'bot: go'" in result.stdout


# -- the Action --------------------------------------------------------------------------------
def go(actions, event: str, payload: dict, *, transport=None, extra: dict[str, str] | None = None,
       upstream: Path | None = None) -> int:
    issue = payload.get("issue") or {}
    if issue.get("body") == test_action.CURRENT_BODY:
        issue["body"] = actions.fake.issues[issue["number"]]["body"]
    env = actions.runner(event, payload)
    if upstream is not None:  # a workflow step that adds the remote the config names
        git(Path(env["GITHUB_WORKSPACE"]), "remote", "add", "upstream", str(upstream))
    return run_action({**os.environ, **env, **(extra or {})}, transport=transport or actions.fake.transport(),
                      sleep=actions.slept.append)


def test_a_loop_on_github_uses_the_configured_labels_and_remote(actions, kv_repo, tmp_path):
    fake = actions.fake
    fake.drafts_supported = False  # so the not-ready label is set, and taken off at the end
    commit_on_main(kv_repo, {".github/loopbot.yml": CUSTOM_TEXT})
    upstream = tmp_path / "upstream.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(actions.origin), str(upstream)], check=True)
    issue = fake.add_issue("Add TTL", ttl_plan_body(), labels=["bot: plan"])
    transport, added = labels_added(fake)
    payload = labeled(issue)
    payload["label"]["name"] = "bot: go"

    assert go(actions, "issues", payload, transport=transport, upstream=upstream) == 0

    assert actions.outputs()["status"] == "success"
    assert set(added) == {"bot: busy", "bot: not ready", "bot: ok"}
    assert sorted(fake.labels_of(issue)) == ["bot: ok", "bot: plan"]
    (pr,) = fake.pulls.values()
    assert fake.labels_of(pr["number"]) == []
    # Every push went to the configured remote: the loop branch, the state and the memory.
    pushed = refs(upstream)
    assert f"refs/heads/{pr['head']['ref']}" in pushed and f"refs/heads/loop/state-{issue}" in pushed
    assert "refs/heads/loop/memory" in pushed
    assert [r for r in refs(actions.origin) if r.startswith("refs/heads/loop/")] == []


def test_the_configured_run_label_starts_the_loop_where_the_default_one_is_ignored(actions, kv_repo):
    fake = actions.fake
    commit_on_main(kv_repo, {".github/loopbot.yml": "labels: {run: 'bot: go'}\n"})
    issue = fake.add_issue("Add TTL", ttl_plan_body(), labels=["loopbot:plan"])
    assert go(actions, "issues", labeled(issue)) == 0  # loopbot:run: not this repository's label
    assert fake.pulls == {} and fake.comments_on(issue) == []


@pytest.mark.parametrize(("workflow_label", "config_text"), [("loopbot:run", "labels: {run: 'bot: go'}\n"),
                                                             ("bot: go", "")])
def test_the_action_refuses_a_workflow_whose_run_label_disagrees_with_the_config(
        actions, kv_repo, capsys, workflow_label, config_text):
    fake = actions.fake
    workflow = workflow_text("loopbot-run.yml", labels=Labels(run=workflow_label))
    commit_on_main(kv_repo, {".github/loopbot.yml": config_text or "{}\n",
                             ".github/workflows/loopbot-run.yml": workflow})
    issue = fake.add_issue("Add TTL", ttl_plan_body(), labels=["loopbot:plan"])
    payload = labeled(issue)
    payload["label"]["name"] = workflow_label
    extra = {"GITHUB_WORKFLOW_REF": "acme/kvstore/.github/workflows/loopbot-run.yml@refs/heads/main"}

    assert go(actions, "issues", payload, extra=extra) == 2

    said = capsys.readouterr().out
    configured = parse_config(config_text, "c").labels.run
    assert "::error::" in said and f"'{workflow_label}'" in said and f"'{configured}'" in said
    assert "labels.run" in said and actions.outputs()["status"] == "label_mismatch"
    assert fake.pulls == {} and fake.labels_of(issue) == ["loopbot:plan"]
