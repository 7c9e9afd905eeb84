"""Shared set-up for the App's backend tests: a store, the contract-checked fake GitHub, an App key."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from loopbot.app.dispatch import Dispatcher, GitHubApp
from loopbot.app.store import AppStore
from loopbot.testing import FakeClock
from loopbot.testing.fake_github import FakeGitHub

CONTRACTS = Path(__file__).resolve().parents[1] / "contracts"
RUN_NAME = "loopbot {command} #{issue} [{delivery}]"  # as .github/workflows/loopbot-run.yml names its runs
INPUTS = {"issue": True, "command": True, "delivery": False, "approved": False}  # as loopbot-run.yml declares them


@cache
def app_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


@dataclass
class World:
    store: AppStore
    fake: FakeGitHub
    clock: FakeClock
    app: GitHubApp
    dispatcher: Dispatcher
    slept: list[float] = field(default_factory=list)


def world(url: str, *, permissions: dict[str, str] | None = None, clock: FakeClock | None = None) -> World:
    clock = clock or FakeClock()
    store = AppStore.open(url, clock=clock, rng=random.Random(3))
    fake = FakeGitHub(CONTRACTS / "github-openapi.trimmed.json", permissions=permissions or {})
    fake.wall = clock.wall
    fake.add_workflow("loopbot-run.yml", INPUTS, run_name=RUN_NAME)
    app = GitHubApp(12345, app_key(), transport=fake.transport(), wall=clock.wall)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    return World(store, fake, clock, app, Dispatcher(store, app, sleep=sleep), slept)
