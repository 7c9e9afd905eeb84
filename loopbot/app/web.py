"""The App's HTTP side: webhook ingress, the control API, health, metrics and the status page.

`create_app` builds a Starlette app from settings and a store; it reads no environment (serve.py
does). Ingress answers only after the delivery is committed, so a 2xx means it is kept; bad input
is a 4xx, never a 5xx; a store that fails is a 503, which GitHub shows as a failed delivery.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import parse_qs

import jinja2
from githubkit.webhooks import verify
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from loopbot.app.metrics import CONTENT_TYPE, PRIORITIES, AppMetrics
from loopbot.app.settings import AppSettings
from loopbot.app.store import AppStore, Delivery, DeliveryRow, JobRow, LoopRow
from loopbot.core.costchart import layout

log = logging.getLogger("loopbot.app")

StoreView = AppStore  # what the web side reads and writes; the one store class for both databases
_DELIVERY_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_EVENT = re.compile(r"^[a-z_]{1,64}$")
COMMANDS = ("stop", "resume", "retry")
COOKIE = "loopbot_session"
LOGIN_MAX_BYTES = 4096
TEMPLATES = Path(__file__).parent / "templates"
Role = Literal["all", "web", "worker"]


class Lifecycle(Protocol):
    """The workers, as the web app starts and drains them (loopbot.app.worker.Workers)."""

    async def start(self) -> None: ...

    async def stop(self, drain_seconds: float = 10) -> None: ...


def create_app(settings: AppSettings, store: AppStore, *, workers: Lifecycle | None = None,
               role: Role = "all", clock: Callable[[], float] = time.time) -> Starlette:
    """The App in one of its roles: "all" (ingress and dispatch in one process), "web" (ingress,
    API and status page; the workers run elsewhere on the same database) or "worker" (only health
    and metrics beside the workers: `loopbot worker`)."""
    web = _Web(settings, store, clock, role)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if workers is not None:
            await workers.start()
        reason = settings.credentials_missing() if role != "web" else "the workers run in their own processes"
        log.info("started", extra={"role": role, "reason": reason or "App credentials present"})
        try:
            yield
        finally:
            web.draining = True  # /readyz says so while the workers finish what they hold
            if workers is not None:
                await workers.stop(settings.drain_seconds)
            log.info("stopped")

    routes = [
        Route("/healthz", web.healthz, methods=["GET"]),
        Route("/readyz", web.readyz, methods=["GET"]),
        Route("/metrics", web.metrics_page, methods=["GET"]),
    ]
    if role != "worker":
        routes += _ingress_routes(web)
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.metrics = web.metrics
    app.state.web = web
    return app


def _ingress_routes(web: _Web) -> list[Route]:
    return [
        Route("/webhook", web.webhook, methods=["POST"]),
        Route("/api/loops", web.list_loops, methods=["GET"]),
        Route("/api/loops/{loop_id:int}", web.get_loop, methods=["GET"]),
        Route("/api/loops/{loop_id:int}/{command:str}", web.control, methods=["POST"]),
        Route("/", web.status_page, methods=["GET"]),
        Route("/login", web.login, methods=["POST"]),
        Route("/logout", web.logout, methods=["POST"]),
    ]


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


async def _read_capped(request: Request, cap: int) -> bytes | None:
    """The body, or None as soon as it passes `cap` bytes (never buffered beyond the cap)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _declared_length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    return int(raw) if raw.isdigit() else -1


def _row(row: Any) -> dict[str, Any]:
    return dataclasses.asdict(row)


