"""`sandbox: off` as written in the docs, and the warning every unsandboxed run starts with."""

from __future__ import annotations

from loopbot.examples import KVSTORE
from tests.cli.test_cli_console import cli

INSTALL = "sudo apt-get install bubblewrap"


def _run(repo, config_text: str | None, tmp_path):
    args = ["run", str(KVSTORE / "goal.yaml"), "--repo", str(repo), "--model", f"scripted:{KVSTORE / 'script.yaml'}",
            "--quiet"]
    if config_text is not None:
        config = tmp_path / "loopbot.yml"
        config.write_text(config_text)
        args += ["--config", str(config)]
    return cli(*args)


def test_unquoted_sandbox_off_runs_without_the_sandbox_and_says_so_loudly(kv_repo, tmp_path):
    repo, _ = kv_repo
    result = _run(repo, "sandbox: off\n", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" in result.stderr and "sandbox is OFF" in result.stderr and INSTALL in result.stderr


def test_a_sandboxed_run_prints_no_warning(kv_repo, tmp_path):
    repo, _ = kv_repo
    result = _run(repo, None, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "sandbox is OFF" not in result.stderr and INSTALL not in result.stderr
