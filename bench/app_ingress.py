"""Webhook ingress under load, with a kill -9 of the server mid-load and a restart.

    .venv/bin/python bench/app_ingress.py                 # 200 deliveries/s for 30 s, kill at 12 s
    .venv/bin/python bench/app_ingress.py --rate 50 --seconds 5 --kill-at 2   # a quick look

A real `loopbot serve` subprocess on loopback with SQLite (WAL) in a temporary directory is sent
signed official example payloads (@octokit/webhooks-examples) on an open-loop schedule (each
delivery at its own time, whatever the answers before it), every one with a fresh X-GitHub-Delivery.
At --kill-at seconds the server gets SIGKILL and is started again on the same port; deliveries
sent while it is down fail to connect and count as not acknowledged (GitHub shows them failed).
With --split (the default) the App runs as it should under load: `loopbot serve --workers 0` takes
the webhooks and a `loopbot worker` beside it dispatches, on the same database; the kill takes both
(a node dying) and both are started again. --no-split runs one `loopbot serve` doing both.

Then every delivery acknowledged with a 2xx is looked up in the store: it must be there exactly
once. Prints one JSON object per line: {"figure", "value", "unit", "target"}.

With --process (the default) the served App also has App credentials (a fresh RSA key) and a GitHub:
the contract-checked FakeGitHub over loopback HTTP (loopbot.testing.fake_github_server), given by
GITHUB_API_URL. Every payload names the stand-in's repository and one of its installations, and
every --dispatch-every'th delivery is a writer's `/loop run` comment or `loopbot:run` label on a plan
issue of its own, which the workers turn into a workflow_dispatch. After the load, the kill and the
restart it waits for the queue to drain and counts, of the acknowledged deliveries: processed (an
outcome other than queued), lost (still queued, or missing), and of the dispatching ones how many
workflow_dispatch requests the stand-in received for each (1 expected; 2 or more is "twice").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
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
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from loopbot.examples import KVSTORE
from loopbot.plans import Plan, render
from loopbot.testing.fake_github import FakeGitHub
from loopbot.testing.fake_github_server import FakeGitHubServer
from loopbot.testing.scripted import load_script
from loopbot.testing.webhooks import headers

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = json.loads((ROOT / "tests" / "contracts" / "app-webhook-examples.json").read_text())["events"]
SECRET = "bench-secret"
BIN = Path(sys.executable).parent
CONTRACT = ROOT / "tests" / "contracts" / "github-openapi.trimmed.json"
REPO = {"full_name": "acme/kvstore", "name": "kvstore", "owner": {"login": "acme"}, "default_branch": "main"}
WRITER = {"login": "alice", "type": "User", "id": 1}
# The stand-in's installations: pacing is per installation, so dispatches spread over several.
INSTALLATIONS = list(range(4201, 4221))


@dataclass
class Sent:
    delivery: str
    at: float  # seconds since the start, when it was sent
    status: int | None = None  # None: no answer (connection refused or reset)
    latency: float | None = None  # from its due time to the answer
    lag: float | None = None  # how late the generator sent it
    dispatching: bool = False  # a writer's command on a plan issue: one workflow_dispatch expected


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(port: int, database: Path, log: Path, github: dict[str, str] | None = None,
                 command: tuple[str, ...] = ("serve",)) -> subprocess.Popen[str]:
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(database.parent), "LOOPBOT_WEBHOOK_SECRET": SECRET,
           "LOOPBOT_DATABASE_URL": f"sqlite:///{database}", **(github or {})}
    server = subprocess.Popen([str(BIN / "loopbot"), *command, "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=subprocess.PIPE, stderr=log.open("a"), text=True,
                              cwd=database.parent)
    assert server.stdout is not None
    line = server.stdout.readline()
    if "listening on" not in line:
        server.kill()
        raise SystemExit(f"loopbot {command[0]} did not start: {line!r}; see {log}")
    # Ready when /healthz answers (bounded).
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.02)
    server.kill()
    raise SystemExit(f"loopbot {command[0]} never answered /healthz")


class Fleet:
    """The App as processes: one `loopbot serve`, or with --split a `loopbot serve --workers 0` for
    ingress and a `loopbot worker` beside it on the same database. `kill` is a node dying: SIGKILL to
    every process, then all started again (ingress first, on the same port)."""

    def __init__(self, port: int, database: Path, log: Path, github: dict[str, str], split: bool):
        self.port, self.database, self.log, self.github, self.split = port, database, log, github, split
        self.worker_port = free_port()
        self.running: list[subprocess.Popen[str]] = []
        self.everything: list[subprocess.Popen[str]] = []
        self.start()

    def start(self) -> None:
        if self.split:
            self.running = [start_server(self.port, self.database, self.log, self.github, ("serve", "--workers", "0")),
                            start_server(self.worker_port, self.database, self.log, self.github, ("worker",))]
        else:
            self.running = [start_server(self.port, self.database, self.log, self.github)]
        self.everything += self.running

    def kill(self) -> None:
        for process in self.running:
            os.kill(process.pid, signal.SIGKILL)
        for process in self.running:
            process.wait()
        self.start()

    def stop(self) -> None:
        for process in self.everything:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.everything:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def payloads(process: bool) -> list[tuple[str, bytes]]:
    found = []
    for event in ("issue_comment", "issues", "pull_request", "pull_request_review", "workflow_run"):
        for i, example in enumerate(EXAMPLES[event]):
            if process:  # the stand-in's repository and installations, so the workers get answers
                example = {**example, "repository": {**example.get("repository", {}), **REPO},
                           "installation": {"id": INSTALLATIONS[i % len(INSTALLATIONS)]}}
            found.append((event, json.dumps(example).encode()))
    return found


def app_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def plan_body() -> str:
    script = load_script(KVSTORE / "script.yaml")
    return render(Plan.model_validate(script.auditor[0].turns[1].tools[0]["propose_plan"]))


def stand_in_process(plans: int, conn: Any) -> None:
    """The GitHub stand-in, in a process of its own (so its work does not hold up the load's
    schedule): `plans` plan issues (#1 onwards), then its URL sent; on "report", what it saw."""
    fake = FakeGitHub(CONTRACT, permissions={"alice": "write"})
    fake.installation_ids = set(INSTALLATIONS)
    fake.add_workflow("loopbot-run.yml", {"issue": True, "command": True, "delivery": False, "approved": False},
                      run_name="loopbot {command} #{issue} [{delivery}]")
    body = plan_body()
    for _ in range(plans):
        fake.add_issue("TTL", body)
    with FakeGitHubServer(fake) as server:
        conn.send(server.url)
        conn.recv()
        with server.lock:
            conn.send({"runs": [str((run.get("inputs") or {}).get("delivery")) for run in fake.workflow_runs],
                       "violations": list(fake.violations), "errors": list(server.errors)})


class Planner:
    """A writer's command on plan issue #1, #2, ... in turn (the stand-in made them)."""

    def __init__(self) -> None:
        self.body, self.n = plan_body(), 0

    def __call__(self) -> tuple[str, bytes]:
        self.n += 1
        number = self.n
        issue = {"number": number, "title": "TTL", "body": self.body, "state": "open", "labels": [],
                 "user": WRITER}
        common = {"repository": REPO, "installation": {"id": INSTALLATIONS[self.n % len(INSTALLATIONS)]},
                  "sender": WRITER, "issue": issue}
        if self.n % 2:
            payload = {**EXAMPLES["issue_comment"][0], **common, "action": "created",
                       "comment": {**EXAMPLES["issue_comment"][0]["comment"], "id": 10_000 + number,
                                   "body": "/loop run", "user": WRITER}}
            return "issue_comment", json.dumps(payload).encode()
        labeled = next(p for p in EXAMPLES["issues"] if p.get("action") == "labeled")
        payload = {**labeled, **common, "label": {**labeled["label"], "name": "loopbot:run"}}
        return "issues", json.dumps(payload).encode()


async def load(url: str, rate: float, seconds: float, kill_at: float, restart: Any,
               planner: Planner | None = None, dispatch_every: int = 0) -> tuple[list[Sent], float]:
    bodies = payloads(planner is not None)
    total = int(rate * seconds)
    sent: list[Sent] = []
    downtime = 0.0
    # aiohttp, not httpx, sends the load: httpx's pool grew CPU-bound under a few hundred
    # concurrent requests (4.6 to 19 s of CPU for the same 2,000), so the generator, not the App,
    # set the tail. Latency is from each delivery's due time (no coordinated omission); the
    # generator's own lag is reported beside it.
    connector = aiohttp.TCPConnector(limit=200, force_close=False)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(base_url=url, connector=connector, timeout=timeout) as client:
        start = time.perf_counter()

        async def one(item: Sent, event: str, body: bytes, due: float) -> None:
            item.lag = time.perf_counter() - due
            try:
                async with client.post("/webhook", data=body,
                                       headers=headers(SECRET, body, event, item.delivery)) as answer:
                    await answer.read()
                    item.status = answer.status
            except (aiohttp.ClientError, TimeoutError):
                return
            item.latency = time.perf_counter() - due

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
            dispatching = planner is not None and dispatch_every > 0 and i % dispatch_every == 0
            event, body = planner() if planner is not None and dispatching else bodies[i % len(bodies)]
            item = Sent(f"bench-{i}-{uuid.uuid4()}", time.perf_counter() - start, dispatching=dispatching)
            sent.append(item)
            tasks.append(asyncio.create_task(one(item, event, body, due)))
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
    parser.add_argument("--process", action=argparse.BooleanOptionalAction, default=True,
                        help="give the App credentials and a GitHub stand-in, and check each delivery is processed once")
    parser.add_argument("--dispatch-every", type=int, default=20,
                        help="with --process, every n-th delivery is a writer's command on a plan issue")
    parser.add_argument("--split", action=argparse.BooleanOptionalAction, default=True,
                        help="ingress (`loopbot serve --workers 0`) and a `loopbot worker` as separate processes")
    parser.add_argument("--drain-timeout", type=float, default=600.0, help="how long to wait for workers to drain")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="loopbot-bench-") as tmp, contextlib.ExitStack() as stack:
        database, log = Path(tmp) / "app.db", Path(tmp) / "server.log"
        port = free_port()
        github: dict[str, str] = {}
        stand_in: multiprocessing.Process | None = None
        github_conn: Any = None
        planner: Planner | None = None
        if args.process:
            plans = -(-int(args.rate * args.seconds) // max(args.dispatch_every, 1)) if args.dispatch_every else 0
            github_conn, child = multiprocessing.Pipe()
            stand_in = multiprocessing.Process(target=stand_in_process, args=(plans, child), daemon=True)
            stand_in.start()
            stack.callback(stand_in.terminate)
            planner = Planner()
            github = {"GITHUB_API_URL": github_conn.recv(), "LOOPBOT_APP_ID": "12345", "LOOPBOT_APP_PRIVATE_KEY": app_key(),
                      "LOOPBOT_APP_REPO_CONCURRENCY": "2"}
        fleet = Fleet(port, database, log, github, args.split)
        try:
            sent, downtime = asyncio.run(load(f"http://127.0.0.1:{port}", args.rate, args.seconds, args.kill_at,
                                              fleet.kill, planner, args.dispatch_every))
            report(sent, downtime, database, args)
            if stand_in is None:
                emit("ingress_processed_once", None, "deliveries", "--no-process: not measured")
            else:
                processed(sent, database, args.drain_timeout, github_conn)
        finally:
            fleet.stop()
            logged_errors(log)


def logged_errors(log: Path) -> None:
    """The App's own error lines (JSON logs), counted by message: what went wrong inside it."""
    errors: Counter[str] = Counter()
    for line in log.read_text().splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict) and entry.get("level") == "error":
                errors[str(entry.get("msg"))[:200]] += 1
    emit("app_error_lines", sum(errors.values()), "error lines in the App's logs", "0")
    for message, n in errors.most_common(5):
        print(f"# {n} x {message}", file=sys.stderr)


