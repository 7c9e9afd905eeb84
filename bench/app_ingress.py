"""Webhook ingress under load, with a kill -9 of the server mid-load and a restart.

    .venv/bin/python bench/app_ingress.py                 # 200 deliveries/s for 30 s, kill at 12 s
    .venv/bin/python bench/app_ingress.py --rate 50 --seconds 5 --kill-at 2   # a quick look

A real `loopbot serve` subprocess on loopback with SQLite (WAL) in a temporary directory is sent
signed official example payloads (@octokit/webhooks-examples) on an open-loop schedule (each
delivery at its own time, whatever the answers before it), every one with a fresh X-GitHub-Delivery.
At --kill-at seconds the server gets SIGKILL and is started again on the same port; deliveries
sent while it is down fail to connect and count as not acknowledged (GitHub shows them failed).

Then every delivery acknowledged with a 2xx is looked up in the store: it must be there exactly
once. With the backend's workers present (loopbot.app.worker), it also waits for the queue to
drain and checks each acknowledged delivery was processed once (one job, finished). Prints one
JSON object per line: {"figure", "value", "unit", "target"}.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from loopbot.testing.webhooks import headers

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = json.loads((ROOT / "tests" / "contracts" / "app-webhook-examples.json").read_text())["events"]
SECRET = "bench-secret"
BIN = Path(sys.executable).parent


@dataclass
class Sent:
    delivery: str
    at: float  # seconds since the start, when it was sent
    status: int | None = None  # None: no answer (connection refused or reset)
    latency: float | None = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(port: int, database: Path, log: Path) -> subprocess.Popen[str]:
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(database.parent), "LOOPBOT_WEBHOOK_SECRET": SECRET,
           "LOOPBOT_DATABASE_URL": f"sqlite:///{database}"}
    server = subprocess.Popen([str(BIN / "loopbot"), "serve", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=subprocess.PIPE, stderr=log.open("a"), text=True,
                              cwd=database.parent)
    assert server.stdout is not None
    line = server.stdout.readline()
    if "listening on" not in line:
        server.kill()
        raise SystemExit(f"loopbot serve did not start: {line!r}; see {log}")
    # Ready when /healthz answers (bounded).
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.02)
    server.kill()
    raise SystemExit("loopbot serve never answered /healthz")


def payloads() -> list[tuple[str, bytes]]:
    found = []
    for event in ("issue_comment", "issues", "pull_request", "pull_request_review", "workflow_run"):
        found += [(event, json.dumps(p).encode()) for p in EXAMPLES[event]]
    return found


async def load(url: str, rate: float, seconds: float, kill_at: float, restart: Any) -> tuple[list[Sent], float]:
    bodies = payloads()
    total = int(rate * seconds)
    sent: list[Sent] = []
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)
    downtime = 0.0
    async with httpx.AsyncClient(base_url=url, timeout=10, limits=limits) as client:
        start = time.perf_counter()

        async def one(item: Sent, event: str, body: bytes) -> None:
            began = time.perf_counter()
            try:
                answer = await client.post("/webhook", content=body, headers=headers(SECRET, body, event, item.delivery))
            except httpx.TransportError:
                return
            item.status, item.latency = answer.status_code, time.perf_counter() - began

        async def killer() -> None:
            nonlocal downtime
            await asyncio.sleep(kill_at)
            down = time.perf_counter()
            await asyncio.to_thread(restart)
            downtime = time.perf_counter() - down

        tasks = [asyncio.create_task(killer())] if kill_at > 0 else []
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            event, body = bodies[i % len(bodies)]
            item = Sent(f"bench-{i}-{uuid.uuid4()}", time.perf_counter() - start)
            sent.append(item)
            tasks.append(asyncio.create_task(one(item, event, body)))
        await asyncio.gather(*tasks)
    return sent, downtime


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def emit(figure: str, value: Any, unit: str, target: str = "") -> None:
    print(json.dumps({"figure": figure, "value": value, "unit": unit, "target": target}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="deliveries per second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--kill-at", type=float, default=12.0, help="SIGKILL the server this many seconds in (0: never)")
    parser.add_argument("--drain-timeout", type=float, default=120.0, help="how long to wait for workers to drain")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="loopbot-bench-") as tmp:
        database, log = Path(tmp) / "app.db", Path(tmp) / "server.log"
        port = free_port()
        servers = [start_server(port, database, log)]

        def restart() -> None:
            os.kill(servers[-1].pid, signal.SIGKILL)
            servers[-1].wait()
            servers.append(start_server(port, database, log))

        try:
            sent, downtime = asyncio.run(load(f"http://127.0.0.1:{port}", args.rate, args.seconds, args.kill_at, restart))
            report(sent, downtime, database, args)
        finally:
            for server in servers:
                if server.poll() is None:
                    server.send_signal(signal.SIGTERM)
                    try:
                        server.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        server.kill()


def report(sent: list[Sent], downtime: float, database: Path, args: argparse.Namespace) -> None:
    acked = [s for s in sent if s.status is not None and 200 <= s.status < 300]
    refused = [s for s in sent if s.status is not None and s.status >= 300]
    unanswered = [s for s in sent if s.status is None]
    latencies = [s.latency for s in acked if s.latency is not None]
    # Steady state: leave out a second either side of the kill, when connections were being refused.
    steady = [s.latency for s in acked if s.latency is not None
              and not (args.kill_at - 1 <= s.at <= args.kill_at + downtime + 1)]
    emit("ingress_sent", len(sent), "deliveries", f"{args.rate:g}/s for {args.seconds:g} s")
    emit("ingress_achieved_rate", round(len(sent) / args.seconds, 1), "deliveries/s")
    emit("ingress_acknowledged", len(acked), "deliveries")
    emit("ingress_not_acknowledged", len(unanswered), "deliveries", "only while the server was down")
    emit("ingress_refused", len(refused), "deliveries", "0")
    emit("ingress_restart_seconds", round(downtime, 2), "s")
    emit("ingress_ack_p50_ms", round(statistics.median(latencies) * 1000, 2) if latencies else None, "ms")
    emit("ingress_ack_p99_ms", round(percentile(latencies, 0.99) * 1000, 2), "ms", "<= 50")
    emit("ingress_ack_p99_steady_ms", round(percentile(steady, 0.99) * 1000, 2), "ms", "<= 50")
    emit("ingress_ack_max_ms", round(max(latencies) * 1000, 2) if latencies else None, "ms")
    with sqlite3.connect(database) as db:
        counts = dict(db.execute("SELECT delivery_id, COUNT(*) FROM deliveries GROUP BY delivery_id").fetchall())
        jobs = dict(db.execute("SELECT dedupe, COUNT(*) FROM jobs WHERE dedupe LIKE 'delivery:%' "
                               "GROUP BY dedupe").fetchall())
    lost = [s.delivery for s in acked if counts.get(s.delivery, 0) == 0]
    duplicated = [d for d, n in counts.items() if n > 1]
    unacked_kept = sum(1 for s in sent if s not in acked and counts.get(s.delivery, 0) > 0)
    emit("ingress_lost", len(lost), "acknowledged deliveries missing from the store", "0")
    emit("ingress_duplicated", len(duplicated), "deliveries stored more than once", "0")
    emit("ingress_jobs_not_one", sum(1 for s in acked if jobs.get(f"delivery:{s.delivery}", 0) != 1),
         "acknowledged deliveries without exactly one job", "0")
    emit("ingress_kept_unacknowledged", unacked_kept, "deliveries", "committed, answer lost in the kill")
    if importlib.util.find_spec("loopbot.app.worker") is None:
        emit("ingress_processed_once", None, "deliveries", "loopbot.app.worker not present: not measured")
        return
    processed(acked, database, args.drain_timeout)


def processed(acked: list[Sent], database: Path, timeout: float) -> None:
    """With workers: wait for the queue to drain, then one job per acknowledged delivery, finished."""
    deadline = time.monotonic() + timeout
    pending = -1
    while time.monotonic() < deadline:
        with sqlite3.connect(database) as db:
            pending = db.execute("SELECT COUNT(*) FROM jobs WHERE state IN ('pending', 'running')").fetchone()[0]
        if pending == 0:
            break
        time.sleep(0.5)
    with sqlite3.connect(database) as db:
        states = dict(db.execute("SELECT dedupe, state FROM jobs WHERE dedupe LIKE 'delivery:%'").fetchall())
    done = sum(1 for s in acked if states.get(f"delivery:{s.delivery}") in ("done", "dead"))
    emit("ingress_jobs_pending_after_drain", pending, "jobs", "0")
    emit("ingress_processed_once", done, "acknowledged deliveries whose one job finished",
         f"{len(acked)} (every acknowledged one)")


if __name__ == "__main__":
    main()
