"""Per-model API rules, held by the replay server, and loopbot keeping them through the real SDKs.

Each refusal below is what the vendor's API answers (Anthropic's thinking and tool-use pages,
OpenAI's parameter rules); each loopbot test would have failed before the matching fix.
"""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest

from loopbot.config import ModelsConfig
from loopbot.core.state import Status
from loopbot.errors import InputError
from loopbot.examples import KVSTORE
from loopbot.messages import Message, ModelRequest, TextBlock, ToolResult, ToolSpec
from loopbot.ports import ModelError
from loopbot.providers import ProviderEnv, build_model
from loopbot.providers.profiles import lookup
from loopbot.testing.cassettes import from_script
from loopbot.testing.replay import Cassette, Exchange, Fault, ReplayServer
from loopbot.testing.scripted import load_script

TOOL = ToolSpec(name="verdict", description="d", input_schema={
    "type": "object", "properties": {"decision": {"type": "string"}}, "required": ["decision"]})
USE = {"content": [{"type": "tool_use", "id": "toolu_1", "name": "verdict", "input": {"decision": "APPROVE"}}],
       "stop_reason": "tool_use"}
DONE = {"content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn"}


def env_for(server: ReplayServer) -> ProviderEnv:
    return ProviderEnv(anthropic_api_key="sk-ant-test-0123456789", anthropic_base_url=server.url,
                       openai_api_key="sk-test-0123456789abcdef", openai_base_url=server.url + "/v1")


def quick(**extra: Any) -> ModelsConfig:
    return ModelsConfig.model_validate({"anthropic": {"max_retries": 0}, "openai": {"max_retries": 0}, **extra})


def ask(text: str = "review") -> ModelRequest:
    return ModelRequest(role="checker", system="s", messages=[Message(role="user", content=[TextBlock(text=text)])],
                        tools=[TOOL], tool_choice="verdict")


def raw_anthropic(server: ReplayServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key="k", base_url=server.url, max_retries=0)


# -- the server holds the rules ----------------------------------------------------------------

def test_the_replay_server_refuses_what_current_models_refuse():
    cassette = Cassette(exchanges=[Exchange(api="anthropic", response=USE, times=10),
                                   Exchange(api="openai", response={"message": {"content": "hi"}}, times=10)])
    with ReplayServer(cassette) as server:
        client = raw_anthropic(server)
        user = [{"role": "user", "content": "hi"}]
        tools = [{"name": "verdict", "input_schema": {"type": "object"}}]
        with pytest.raises(anthropic.BadRequestError, match="tool_choice forces tool use"):
            client.messages.create(model="claude-sonnet-5", max_tokens=100, messages=user, tools=tools,
                                   tool_choice={"type": "tool", "name": "verdict"})
        with pytest.raises(anthropic.BadRequestError, match="maximum allowed number of output tokens"):
            client.messages.create(model="claude-haiku-4-5", max_tokens=128_000, messages=user, timeout=30)
        with pytest.raises(anthropic.NotFoundError):
            client.messages.create(model="claude-sonet-5", max_tokens=100, messages=user)
        # A thinking model's reply carries a signed thinking block; the next turn must send it back.
        first = client.messages.create(model="claude-sonnet-5", max_tokens=100, messages=user, tools=tools)
        assert first.content[0].type == "thinking"
        call = first.content[1]
        result = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "ok"}]}
        dropped = [*user, {"role": "assistant", "content": [c.model_dump() for c in first.content[1:]]}, result]
        with pytest.raises(anthropic.BadRequestError, match="must start with a thinking block"):
            client.messages.create(model="claude-sonnet-5", max_tokens=100, messages=dropped, tools=tools)
        edited = first.content[0].model_dump() | {"thinking": "something else"}
        changed = [*user, {"role": "assistant", "content": [edited, call.model_dump()]}, result]
        with pytest.raises(anthropic.BadRequestError, match="signature"):
            client.messages.create(model="claude-sonnet-5", max_tokens=100, messages=changed, tools=tools)
        kept = [*user, {"role": "assistant", "content": [c.model_dump() for c in first.content]}, result]
        client.messages.create(model="claude-sonnet-5", max_tokens=100, messages=kept, tools=tools)

        oai = openai.OpenAI(api_key="k", base_url=server.url + "/v1", max_retries=0)
        with pytest.raises(openai.BadRequestError, match="max_completion_tokens"):
            oai.chat.completions.create(model="gpt-5.1", max_tokens=100, messages=[{"role": "user", "content": "hi"}])
        oai.chat.completions.create(model="gpt-5.1", max_completion_tokens=100, messages=[{"role": "user", "content": "hi"}])


