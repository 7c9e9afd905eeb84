from __future__ import annotations

import copy
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from loopbot.examples import KVSTORE
from loopbot.plans import Plan, render
from loopbot.testing.fake_github import FakeGitHub
from loopbot.testing.scripted import load_script

CONTRACTS = Path(__file__).resolve().parents[1] / "contracts"
EXAMPLES = json.loads((CONTRACTS / "webhook-examples.json").read_text())["events"]


def example(event: str, action: str | None = None) -> dict[str, Any]:
    """An official example payload (from @octokit/webhooks-examples), copied for editing."""
    for payload in EXAMPLES[event]:
        if action is None or payload.get("action") == action:
            return copy.deepcopy(payload)
    raise KeyError(f"{event}.{action}")


def ttl_plan_body() -> str:
    script = load_script(KVSTORE / "script.yaml")
    first = script.auditor[0].turns[1].tools[0]["propose_plan"]
    return render(Plan.model_validate(first))


@dataclass
class Actions:
    """One simulated GitHub Actions runner after actions/checkout, talking to the fake GitHub."""

    fake: FakeGitHub
    origin: Path
    root: Path
    slept: list[float] = field(default_factory=list)
    runs: int = 0
    clone_url: str | None = None  # origin over real smart HTTP (loopbot.testing.git_http), if set
    next_job: tuple[int, int] | None = None  # the next runner's (workflow run id, attempt); else 1000+n, 1

    def job_of(self, n: int) -> tuple[int, int]:
        """The (workflow run id, attempt) runner n ran as, by default."""
        return 1000 + n, 1

    def runner(self, event: str, payload: dict[str, Any]) -> dict[str, str]:
        self.runs += 1
        machine = self.root / f"runner{self.runs}"
        checkout = machine / "kvstore"
        subprocess.run(["git", "clone", "--quiet", self.clone_url or str(self.origin), str(checkout)], check=True)
        payload.setdefault("repository", {}).update({"default_branch": "main", "name": "kvstore",
                                                     "full_name": "acme/kvstore"})
        event_path = machine / "event.json"
        event_path.write_text(json.dumps(payload))
        run_id, attempt = self.next_job or self.job_of(self.runs)
        self.next_job = None
        return {
            "GITHUB_RUN_ID": str(run_id), "GITHUB_RUN_ATTEMPT": str(attempt),
            "GITHUB_EVENT_NAME": event, "GITHUB_EVENT_PATH": str(event_path), "GITHUB_REPOSITORY": "acme/kvstore",
            "GITHUB_WORKSPACE": str(checkout), "GITHUB_API_URL": "https://api.github.com",
            "GITHUB_TOKEN": "ghs_" + "F" * 36, "LOOPBOT_MODEL": f"scripted:{KVSTORE / 'script.yaml'}",
            "RUNNER_TEMP": str(machine / "temp"), "GITHUB_OUTPUT": str(machine / "output"),
            "GITHUB_STEP_SUMMARY": str(machine / "summary.md"), "PATH": "/usr/local/bin:/usr/bin:/bin",
        }

    def outputs(self) -> dict[str, str]:
        text = (self.root / f"runner{self.runs}" / "output").read_text()
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


@pytest.fixture(name="example")
def example_fixture():
    return example


@pytest.fixture
def fake():
    """The fake GitHub alone; every request it saw must be in the allow-list and GitHub's description."""
    fake = FakeGitHub(CONTRACTS / "github-openapi.trimmed.json")
    yield fake
    assert fake.violations == []


@pytest.fixture
def plan_body() -> str:
    return ttl_plan_body()


@pytest.fixture
def actions(kv_repo, tmp_path):
    _, origin = kv_repo
    fake = FakeGitHub(CONTRACTS / "github-openapi.trimmed.json",
                      permissions={"alice": "write", "bob": "admin", "eve": "read"})
    yield Actions(fake, origin, tmp_path / "actions")
    # Across every test: no request outside the allow-list, none GitHub's description rejects.
    assert fake.violations == []
