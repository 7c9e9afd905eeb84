from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from loopbot.app.settings import AppSettings
from loopbot.app.store import AppStore
from loopbot.app.web import create_app
from loopbot.testing.asgi_server import AsgiServer

CONTRACTS = Path(__file__).resolve().parents[1] / "contracts"
EXAMPLES: dict[str, list[dict[str, Any]]] = json.loads(
    (CONTRACTS / "app-webhook-examples.json").read_text())["events"]
SECRET, OLD_SECRET, TOKEN = "s3cret-new", "s3cret-old", "t0ken-" + "x" * 26


@pytest.fixture
def store(tmp_path: Path) -> Iterator[AppStore]:
    opened = AppStore.open(f"sqlite:///{tmp_path / 'app.db'}")
    yield opened
    opened.close()


def settings(**changes: Any) -> AppSettings:
    base: dict[str, Any] = {"webhook_secrets": [SECRET, OLD_SECRET], "api_token": TOKEN, "port": 0}
    return AppSettings(**{**base, **changes})


@pytest.fixture
def serve(store: AppStore) -> Iterator[Any]:
    """serve(**settings) -> an httpx client on a real uvicorn serving the App on loopback."""
    opened: list[tuple[AsgiServer, httpx.Client]] = []

    def start(app_settings: AppSettings | None = None, **kwargs: Any) -> httpx.Client:
        server = AsgiServer(create_app(app_settings or settings(), store, **kwargs)).__enter__()
        client = httpx.Client(base_url=server.url, timeout=10)
        opened.append((server, client))
        return client

    yield start
    for server, client in opened:
        client.close()
        server.__exit__(None, None, None)


@pytest.fixture
def client(serve: Any) -> httpx.Client:
    started: httpx.Client = serve()
    return started
