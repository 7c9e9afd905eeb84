"""Webhook ingress against a real uvicorn on loopback: every official example of the App's events,
signatures, replays, oversize and malformed bodies, and a store that fails."""

from __future__ import annotations

import json
import sqlite3
import uuid

import httpx
import pytest

from loopbot.app.settings import MAX_WEBHOOK_BYTES, AppSettings
from loopbot.testing.webhooks import headers, signature
from tests.app_web.conftest import EXAMPLES, OLD_SECRET, SECRET, settings

ALL = [(event, i, payload) for event, payloads in sorted(EXAMPLES.items()) for i, payload in enumerate(payloads)]


def post(client: httpx.Client, body: bytes, event: str, delivery: str | None = None, secret: str = SECRET,
         **extra: str) -> httpx.Response:
    return client.post("/webhook", content=body, headers={**headers(secret, body, event, delivery), **extra})


def stored_ids(store) -> list[str]:
    return [row.delivery_id for row in store.recent_deliveries(1000)]


def test_every_official_example_is_acknowledged_and_stored(client, store):
    assert {"issues", "issue_comment", "pull_request", "pull_request_review", "workflow_run", "installation",
            "installation_repositories", "ping"} <= set(EXAMPLES)
    sent = {}
    for event, i, payload in ALL:
        body = json.dumps(payload).encode()
        delivery = f"{event}-{i}-{uuid.uuid4()}"
        answer = post(client, body, event, delivery)
        if event == "ping":
            assert answer.status_code == 200, answer.text
            assert answer.json()["ok"] is True
            continue
        assert answer.status_code == 202, (event, i, answer.text)
        assert answer.json() == {"ok": True, "queued": True, "delivery": delivery}
        sent[delivery] = (event, payload)
    assert len(sent) >= 80
    for delivery, (event, payload) in sent.items():
        found = store.delivery(delivery)
        assert found is not None, delivery
        kept, _ = found
        assert kept.event == event and kept.action == payload.get("action")
        assert json.loads(kept.body) == payload  # the raw body, byte for byte what was signed
        assert (kept.repo or None) == (payload.get("repository") or {}).get("full_name")
        assert kept.installation_id == (payload.get("installation") or {}).get("id")
    assert sorted(stored_ids(store)) == sorted(sent)  # pings are answered, not queued


def test_either_secret_is_accepted_during_a_rotation(client, store):
    body = json.dumps(EXAMPLES["issues"][0]).encode()
    assert post(client, body, "issues", "d-new", secret=SECRET).status_code == 202
    assert post(client, body, "issues", "d-old", secret=OLD_SECRET).status_code == 202
    assert sorted(stored_ids(store)) == ["d-new", "d-old"]


@pytest.mark.parametrize("how", ["missing", "wrong secret", "tampered body", "sha1 only", "not hex", "empty"])
def test_a_bad_signature_is_401_and_nothing_is_kept(client, store, how):
    import hashlib
    import hmac

    body = json.dumps(EXAMPLES["issue_comment"][0]).encode()
    sent = headers(SECRET, body, "issue_comment", "d-bad")
    if how == "missing":
        del sent["X-Hub-Signature-256"]
    elif how == "wrong secret":
        sent["X-Hub-Signature-256"] = signature("not-the-secret", body)
    elif how == "tampered body":
        body = body.replace(b"Codertocat", b"Codertocar")
    elif how == "sha1 only":  # githubkit would verify a sha1= signature; GitHub's SHA-256 one is required
        del sent["X-Hub-Signature-256"]
        sent["X-Hub-Signature-256"] = "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
    elif how == "not hex":
        sent["X-Hub-Signature-256"] = "sha256=" + "zz" * 32
    else:
        sent["X-Hub-Signature-256"] = ""
    answer = client.post("/webhook", content=body, headers=sent)
    assert answer.status_code == 401, answer.text
    assert stored_ids(store) == []


def test_a_replayed_delivery_is_acknowledged_once_and_kept_once(client, store):
    body = json.dumps(EXAMPLES["pull_request"][0]).encode()
    first = post(client, body, "pull_request", "d-replay")
    again = [post(client, body, "pull_request", "d-replay") for _ in range(3)]
    assert first.status_code == 202
    assert [a.status_code for a in again] == [200, 200, 200]
    assert all(a.json()["duplicate"] is True for a in again)
    assert stored_ids(store) == ["d-replay"]
    assert sum(store.delivery_counts().values()) == 1
    assert sum(store.queue_depth().values()) == 1  # one job, not four


def test_the_cap_is_githubs_25_mb():
    assert AppSettings().max_body_bytes == MAX_WEBHOOK_BYTES == 25 * 1024 * 1024


def test_oversize_is_413_by_declared_length_and_while_streaming(serve, store):
    client = serve(settings(max_body_bytes=4096))
    big = json.dumps({"action": "opened", "pad": "x" * 5000}).encode()
    assert post(client, big, "issues", "d-big").status_code == 413

    def chunks():  # no Content-Length: chunked, so only the capped read can catch it
        for _ in range(10):
            yield b"x" * 1000

    answer = client.post("/webhook", content=chunks(), headers=headers(SECRET, b"", "issues", "d-chunked"))
    assert answer.status_code == 413
    small = json.dumps({"action": "opened"}).encode()
    assert post(client, small, "issues", "d-small").status_code == 202
    assert stored_ids(store) == ["d-small"]


@pytest.mark.parametrize("body, event, delivery", [
    (b"{not json", "issues", "d1"),
    (b"[1, 2, 3]", "issues", "d2"),
    (b"\xff\xfe\x00", "issues", "d3"),
    (b'{"action": "opened"}', "", "d4"),
    (b'{"action": "opened"}', "issues", ""),
    (b'{"action": "opened"}', "Issues; rm -rf", "d6"),
    (b'{"action": "opened"}', "issues", "../../etc/passwd"),
    (b'{"action": "opened"}', "issues", "x" * 300),
])
def test_malformed_is_400_never_5xx(client, store, body, event, delivery):
    sent = headers(SECRET, body, "issues", "placeholder")
    sent["X-GitHub-Event"], sent["X-GitHub-Delivery"] = event, delivery
    answer = client.post("/webhook", content=body, headers=sent)
    assert answer.status_code == 400, answer.text
    assert stored_ids(store) == []


def test_odd_fields_are_kept_as_unknown_not_refused(client, store):
    # A payload whose repository or installation is not the usual shape is still GitHub's: kept.
    body = json.dumps({"action": 7, "repository": "acme/x", "installation": {"id": "42"}}).encode()
    assert post(client, body, "issues", "d-odd").status_code == 202
    kept, _ = store.delivery("d-odd")
    assert (kept.action, kept.repo or None, kept.installation_id) == (None, None, None)


def test_a_store_that_fails_is_503_so_github_shows_the_delivery_failed(client, store, tmp_path):
    with sqlite3.connect(tmp_path / "app.db") as broken:  # the real database loses its table
        broken.execute("DROP TABLE deliveries")
    body = json.dumps(EXAMPLES["issues"][0]).encode()
    answer = post(client, body, "issues", "d-lost")
    assert answer.status_code == 503
    assert "failed" in answer.json()["error"]
    assert client.get("/healthz").status_code == 200  # the process is up; only the store is not


def test_without_a_secret_nothing_is_accepted(serve, store):
    client = serve(settings(webhook_secrets=[]))
    body = b'{"action": "opened"}'
    assert post(client, body, "issues", "d-nosecret").status_code == 503
    assert stored_ids(store) == []
