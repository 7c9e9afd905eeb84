"""The App's workers: asyncio tasks that claim jobs from the store and carry them out, the database
and GitHub calls in a thread each. A delivery becomes an intent through the same pure router the
Action uses (`loopbot.core.route.route`), with facts from GitHub; a loop command (run, resume,
retry, stop) is dispatched to the repository's loopbot workflow, a status or a refusal is a
comment. Installation and workflow_run events feed the registry; the reconciler runs on a schedule.

Failures: GitHub's "wait" requeues the job without counting an attempt; a refusal that retrying
cannot fix dead-letters it at once (and says so on the issue); anything else is retried with
backoff and dead-lettered after queue.MAX_ATTEMPTS."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from loopbot.app import registry
from loopbot.app.dashboard import DashboardWriter
from loopbot.app.dispatch import Dispatcher, DispatchRefused, GitHubApp, WaitFor, call
from loopbot.app.facts import AppFacts, BranchReader, config_of, registry_status, state_branch
from loopbot.app.queue import Claimed
from loopbot.app.reconcile import ReconcilePolicy, reconcile
from loopbot.app.registry import Liveness, Observed
from loopbot.app.settings import AppSettings
from loopbot.app.store import AppStore
from loopbot.core.route import MARK, Intent, Repo, route
from loopbot.errors import InputError, LoopbotError
from loopbot.forge.github.forge import html_base

log = logging.getLogger("loopbot.app.worker")

ROUTED_EVENTS = frozenset({"issues", "issue_comment", "pull_request_review"})
LOOP_COMMANDS = frozenset({"run", "resume", "retry"})
NO_CREDENTIALS_RETRY_SECONDS = 60.0
IDLE_POLL_SECONDS = 1.0
RETENTION_SECONDS = 14 * 86_400.0  # deliveries and finished jobs kept for the status page and replays


class NoCredentials(LoopbotError):
    """The App has no id or key: the job waits (the delivery is kept; /readyz says why)."""


def github_factory(settings: AppSettings) -> GitHubApp | None:
    """The App's GitHub side from its settings; None without App credentials."""
    if settings.app_id is None or not settings.private_key:
        return None
    return GitHubApp(settings.app_id, settings.private_key, settings.github_api_url)