def acknowledged(sent: list[Sent]) -> list[Sent]:
    return [s for s in sent if s.status is not None and 200 <= s.status < 300]


def report(sent: list[Sent], downtime: float, database: Path, args: argparse.Namespace) -> None:
    acked = acknowledged(sent)
    refused = [s for s in sent if s.status is not None and s.status >= 300]
    unanswered = [s for s in sent if s.status is None]
    latencies = [s.latency for s in acked if s.latency is not None]
    # Steady state: leave out a second either side of the kill, when connections were being refused.
    steady = [s.latency for s in acked if s.latency is not None
              and not (args.kill_at - 1 <= s.at <= args.kill_at + downtime + 1)]
    emit("ingress_processes", "serve --workers 0 + worker" if args.split else "serve", "layout")
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
    lags = [s.lag for s in sent if s.lag is not None]
    emit("generator_lag_p99_ms", round(percentile(lags, 0.99) * 1000, 2), "ms", "small: the load went out on time")
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


def processed(sent: list[Sent], database: Path, timeout: float, github_conn: Any) -> None:
    """Wait for the queue to drain, then: every acknowledged delivery has an outcome, and each
    dispatching one reached GitHub as exactly one workflow_dispatch."""
    acked = acknowledged(sent)
    began = time.monotonic()
    pending = -1
    while time.monotonic() - began < timeout:
        with sqlite3.connect(database) as db:
            pending = db.execute("SELECT COUNT(*) FROM jobs WHERE state IN ('pending', 'running') "
                                 "AND kind != 'dashboard'").fetchone()[0]
        if pending == 0:
            break
        time.sleep(0.5)
    drained = time.monotonic() - began
    with sqlite3.connect(database) as db:
        outcomes = dict(db.execute("SELECT delivery_id, outcome FROM deliveries").fetchall())
        waiting = db.execute("SELECT kind, state, last_error, COUNT(*) FROM jobs WHERE state != 'done' "
                             "GROUP BY kind, state, last_error ORDER BY 4 DESC LIMIT 5").fetchall()
        dispatch_rows = dict(db.execute("SELECT key, COUNT(*) FROM dispatches GROUP BY key").fetchall())
    github_conn.send("report")
    seen = github_conn.recv()
    runs = Counter(seen["runs"])
    violations, errors = seen["violations"], seen["errors"]
    done = [s for s in acked if outcomes.get(s.delivery, "queued") != "queued"]
    by_outcome = Counter(outcomes.get(s.delivery, "missing") for s in acked)
    dispatching = [s for s in acked if s.dispatching]
    emit("process_drain_seconds", round(drained, 1), "s after the load", "queue empty")
    emit("process_jobs_pending_after_drain", pending, "jobs (dashboard renders aside)", "0")
    emit("process_processed", len(done), "acknowledged deliveries with an outcome other than queued",
         f"{len(acked)} (every acknowledged one)")
    emit("process_lost", len(acked) - len(done), "acknowledged deliveries never processed", "0")
    emit("process_outcomes", dict(sorted(by_outcome.items())), "acknowledged deliveries by outcome")
    emit("process_dispatching_acknowledged", len(dispatching), "acknowledged writer commands on plan issues")
    emit("process_dispatched_once", sum(1 for s in dispatching if runs[s.delivery] == 1),
         "of them with exactly one workflow_dispatch at the stand-in", f"{len(dispatching)}")
    emit("process_dispatched_twice", sum(1 for n in runs.values() if n > 1),
         "deliveries with 2+ workflow_dispatch requests at the stand-in", "0")
    emit("process_dispatch_records_twice", sum(1 for n in dispatch_rows.values() if n > 1),
         "dispatch keys recorded more than once in the store", "0")
    emit("process_not_dispatched", sum(1 for s in dispatching if runs[s.delivery] == 0),
         "acknowledged writer commands with no workflow_dispatch", "0")
    emit("process_github_violations", len(violations) + len(errors),
         "requests outside GitHub's description or the allow-list, or failing the stand-in", "0")
    for kind, state, error, n in waiting:
        print(f"# {n} {kind} jobs {state}: {error}", file=sys.stderr)
    for problem in (violations + errors)[:5]:
        print(f"# {problem}", file=sys.stderr)


if __name__ == "__main__":
    main()
