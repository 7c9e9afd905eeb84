"""Errors with a way forward: model specs, the scripted-model format."""

from __future__ import annotations

import json

import pytest

from loopbot.errors import InputError
from loopbot.providers import ProviderEnv, build_model
from tests.cli.test_cli_console import cli

ENV = ProviderEnv(anthropic_api_key="k", openai_api_key="k")


def message(spec: str) -> str:
    with pytest.raises(InputError) as info:
        build_model(spec, env=ENV)
    return str(info.value)


def test_a_bare_model_id_is_told_the_spec_to_write():
    assert "write PROVIDER:MODEL, here openai:gpt-4.1" in message("gpt-4.1")
    assert "write PROVIDER:MODEL, here anthropic:claude-sonnet-4-6" in message("claude-sonnet-4-6")


def test_a_misspelt_model_id_is_not_invited_to_be_priced():
    bare = message("claude-sonet-4-6")
    assert "did you mean anthropic:claude-sonnet-4-6" in bare, bare
    assert "anthropic:claude-sonet-4-6" not in bare
    full = message("anthropic:claude-sonet-4-6")
    assert full.index("did you mean claude-sonnet-4-6") < full.index("models.profiles")


def test_a_misspelt_or_swapped_provider_gets_the_right_spec():
    assert "did you mean 'anthropic:claude-sonnet-4-6'" in message("antropic:claude-sonnet-4-6")
    assert "write PROVIDER:MODEL: openai:gpt-4.1" in message("gpt-4.1:mini")


def test_schema_script_prints_the_scripted_model_format():
    result = cli("schema", "script")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert {"maker", "checker", "goal_checker", "auditor", "documenter"} <= schema["properties"].keys()
    assert schema["additionalProperties"] is False


def test_a_bad_script_is_located_in_the_users_terms(tmp_path, kv_repo):
    repo, _ = kv_repo
    script = tmp_path / "s.yaml"
    script.write_text("maker:\n  - iteration: 1\n    turn: []\n  - 3\nchecker: {decision: APPROVE}\n")
    goal = tmp_path / "g.yaml"
    goal.write_text("id: x\ngoal: g\nacceptance:\n  - run: 'true'\n")
    result = cli("run", str(goal), "--repo", str(repo), "--model", f"scripted:{script}")
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{script}:3:5: maker.0.turn: unknown key; did you mean 'turns'?" in result.stderr, result.stderr
    assert f"{script}:4:5: maker.1: Input should be a mapping (key: value)" in result.stderr
    for name in ("SessionScript", "CheckerScript", "instance of", "Traceback"):
        assert name not in result.stderr
    assert "docs/scripted-models.md" in result.stderr