def _obj(payload: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = payload.get(key)
    return value if isinstance(value, Mapping) else {}


def approved_digest(body: str) -> str:
    """The `approved` input: which issue body a writer approved (the workflow compares it)."""
    return hashlib.sha256(body.strip().encode()).hexdigest()


@dataclass
class Processor:
    """Carries out one claimed job (synchronous: run in a thread)."""

    store: AppStore
    app: GitHubApp | None
    dispatcher: Dispatcher | None
    # Told the seconds from a delivery to the workflow dispatch it became (the app's /metrics).
    on_dispatch: Callable[[float], None] | None = None

    # -- one job ----------------------------------------------------------------------------------
    def run(self, worker: str, per_repo: int) -> bool:
        """Claim and carry out one job; False when none is due."""
        job = self.store.claim(worker, per_repo=per_repo)
        if job is None:
            return False
        delivery_id = str(job.payload.get("delivery_id") or "")
        try:
            self.handle(job)
        except WaitFor as exc:
            self.store.release(job.id, worker, self.store.now() + exc.seconds)
        except NoCredentials:
            self.store.release(job.id, worker, self.store.now() + NO_CREDENTIALS_RETRY_SECONDS)
        except DispatchRefused as exc:
            self.store.fail(job.id, worker, str(exc), max_attempts=job.attempts)  # retrying cannot fix it
            if delivery_id:
                self.store.set_outcome(delivery_id, "dead", str(exc))
            self._say_refused(job, str(exc))
        except Exception as exc:  # a worker never dies of one job: it is retried, then dead-lettered
            state = self.store.fail(job.id, worker, f"{type(exc).__name__}: {exc}")
            log.warning("job %s failed (%s): %s", job.id, state, exc,
                        extra={"delivery": delivery_id, "job": job.id, "repo": job.repo})
            if state == "dead" and delivery_id:
                self.store.set_outcome(delivery_id, "dead", str(exc))
        else:
            self.store.finish(job.id, worker)
            log.info("job %s done", job.id, extra={"delivery": delivery_id, "job": job.id, "repo": job.repo})
        return True

    def handle(self, job: Claimed) -> None:
        if job.kind == "delivery":
            self._delivery(str(job.payload["delivery_id"]))
        elif job.kind == "command":
            self._command(job)
        elif job.kind == "dashboard":
            self._dashboard(job)
        elif job.kind == "comment":
            self._comment(job.installation_id, job.repo, int(job.payload["issue"]), str(job.payload["key"]),
                          str(job.payload["body"]))
        else:
            raise LoopbotError(f"unknown job kind {job.kind!r}")

    def _github(self) -> tuple[GitHubApp, Dispatcher]:
        if self.app is None or self.dispatcher is None:
            raise NoCredentials("App credentials missing")
        return self.app, self.dispatcher

    # -- deliveries -------------------------------------------------------------------------------
    def _delivery(self, delivery_id: str) -> None:
        found = self.store.delivery(delivery_id)
        if found is None:
            return  # pruned meanwhile
        delivery, _ = found
        try:
            payload = json.loads(delivery.body)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            self.store.set_outcome(delivery_id, "failed", "the payload is not a JSON object")
            return
        event = delivery.event
        installation = delivery.installation_id or _obj(payload, "installation").get("id")
        if event == "installation":
            outcome = self._installation(payload)
        elif event == "installation_repositories":
            outcome = self._installation_repositories(payload)
        elif event == "workflow_run":
            outcome = self._workflow_run(payload, installation if isinstance(installation, int) else None)
        elif event in ROUTED_EVENTS and isinstance(installation, int):
            outcome = self._route(delivery_id, event, payload, installation)
        else:
            outcome = ("ignored", f"nothing to do for {event}" + (f".{delivery.action}" if delivery.action else ""))
        self.store.set_outcome(delivery_id, *outcome)

    def _installation(self, payload: Mapping[str, Any]) -> tuple[str, str]:
        installation, action = _obj(payload, "installation"), str(payload.get("action") or "")
        number, account = installation.get("id"), str(_obj(installation, "account").get("login") or "")
        if not isinstance(number, int):
            return "ignored", "an installation event with no installation id"
        if action == "deleted":
            registry.installation(self.store, number, account, deleted=True)
        elif action in ("suspend", "unsuspend"):
            registry.installation(self.store, number, account, suspended=action == "suspend")
        else:  # created, new_permissions_accepted
            registry.installation(self.store, number, account, suspended=bool(installation.get("suspended_at")))
            names = [str(r["full_name"]) for r in payload.get("repositories") or () if isinstance(r, Mapping)]
            registry.add_repositories(self.store, number, names)
        return "routed", f"installation {number} {action}"

    def _installation_repositories(self, payload: Mapping[str, Any]) -> tuple[str, str]:
        number = _obj(payload, "installation").get("id")
        if not isinstance(number, int):
            return "ignored", "no installation id"
        account = str(_obj(_obj(payload, "installation"), "account").get("login") or "")
        registry.installation(self.store, number, account)

        def names(key: str) -> list[str]:
            return [str(r["full_name"]) for r in payload.get(key) or () if isinstance(r, Mapping)]

        added, removed = names("repositories_added"), names("repositories_removed")
        registry.add_repositories(self.store, number, added)
        registry.remove_repositories(self.store, number, removed)
        return "routed", f"{len(added)} repositories added, {len(removed)} removed"

    def _workflow_run(self, payload: Mapping[str, Any], installation: int | None) -> tuple[str, str]:
        run = _obj(payload, "workflow_run")
        repo = str(_obj(payload, "repository").get("full_name") or "")
        mine = registry.dispatched_title(str(run.get("display_title") or ""))
        run_id = run.get("id")
        if mine is None or not repo or not isinstance(run_id, int):
            return "ignored", "not a run the App dispatched"
        _, issue, _ = mine
        completed = payload.get("action") == "completed"
        conclusion = run.get("conclusion")
        registry.workflow_run(self.store, repo, issue, run_id, completed=completed,
                              conclusion=str(conclusion) if conclusion else None, installation_id=installation)
        return "routed", f"run {run_id} of #{issue} {payload.get('action')}"

    def _route(self, delivery_id: str, event: str, payload: Mapping[str, Any], installation: int) -> tuple[str, str]:
        repository = _obj(payload, "repository")
        repo = str(repository.get("full_name") or "")
        if "/" not in repo:
            return "ignored", "no repository"
        if not registry.is_active(self.store, installation):
            raise WaitFor(NO_CREDENTIALS_RETRY_SECONDS, "the installation is suspended")
        app, dispatcher = self._github()
        branch = str(repository.get("default_branch") or "main")
        forge = app.forge(installation, repo)
        facts = AppFacts(forge, BranchReader(app.client(installation, repo), repo))
        try:
            config = config_of(facts.reader, branch)
        except InputError as exc:
            return "failed", f"the repository's config is not valid: {exc}"
        forge.labels = config.labels
        now = datetime.fromtimestamp(self.store.now(), UTC)
        intent = route(event, payload, config, facts, Repo(repo, branch), now=now)
        return self._carry_out(intent, delivery_id, repo, branch, installation, facts, dispatcher)

    def _carry_out(self, intent: Intent, key: str, repo: str, branch: str, installation: int, facts: AppFacts,
                   dispatcher: Dispatcher) -> tuple[str, str]:
        if intent.kind in (*LOOP_COMMANDS, "stop"):
            assert intent.plan is not None
            where = intent.where or intent.plan
            command = intent.why if intent.why in LOOP_COMMANDS else intent.kind
            # The body the router checked against the writer's approval: the workflow runs no other.
            approved = approved_digest(facts.issue_body(intent.plan)) if intent.kind in LOOP_COMMANDS else ""
            sent = dispatcher.dispatch(installation, repo, where, command, key, branch, approved=approved)
            self._timed(key, sent)
            if intent.kind in LOOP_COMMANDS:
                registry.dispatched(self.store, repo, intent.plan, installation, command, ref=branch)
            return "routed", f"{command} dispatched for #{intent.plan}" + ("" if sent else " (sent before)")
        if intent.kind == "status":
            assert intent.plan is not None and intent.where is not None
            held = facts.state(intent.plan)
            if held is not None:
                registry.observed(self.store, repo, intent.plan, _observed(*held), installation)
            from loopbot.report import render_report

            text = render_report(held[0]) if held is not None else "No loop has run for this issue yet."
            self._comment(installation, repo, intent.where, f"comment:{key}", f"{MARK}\n{text}", facts)
            return "routed", "status"
        if intent.why == "permission_unknown":
            # Never read as "no access": GitHub could not say; the job is retried.
            raise LoopbotError("; ".join(facts.problems) or f"could not look up @{intent.actor}'s permission")
        if intent.reply is not None and intent.where is not None:
            self._comment(installation, repo, intent.where, f"comment:{key}", intent.reply, facts)
        outcome = "refused" if intent.kind in ("refuse", "limited") else "ignored" if intent.kind in (
            "ignore", "audit", "docs") else "routed"
        return outcome, f"{intent.kind}: {intent.why}" if intent.why else intent.kind

    def _timed(self, delivery_id: str, sent: bool) -> None:
        found = self.store.delivery(delivery_id) if sent and self.on_dispatch is not None else None
        if found is not None and self.on_dispatch is not None:
            self.on_dispatch(max(0.0, self.store.now() - found[0].received_at))

    def _dashboard(self, job: Claimed) -> None:
        """The repository's dashboard issue, rendered from the registry as it is now (paced)."""
        app, dispatcher = self._github()
        if job.installation_id is None:
            raise LoopbotError(f"no installation is known for {job.repo}")
        installation = job.installation_id
        owner, name = job.repo.split("/", 1)
        now = self.store.now
        writer = DashboardWriter(app.client(installation, job.repo), owner, name, self_login=app.bot_login(),
                                 server_url=html_base(app.api_url),
                                 send=lambda request: dispatcher.write(installation, lambda: call(request, now=now)))
        call(lambda: writer.publish(self.store.loops(repo=job.repo)), now=now)

    # -- jobs of the API and the reconciler --------------------------------------------------------
    def _command(self, job: Claimed) -> None:
        _, dispatcher = self._github()
        issue, command = int(job.payload["issue"]), str(job.payload["command"])
        known = registry.plan_loop(self.store, job.repo, issue)
        installation = job.installation_id or (known[0] if known else None) or registry.installation_of(
            self.store, job.repo)
        if installation is None:
            raise LoopbotError(f"no installation is known for {job.repo}")
        ref = (known[1] if known else "") or "main"
        dispatcher.dispatch(installation, job.repo, issue, command, f"job:{job.id}", ref)
        if command in LOOP_COMMANDS:
            registry.dispatched(self.store, job.repo, issue, installation, command, ref=ref,
                                automatic=job.payload.get("source") == "reconciler")

    def _comment(self, installation: int | None, repo: str, issue: int, key: str, body: str,
                 facts: AppFacts | None = None) -> None:
        """A comment, once per key (a retried job does not say it twice)."""
        app, dispatcher = self._github()
        if installation is None:
            raise LoopbotError(f"no installation is known for {repo}")
        if self.store.begin_dispatch(repo, issue, key, "comment") == "sent":
            return
        forge = facts.forge if facts is not None else app.forge(installation, repo)
        dispatcher.comment(installation, forge, issue, body)
        self.store.dispatch_sent(repo, issue, key)

    def _say_refused(self, job: Claimed, why: str) -> None:
        """A dispatch GitHub refused for good: the plan issue hears why (best effort)."""
        issue = job.payload.get("issue") or (int(job.key.rpartition("#")[2]) if job.key else None)
        if not isinstance(issue, int) or not job.repo:
            return
        with contextlib.suppress(Exception):
            self._comment(job.installation_id, job.repo, issue, f"refused:{job.id}",
                          f"{MARK}\nloopbot could not start the loop: {why}")

    # -- the reconciler's eyes ----------------------------------------------------------------------
    def observe(self, live: Liveness) -> Observed | None:
        """The loop's state as its state branch holds it; None when it cannot be read now."""
        if self.app is None or live.installation_id is None:
            return None
        repo = live.loop.repo
        try:
            facts = AppFacts(self.app.forge(live.installation_id, repo),
                             BranchReader(self.app.client(live.installation_id, repo), repo))
            held = facts.state(live.loop.issue)
        except LoopbotError as exc:
            log.warning("could not read %s of %s: %s", state_branch(live.loop.issue), repo, exc)
            return None
        return _observed(*held) if held is not None else None


def _observed(state: Any, committed_at: float) -> Observed:
    return Observed(state.run_id, registry_status(state), committed_at, state.spend.cost_usd, state.state_label)


class Workers:
    """`n` workers and the reconciler, started and drained by the web app's lifespan."""

    def __init__(self, store: AppStore, settings: AppSettings, github: GitHubApp | None, n: int = 2, *,
                 reconcile_policy: ReconcilePolicy | None = None, sleep: Callable[[float], None] = time.sleep,
                 poll_seconds: float = IDLE_POLL_SECONDS):
        self.store, self.settings, self.n = store, settings, n
        dispatcher = Dispatcher(store, github, sleep=sleep) if github is not None else None
        self.processor = Processor(store, github, dispatcher)
        self.policy = reconcile_policy or ReconcilePolicy()
        self.poll_seconds = poll_seconds
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._stopping.clear()
        self._tasks = [asyncio.create_task(self._work(f"{self.name}:{i}")) for i in range(self.n)]
        self._tasks.append(asyncio.create_task(self._reconcile()))

    def wake(self) -> None:
        """A job was queued: look now instead of at the next poll."""
        self._wake.set()

    async def run_until_idle(self, worker: str = "inline") -> int:
        """Carry out due jobs until none is left (tests, and the fleet simulation); how many ran."""
        done = 0
        while await asyncio.to_thread(self.processor.run, worker, self.settings.per_repo_concurrency):
            done += 1
        return done

    async def reconcile_once(self) -> None:
        await asyncio.to_thread(reconcile, self.store, self.policy, self.processor.observe)
        await asyncio.to_thread(self.store.prune, self.store.now() - RETENTION_SECONDS)

    async def _work(self, name: str) -> None:
        while not self._stopping.is_set():
            try:
                ran = await asyncio.to_thread(self.processor.run, name, self.settings.per_repo_concurrency)
            except Exception as exc:  # the database is down: say so and try again shortly
                log.error("worker %s: %s", name, exc)
                ran = False
            if not ran:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._first(self._wake, self._stopping), self.poll_seconds)

    async def _reconcile(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.settings.reconcile_interval_s)
            if self._stopping.is_set():
                return
            try:
                await self.reconcile_once()
            except Exception as exc:
                log.error("reconciler: %s", exc)

    @staticmethod
    async def _first(*events: asyncio.Event) -> None:
        waits = [asyncio.create_task(event.wait()) for event in events]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    async def stop(self, drain_seconds: float = 10) -> None:
        """No new jobs; the ones in hand get `drain_seconds` to finish (a job cut off is claimed
        again when its lease runs out)."""
        self._stopping.set()
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=drain_seconds)
        for task in pending:
            task.cancel()
        self._tasks = []
