"""The control API, health, readiness, metrics and the lifespan, over a real uvicorn on loopback."""

from __future__ import annotations

import json
import sqlite3

from prometheus_client.parser import text_string_to_metric_families

from loopbot.app.settings import AppSettings
from loopbot.app.web import create_app
from loopbot.testing.app_seed import seed_cost, seed_loop
from loopbot.testing.asgi_server import AsgiServer
from loopbot.testing.webhooks import headers
from tests.app_web.conftest import SECRET, TOKEN, settings

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_the_api_is_disabled_without_a_token(serve):
    client = serve(settings(api_token=None))
    for path in ("/api/loops", "/api/loops/1", "/metrics"):
        answer = client.get(path, headers=AUTH)
        assert answer.status_code == 503
        assert "LOOPBOT_API_TOKEN" in answer.json()["error"]
    assert client.post("/api/loops/1/stop", headers=AUTH).status_code == 503


def test_a_wrong_or_missing_token_is_401(client):
    for sent in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {TOKEN}"},
                 {"Authorization": f"Bearer {TOKEN}x"}, {"Authorization": "Bearer"}):
        answer = client.get("/api/loops", headers=sent)
        assert answer.status_code == 401, sent
        assert answer.headers["www-authenticate"] == "Bearer"


def test_loops_listed_filtered_and_got(client, store):
    a = seed_loop(store, "acme/api", 5, "running", cost_usd=1.25, updated_at=100.0)
    b = seed_loop(store, "acme/api", 6, "blocked", updated_at=200.0, detail="heartbeat stale")
    c = seed_loop(store, "acme/web", 7, "running", updated_at=300.0)
    listed = client.get("/api/loops", headers=AUTH).json()["loops"]
    assert [loop["id"] for loop in listed] == [c, b, a]
    assert [x["id"] for x in client.get("/api/loops?repo=acme/api", headers=AUTH).json()["loops"]] == [b, a]
    assert [x["id"] for x in client.get("/api/loops?state=running", headers=AUTH).json()["loops"]] == [c, a]
    got = client.get(f"/api/loops/{b}", headers=AUTH).json()
    assert (got["repo"], got["issue"], got["status"], got["detail"]) == ("acme/api", 6, "blocked", "heartbeat stale")
    assert client.get("/api/loops/999", headers=AUTH).status_code == 404


def test_stop_resume_retry_enqueue_a_command_job(client, store):
    loop = seed_loop(store, "acme/api", 5, "running")
    jobs = []
    for command in ("stop", "resume", "retry"):
        answer = client.post(f"/api/loops/{loop}/{command}", headers=AUTH)
        assert answer.status_code == 202, answer.text
        jobs.append(answer.json()["job"])
    assert len(set(jobs)) == 3
    for job_id in jobs:
        job = store.job(job_id)
        assert (job.kind, job.repo, job.state) == ("command", "acme/api", "pending")
    assert client.post(f"/api/loops/{loop}/merge", headers=AUTH).status_code == 404
    assert client.post("/api/loops/999/stop", headers=AUTH).status_code == 404
    assert client.post(f"/api/loops/{loop}/stop").status_code == 401
    assert sum(store.queue_depth().values()) == 3


def test_healthz_and_readyz_say_why_not(serve, store, tmp_path):
    client = serve(settings())
    assert client.get("/healthz").json() == {"ok": True}
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert any("LOOPBOT_APP_ID" in reason and "dispatch waits" in reason for reason in answer.json()["reasons"])
    ready = serve(settings(app_id=12345, private_key="-----BEGIN RSA PRIVATE KEY-----\n...\n"))
    assert ready.get("/readyz").json() == {"ready": True, "reasons": []}
    with sqlite3.connect(tmp_path / "app.db") as db:  # migrations rolled back by hand: not ready
        db.execute("DELETE FROM schema_migrations")
    reasons = ready.get("/readyz").json()["reasons"]
    assert len(reasons) == 1 and "migrations" in reasons[0]


def test_metrics(client, store):
    seed_loop(store, "acme/api", 5, "running", cost_usd=1.5)
    seed_loop(store, "acme/api", 6, "blocked", cost_usd=0.5)
    seed_cost(store, "acme/api", "2026-12-01", 2.0)
    body = json.dumps({"action": "opened", "repository": {"full_name": "acme/api"}}).encode()
    client.post("/webhook", content=body, headers=headers(SECRET, body, "issues", "m-1"))
    client.post("/webhook", content=body, headers=headers(SECRET, body, "issues", "m-1"))
    client.post("/webhook", content=body, headers={**headers(SECRET, body, "issues", "m-2"),
                                                   "X-Hub-Signature-256": "sha256=00"})
    answer = client.get("/metrics", headers=AUTH)
    assert answer.status_code == 200
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(answer.text) for s in family.samples}
    assert samples[("loopbot_webhook_requests_total", (("event", "issues"), ("outcome", "accepted")))] == 1
    assert samples[("loopbot_webhook_requests_total", (("event", "issues"), ("outcome", "duplicate")))] == 1
    assert samples[("loopbot_webhook_requests_total", (("event", "issues"), ("outcome", "bad_signature")))] == 1
    assert samples[("loopbot_webhook_ack_seconds_count", ())] == 3
    assert samples[("loopbot_deliveries_total", (("event", "issues"), ("outcome", "queued")))] == 1
    assert samples[("loopbot_queue_depth", (("priority", "routine"),))] + samples[
        ("loopbot_queue_depth", (("priority", "security"),))] + samples[
        ("loopbot_queue_depth", (("priority", "incident"),))] == 1
    assert samples[("loopbot_loops", (("state", "running"),))] == 1
    assert samples[("loopbot_loops", (("state", "blocked"),))] == 1
    assert samples[("loopbot_cost_usd_total", (("repo", "acme/api"),))] == 2.0
    assert samples[("loopbot_store_up", ())] == 1
    assert ("loopbot_dispatch_latency_seconds_count", ()) in samples


def test_two_apps_keep_their_own_metrics(store):
    first, second = create_app(settings(), store), create_app(settings(), store)
    first.state.metrics.webhooks.labels("issues", "accepted").inc()
    assert first.state.metrics.registry is not second.state.metrics.registry
    assert b'loopbot_webhook_requests_total{event="issues",outcome="accepted"} 1.0' in first.state.metrics.render()
    assert b"loopbot_webhook_requests_total{" not in second.state.metrics.render()


class Recorder:
    """Workers as the lifespan sees them: it must start them, and drain them when uvicorn stops."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float | None]] = []

    async def start(self) -> None:
        self.calls.append(("start", None))

    async def stop(self, drain_seconds: float = 10) -> None:
        self.calls.append(("stop", drain_seconds))


def test_the_lifespan_starts_the_workers_and_drains_them_on_shutdown(store):
    workers = Recorder()
    app = create_app(AppSettings(webhook_secrets=[SECRET], drain_seconds=7.5), store, workers=workers)
    with AsgiServer(app) as server:
        import httpx

        assert httpx.get(server.url + "/healthz").status_code == 200
        assert workers.calls == [("start", None)]
    assert workers.calls == [("start", None), ("stop", 7.5)]
    assert app.state.web.draining is True
