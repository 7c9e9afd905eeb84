"""Webhook deliveries as GitHub sends them: signed headers for a body (for tests and benches)."""

from __future__ import annotations

import hashlib
import hmac
import uuid


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def headers(secret: str, body: bytes, event: str, delivery: str | None = None) -> dict[str, str]:
    """The headers GitHub sends with a delivery (its id a fresh GUID unless given)."""
    return {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
            "X-Hub-Signature-256": signature(secret, body), "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/loopbot-test"}
