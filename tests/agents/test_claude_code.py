"""The real Claude Code CLI as loopbot's maker: in bubblewrap, through the proxy and relay, against
the replay server scripted with Claude Code's own tool calls. Real runner, git, sandbox, node."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest

from loopbot.agents.claude_code import ClaudeCode
from loopbot.agents.session import WORKSPACE
from loopbot.agents.spec import AgentMaker
from loopbot.config import Config, ProviderConfig, SandboxConfig
from loopbot.core.state import Status, StopReason
from loopbot.goal import Goal
from loopbot.providers.anthropic import AnthropicModel
from loopbot.providers.profiles import lookup
from loopbot.session import create_run, open_session
from loopbot.statepaths import Paths
from loopbot.testing import FakeClock, ScriptedModel
from loopbot.testing.agent_turns import (
    KVSTORE_TTL_STORED,
    KVSTORE_WITH_TTL,
    bash,
    read,
    turn,
    write,
)
from loopbot.testing.replay import Cassette, Exchange, ReplayServer
from loopbot.testing.scripted import Script
from loopbot.workspace.git import git

MODEL = "claude-sonnet-4-5"
MODEL_KEY = "sk-ant-api03-" + "agentkey" * 5
APPROVE = [{"iteration": "*", "decision": "APPROVE", "reasons": ["ok"]}]
MET = [{"iteration": "*", "criteria": [{"met": True, "evidence": "ok"}]}]
UNIT = "python3 -m unittest discover -s tests -q"


@pytest.fixture(autouse=True)
def _claude_installed() -> None:
    problem = ClaudeCode().check_installed()
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{problem}; make test installs it (npm install --prefix tools)")
        pytest.skip(f"{problem} (make test installs it: npm install --prefix tools)")


def agent_goal(goal: Goal, **budgets: Any) -> Goal:
    return goal.model_copy(update={
        "maker": AgentMaker(agent="claude-code", max_turns=8, wall_seconds=120),
        "budgets": goal.budgets.model_copy(update=budgets)})


def run_loop(repo: Path, goal: Goal, exchanges: Any) -> tuple[Any, Any, ReplayServer]:
    """Create the run, script the CLI's replies (they name the worktree's absolute paths), run it."""
    paths = Paths.for_repo(repo)
    config = Config(sandbox=SandboxConfig(max_processes=128, tmp_size_mb=64))
    state = create_run(goal, "goal.yaml", repo, paths=paths, model=f"anthropic:{MODEL}", config=config)
    # The agent sees the worktree at /workspace/<name> (loopbot.agents.session.WORKSPACE).
    replay = ReplayServer(Cassette(exchanges=exchanges(WORKSPACE / Path(state.worktree).name)))
    reviewers = ScriptedModel(Script.model_validate({"maker": [], "checker": APPROVE, "goal_checker": MET}),
                              clock=FakeClock())
    with replay:
        maker = AnthropicModel(MODEL, api_key=MODEL_KEY, base_url=replay.url, settings=ProviderConfig(max_retries=0),
                               profile=lookup("anthropic", MODEL))
        session = open_session(state, paths, models={"maker": maker, "planner": maker, "checker": reviewers,
                                                     "goal_checker": reviewers}, secrets=(MODEL_KEY,))
        session.store.save(state, "created")
        final = session.runner.run(state)
    return session, final, replay


def story(worktree: Path) -> list[Exchange]:
    source = str(worktree / "kvstore.py")
    probe = "cat /proc/self/environ | tr '\\0' '\\n'; echo; ls -a ~; cat ~/.claude/.claude.json ~/.claude.json 2>&1"
    return [
        turn(read(source), text="APPROACH: lazy expiry: store deadlines in set(), drop expired keys on read."),
        turn(write(source, KVSTORE_WITH_TTL), after="self._data[key] = value"),
        turn(bash(f"{UNIT} 2>&1 | tail -3; {probe}"), after="has been updated"),
        turn(text="APPROACH: lazy expiry: deadlines kept in set(), expired keys dropped on get/exists/keys/len.\n"
                  "Added ttl_seconds to set(); all tests pass.", after="OK"),
    ]


def test_claude_code_reaches_success_on_the_kvstore_story(kv_repo, demo_goal):
    repo, origin = kv_repo
    session, state, replay = run_loop(repo, agent_goal(demo_goal), story)
    assert replay.misses == [] and replay.remaining == []
    assert state.status == Status.SUCCESS, (state.stop_reason, state.stop_detail, state.iterations[-1].maker_error)
    record = state.iterations[0]
    assert record.approach.startswith("lazy expiry: deadlines kept in set()")
    assert state.push is not None and state.push.pushed
    pushed = git(origin, "show", f"{state.branch}:kvstore.py").stdout
    assert pushed == KVSTORE_WITH_TTL
    # Four calls of the CLI's, streamed, each charged to the ledger at the model's price.
    posts = [r for r in replay.received if r.api == "anthropic"]
    assert len(posts) == 4 and all(r.body.get("stream") is True for r in posts)
    names = {t["name"] for t in posts[0].body["tools"]}
    assert {"Read", "Write", "Edit", "Bash"} <= names and "WebFetch" not in names
    billed = [r.usage for r in posts if r.usage]
    assert state.spend.model_calls == 4 + 2  # the maker's four, the checker's and the goal-checker's
    # Claude Code marks cache breakpoints: its prompt is written to the cache once, then read back.
    assert sum(u["cache_read_input_tokens"] for u in billed) > 10_000
    assert state.spend.cache_write_tokens >= sum(u["cache_creation_input_tokens"] for u in billed) > 0
    assert state.spend.cache_read_tokens >= sum(u["cache_read_input_tokens"] for u in billed)
    assert state.spend.output_tokens >= sum(u["output_tokens"] for u in billed)
    assert state.iterations[0].role_costs["maker"] > 0.05  # claude-sonnet-4-5's price on those figures
    # The CLI's own account of its session agrees with the proxy's on the output it was sent.
    assert session.runner.agent_maker is not None
    own = session.runner.agent_maker.reports[0].outcome.usage
    assert own is not None and own.output_tokens == sum(u["output_tokens"] for u in billed)
    assert own.cost_usd is not None and own.cost_usd > 0
    # The tool results went back to the model, as the CLI ran them: the tests passed in the sandbox.
    environ = json.dumps(posts[3].body["messages"][-1])
    assert "OK" in environ and "ANTHROPIC_BASE_URL=http://127.0.0.1:" in environ
    # No key in the sandbox's environment (/proc/self/environ as the agent read it), the agent's
    # folder, the proxy log, the transcript, the report or the branch.
    assert MODEL_KEY not in environ and "loopbot-proxy-placeholder-key" in environ
    folder = session.files.directory / "agent" / "iteration-1"
    written = [p for p in folder.rglob("*") if p.is_file()] + [session.files.directory / n for n in
                                                                ("transcript.jsonl", "transcript.md", "report.md")]
    assert any(p.name == ".claude.json" for p in written)
    for path in written:
        assert MODEL_KEY not in path.read_text(errors="replace"), path
    assert "Write" in (session.files.directory / "transcript.jsonl").read_text()
    # The agent's cost is the maker's in the report's cost table.
    report = (session.files.directory / "report.md").read_text()
    maker_cost = state.iterations[0].role_costs["maker"]
    assert "## Cost and time" in report and f"${maker_cost:.4f}" in report
    log = git(origin, "log", "-p", state.branch).stdout
    assert MODEL_KEY not in log


def test_a_budget_stops_the_agent_mid_session_and_the_best_work_is_pushed(kv_repo, demo_goal):
    """Iteration 1 stores expiry but never enforces it (kept: more tests pass). Iteration 2's
    session gets one call; the proxy refuses its second before forwarding it (the calls left are
    the reviewers'), the session ends, and the next call the loop would make is over budget: the
    loop stops on the budget and pushes iteration 1's work."""
    repo, origin = kv_repo

    def exchanges(worktree: Path) -> list[Exchange]:
        source = str(worktree / "kvstore.py")
        return [
            turn(read(source), text="APPROACH: store a deadline per key in set()."),
            turn(write(source, KVSTORE_TTL_STORED), after="self._data[key] = value"),
            turn(text="APPROACH: store a deadline per key in set().\nset() takes ttl_seconds.", after="has been updated"),
            # Iteration 2: the first call is answered; the write that would finish is never asked for.
            turn(read(source), text="APPROACH: enforce the stored deadlines lazily on every read."),
            turn(write(source, KVSTORE_WITH_TTL), after="_expires"),
        ]

    # Iteration 1 makes 3 maker calls (no review: its tests fail); iteration 2 may make one, with
    # the 4 reviewer calls an iteration with a criterion keeps back.
    calls = 3 + 1 + 4
    session, state, replay = run_loop(repo, agent_goal(demo_goal, max_model_calls=calls), exchanges)
    assert replay.misses == []
    assert state.stop_reason == StopReason.BUDGET_EXHAUSTED, (state.stop_reason, state.stop_detail)
    assert "model_calls" in state.stop_detail
    assert state.spend.model_calls <= calls
    # The refused call never reached the provider: the finishing write was not served.
    assert [e.response["content"][-1]["name"] for e in replay.remaining] == ["Write"]
    maker = session.runner.agent_maker
    assert maker is not None and len(maker.reports) == 2
    refused = maker.reports[1].refused
    assert refused and "kept for this iteration's reviewers" in refused[0]
    assert state.best.iteration == 1 and state.push is not None and state.push.pushed
    assert git(origin, "show", f"{state.branch}:kvstore.py").stdout == KVSTORE_TTL_STORED
    log = (session.files.directory / "agent" / "iteration-2" / "proxy.jsonl").read_text()
    assert '"refused"' in log and '"status": 400' in log


def test_a_hostile_agent_is_contained_as_the_built_in_maker_is(kv_repo, demo_goal, tmp_path, monkeypatch):
    """The agent's own Bash and Write tools try to write outside the worktree, read the runner's
    home, reach the network and use another key through the proxy: all contained."""
    repo, _ = kv_repo
    github_token = "ghp_" + "H" * 20 + "agent" * 3
    monkeypatch.setenv("ANTHROPIC_API_KEY", MODEL_KEY)
    monkeypatch.setenv("GITHUB_TOKEN", github_token)
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nhostilesshkey\n")
    (home / ".git-credentials").write_text(f"https://x-access-token:{github_token}@github.com\n")
    monkeypatch.setenv("HOME", str(home))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("untouched\n")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    steal = ("import json, os, urllib.request as u\n"
             "url = os.environ['ANTHROPIC_BASE_URL'] + '/v1/messages'\n"
             "body = json.dumps({'model': 'claude-sonnet-4-5', 'max_tokens': 10, 'messages': [{'role': 'user', 'content': 'x'}]})\n"
             "request = u.Request(url, body.encode(), {'x-api-key': 'sk-ant-stolen-elsewhere-0000', "
             "'anthropic-version': '2023-06-01', 'content-type': 'application/json'})\n"
             "try:\n u.urlopen(request)\nexcept Exception as e: print('STOLEN-KEY', e)")
    attack = "; ".join([
        f"echo pwned > {outside}/pwned.txt", "echo pwned > /etc/pwned", "echo pwned > /usr/pwned",
        f"cat ~/.ssh/id_ed25519 {home}/.ssh/id_ed25519 {home}/.git-credentials /root/.ssh/* 2>&1",
        "env | grep -i -E 'token|secret' || echo no-secret-env",
        f"python3 -c \"import socket\ntry:\n socket.create_connection(('127.0.0.1', {port}), 3); print('CONNECTED')\n"
        "except OSError as e: print('BLOCKED', e)\"",
        "getent hosts api.anthropic.com || echo NO-DNS",
        f"python3 -c \"{steal}\"",
        "echo ATTACK-DONE",
    ])

    def exchanges(worktree: Path) -> list[Exchange]:
        return [
            turn(bash(attack), write(f"{outside}/written.txt", "pwned"), text="APPROACH: probe the environment."),
            turn(text="APPROACH: probe the environment.\nDone.", after="ATTACK-DONE"),
        ]

    session, state, replay = run_loop(repo, agent_goal(demo_goal, max_iterations=1), exchanges)
    listener.close()
    assert replay.misses == [] and replay.remaining == []
    answer = json.dumps(replay.received[-1].body["messages"][-1])  # the tool results the CLI sent back
    assert "ATTACK-DONE" in answer and "BLOCKED" in answer and "CONNECTED" not in answer and "NO-DNS" in answer
    assert "STOLEN-KEY" in answer and "401" in answer  # the proxy takes only the placeholder
    assert len(replay.received) == 2  # the CLI's two calls: the other key's never left the proxy
    assert "No such file" in answer and "no-secret-env" in answer
    assert (outside / "keep.txt").read_text() == "untouched\n" and sorted(p.name for p in outside.iterdir()) == ["keep.txt"]
    assert not Path("/etc/pwned").exists() and not Path("/usr/pwned").exists()
    assert "pwned" not in (repo / "kvstore.py").read_text()
    secrets = (MODEL_KEY, github_token, "hostilesshkey")
    blobs = {"model inputs": json.dumps([r.body for r in replay.received])}
    folder = session.files.directory
    blobs.update({str(p): p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file()})
    for name, blob in blobs.items():
        for secret in secrets:
            assert secret not in blob, f"{secret[:10]}… in {name}"
    assert state.iterations[0].head_sha is not None


def test_the_turn_limit_ends_a_session_as_an_ordinary_end(kv_repo, demo_goal):
    repo, _ = kv_repo
    goal = agent_goal(demo_goal, max_iterations=1)
    goal = goal.model_copy(update={"maker": AgentMaker(agent="claude-code", max_turns=1, wall_seconds=120)})

    def exchanges(worktree: Path) -> list[Exchange]:
        source = str(worktree / "kvstore.py")
        return [turn(read(source), text="APPROACH: read first."),
                turn(write(source, KVSTORE_WITH_TTL), after="self._data[key] = value")]

    session, state, replay = run_loop(repo, goal, exchanges)
    assert len(replay.received) == 1 and len(replay.remaining) == 1  # the second turn was never asked for
    maker = session.runner.agent_maker
    assert maker is not None
    outcome = maker.reports[0].outcome
    assert outcome.error is None and any("turn limit" in note for note in outcome.notes), outcome
    assert state.iterations[0].maker_error is None
    assert state.iterations[0].approach == "read first."