def test_the_replay_server_refuses_a_prompt_over_the_context_window():
    cassette = Cassette(exchanges=[Exchange(api="anthropic", response=DONE)], context_window=2_000)
    with ReplayServer(cassette) as server, pytest.raises(anthropic.BadRequestError, match="prompt is too long"):
        raw_anthropic(server).messages.create(model="claude-haiku-4-5", max_tokens=100,
                                              messages=[{"role": "user", "content": "word " * 5_000}])


# -- loopbot keeps them ------------------------------------------------------------------------

def test_thinking_blocks_go_back_verbatim_and_forced_choice_is_not_sent_to_a_thinking_model():
    cassette = Cassette(exchanges=[Exchange(api="anthropic", response=USE), Exchange(api="anthropic", response=DONE)])
    with ReplayServer(cassette) as server:
        model = build_model("anthropic:claude-sonnet-5", models=quick(), env=env_for(server))
        request = ask()
        first = model.complete(request)
        assert [b.type for b in first.message.content] == ["opaque", "tool_use"]
        follow = [*request.messages, first.message, Message(role="user", content=[ToolResult(tool_use_id=first.message.tool_calls[0].id, content="ok")])]
        second = model.complete(request.model_copy(update={"messages": follow}))
        assert second.message.text == "ok"
        bodies = [r.body for r in server.received]
        assert [r.status for r in server.received] == [200, 200]
        assert bodies[0]["tool_choice"] == {"type": "auto"}
        assert bodies[1]["messages"][1]["content"][0]["type"] == "thinking"


def test_a_model_that_accepts_forced_tool_choice_gets_it():
    with ReplayServer(Cassette(exchanges=[Exchange(api="anthropic", response=USE)])) as server:
        build_model("anthropic:claude-haiku-4-5", models=quick(), env=env_for(server)).complete(ask())
        assert server.received[0].body["tool_choice"] == {"type": "tool", "name": "verdict"}


def test_pause_turn_is_continued_within_the_call():
    paused = {"content": [{"type": "text", "text": "working on it"}], "stop_reason": "pause_turn"}
    cassette = Cassette(exchanges=[Exchange(api="anthropic", response=paused), Exchange(api="anthropic", response=USE)])
    with ReplayServer(cassette) as server:
        reply = build_model("anthropic:claude-haiku-4-5", models=quick(), env=env_for(server)).complete(ask())
        assert reply.stop_reason == "tool_use" and reply.message.tool_calls[0].name == "verdict"
        assert "working on it" in reply.message.text
        second = server.received[1].body["messages"]
        assert second[-1]["role"] == "assistant" and second[-1]["content"][0]["text"] == "working on it"
        assert reply.usage.input_tokens == sum(r.usage["input_tokens"] for r in server.received)


def test_max_output_is_held_to_the_models_limit():
    with ReplayServer(Cassette(exchanges=[Exchange(api="anthropic", response=DONE)])) as server:
        models = quick(anthropic={"max_output_tokens": 128_000, "max_retries": 0})
        build_model("anthropic:claude-haiku-4-5", models=models, env=env_for(server)).complete(ask())
        assert server.received[0].status == 200 and server.received[0].body["max_tokens"] == 64_000


