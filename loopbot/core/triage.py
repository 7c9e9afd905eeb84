"""How urgent a webhook delivery is and which plan it is about, from its payload alone (pure):
the App's queue orders and serializes jobs by these before any GitHub call is made."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# GitHub's own security events; labels say the rest.
SECURITY_EVENTS = frozenset({"security_advisory", "repository_advisory", "code_scanning_alert",
                             "dependabot_alert", "secret_scanning_alert", "repository_vulnerability_alert"})
SECURITY_LABELS = frozenset({"security", "loopbot:security"})
INCIDENT_LABELS = frozenset({"incident", "loopbot:incident", "sev1", "sev2", "p0", "p1"})


def priority(event: str, payload: Mapping[str, Any]) -> str:
    """security, incident or routine."""
    if event in SECURITY_EVENTS:
        return "security"
    labels = {name.lower() for name in _labels(payload)}
    if labels & SECURITY_LABELS:
        return "security"
    if labels & INCIDENT_LABELS:
        return "incident"
    return "routine"


def plan_key(event: str, payload: Mapping[str, Any]) -> tuple[str, int | None]:
    """(repo full name, the issue or pull request number the event is about); ("", None) if none.
    A loop PR's events count against the PR's number here; the router maps it to its plan."""
    repo = _obj(payload, "repository").get("full_name")
    repo = repo if isinstance(repo, str) else ""
    for key in ("issue", "pull_request"):
        number = _obj(payload, key).get("number")
        if isinstance(number, int) and not isinstance(number, bool) and number > 0:
            return repo, number
    return repo, None


def _labels(payload: Mapping[str, Any]) -> list[str]:
    names = []
    for holder in (_obj(payload, "issue"), _obj(payload, "pull_request")):
        for label in holder.get("labels") or ():
            if isinstance(label, Mapping) and isinstance(label.get("name"), str):
                names.append(str(label["name"]))
    name = _obj(payload, "label").get("name")
    if isinstance(name, str):
        names.append(name)
    return names


def _obj(payload: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = payload.get(key)
    return value if isinstance(value, Mapping) else {}
