"""Preflight: before a run makes anything, each distinct model endpoint is asked once whether it is
reachable, takes the key and serves the model, with the cheapest request each API has (no tokens):

- Anthropic: `GET /v1/models/{id}` (the SDK's `models.retrieve`), once per model id;
- OpenAI or compatible: `GET /models` once per endpoint, and `GET /models/{id}` for an id the
  listing does not show (a local server may serve names it does not list, e.g. Ollama's tags).

Unreachable, a refused key or a model the endpoint does not serve is an InputError naming the
endpoint and the fix; a rate limit or a server error is not (the loop's own retries handle those).
Scripted models need no preflight. Without it, an unreachable server looked like bad work: every
iteration failed, the run stagnated and the unchanged base was pushed as a loop branch.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from loopbot.errors import InputError, Problem

TIMEOUT_SECONDS = 15.0  # per request; a server that has not answered by then is not going to serve a loop
RETRIES = 1  # one retry rides over a blip; a refused connection is not worth the SDK's backoff schedule

_HINTS = {
    "anthropic": ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL or models.anthropic.base_url"),
    "openai": ("OPENAI_API_KEY", "OPENAI_BASE_URL or models.openai.base_url"),
}


class _Refused(Exception):
    """The endpoint as a whole is unusable (unreachable, key refused, not the API): one problem."""


@dataclass
class _Endpoint:
    provider: str
    url: str
    client: Any
    models: list[str] = field(default_factory=list)


def preflight(models: Iterable[object], *, timeout: float = TIMEOUT_SECONDS) -> None:
    """Ask every distinct endpoint of `models` once; raise an InputError listing what cannot work."""
    endpoints: dict[tuple[str, str, str], _Endpoint] = {}
    for model in models:
        provider = str(getattr(model, "name", "")).partition(":")[0]
        client = getattr(model, "client", None)
        if provider not in _HINTS or client is None:
            continue  # scripted, or a test double: nothing to reach
        url = str(client.base_url).rstrip("/")
        endpoint = endpoints.setdefault((provider, url, str(client.api_key)),
                                        _Endpoint(provider, url, client.with_options(max_retries=RETRIES,
                                                                                     timeout=timeout)))
        model_id = str(getattr(model, "model", ""))
        if model_id not in endpoint.models:
            endpoint.models.append(model_id)
    problems: list[str] = []
    for endpoint in endpoints.values():
        check = _check_anthropic if endpoint.provider == "anthropic" else _check_openai
        try:
            problems += check(endpoint)
        except _Refused as exc:
            problems.append(str(exc))
    if problems:
        raise InputError([Problem("model", None, None, "", p) for p in problems])


def _sdk(provider: str) -> ModuleType:
    if provider == "anthropic":
        import anthropic

        return anthropic
    import openai

    return openai


def _refusal(endpoint: _Endpoint, exc: Exception, request: str) -> _Refused | None:
    """What an SDK error on a lookup means for the whole endpoint; None for 404 and for errors
    that are not the user's to fix now (429, 5xx: the loop's retries deal with those)."""
    sdk = _sdk(endpoint.provider)
    key, base = _HINTS[endpoint.provider]
    if isinstance(exc, sdk.APIConnectionError):  # refused, reset, DNS, TLS, and timeouts (a subclass)
        reason = "timed out" if isinstance(exc, sdk.APITimeoutError) else str(exc.__cause__ or exc)
        return _Refused(f"cannot reach {endpoint.url} ({reason}): is the server running, and is the base_url "
                        f"right ({base})?")
    if isinstance(exc, sdk.AuthenticationError | sdk.PermissionDeniedError):
        return _Refused(f"the API key for {endpoint.provider} was refused by {endpoint.url} "
                        f"({exc.status_code}: {_said(exc)}): set {key} to a valid key")
    if isinstance(exc, sdk.APIResponseValidationError | ValueError):
        return _Refused(f"{endpoint.url} answered {request} with something that is not the {endpoint.provider} API: "
                        f"is the base_url right ({base})?")
    return None


def _said(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:200]
    return str(getattr(exc, "message", exc))[:200]


def _check_anthropic(endpoint: _Endpoint) -> list[str]:
    sdk = _sdk("anthropic")
    problems = []
    for model in endpoint.models:
        request = f"GET /v1/models/{model}"
        try:
            endpoint.client.models.retrieve(model)
        except sdk.NotFoundError:
            problems.append(f"{endpoint.url} does not serve model {model!r} ({request} answered 404): check the "
                            "model id (--model, models.tiers or the goal's models)")
        except Exception as exc:
            refused = _refusal(endpoint, exc, request)
            if refused is not None:
                raise refused from None
    return problems


def _check_openai(endpoint: _Endpoint) -> list[str]:
    sdk = _sdk("openai")
    listed: list[str] | None = None
    try:
        listed = [str(item.id) for item in endpoint.client.models.list().data]
    except sdk.NotFoundError:
        listed = None  # no listing here: each model is asked for by name
    except Exception as exc:
        refused = _refusal(endpoint, exc, "GET /models")
        if refused is not None:
            raise refused from None
        return []  # a rate limit or a server error: reachable, the key not refused
    problems = []
    for model in endpoint.models:
        if listed is not None and model in listed:
            continue
        request = f"GET /models/{model}"
        try:
            endpoint.client.models.retrieve(model)
        except sdk.NotFoundError:
            close = difflib.get_close_matches(model, listed or [], n=3, cutoff=0.6)
            hint = (f"; did you mean {' or '.join(repr(c) for c in close)}?" if close
                    else f"; it serves {', '.join(listed[:8])}{', …' if len(listed) > 8 else ''}" if listed
                    else f"; and it answered GET /models with 404 too: is the base_url right ({_HINTS['openai'][1]};"
                         " OpenAI-compatible servers usually end it in /v1)?")
            problems.append(f"{endpoint.url} does not serve model {model!r}{hint}")
        except Exception as exc:
            refused = _refusal(endpoint, exc, request)
            if refused is not None:
                raise refused from None
    return problems
