"""Preflight through the real SDKs against loopback servers: one lookup per distinct endpoint and
model, each failure named with its endpoint and fix, nothing made when it fails."""

from __future__ import annotations

import json
import socket
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import pytest

from loopbot.config import Config, ModelsConfig
from loopbot.errors import InputError
from loopbot.examples import KVSTORE
from loopbot.goal import load_goal
from loopbot.providers import ProviderEnv, build_model
from loopbot.providers.preflight import preflight
from loopbot.session import build_models, create_run, open_session
from loopbot.statepaths import Paths
from loopbot.testing.replay import Cassette, LoopbackServer, ReplayServer
from loopbot.testing.scripted import ScriptedModel

KEYS = {"anthropic_api_key": "sk-ant-test-0123456789", "openai_api_key": "sk-test-0123456789abcdef"}
LOCAL = {"profiles": {"llama3.1": {"input": 0, "output": 0}, "qwen3-coder": {"input": 0, "output": 0}}}


def env_for(url: str) -> ProviderEnv:
    return ProviderEnv(anthropic_base_url=url, openai_base_url=url + "/v1", **KEYS)


def problems_of(models: list[Any], **options: Any) -> list[str]:
    with pytest.raises(InputError) as info:
        preflight(models, **options)
    return [p.message for p in info.value.problems]


def test_each_distinct_endpoint_and_model_is_asked_once():
    with ReplayServer(Cassette()) as server:
        specs = {"maker": "anthropic:claude-sonnet-5", "planner": "anthropic:claude-sonnet-5",
                 "checker": "anthropic:claude-sonnet-5", "goal_checker": "anthropic:claude-haiku-4-5",
                 "auditor": "openai:gpt-5.1", "documenter": "openai:gpt-4.1-mini"}
        preflight(build_models(specs, ModelsConfig(), env_for(server.url)).values())
    paths = sorted((api, path) for api, path, status in server.lookups if status == 200)
    assert paths == [("anthropic", "/v1/models/claude-haiku-4-5"), ("anthropic", "/v1/models/claude-sonnet-5"),
                     ("openai", "/v1/models")]  # both OpenAI models were in the one listing
    assert server.received == []  # no model call, no token spent


def test_scripted_models_need_no_preflight():
    preflight([ScriptedModel.from_file(KVSTORE / "script.yaml")])


def test_a_local_server_may_serve_a_name_it_does_not_list():
    with ReplayServer(Cassette(any_model=True)) as server:
        model = build_model("openai:llama3.1", models=ModelsConfig.model_validate(LOCAL), env=env_for(server.url))
        preflight([model])
    assert [path for _, path, _ in server.lookups] == ["/v1/models", "/v1/models/llama3.1"]


def test_an_unknown_model_is_named_with_the_nearest_listed_ones():
    with ReplayServer(Cassette()) as server:
        config = ModelsConfig.model_validate({"profiles": {"gpt-5.4-mimi": {"input": 1, "output": 1}}})
        found = problems_of([build_model("openai:gpt-5.4-mimi", models=config, env=env_for(server.url))])
    assert len(found) == 1
    assert found[0].startswith(f"{server.url}/v1 does not serve model 'gpt-5.4-mimi'; did you mean 'gpt-5.4-mini'")


def test_a_wrong_key_is_refused_once_per_endpoint_on_both_apis():
    with ReplayServer(Cassette(api_key="the-only-good-key-0000")) as server:
        models = build_models({"maker": "anthropic:claude-sonnet-5", "checker": "anthropic:claude-haiku-4-5",
                               "auditor": "openai:gpt-5.1"}, ModelsConfig(), env_for(server.url))
        found = problems_of(list(models.values()))
    assert len(found) == 2, found  # one per endpoint, not one per model
    assert found[0].startswith(f"the API key for anthropic was refused by {server.url} (401")
    assert found[0].endswith("set ANTHROPIC_API_KEY to a valid key")
    assert found[1].startswith(f"the API key for openai was refused by {server.url}/v1 (401")
    assert "OPENAI_API_KEY" in found[1]


