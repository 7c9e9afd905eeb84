"""`loopbot serve`: the App container's entrypoint. The one place the App reads its environment.

Nothing of the `app` extra is imported at module level, so a missing extra is a message naming the
install command, not an ImportError.
"""

from __future__ import annotations

import importlib
import logging
import socket
import sys
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any

from loopbot.app.settings import AppSettings
from loopbot.errors import LoopbotError

if TYPE_CHECKING:
    from loopbot.app.store import AppStore
    from loopbot.app.web import Role
    from loopbot.app.worker import Workers

EXTRA = ("starlette", "uvicorn", "sqlalchemy", "prometheus_client")
INSTALL = "pip install 'loopbot[app]'"
WORKER_PORT = 8081  # beside a `loopbot serve` on 8080 on one host
SWITCH_INTERVAL_SECONDS = 0.0005
log = logging.getLogger("loopbot.app")


def check_extra() -> None:
    missing = [name for name in EXTRA if not _importable(name)]
    if missing:
        raise LoopbotError(f"the App needs its dependencies ({', '.join(missing)} missing): {INSTALL}")


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def serve(env: Mapping[str, str], *, host: str | None = None, port: int | None = None,
          workers: int | None = None, out: IO[str] = sys.stdout) -> None:
    """Run until SIGTERM or SIGINT, then drain the workers and stop. Prints the address it listens on
    (port 0 picks a free one) as the first line of `out`. With `workers=0` (LOOPBOT_APP_WORKERS=0)
    this process only receives and serves: `loopbot worker` processes on the same database dispatch,
    so their work never holds up an acknowledgement."""
    check_extra()
    settings = _settings(env, host=host, port=port, workers=workers)
    if not settings.webhook_secrets:
        raise LoopbotError("set LOOPBOT_WEBHOOK_SECRET (comma-separated during a rotation): "
                           "without it no delivery can be verified")
    _run("serve", settings, "all" if settings.workers else "web", out)


def work(env: Mapping[str, str], *, host: str | None = None, port: int | None = None,
         workers: int | None = None, out: IO[str] = sys.stdout) -> None:
    """`loopbot worker`: the workers and the reconciler in a process of their own, beside web
    processes (`loopbot serve --workers 0`) on the same database. Serves only /healthz, /readyz and
    /metrics (port 8081 unless told), for the container's probes and Prometheus."""
    check_extra()
    settings = _settings(env, host=host, port=WORKER_PORT if port is None else port, workers=workers)
    if not settings.workers:
        raise LoopbotError("loopbot worker runs at least one worker: set --workers or LOOPBOT_APP_WORKERS to 1 or more")
    _run("worker", settings, "worker", out)


def _settings(env: Mapping[str, str], **flags: object) -> AppSettings:
    return AppSettings.from_env(env, **{k: v for k, v in flags.items() if v is not None})


def _run(command: str, settings: AppSettings, role: Role, out: IO[str]) -> None:
    import uvicorn

    from loopbot.app import logs
    from loopbot.app.web import create_app

    logs.configure()
    # The GIL is handed over every 0.5 ms instead of 5: a store thread back from its commit's fsync
    # otherwise waits out the event loop's turn at every step, one write at a time, and at 200
    # webhooks a second the writes queued until acks took seconds (bench/app_ingress.py: ack p99
    # 60 ms to 10 s from run to run, 10 ms with this).
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    store = _open_store(settings.database_url)
    workers = _workers(store, settings) if role != "web" else None
    app = create_app(settings, store, workers=workers, role=role)
    if workers is not None:
        # The workers time each delivery's way to its workflow dispatch into this process's /metrics.
        workers.processor.on_dispatch = app.state.metrics.dispatch_seconds.observe
    listener = _bind(settings.host, settings.port)
    bound = listener.getsockname()
    shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    print(f"loopbot {command}: listening on http://{shown}:{bound[1]}", file=out, flush=True)
    config = uvicorn.Config(app, log_config=None, lifespan="on", access_log=False,
                            timeout_graceful_shutdown=max(1, int(settings.drain_seconds) + 5))
    try:
        uvicorn.Server(config).run(sockets=[listener])
    finally:
        listener.close()
        store.close()


def _open_store(url: str) -> AppStore:
    from sqlalchemy.exc import SQLAlchemyError

    from loopbot.app.store import AppStore

    try:
        return AppStore.open(url)
    except (SQLAlchemyError, ValueError, OSError) as exc:
        first = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        raise LoopbotError(f"LOOPBOT_DATABASE_URL cannot be opened: {first}") from None


def _workers(store: AppStore, settings: AppSettings) -> Workers:
    """The workers and the reconciler; without App credentials they keep deliveries waiting."""
    from loopbot.app.worker import Workers

    return Workers(store, settings, _github_app(settings), n=settings.workers)


def _github_app(settings: AppSettings) -> Any:
    """The App's GitHub clients (loopbot.app.dispatch.GitHubApp), or None without credentials:
    deliveries are still stored and dispatch waits (/readyz says why)."""
    if settings.credentials_missing() is not None or settings.app_id is None or settings.private_key is None:
        return None
    from loopbot.app.dispatch import GitHubApp

    return GitHubApp(settings.app_id, settings.private_key, settings.github_api_url)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        raise LoopbotError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    listener.listen(2048)
    listener.set_inheritable(True)
    return listener