class _Web:
    def __init__(self, settings: AppSettings, store: AppStore, clock: Callable[[], float], role: Role = "all"):
        self.settings, self.store, self.clock, self.role = settings, store, clock, role
        self.metrics = AppMetrics(store)
        self.draining = False
        self.pages = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                                        undefined=jinja2.StrictUndefined)

    # -- ingress ---------------------------------------------------------------------------------
    async def webhook(self, request: Request) -> Response:
        started = time.perf_counter()
        event = request.headers.get("x-github-event", "")
        delivery_id = request.headers.get("x-github-delivery", "")
        response, outcome = await self._ingest(request, event, delivery_id)
        label = event if _EVENT.match(event) else "invalid"
        self.metrics.webhooks.labels(label, outcome).inc()
        self.metrics.ack_seconds.observe(time.perf_counter() - started)
        level = logging.WARNING if response.status_code >= 400 else logging.INFO
        log.log(level, "webhook %s", outcome, extra={
            "delivery": delivery_id[:128], "event": label, "outcome": outcome, "status": response.status_code})
        return response

    async def _ingest(self, request: Request, event: str, delivery_id: str) -> tuple[Response, str]:
        cap = self.settings.max_body_bytes
        declared = _declared_length(request)
        if declared is not None and declared > cap:
            return _error(413, f"payload over {cap} bytes"), "oversize"
        if declared == -1:
            return _error(400, "bad Content-Length"), "malformed"
        body = await _read_capped(request, cap)
        if body is None:
            return _error(413, f"payload over {cap} bytes"), "oversize"
        if not self.settings.webhook_secrets:
            return _error(503, "no webhook secret configured (LOOPBOT_WEBHOOK_SECRET)"), "unavailable"
        signature = request.headers.get("x-hub-signature-256", "")
        # sha256 only: githubkit would also check a SHA-1 `sha1=` signature, which we do not accept.
        if not signature.startswith("sha256=") or not any(
                verify(secret, body, signature) for secret in self.settings.webhook_secrets):
            return _error(401, "bad or missing X-Hub-Signature-256"), "bad_signature"
        if not _EVENT.match(event) or not _DELIVERY_ID.match(delivery_id):
            return _error(400, "missing or malformed X-GitHub-Event / X-GitHub-Delivery"), "malformed"
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return _error(400, "the body is not JSON (set the webhook's content type to application/json)"), \
                "malformed"
        if not isinstance(payload, dict):
            return _error(400, "the body is not a JSON object"), "malformed"
        if event == "ping":
            return JSONResponse({"ok": True, "zen": str(payload.get("zen") or "")}), "ping"
        delivery = Delivery(delivery_id=delivery_id, event=event, action=_text(payload.get("action")),
                            installation_id=_int(_obj(payload, "installation").get("id")),
                            repo=_text(_obj(payload, "repository").get("full_name")), body=body,
                            received_at=self.clock())
        try:
            accepted = await run_in_threadpool(self.store.accept_delivery, delivery)
        except Exception:
            log.exception("store refused a delivery", extra={"delivery": delivery_id, "event": event})
            return _error(503, "the store is unavailable; GitHub shows this delivery as failed"), "unavailable"
        if not accepted:
            return JSONResponse({"ok": True, "duplicate": True, "delivery": delivery_id}), "duplicate"
        return JSONResponse({"ok": True, "queued": True, "delivery": delivery_id}, status_code=202), "accepted"

    # -- operations ------------------------------------------------------------------------------
    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def readyz(self, request: Request) -> Response:
        reasons = []
        try:
            ok, why = await run_in_threadpool(self.store.ready)
        except Exception as exc:
            ok, why = False, f"database unreachable: {type(exc).__name__}"
        if not ok:
            reasons.append(why or "database not ready")
        # Each process answers for its own part: a web process without workers needs no App key, a
        # worker process no webhook secret.
        missing = self.settings.credentials_missing() if self.role != "web" else None
        if missing:
            reasons.append(f"{missing}: deliveries are stored, dispatch waits")
        if self.role != "worker" and not self.settings.webhook_secrets:
            reasons.append("no webhook secret configured (LOOPBOT_WEBHOOK_SECRET)")
        if self.draining:
            reasons.append("shutting down: draining workers")
        return JSONResponse({"ready": not reasons, "reasons": reasons}, status_code=503 if reasons else 200)

    async def metrics_page(self, request: Request) -> Response:
        refused = self._refuse_api(request)
        if refused is not None:
            return refused
        body = await run_in_threadpool(self.metrics.render)
        return Response(body, media_type=CONTENT_TYPE)

    # -- control API -----------------------------------------------------------------------------
    def _token_ok(self, presented: str) -> bool:
        token = self.settings.api_token
        return bool(token) and hmac.compare_digest(presented.encode(), (token or "").encode())

    def _refuse_api(self, request: Request) -> Response | None:
        if not self.settings.api_token:
            return _error(503, "the control API is disabled: set LOOPBOT_API_TOKEN to enable it")
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not self._token_ok(presented.strip()):
            return JSONResponse({"error": "a valid bearer token is required"}, status_code=401,
                                headers={"www-authenticate": "Bearer"})
        return None

    async def list_loops(self, request: Request) -> Response:
        refused = self._refuse_api(request)
        if refused is not None:
            return refused
        repo, state = request.query_params.get("repo") or None, request.query_params.get("state") or None
        loops = await run_in_threadpool(self.store.loops, repo, state)
        return JSONResponse({"loops": [_row(loop) for loop in loops]})

    async def get_loop(self, request: Request) -> Response:
        refused = self._refuse_api(request)
        if refused is not None:
            return refused
        loop = await run_in_threadpool(self.store.loop, int(request.path_params["loop_id"]))
        return _error(404, "no such loop") if loop is None else JSONResponse(_row(loop))

    async def control(self, request: Request) -> Response:
        refused = self._refuse_api(request)
        if refused is not None:
            return refused
        command, loop_id = str(request.path_params["command"]), int(request.path_params["loop_id"])
        if command not in COMMANDS:
            return _error(404, f"no such command: use one of {', '.join(COMMANDS)}")
        if await run_in_threadpool(self.store.loop, loop_id) is None:
            return _error(404, "no such loop")
        job = await run_in_threadpool(self.store.control, loop_id, command, "api")
        log.info("control %s", command, extra={"loop": loop_id, "job": job})
        return JSONResponse({"ok": True, "loop": loop_id, "command": command, "job": job}, status_code=202)

    # -- status page -----------------------------------------------------------------------------
    def _session_value(self) -> str:
        """The login cookie: derived from the token (never the token itself); a new token ends it."""
        return hmac.new((self.settings.api_token or "").encode(), b"loopbot status page", hashlib.sha256).hexdigest()

    def _page_authorised(self, request: Request) -> bool:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self._token_ok(presented.strip()):
            return True
        cookie = request.cookies.get(COOKIE, "")
        return bool(self.settings.api_token) and hmac.compare_digest(cookie.encode(), self._session_value().encode())

    def _html(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        page = self.pages.get_template(template).render(**context)
        return HTMLResponse(page, status_code=status, headers={
            "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                                       "frame-ancestors 'none'",
            "x-content-type-options": "nosniff", "referrer-policy": "no-referrer", "cache-control": "no-store"})

    async def status_page(self, request: Request) -> Response:
        if not self.settings.api_token:
            return self._html("login.html", 503, disabled=True, wrong=False)
        if not self._page_authorised(request):
            return self._html("login.html", 401, disabled=False, wrong=False)
        view = await run_in_threadpool(self._status_view)
        return self._html("status.html", **view)

    def _status_view(self) -> dict[str, Any]:
        now = self.clock()
        depth = self.store.queue_depth()
        loops = self.store.loops()
        states = sorted({loop.status for loop in loops})
        repos = sorted({loop.repo for loop in loops})
        matrix = {repo: {state: 0 for state in states} for repo in repos}
        for loop in loops:
            matrix[loop.repo][loop.status] += 1
        today = datetime.fromtimestamp(now, UTC).date()
        return {
            "queue": [(p, depth.get(p, 0)) for p in sorted({*PRIORITIES, *depth}, key=_priority_rank)],
            "states": states, "matrix": matrix,
            "loops": sorted(loops, key=lambda loop: -(loop.updated_at or 0))[:200],
            "chart": layout(self.store.cost_by_repo(14, now), today),
            "deliveries": self.store.recent_deliveries(50),
            "dead": self.store.dead_letters(),
            "when": _when, "generated": _when(now),
            "github": "https://github.com",
        }

    async def login(self, request: Request) -> Response:
        if not self.settings.api_token:
            return self._html("login.html", 503, disabled=True, wrong=False)
        body = await _read_capped(request, LOGIN_MAX_BYTES)
        presented = (parse_qs((body or b"").decode("utf-8", "replace")).get("token") or [""])[0]
        if not self._token_ok(presented.strip()):
            return self._html("login.html", 401, disabled=False, wrong=True)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, self._session_value(), max_age=8 * 3600, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path="/")
        return response

    async def logout(self, request: Request) -> Response:
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response


def _priority_rank(name: str) -> tuple[int, str]:
    return (PRIORITIES.index(name) if name in PRIORITIES else len(PRIORITIES), name)


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "—"
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _obj(payload: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = payload.get(key)
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


__all__ = ["COMMANDS", "DeliveryRow", "JobRow", "Lifecycle", "LoopRow", "StoreView", "create_app"]