def test_openai_models_get_max_completion_tokens_and_local_servers_max_tokens():
    cassette = Cassette(exchanges=[Exchange(api="openai", response={"message": {"content": "hi"}}, times=2)],
                        any_model=True)
    with ReplayServer(cassette) as server:
        build_model("openai:gpt-5.1", models=quick(), env=env_for(server)).complete(ask())
        local = quick(profiles={"llama3.1": {"input": 0, "output": 0}})
        build_model("openai:llama3.1", models=local, env=env_for(server)).complete(ask())
    gpt, llama = (r.body for r in server.received)
    assert "max_completion_tokens" in gpt and "max_tokens" not in gpt
    assert "max_tokens" in llama and "max_completion_tokens" not in llama


@pytest.mark.parametrize(("response", "expect"), [
    ({"message": {"content": None, "tool_calls": [
        {"id": None, "type": "function", "function": {"name": "verdict", "arguments": '{"decision": "A"}'}}]},
      "finish_reason": "tool_calls"}, "call"),
    ({"message": {"content": '<tool_call>{"name": "verdict", "arguments": {"decision": "A"}}</tool_call>'}}, "call"),
    ({"message": {"content": None, "refusal": "I can't help with that."}}, "refusal"),
    ({"message": {"content": "partial"}, "finish_reason": "content_filter"}, "refusal"),
])
def test_openai_compatible_reply_shapes(response, expect):
    cassette = Cassette(exchanges=[Exchange(api="openai", response=response)], any_model=True)
    with ReplayServer(cassette) as server:
        local = quick(profiles={"qwen3-coder": {"input": 0, "output": 0}})
        reply = build_model("openai:qwen3-coder", models=local, env=env_for(server)).complete(ask())
    if expect == "call":
        (call,) = reply.message.tool_calls
        assert call.name == "verdict" and call.input == {"decision": "A"} and call.id
    else:
        assert reply.stop_reason == "refusal"


@pytest.mark.parametrize("body", ["<html><body>502 Bad Gateway</body></html>", '{"object": "chat.completion"'])
def test_a_200_that_is_not_a_completion_is_a_failed_call(body):
    fault = Fault(status=200, body=body, content_type="text/html" if body.startswith("<") else "application/json")
    cassette = Cassette(exchanges=[Exchange(api="openai", fault=fault)])
    with ReplayServer(cassette) as server, pytest.raises(ModelError, match=r"not a chat completion|unreachable"):
        build_model("openai:gpt-5.1", models=quick(), env=env_for(server)).complete(ask())


def test_text_protocol_sends_no_tools_and_reads_calls_from_text():
    reply = {"message": {"content": '```json\n{"tool": "verdict", "input": {"decision": "A"}}\n```'}}
    cassette = Cassette(exchanges=[Exchange(api="openai", response=reply, times=2)], any_model=True)
    with ReplayServer(cassette) as server:
        local = quick(profiles={"tiny": {"input": 0, "output": 0, "tool_protocol": "text"}})
        model = build_model("openai:tiny", models=local, env=env_for(server))
        first = model.complete(ask())
        call = first.message.tool_calls[0]
        follow = [*ask().messages, first.message, Message(role="user", content=[ToolResult(tool_use_id=call.id, content="recorded")])]
        model.complete(ask().model_copy(update={"messages": follow}))
    one, two = (r.body for r in server.received)
    assert "tools" not in one and "tool_choice" not in one and '"tool": "<tool name>"' in one["messages"][0]["content"]
    assert [m["role"] for m in two["messages"]] == ["system", "user", "assistant", "user"]
    assert "recorded" in two["messages"][-1]["content"]


# -- profiles ----------------------------------------------------------------------------------