def test_a_server_that_never_answers_is_unreachable_within_the_timeout():
    with socket.socket() as silent:  # accepts connections (the backlog), never reads or answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        model = build_model("openai:llama3.1", models=ModelsConfig.model_validate(LOCAL), env=env_for(url))
        started = time.monotonic()
        found = problems_of([model], timeout=0.3)
    assert time.monotonic() - started < 5
    assert found == [f"cannot reach {url}/v1 (timed out): is the server running, and is the base_url right "
                     "(OPENAI_BASE_URL or models.openai.base_url)?"]


class Scripted(BaseHTTPRequestHandler):
    """Answers GET with what `answers` says for its path: (status, body)."""

    protocol_version = "HTTP/1.1"
    answers: ClassVar[dict[str, tuple[int, Any]]] = {}

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        status, body = self.answers.get(self.path, (404, "404 page not found"))
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(status)
        self.send_header("content-type", "text/plain" if isinstance(body, str) else "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def serve(answers: dict[str, tuple[int, Any]]) -> LoopbackServer:
    handler = type("Handler", (Scripted,), {"answers": answers})
    return LoopbackServer(handler)


def local_model(url: str) -> Any:
    return build_model("openai:llama3.1", models=ModelsConfig.model_validate(LOCAL), env=env_for(url))


def test_rate_limits_and_server_errors_do_not_stop_a_start():
    busy = {"error": {"message": "slow down", "type": "rate_limit"}}
    for status in (429, 500, 503):
        with serve({"/v1/models": (status, busy)}) as server:
            preflight([local_model(server.url)])


def test_a_server_without_any_models_api_points_at_the_base_url():
    with serve({}) as server:
        found = problems_of([local_model(server.url)])
    assert found == [f"{server.url}/v1 does not serve model 'llama3.1'; and it answered GET /models with 404 too: "
                     "is the base_url right (OPENAI_BASE_URL or models.openai.base_url; OpenAI-compatible servers "
                     "usually end it in /v1)?"]


def test_a_server_without_a_listing_that_serves_the_model_by_name_passes():
    with serve({"/v1/models/llama3.1": (200, {"id": "llama3.1", "object": "model", "created": 0,
                                               "owned_by": "me"})}) as server:
        preflight([local_model(server.url)])


def test_open_session_makes_nothing_when_preflight_fails_and_skips_it_when_told(kv_repo, tmp_path):
    repo, _ = kv_repo
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = Config.model_validate({"models": {"openai": {"base_url": f"http://127.0.0.1:{port}/v1"}, **LOCAL}})
    paths = Paths(tmp_path / "state")
    goal = load_goal(KVSTORE / "goal.yaml")
    state = create_run(goal, "goal.yaml", repo, paths=paths, model="openai:llama3.1", config=config, remote=None)
    with pytest.raises(InputError, match=f"cannot reach http://127.0.0.1:{port}/v1"):
        open_session(state, paths, allow_unsandboxed=True, provider_env=ProviderEnv())
    assert not Path(state.worktree).exists() and not paths.db.exists()
    session = open_session(state, paths, allow_unsandboxed=True, provider_env=ProviderEnv(), preflight=False)
    session.store.close()
    assert Path(state.worktree).is_dir()


def test_the_recording_proxy_forwards_the_lookup_and_records_nothing(tmp_path):
    from loopbot.testing.recorder import RecordingProxy

    out = tmp_path / "recorded.yaml"
    with ReplayServer(Cassette()) as upstream, RecordingProxy(upstream.url, out) as proxy:
        preflight([build_model("anthropic:claude-sonnet-5", env=env_for(proxy.url))])
    assert [path for _, path, _ in upstream.lookups] == ["/v1/models/claude-sonnet-5"]
    assert proxy.cassette.exchanges == [] and not out.exists()
