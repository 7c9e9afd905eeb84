"""The kvstore story through loopbot's whole loop with Codex and with aider as the maker: the real
CLI in bubblewrap, reaching the replay server only through loopbot's proxy, scripted with the
agent's own tool calls or edit blocks; the reviewers are loopbot's own. SUCCESS, pushed, and
the key nowhere but in the proxy."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from loopbot.agents.aider import Aider
from loopbot.agents.codex import Codex
from loopbot.agents.spec import AgentMaker
from loopbot.config import Config, ModelsConfig
from loopbot.core.state import LoopState, Status
from loopbot.goal import Goal
from loopbot.providers import ProviderEnv, build_model
from loopbot.session import create_run, open_session
from loopbot.statepaths import Paths
from loopbot.testing import FakeClock
from loopbot.testing.agent_stories import APPROACH, aider_story, codex_story, kvstore_after
from loopbot.testing.replay import Cassette, Exchange, ReplayServer

KEY = "sk-proj-REALKEY-kvstore-0123456789abcdef"
ROLES = ("maker", "planner", "checker", "goal_checker")


def run_loop(kv_repo: tuple[Path, Path], goal: Goal, agent: str, model: str,
             exchanges: list[Exchange]) -> tuple[LoopState, ReplayServer, Paths]:
    repo, _ = kv_repo
    goal = goal.model_copy(update={"maker": AgentMaker(agent=agent)})
    cassette = Cassette(exchanges=exchanges, any_model=True, api_key=KEY)
    with ReplayServer(cassette) as server:
        env = ProviderEnv(openai_api_key=KEY, openai_base_url=server.url + "/v1")
        declared = ModelsConfig.model_validate({"openai": {"max_retries": 0},
                                                "profiles": {model: {"input": 1.25, "output": 10}}})
        built = build_model(f"openai:{model}", models=declared, env=env)
        paths = Paths.for_repo(repo)
        state = create_run(goal, "goal.yaml", repo, paths=paths, model=f"openai:{model}", config=Config())
        session = open_session(state, paths, clock=FakeClock(), secrets=(KEY,), models=dict.fromkeys(ROLES, built))
        session.store.save(session.state, "created")
        final = session.runner.run(session.state)
        session.store.close()
    return final, server, paths


def key_anywhere(paths: Paths, origin: Path, branch: str) -> list[str]:
    """Files under loopbot's state (run folders, agent homes, transcripts, the database) and the
    pushed branch that hold the key."""
    found = [str(p) for p in paths.root.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]
    grep = subprocess.run(["git", "-C", str(origin), "grep", "-l", KEY, branch], capture_output=True, text=True)
    return found + grep.stdout.split()


@pytest.mark.parametrize("agent, model, story", [("codex", "gpt-5.5", codex_story), ("aider", "gpt-4.1", aider_story)])
def test_the_kvstore_story_reaches_success_with_the_agent_as_maker(kv_repo, demo_goal, agent, model, story):
    adapter = Codex() if agent == "codex" else Aider()
    missing = adapter.check_installed()
    if missing is not None:
        pytest.skip(missing)
    state, server, paths = run_loop(kv_repo, demo_goal, agent, model, story())
    assert server.misses == [] and all(r.status == 200 for r in server.received), server.misses
    assert state.status == Status.SUCCESS, state.status
    assert len(state.iterations) == 1 and state.iterations[0].approach == APPROACH
    _, origin = kv_repo
    assert state.push is not None and state.push.pushed
    pushed = subprocess.run(["git", "-C", str(origin), "show", f"{state.branch}:kvstore.py"],
                            capture_output=True, text=True, check=True).stdout
    assert pushed == kvstore_after()
    # The agent's calls went through the proxy (the API it speaks) and were charged to the run.
    speaks = "responses" if agent == "codex" else "openai"
    assert any(r.api == speaks for r in server.received)
    assert state.spend.cost_usd > 0
    assert key_anywhere(paths, origin, state.branch) == []


@pytest.mark.parametrize("agent, model, story, calls", [
    ("codex", "gpt-5.5", codex_story, 6),  # 4 maker calls scripted: read, patch, test, answer
    ("aider", "gpt-4.1", lambda: aider_story(with_a_failed_block=True), 5),  # answer, then a reflection
])
def test_a_call_budget_stops_the_agent_mid_session_and_its_work_is_reviewed_and_pushed(
        kv_repo, demo_goal, agent, model, story, calls):
    adapter = Codex() if agent == "codex" else Aider()
    missing = adapter.check_installed()
    if missing is not None:
        pytest.skip(missing)
    goal = demo_goal.model_copy(update={"budgets": demo_goal.budgets.model_copy(update={"max_model_calls": calls})})
    state, server, paths = run_loop(kv_repo, goal, agent, model, story())
    maker_calls = [r for r in server.received if r.api == ("responses" if agent == "codex" else "openai")
                   and "You are the checker" not in json.dumps(r.body) and "goal-checker" not in json.dumps(r.body)]
    scripted = 4 if agent == "codex" else 2
    assert 1 <= len(maker_calls) < scripted  # the proxy refused the rest: the session ended mid-way
    records = [json.loads(line) for line in
               (paths.run_dir(state.run_id) / "agent" / "iteration-1" / "proxy.jsonl").read_text().splitlines()]
    assert [r["refused"] for r in records if "refused" in r] == [
        "the model_calls budget left is kept for this iteration's reviewers"]
    # What the agent had done by then was evaluated like any maker's work, approved, and pushed.
    assert state.status == Status.SUCCESS and state.push is not None and state.push.pushed
    _, origin = kv_repo
    pushed = subprocess.run(["git", "-C", str(origin), "show", f"{state.branch}:kvstore.py"],
                            capture_output=True, text=True, check=True).stdout
    assert pushed == kvstore_after()
    assert state.spend.model_calls <= calls