def test_profiles_are_exact_ids_and_dated_snapshots_never_prefixes():
    assert lookup("anthropic", "claude-opus-4-7").price.input == 5  # not Opus 4's 15
    assert lookup("openai", "gpt-4.1-nano").price.input == 0.1  # not gpt-4.1's 2
    assert lookup("anthropic", "claude-haiku-4-5-20251001") == lookup("anthropic", "claude-haiku-4-5")
    assert lookup("openai", "gpt-4.1-2025-04-14") == lookup("openai", "gpt-4.1")
    assert lookup("anthropic", "claude-sonnet-5").thinking == "adaptive"
    for default in ModelsConfig().tiers.values():
        provider, model = default.split(":")
        assert lookup(provider, model).retires is None  # type: ignore[arg-type]


def test_unknown_models_are_refused_with_did_you_mean_and_can_be_declared():
    with pytest.raises(InputError, match="did you mean claude-sonnet-5"):
        build_model("anthropic:claude-sonet-5", env=ProviderEnv(anthropic_api_key="k" * 12))
    with pytest.raises(InputError, match=r"here openai:gpt-4\.1 "):
        build_model("gpt-4.1", env=ProviderEnv(openai_api_key="k" * 12))
    with pytest.raises(InputError, match="unknown openai model 'mystery'"):
        build_model("openai:mystery", models=quick(profiles={"mystery": {"context_window": 8192}}),
                    env=ProviderEnv(openai_api_key="k" * 12))
    custom = quick(profiles={"claude-haiku-4-5": {"max_output_tokens": 4096, "input": 0.5}})
    profile = lookup("anthropic", "claude-haiku-4-5", custom.declared_profiles())
    assert profile.max_output_tokens == 4096 and profile.price.input == 0.5 and profile.price.output == 5


# -- whole loops -------------------------------------------------------------------------------

def test_a_loop_reaches_success_on_a_local_server_that_writes_calls_as_text(make_loop, demo_script):
    cassette = from_script(load_script(KVSTORE / "script.yaml"), "openai", iterations=3, checked=[2, 3], judged=[3],
                           text_calls=True)
    with ReplayServer(cassette) as server:
        local = quick(profiles={"qwen3-coder": {"input": 0, "output": 0}})
        model = build_model("openai:qwen3-coder", models=local, env=env_for(server))
        loop = make_loop(demo_script)
        loop.session.runner.models = dict.fromkeys(("maker", "planner", "checker", "goal_checker"), model)
        state = loop.run()
        assert state.status == Status.SUCCESS and server.misses == []
        assert all(r.status == 200 for r in server.received)
    assert isinstance(state.iterations[-1].goal_check.criteria[0].met, bool)


def test_reviewers_write_no_cache_entry_that_no_call_reads():
    """A single-turn reviewer call marks no conversation tail (it would cost 1.25x input for an
    entry nothing reads); the replay server's waste counter sees the difference."""
    from loopbot.goal import parse_goal
    from loopbot.roles.checker import run_checker

    goal = parse_goal("id: g\ngoal: do it\nacceptance:\n  - run: 'true'\n", "g.yaml")
    verdict = {"content": [{"type": "tool_use", "id": "toolu_v", "name": "verdict",
                            "input": {"decision": "APPROVE", "reasons": ["ok"]}}], "stop_reason": "tool_use"}
    diff = "diff --git a/x.py b/x.py\n" + "+line of a large change\n" * 2_000
    with ReplayServer(Cassette(exchanges=[Exchange(api="anthropic", response=verdict, times=2)])) as server:
        model = build_model("anthropic:claude-haiku-4-5", models=quick(), env=env_for(server))
        assert run_checker(model.complete, goal, diff, [], iteration=1).decision == "APPROVE"
        assert "cache_control" not in str(server.received[0].body["messages"])
        assert server.cache.waste("checker") == 0
        # The same call with its tail marked, as before: the entry is written and never read.
        request = ModelRequest(role="checker", system="You are the checker", tools=[TOOL],
                               messages=[Message(role="user", content=[TextBlock(text=diff)])])
        model.complete(request)
        assert server.cache.waste("checker") > 0
