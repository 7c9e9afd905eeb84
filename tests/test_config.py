import pytest

from loopbot.config import Config, load_config, parse_config
from loopbot.errors import InputError


def test_missing_or_empty_config_means_defaults(tmp_path):
    assert load_config(tmp_path / "nope.yml") == Config()
    assert parse_config("", "c.yml") == Config()


def test_tiers_resolve_role_models():
    config = parse_config("models:\n  tiers: {strong: 'scripted:a.yaml'}\n  checker: 'openai:gpt-x'\n", "c.yml")
    assert config.models.resolve(config.models.maker) == "scripted:a.yaml"
    assert config.models.resolve(config.models.checker) == "openai:gpt-x"


def test_config_errors_are_located():
    with pytest.raises(InputError) as info:
        parse_config("budgets:\n  max_cost_usd: -1\nlimits:\n  max_plans_per_run: 9\nsurprise: 1\n", "c.yml")
    found = [str(p) for p in info.value.problems]
    assert "c.yml:2:3: budgets.max_cost_usd: Input should be greater than 0" in found
    assert "c.yml:4:3: limits.max_plans_per_run: Input should be less than or equal to 5" in found
    assert "c.yml:5:1: surprise: unknown key (allowed: models, budgets, labels, limits, commands, execution, push, " \
        "sandbox, gate, wiki, bots, maker)" in found


@pytest.mark.parametrize("text", ["sandbox: off\n", "sandbox: 'off'\n", "sandbox: {mode: off}\n", "sandbox: false\n"])
def test_sandbox_off_means_off_however_yaml_reads_it(text):
    # YAML 1.1 reads a bare `off` as the boolean false: the documented `sandbox: off` must still mean off.
    assert parse_config(text, "c.yml").sandbox.mode == "off"


def test_sandbox_on_and_unknown_modes():
    assert parse_config("sandbox: on\n", "c.yml").sandbox.mode == "bubblewrap"
    assert parse_config("sandbox: {mode: true, memory_mb: 100}\n", "c.yml").sandbox.memory_mb == 100
    with pytest.raises(InputError) as info:
        parse_config("sandbox: docker\n", "c.yml")
    assert "sandbox.mode" in str(info.value)


def test_unknown_config_keys_suggest_the_key_meant():
    with pytest.raises(InputError) as info:
        parse_config("modles: {}\nmodels:\n  makr: strong\n  openai: {base_ur: x}\nsandbox: {memory: 5}\n", "c.yml")
    found = [str(p) for p in info.value.problems]
    assert found == [
        "c.yml:1:1: modles: unknown key; did you mean 'models'?",
        "c.yml:3:3: models.makr: unknown key; did you mean 'maker'?",
        "c.yml:4:12: models.openai.base_ur: unknown key; did you mean 'base_url'?",
        "c.yml:5:11: sandbox.memory: unknown key; did you mean 'memory_mb'?",
    ]


def test_config_type_errors_name_no_python_classes():
    with pytest.raises(InputError) as info:
        parse_config("sandbox: [1]\nmodels: {profiles: {m: 3}}\n", "c.yml")
    text = str(info.value)
    assert "SandboxConfig" not in text and "ProfileOverride" not in text and "instance of" not in text, text
    assert "c.yml:1:1: sandbox: Input should be a mapping (key: value)" in text
