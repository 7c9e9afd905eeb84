"""The real SDKs against the loopback replay server: tool use, usage, cost, caching, faults."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from loopbot.config import ModelsConfig
from loopbot.core.context import approx_tokens
from loopbot.core.state import Decision, Status
from loopbot.examples import KVSTORE
from loopbot.messages import Message, ModelRequest, TextBlock, ToolSpec
from loopbot.ports import ModelError
from loopbot.providers import ProviderEnv, build_model
from loopbot.providers.profiles import lookup
from loopbot.testing.cassettes import from_script, with_fault
from loopbot.testing.replay import Cassette, Exchange, Fault, Match, ReplayServer, check_anthropic
from loopbot.testing.scripted import load_script
from loopbot.workspace.git import git

# Current models, with their documented rules held by the replay server: claude-sonnet-5 thinks
# adaptively (thinking blocks must come back, forced tool choice is refused); gpt-5.1 refuses
# max_tokens (max_completion_tokens only).
SPECS = {"anthropic": "anthropic:claude-sonnet-5", "openai": "openai:gpt-5.1"}
STORY = {"iterations": 3, "checked": [2, 3], "judged": [3]}


def env_for(server: ReplayServer) -> ProviderEnv:
    return ProviderEnv(anthropic_api_key="sk-ant-test-0123456789", anthropic_base_url=server.url,
                       openai_api_key="sk-test-0123456789abcdef", openai_base_url=server.url + "/v1")


def models(max_retries: int = 3) -> ModelsConfig:
    return ModelsConfig.model_validate({"anthropic": {"max_retries": max_retries},
                                        "openai": {"max_retries": max_retries}})


def _system_text(body: dict) -> str:
    system = body.get("system")
    if isinstance(system, list):
        return " ".join(b.get("text", "") for b in system)
    return " ".join(m.get("content") or "" for m in body.get("messages", []) if m.get("role") == "system")


def story(api: str) -> Cassette:
    return from_script(load_script(KVSTORE / "script.yaml"), api, **STORY)  # type: ignore[arg-type]


def loop_through(make_loop, demo_script, server: ReplayServer, api: str, retries: int = 3):
    model = build_model(SPECS[api], models=models(retries), env=env_for(server))
    loop = make_loop(demo_script)
    loop.session.runner.models = dict.fromkeys(("maker", "planner", "checker", "goal_checker"), model)
    return loop, loop.run()


@pytest.mark.parametrize("api", ["anthropic", "openai"])
def test_cli_run_end_to_end_through_the_real_sdk(api, kv_repo):
    repo, origin = kv_repo
    with ReplayServer(story(api)) as server:
        env = {**os.environ, "COLUMNS": "200", "ANTHROPIC_BASE_URL": server.url, "OPENAI_BASE_URL": server.url + "/v1",
               "ANTHROPIC_API_KEY": "sk-ant-test-0123456789", "OPENAI_API_KEY": "sk-test-0123456789abcdef"}
        result = subprocess.run([sys.executable, "-m", "loopbot", "run", str(KVSTORE / "goal.yaml"), "--repo", str(repo),
                                 "--model", SPECS[api], "--quiet"], env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        assert server.misses == [] and all(r.status == 200 for r in server.received)
        assert len(server.received) == len(story(api).exchanges)
    branch = next(line.split()[1] for line in result.stdout.splitlines() if line.startswith("branch:"))
    assert "def _expired" in git(origin, "show", f"{branch}:kvstore.py").stdout  # the tool calls were executed
    report_line = next(line for line in result.stdout.splitlines() if line.startswith("report:"))
    report = Path(report_line.split(None, 1)[1]).read_text()
    assert SPECS[api] in report
    tokens = re.search(r"- Tokens: ([\d,]+) in, ([\d,]+) out \(cache: ([\d,]+) written, ([\d,]+) read\)", report)
    cost = re.search(r"- Cost: \$([\d.]+) of", report)
    assert tokens is not None and cost is not None
    fresh, out, _, read = (int(g.replace(",", "")) for g in tokens.groups())
    assert fresh > 0 and out > 0 and read > 0 and float(cost.group(1)) > 0


def test_prompt_cache_prefix_is_read_from_iteration_two(make_loop, demo_script):
    with ReplayServer(story("anthropic")) as server:
        _, state = loop_through(make_loop, demo_script, server, "anthropic")
    assert state.status == Status.SUCCESS
    assert state.spend.cache_read_tokens > 0 and state.spend.cache_write_tokens > 0
    bodies = [r.body for r in server.received]
    maker = [b for b in bodies if "an engineering loop" in b["system"][0]["text"]]
    # Identical stable prefix (tools, system, stable context block) in every maker call.
    first_blocks = {str(b["messages"][0]["content"][0]) for b in maker}
    assert len(first_blocks) == 1 and "cache_control" in maker[0]["messages"][0]["content"][0]
    # Tools and system carry breakpoints only when that prefix reaches the model's minimum
    # cacheable length: below it the API never reads them.
    minimum = lookup("anthropic", "claude-sonnet-5").min_cache_tokens
    for body in maker:
        prefix = approx_tokens(body["system"][0]["text"]) + sum(
            approx_tokens(str({k: v for k, v in t.items() if k != "cache_control"})) for t in body["tools"])
        marks = sum("cache_control" in str(x) for x in [*body["tools"], *body["system"]])
        assert marks == (2 if prefix >= minimum else 0)


@pytest.mark.parametrize("api", ["anthropic", "openai"])
@pytest.mark.parametrize(
    "fault",
    [Fault(status=429, retry_after=0), Fault(status=529, retry_after=0), Fault(status=500, retry_after=0),
     Fault(drop=True)],
    ids=["429", "529", "500", "dropped"],
)
def test_transient_faults_are_retried_and_the_loop_goes_on(make_loop, demo_script, api, fault):
    cassette = with_fault(story(api), "maker", fault, times=2)
    with ReplayServer(cassette) as server:
        _, state = loop_through(make_loop, demo_script, server, api, retries=3)
    assert state.status == Status.SUCCESS and server.misses == []
    failed = [r for r in server.received if r.status != 200]
    assert len(failed) == 2  # both faults were met, and the SDK retried past them
    assert state.iterations[0].maker_error is None


@pytest.mark.parametrize("api", ["anthropic", "openai"])
def test_exhausted_retries_fail_the_iteration_not_the_loop(make_loop, demo_script, api):
    cassette = with_fault(story(api), "maker", Fault(status=529, retry_after=0), times=3)
    with ReplayServer(cassette) as server:
        _, state = loop_through(make_loop, demo_script, server, api, retries=2)
    first = state.iterations[0]
    assert first.decision == Decision.RETRY and "529" in (first.maker_error or "")
    assert len(state.iterations) >= 2 and state.iterations[1].maker_error is None


@pytest.mark.parametrize("api", ["anthropic", "openai"])
def test_a_truncated_reply_runs_nothing_and_the_maker_is_asked_again(make_loop, demo_script, api):
    cut = {"anthropic": {"content": [{"type": "text", "text": "APPROACH: all at once, and"}], "stop_reason": "max_tokens"},
           "openai": {"message": {"content": "APPROACH: all at once, and"}, "finish_reason": "length"}}[api]
    base = story(api)
    cassette = Cassette(exchanges=[Exchange(api=api, match=Match(system_contains="an engineering loop"), response=cut),
                                   *base.exchanges])
    with ReplayServer(cassette) as server:
        _, state = loop_through(make_loop, demo_script, server, api)
    assert state.status == Status.SUCCESS and state.iterations[0].maker_error is None
    asked = [r.body for r in server.received if "an engineering loop" in _system_text(r.body)][1]
    assert "cut off" in str(asked["messages"][-1])


def test_malformed_tool_call_is_a_failed_turn_the_model_sees(make_loop, demo_script):
    bad = {"message": {"content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "edit", "arguments": "{\"path\": \"kvstore.py\", "}}]},
        "finish_reason": "tool_calls"}
    cassette = Cassette(exchanges=[Exchange(api="openai", match=Match(system_contains="an engineering loop"), response=bad),
                                   *story("openai").exchanges])
    with ReplayServer(cassette) as server:
        _, state = loop_through(make_loop, demo_script, server, "openai")
    assert state.status == Status.SUCCESS and state.iterations[0].maker_error is None
    second = [r.body for r in server.received if "an engineering loop" in _system_text(r.body)][1]
    answer = second["messages"][-1]
    assert answer["role"] == "tool" and answer["tool_call_id"] == "call_1" and "not valid JSON" in answer["content"]


def test_contract_check_refuses_what_the_api_refuses():
    good = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    check_anthropic(good, headers)
    bad_bodies = [
        {**good, "max_tokens": 0},
        {**good, "messages": [{"role": "assistant", "content": "hi"}]},
        {**good, "messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]},
        {**good, "messages": [{"role": "user", "content": [{"type": "text", "text": "a", "cache_control": {}}] * 5}]},
        {**good, "tools": [{"name": "has space", "input_schema": {}}]},
        {**good, "messages": [{"role": "user", "content": "a"},
                              {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "x", "input": {}}]},
                              {"role": "user", "content": "forgot the result"}]},
    ]
    for body in bad_bodies:
        with pytest.raises(Exception, match=r".+"):
            check_anthropic(body, headers)
    with pytest.raises(Exception, match="anthropic-version"):
        check_anthropic(good, {"x-api-key": "k"})


def test_missing_keys_and_prices_are_clear_input_errors():
    from loopbot.errors import InputError

    with pytest.raises(InputError, match="ANTHROPIC_API_KEY"):
        build_model("anthropic:claude-sonnet-5", env=ProviderEnv())
    with pytest.raises(InputError, match=r"unknown anthropic model 'claude-unknown-9'.*models\.profiles"):
        build_model("anthropic:claude-unknown-9", env=ProviderEnv(anthropic_api_key="k" * 12))
    local = ModelsConfig.model_validate({"openai": {"base_url": "http://127.0.0.1:1/v1"},
                                         "prices": {"llama3": {"input": 0, "output": 0}}})
    assert build_model("openai:llama3", models=local, env=ProviderEnv()).name == "openai:llama3"


def test_model_errors_surface_as_model_error():
    with ReplayServer(Cassette()) as server:  # nothing recorded: the server answers 500, no retry
        model = build_model(SPECS["anthropic"], models=models(0), env=env_for(server))
        request = ModelRequest(role="maker", system="s", messages=[Message(role="user", content=[TextBlock(text="x")])],
                               tools=[ToolSpec(name="done", description="d", input_schema={"type": "object"})])
        with pytest.raises(ModelError, match="500"):
            model.complete(request)


def test_real_network_is_blocked_in_tests():
    from pytest_socket import SocketConnectBlockedError

    with pytest.raises(SocketConnectBlockedError):
        socket.create_connection(("93.184.216.34", 443), timeout=1)


def test_recorder_writes_a_cassette_that_replays(tmp_path):
    from loopbot.testing.recorder import RecordingProxy

    original = story("anthropic")
    out = tmp_path / "recorded.yaml"
    request = ModelRequest(role="checker", system="You are the checker in loopbot.",
                           messages=[Message(role="user", content=[TextBlock(text="diff")])],
                           tools=[ToolSpec(name="verdict", description="v", input_schema={"type": "object"})],
                           tool_choice="verdict")
    with ReplayServer(original) as upstream, RecordingProxy(upstream.url, out) as proxy:
        live = build_model(SPECS["anthropic"], models=models(0), env=ProviderEnv(anthropic_api_key="sk-ant-secret-key-xyz",
                                                                                  anthropic_base_url=proxy.url))
        first = live.complete(request)
    text = out.read_text()
    assert "sk-ant-secret-key-xyz" not in text and "verdict" in text
    with ReplayServer(Cassette.load(out)) as replay:
        again = build_model(SPECS["anthropic"], models=models(0), env=env_for(replay)).complete(request)
    assert again.message == first.message and replay.misses == []
