"""Fleet simulation of the App: many repositories, a simulated day of events, against a GitHub
stand-in that enforces the documented secondary limits for content creation per installation
(at least 1 s between writes, at most 80 a minute and 500 an hour) and runs at most 500 Actions
jobs at once. The App's real store (SQLite), queue, router, workers' processor, dispatcher and
pacing run on a simulated clock; only GitHub is the stand-in.

    python bench/app_fleet.py                      # 1,000 repositories, 10,000 events, one day
    python bench/app_fleet.py --repos 100 --events 1000   # quicker

Prints one JSON object per line: {"figure", "value", "unit", "target"}.
  fleet_limit_violations      writes GitHub would have refused (spacing, per minute, per hour). Target 0.
  fleet_security_first        1 when no security event waited longer (p95) than routine ones. Target 1.
  fleet_wait_p95_s_<priority> p95 wait from delivery to its dispatch, simulated seconds (GitHub's
                              answers take no simulated time: the wait is the queue and the limits). Reported.
  fleet_wait_max_s_<priority> the longest such wait. Reported.
  fleet_dispatched            events that became a dispatch (all of them should). Reported.
  fleet_actions_peak          most Actions jobs running at once (capped at 500: the rest queue at GitHub).
  fleet_actions_queued        dispatched runs that found all 500 runners busy (GitHub queues them).
  fleet_wall_s                real seconds the simulation took.
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict, deque
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loopbot.app.dispatch import Dispatcher, GitHubApp  # noqa: E402
from loopbot.app.store import AppStore, Delivery  # noqa: E402
from loopbot.app.worker import Processor  # noqa: E402
from loopbot.testing import FakeClock  # noqa: E402
from tests.app.helpers import app_key  # noqa: E402
from tests.github.conftest import ttl_plan_body as _plan_body  # noqa: E402

ttl_plan_body = functools.cache(_plan_body)
DAY = 86_400.0
RUN_SECONDS = 20 * 60.0  # how long a dispatched loop occupies an Actions runner
ACTIONS_SLOTS = 500


class StandIn:
    """GitHub as the App meets it, for many repositories and installations, with the limits."""

    def __init__(self, clock: FakeClock, installation_of: dict[str, int]):
        self.clock = clock
        self.installation_of = installation_of
        self.writes: dict[int, deque[float]] = defaultdict(deque)
        self.last_write: dict[int, float] = {}
        self.violations: list[str] = []
        self.dispatched: dict[str, float] = {}  # delivery -> when GitHub took the dispatch
        self.running: list[float] = []  # end times of Actions jobs
        self.waiting_runs = 0
        self.comments = 0
        self.actions_peak = 0
        self.body = ttl_plan_body()

    def _write(self, installation: int) -> httpx.Response | None:
        now = self.clock.wall()
        window = self.writes[installation]
        while window and window[0] <= now - 3600:
            window.popleft()
        minute = sum(1 for t in window if t > now - 60)
        last = self.last_write.get(installation)
        broke = [why for why, bad in (("spacing", last is not None and now - last < 1.0 - 1e-9),
                                      ("minute", minute >= 80), ("hour", len(window) >= 500)) if bad]
        if broke:
            self.violations.append(f"installation {installation} at {now:.1f}: {', '.join(broke)}")
            return httpx.Response(403, headers={"retry-after": "60"},
                                  json={"message": "You have exceeded a secondary rate limit."})
        window.append(now)
        self.last_write[installation] = now
        return None

    def _actions(self, now: float) -> None:
        self.running = [end for end in self.running if end > now]
        if len(self.running) < ACTIONS_SLOTS:
            self.running.append(now + RUN_SECONDS)
        else:
            self.waiting_runs += 1  # GitHub queues it until a runner frees up
        self.actions_peak = max(self.actions_peak, len(self.running))

    def handle(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        if path.startswith("/app/installations/"):
            expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock.wall() + 3600))
            return httpx.Response(201, json={"token": "ghs_" + path.split("/")[3].rjust(36, "0"),
                                             "expires_at": expires})
        parts = path.strip("/").split("/")
        repo = f"{parts[1]}/{parts[2]}"
        installation = self.installation_of[repo]
        rest = parts[3:]
        if method == "POST":
            refused = self._write(installation)
            if refused is not None:
                return refused
            if rest[:2] == ["actions", "workflows"]:
                self.dispatched[json.loads(request.content)["inputs"]["delivery"]] = self.clock.wall()
                self._actions(self.clock.wall())
                return httpx.Response(204)
            self.comments += 1
            return httpx.Response(201, json={"id": 1, "body": json.loads(request.content)["body"]})
        if rest[:1] == ["collaborators"]:
            login = rest[1]
            if login == "alice":
                return httpx.Response(200, json={"permission": "write", "role_name": "write"})
            return httpx.Response(404, json={"message": "Not a collaborator"})
        if rest == ["commits"]:
            return httpx.Response(404, json={"message": "Not Found"})  # no config, no state yet
        if rest[:1] == ["pulls"]:
            return httpx.Response(200, json=[])
        if rest[:1] == ["issues"] and len(rest) == 2:
            return httpx.Response(200, json={"number": int(rest[1]), "title": "t", "body": self.body,
                                             "labels": [], "state": "open", "user": {"login": "alice"}})
        if rest[:1] == ["issues"] and rest[2:] == ["comments"]:
            return httpx.Response(200, json=[])
        if rest[:2] == ["actions", "runs"]:
            return httpx.Response(200, json={"total_count": 0, "workflow_runs": []})
        return httpx.Response(404, json={"message": f"stand-in has no {method} {path} {parse_qs(request.url.query)}"})


def events(n: int, repos: list[str], rng: random.Random, burst: float) -> list[tuple[float, str, str, dict[str, Any]]]:
    """(time, delivery id, event, payload): labels by writers (5% security, 5% incident) and 10%
    /loop run comments by readers, which get a refusal comment. A `burst` share of them arrives
    within five minutes at 09:00 (a team labelling a campaign's issues at once); the rest spread
    over the day."""
    made = []
    for index in range(n):
        at = 9 * 3600 + rng.random() * 300 if rng.random() < burst else rng.random() * DAY
        repo = rng.choice(repos)
        number = rng.randint(1, 500)
        roll = rng.random()
        issue = {"number": number, "body": ttl_plan_body(), "title": "t", "state": "open",
                 "labels": [{"name": "security"}] if roll < 0.05 else [{"name": "incident"}] if roll < 0.10 else []}
        repository = {"full_name": repo, "default_branch": "main"}
        if roll < 0.90:
            payload = {"action": "labeled", "issue": issue, "label": {"name": "loopbot:run"},
                       "sender": {"login": "alice", "type": "User"}, "repository": repository}
            made.append((at, f"d{index}", "issues", payload))
        else:
            payload = {"action": "created", "issue": issue, "repository": repository,
                       "comment": {"id": index, "body": "/loop run", "user": {"login": f"reader{index}", "type": "User"},
                                   "created_at": "2026-01-01T00:00:00Z"}}
            made.append((at, f"d{index}", "issue_comment", payload))
    return sorted(made, key=lambda item: item[0])


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) >= 2 else (values[0] if values else 0.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repos", type=int, default=1000)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--installations", type=int, default=50)
    parser.add_argument("--burst", type=float, default=0.2)
    args = parser.parse_args(argv)
    rng = random.Random(17)
    repos = [f"org{n % args.installations}/repo{n}" for n in range(args.repos)]
    installation_of = {repo: 1000 + n % args.installations for n, repo in enumerate(repos)}
    started = time.monotonic()
    clock = FakeClock(0.0)
    standin = StandIn(clock, installation_of)
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(dir=base) as tmp:
        store = AppStore.open(f"sqlite:///{tmp}/fleet.db", clock=clock, rng=random.Random(5))
        app = GitHubApp(1, app_key(), transport=httpx.MockTransport(standin.handle), wall=clock.wall)
        # No inline waits: a write that is not due yet requeues its job until its slot.
        processor = Processor(store, app, Dispatcher(store, app, inline_wait=0.0))
        pending = deque(events(args.events, repos, rng, args.burst))
        labelled = {delivery_id for _, delivery_id, event, _ in pending if event == "issues"}
        priority_of: dict[str, str] = {}
        received: dict[str, float] = {}
        while pending or store.next_due() is not None:
            # A millisecond's slack: the clock lands on an arrival only to float precision.
            while pending and pending[0][0] + clock.wall() - clock.now <= clock.wall() + 0.001:
                at, delivery_id, event, payload = pending.popleft()
                installation = installation_of[payload["repository"]["full_name"]]
                store.accept_delivery(Delivery(delivery_id, event, payload["action"], installation,
                                               payload["repository"]["full_name"], json.dumps(payload).encode(),
                                               clock.wall()))
                labels = {label["name"] for label in payload["issue"]["labels"]}
                priority_of[delivery_id] = "security" if "security" in labels else (
                    "incident" if "incident" in labels else "routine")
                received[delivery_id] = clock.wall()
            while processor.run("sim", per_repo=2):
                pass
            due = store.next_due()
            arrival = pending[0][0] + clock.wall() - clock.now if pending else None
            following = min(t for t in (due, arrival) if t is not None) if (due or arrival) else None
            if following is None:
                break
            clock.advance(max(0.001, following - clock.wall()))
        waits: dict[str, list[float]] = defaultdict(list)
        for delivery_id, at in standin.dispatched.items():
            waits[priority_of[delivery_id]].append(at - received[delivery_id])
        dead = len(store.dead_letters())
        store.close()
    asked = sum(1 for delivery_id in priority_of if delivery_id in labelled)
    figures = [("fleet_limit_violations", len(standin.violations), "writes", "0"),
               ("fleet_dispatched", len(standin.dispatched), "events", f"{asked} (every writer's label)"),
               ("fleet_refusals", standin.comments, "comments", "reported"),
               ("fleet_dead_letters", dead, "jobs", "0")]
    for name in ("security", "incident", "routine"):
        figures.append((f"fleet_wait_p95_s_{name}", round(p95(waits[name]), 1), "s", "reported"))
        figures.append((f"fleet_wait_max_s_{name}", round(max(waits[name], default=0.0), 1), "s", "reported"))
    first = p95(waits["security"]) <= p95(waits["routine"])
    figures += [("fleet_security_first", int(first), "bool", "1"),
                ("fleet_actions_peak", standin.actions_peak, "jobs", f"<= {ACTIONS_SLOTS}"),
                ("fleet_actions_queued", standin.waiting_runs, "runs", "reported"),
                ("fleet_wall_s", round(time.monotonic() - started, 1), "s", "reported")]
    for figure, value, unit, target in figures:
        print(json.dumps({"figure": figure, "value": value, "unit": unit, "target": target}))
    for violation in standin.violations[:5]:
        print(violation, file=sys.stderr)
    return 0 if not standin.violations and first else 1


if __name__ == "__main__":
    raise SystemExit(main())
