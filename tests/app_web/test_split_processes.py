"""The App split over processes on one database: `loopbot serve --workers 0` only receives and
serves, `loopbot worker` dispatches. Real subprocesses, the FakeGitHub over loopback, SQLite (WAL)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest

from loopbot.testing.fake_github import FakeGitHub
from loopbot.testing.fake_github_server import FakeGitHubServer
from loopbot.testing.webhooks import headers
from tests.app.helpers import CONTRACTS, INPUTS, RUN_NAME, app_key
from tests.github.conftest import example, ttl_plan_body

BIN = Path(sys.executable).parent
SECRET, TOKEN = "roles-secret", "roles-token-" + "x" * 20


class Process:
    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path):
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)
        assert self.proc.stdout is not None
        self.first_line = self.proc.stdout.readline()
        self.url = self.first_line.split()[-1] if "listening on" in self.first_line else ""

    def stop(self) -> tuple[int, list[dict[str, object]]]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        stderr: IO[str] | None = self.proc.stderr
        text = stderr.read() if stderr is not None else ""
        return self.proc.returncode, [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        if process.proc.poll() is None:
            process.proc.kill()
            process.proc.wait()


def until(condition: object, seconds: float = 30) -> bool:
    """Poll a condition (a callable) until it holds or the bound passes: waits for an outcome, not a time."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.05)
    return False


def test_a_web_process_and_a_worker_process_share_one_database(tmp_path: Path, processes: list[Process]) -> None:
    fake = FakeGitHub(CONTRACTS / "github-openapi.trimmed.json", permissions={"alice": "write"})
    fake.add_workflow("loopbot-run.yml", INPUTS, run_name=RUN_NAME)
    number = fake.add_issue("TTL", ttl_plan_body())
    base = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LOOPBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}"}
    with FakeGitHubServer(fake) as github:
        # The web process has the webhook secret and no App key; the worker the App key and no secret.
        web = Process([str(BIN / "loopbot"), "serve", "--workers", "0", "--port", "0"],
                      {**base, "LOOPBOT_WEBHOOK_SECRET": SECRET}, tmp_path)
        processes.append(web)
        worker = Process([str(BIN / "loopbot"), "worker", "--port", "0"],
                         {**base, "LOOPBOT_APP_ID": "12345", "LOOPBOT_APP_PRIVATE_KEY": app_key(),
                          "GITHUB_API_URL": github.url, "LOOPBOT_API_TOKEN": TOKEN}, tmp_path)
        processes.append(worker)
        assert web.first_line.startswith("loopbot serve: listening on http://127.0.0.1:"), web.first_line
        assert worker.first_line.startswith("loopbot worker: listening on http://127.0.0.1:"), worker.first_line
        # Each is ready for its own part: the web process needs no App key, the worker no secret.
        assert httpx.get(web.url + "/readyz", timeout=10).json() == {"ready": True, "reasons": []}
        assert httpx.get(worker.url + "/readyz", timeout=10).json() == {"ready": True, "reasons": []}
        # The worker takes no webhooks: a delivery sent to it is not silently dropped as accepted.
        assert httpx.post(worker.url + "/webhook", content=b"{}", timeout=10).status_code in (404, 405)

        payload = example("issue_comment", "created")
        payload["issue"].update({"number": number, "body": ttl_plan_body()})
        payload["issue"].pop("pull_request", None)
        payload["comment"].update({"body": "/loop run", "user": {"login": "alice", "type": "User", "id": 2}})
        payload["repository"] = {**payload["repository"], "full_name": "acme/kvstore", "default_branch": "main"}
        payload["installation"] = {"id": 42}
        body = json.dumps(payload).encode()
        answer = httpx.post(web.url + "/webhook", content=body, timeout=10,
                            headers=headers(SECRET, body, "issue_comment", "split-1"))
        assert answer.status_code == 202

        def dispatched() -> bool:
            with github.lock:
                return bool(fake.workflow_runs)

        assert until(dispatched), worker.proc.stderr
        with github.lock:
            runs = [run["inputs"] for run in fake.workflow_runs]
            violations = list(fake.violations) + list(github.errors)
        assert [(run["issue"], run["command"], run["delivery"]) for run in runs] == [(str(number), "run", "split-1")]
        assert violations == []
        # The dispatch is timed in the process that made it.
        metrics = httpx.get(worker.url + "/metrics", timeout=10, headers={"Authorization": f"Bearer {TOKEN}"})
        assert "loopbot_dispatch_latency_seconds_count 1.0" in metrics.text
    web_exit, web_logs = web.stop()
    worker_exit, worker_logs = worker.stop()
    assert web_exit in (0, -signal.SIGTERM) and worker_exit in (0, -signal.SIGTERM)
    assert [entry.get("role") for entry in web_logs if entry["msg"] == "started"] == ["web"]
    assert [entry.get("role") for entry in worker_logs if entry["msg"] == "started"] == ["worker"]
    assert any(entry.get("delivery") == "split-1" for entry in web_logs)


def test_a_worker_with_no_workers_is_refused(tmp_path: Path) -> None:
    run = subprocess.run([str(BIN / "loopbot"), "worker", "--workers", "0", "--port", "0"], capture_output=True,
                         text=True, cwd=tmp_path, env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)}, timeout=60)
    assert run.returncode == 2
    assert "at least one worker" in run.stderr and "Traceback" not in run.stderr
