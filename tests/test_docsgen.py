"""Pages generated from the config schema: the committed reference cannot drift from the code,
and the commented config `loopbot init` writes holds every default."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from loopbot.config import Config, parse_config
from loopbot.docsgen import commented_config, config_reference

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "config-reference.md"


def test_the_committed_config_reference_is_a_fresh_generation():
    assert PAGE.read_text(encoding="utf-8") == config_reference(), (
        "docs/config-reference.md is out of date: python -m loopbot.docsgen docs/config-reference.md")


def _leaf_paths(schema: dict[str, Any], node: dict[str, Any], prefix: str = "") -> list[str]:
    """Every key of the config by its JSON Schema (not by the generator's own walk)."""
    if "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    paths = []
    for name, prop in node.get("properties", {}).items():
        target = schema["$defs"][prop["$ref"].rsplit("/", 1)[-1]] if "$ref" in prop else prop
        if "properties" in target:
            paths += _leaf_paths(schema, target, f"{prefix}{name}.")
            continue
        paths.append(f"{prefix}{name}")
        values = target.get("additionalProperties")
        if isinstance(values, dict) and "$ref" in values:
            paths += _leaf_paths(schema, values, f"{prefix}{name}.<model id>.")
    return paths


def test_every_key_of_the_schema_is_in_the_reference_with_its_default():
    schema = Config.model_json_schema()
    page = config_reference()
    paths = _leaf_paths(schema, schema)
    assert len(paths) > 50 and "models.anthropic.base_url" in paths and "models.profiles.<model id>.input" in paths
    missing = [p for p in paths if f"| `{p}` |" not in page]
    assert missing == []
    assert "| `budgets.max_iterations` | integer | `6` | ≥ 1, ≤ 100 |" in page
    assert "| `sandbox.mode` | one of `bubblewrap`, `off` | `bubblewrap` |" in page


def test_the_commented_config_is_valid_as_written_and_uncommented_it_is_every_default():
    text = commented_config()
    assert parse_config(text, "loopbot.yml") == Config()  # all comments: the defaults
    body = text.split("\n\n", 1)[1]  # after the header
    uncommented = "\n".join(line[2:] if line.startswith("# ") else line for line in body.splitlines())
    assert "\n  tiers: {" in uncommented and "\n    base_url:  #" in uncommented and "\nbots: []" in uncommented
    assert parse_config(uncommented, "loopbot.yml") == Config()


def test_check_mode_fails_on_a_stale_page_and_passes_on_a_fresh_one(tmp_path):
    page = tmp_path / "config-reference.md"
    page.write_text(config_reference().replace("`6`", "`7`"), encoding="utf-8")
    command = [sys.executable, "-m", "loopbot.docsgen", "--check", str(page)]
    stale = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert stale.returncode == 1 and "out of date" in stale.stderr
    subprocess.run([sys.executable, "-m", "loopbot.docsgen", str(page)], check=True, capture_output=True, timeout=60)
    assert subprocess.run(command, capture_output=True, text=True, timeout=60).returncode == 0
