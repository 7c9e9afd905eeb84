"""A command loads what it uses: `loopbot -h` and `status` start without the SDKs, the agent proxy
or the session's adapters (the suite starts loopbot hundreds of times; users type `status` often).
Wall times are in bench/run.py (`--only cli_start`)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("anthropic", "openai", "httpx", "jsonschema", "sqlalchemy", "githubkit")


def loaded_after(statement: str, candidates: tuple[str, ...]) -> list[str]:
    probe = f"import json, sys\n{statement}\nprint(json.dumps([m for m in {list(candidates)!r} if m in sys.modules]))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout.splitlines()[-1]))  # the command's own output comes first


def test_the_cli_module_loads_no_model_nor_adapter():
    assert loaded_after("import loopbot.cli", (*HEAVY, "jinja2", "pydantic", "yaml", "loopbot.core.state", "loopbot.session",
                                                "loopbot.config", "loopbot.store.sqlite")) == []


def test_a_session_without_an_agent_maker_loads_neither_the_proxy_nor_an_sdk():
    assert loaded_after("import loopbot.session", (*HEAVY, "loopbot.agents.proxy", "loopbot.agents.session")) == []


@pytest.mark.parametrize("argv", [["-h"], ["status", "--repo", "{repo}"], ["init", "-h"]])
def test_commands_that_read_the_store_or_print_help_load_no_sdk(argv, tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    args = [a.replace("{repo}", str(tmp_path)) for a in argv]
    statement = ("import sys\nfrom loopbot.cli import app\n"
                 f"sys.argv = ['loopbot', *{args!r}]\n"
                 "try:\n    app()\nexcept SystemExit:\n    pass")
    assert loaded_after(statement, (*HEAVY, "loopbot.session", "loopbot.runner")) == []


@pytest.mark.parametrize(("spec", "env"), [
    ("anthropic:claude-sonnet-5", {"ANTHROPIC_API_KEY": ""}),  # no key
    ("anthropic:claude-unpriced-9", {"ANTHROPIC_API_KEY": "x"}),  # a model without a price
    ("openai:gpt-4.1", {"OPENAI_API_KEY": ""}),
])
def test_a_model_spec_refused_before_any_call_is_refused_before_its_sdk_loads(spec, env):
    """The SDKs take over a second to import: a missing key or an unknown model is said without them."""
    statement = ("from loopbot.errors import InputError\nfrom loopbot.providers import build_model, ProviderEnv\n"
                 f"try:\n    build_model({spec!r}, env=ProviderEnv.from_mapping({env!r}))\n"
                 "except InputError as exc:\n    print(exc)\nelse:\n    raise SystemExit('not refused')")
    assert loaded_after(statement, HEAVY) == []
