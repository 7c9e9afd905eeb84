"""The inbound router: what a GitHub event asks of loopbot, decided from the event's payload, the
trusted config and facts about the repository. Pure: the router does no I/O itself; it asks a
`Facts` for what it needs (the composition root answers from GitHub and git, tests from tables).

Authority, in one place:
- only writers (write, maintain, admin) and the bots `bots:` names steer a loop: their commands run
  and their `/loop context` counts; loopbot's own comments are never commands or context;
- a permission that could not be read is an error that says so, never "no access";
- the goal that runs is the body a writer approved (the labeled event's, or the issue's at the
  writer's `/loop run`), constrained by the config; a later edit asks for a fresh approval;
- a loop PR (a `loop/<issue>-…` branch of this repository, open) maps to its plan issue by its
  branch, never by its text; `/loop` on any other PR gets a reply saying loops run from plan issues;
- a box ticked on the App's dashboard issue (core/dashboard.py) is the `/loop` command it names,
  from the person who edited the issue, with the same check; it never approves a goal: resume and
  retry go on only with the goal a writer approved for that loop.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from loopbot.config import Config
from loopbot.core import commands, dashboard
from loopbot.core.github_goal import constrain
from loopbot.errors import InputError
from loopbot.goal import Goal
from loopbot.plans import goal_from_markdown

Kind = Literal["run", "resume", "stop", "status", "retry", "context", "refuse", "audit", "docs", "ignore",
               "limited"]
Mode = Literal["auto", "audit", "docs", "run"]
ActorKind = Literal["writer", "reader", "bot", "listed_bot", "self", "unknown"]

WRITERS = frozenset({"admin", "maintain", "write"})
UNKNOWN = "unknown"  # what Facts.permission answers when GitHub could not say
SELF_LOGINS = frozenset({"github-actions[bot]"})
MARK = "<!-- loopbot:reply -->"
_OWN = "<!-- loopbot:"
_LOOP_BRANCH = re.compile(r"^loop/(\d+)-[a-z0-9._-]+$")
_ZERO_SHA = re.compile(r"^0+$")


@dataclass(frozen=True)
class LoopPr:
    """An open pull request from a loop branch of this repository."""

    number: int
    branch: str
    created_at: str = ""

    @property
    def plan(self) -> int | None:
        return plan_of_branch(self.branch)


@dataclass(frozen=True)
class LatestRun:
    """The newest run recorded on a plan issue's state branch."""

    run_id: str
    finished: bool
    success: bool
    approved: str  # approval_key of the goal it ran
    trigger: str | None = None  # the event that started it (see trigger_of)
    reopenable: bool = False  # finished by a budget, stagnation or the andon: `/loop resume` continues it
    published: bool = True  # its final outcome is shown on GitHub (False: the runner died first)


class Facts(Protocol):
    def permission(self, login: str) -> str:
        """The user's repository permission (admin, maintain, write, triage, read, none) or UNKNOWN."""

    def loop_prs(self) -> Sequence[LoopPr]: ...

    def issue_body(self, number: int) -> str: ...

    def comments(self, number: int) -> Sequence[Mapping[str, Any]]: ...

    def latest(self, plan: int) -> LatestRun | None: ...


@dataclass(frozen=True)
class StaticFacts:
    """Facts from tables: for tests, and for replaying a recorded decision."""

    permissions: Mapping[str, str] = field(default_factory=dict)
    prs: Sequence[LoopPr] = ()
    bodies: Mapping[int, str] = field(default_factory=dict)
    threads: Mapping[int, Sequence[Mapping[str, Any]]] = field(default_factory=dict)
    runs: Mapping[int, LatestRun] = field(default_factory=dict)

    def permission(self, login: str) -> str:
        return self.permissions.get(login, "none")

    def loop_prs(self) -> Sequence[LoopPr]:
        return self.prs

    def issue_body(self, number: int) -> str:
        return self.bodies.get(number, "")

    def comments(self, number: int) -> Sequence[Mapping[str, Any]]:
        return self.threads.get(number, ())

    def latest(self, plan: int) -> LatestRun | None:
        return self.runs.get(plan)


@dataclass(frozen=True)
class Intent:
    """One thing to do. `why` is the Action's `status` output for anything but a loop."""

    kind: Kind
    why: str = ""
    where: int | None = None  # the issue or PR a reply goes to
    reply: str | None = None
    plan: int | None = None
    actor: str = ""
    goal: Goal | None = None  # the approved goal, constrained, writers' context added
    feedback_pr: int | None = None  # iterate on this loop PR with its writers' reviews as feedback
    since: str | None = None  # docs: the commit the default branch moved from
    trigger: str | None = None
    exit_code: int = 0


@dataclass(frozen=True)
class Repo:
    """The repository the event is about, as the trusted environment says."""

    full_name: str
    default_branch: str = "main"
    self_logins: frozenset[str] = SELF_LOGINS


def plan_of_branch(ref: str) -> int | None:
    """The plan issue of a loop branch loopbot made (loop/<issue>-<slug>); None for any other."""
    found = _LOOP_BRANCH.match(ref)
    return int(found.group(1)) if found else None


def approval_key(goal: Goal) -> str:
    """A goal as approved: everything but the context (which later `/loop context` comments add to)."""
    return json.dumps(goal.model_dump(mode="json", exclude={"context"}), sort_keys=True)


def trigger_of(event: str, payload: Mapping[str, Any]) -> str | None:
    """What identifies this event across redeliveries and "Re-run jobs": a replay carries the same."""
    if event == "issue_comment":
        comment = _obj(payload, "comment")
        return f"comment:{comment['id']}" if comment.get("id") is not None else None
    if event == "pull_request_review":
        review = _obj(payload, "review")
        return f"review:{review['id']}" if review.get("id") is not None else None
    if event == "workflow_dispatch":
        delivery = _obj(payload, "inputs").get("delivery")
        return f"dispatch:{delivery}" if isinstance(delivery, str) and delivery else None
    if event == "issues":
        issue = _obj(payload, "issue")
        if issue.get("number") is None:
            return None
        if payload.get("action") == "edited":  # a dashboard tick: this edit, whoever redelivers it
            return f"edit:{issue['number']}:{issue.get('updated_at')}"
        return f"label:{issue['number']}:{_obj(payload, 'label').get('name')}:{issue.get('updated_at')}"
    return None


def is_bot(user: Mapping[str, Any]) -> bool:
    return user.get("type") == "Bot" or str(user.get("login") or "").endswith("[bot]")


def actor_kind(user: Mapping[str, Any], facts: Facts, config: Config, repo: Repo, body: str = "") -> ActorKind:
    """Who this is, as far as authority goes. Bots are decided by config, never by permission."""
    login = str(user.get("login") or "")
    if not login:
        return "unknown"
    if is_bot(user):
        listed = login in config.bots or login.removesuffix("[bot]") in config.bots
        if _OWN in body or (login in repo.self_logins and not listed):
            return "self"
        return "listed_bot" if listed else "bot"
    permission = facts.permission(login)
    if permission == UNKNOWN:
        return "unknown"
    return "writer" if permission in WRITERS else "reader"


def may_steer(kind: ActorKind) -> bool:
    return kind in ("writer", "listed_bot")


def route(event: str, payload: Mapping[str, Any], config: Config, facts: Facts, repo: Repo,
          *, mode: Mode = "auto", now: datetime | None = None) -> Intent:
    action = payload.get("action")
    if mode in ("auto", "run") and event == "workflow_dispatch" and _obj(payload, "inputs").get("command"):
        return _Router(event, payload, config, facts, repo, now).dispatched()
    if mode == "audit" or (mode == "auto" and event in ("schedule", "workflow_dispatch")):
        return Intent("audit")
    if mode == "docs" or (mode == "auto" and event == "push"):
        return _docs(payload, repo)
    router = _Router(event, payload, config, facts, repo, now)
    if event == "issues" and action == "labeled":
        return router.labeled()
    if event == "issue_comment" and action == "created":
        return router.comment()
    if event == "pull_request_review" and action == "submitted":
        return router.review()
    if event == "issues" and action == "edited":
        found = route_dashboard(payload, config, facts, repo, now=now)
        return found[0] if found else Intent("ignore", "an edit that ticked no dashboard box")
    return Intent("ignore", f"nothing to do for {event}.{action}")


def route_dashboard(payload: Mapping[str, Any], config: Config, facts: Facts, repo: Repo, *,
                    now: datetime | None = None) -> list[Intent]:
    """An `issues.edited` of the dashboard issue: one intent per box it ticked (a click on GitHub
    saves one box, so usually one). Anything else edited asks for nothing."""
    issue = _obj(payload, "issue")
    previous = _obj(_obj(payload, "changes"), "body").get("from")
    if not isinstance(previous, str) or dashboard.MARKER not in str(issue.get("body") or ""):
        return []
    router = _Router("issues", payload, config, facts, repo, now)
    return [router.tick(tick) for tick in dashboard.ticked(previous, str(issue.get("body") or ""))]


def _docs(payload: Mapping[str, Any], repo: Repo) -> Intent:
    ref = payload.get("ref")
    if ref and ref != f"refs/heads/{repo.default_branch}":
        return Intent("ignore", f"a push to {ref}, not to the default branch")
    before = payload.get("before")
    since = before if isinstance(before, str) and before and not _ZERO_SHA.match(before) else "HEAD~1"
    return Intent("docs", since=since)


def _obj(payload: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """A nested object of the payload; {} when absent or null (the schema allows both)."""
    value = payload.get(key)
    return value if isinstance(value, Mapping) else {}


def _number(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


@dataclass
class _Router:
    event: str
    payload: Mapping[str, Any]
    config: Config
    facts: Facts
    repo: Repo
    now: datetime | None

    # -- events ----------------------------------------------------------------------------------
    def labeled(self) -> Intent:
        if _obj(self.payload, "label").get("name") != self.config.labels.run:
            return Intent("ignore", "not the run label")
        issue = _obj(self.payload, "issue")
        number = _number(issue.get("number"))
        if number is None or "pull_request" in issue:
            return Intent("ignore", "the run label on something that is not a plan issue")
        sender = _obj(self.payload, "sender")
        kind = actor_kind(sender, self.facts, self.config, self.repo)
        if kind == "self":
            return Intent("ignore", "loopbot's own label")
        login = str(sender.get("login") or "")
        if not may_steer(kind):
            return self._refused(kind, number, login, "the loop")
        # The body the labeller saw is the goal that runs.
        return self._start("run", number, number, login, approved=str(issue.get("body") or ""))

    def comment(self) -> Intent:
        comment, issue = _obj(self.payload, "comment"), _obj(self.payload, "issue")
        user = _obj(comment, "user")
        number = _number(issue.get("number"))
        body = str(comment.get("body") or "")
        if number is None or not user.get("login"):
            return Intent("ignore", "a comment with no author or issue")
        try:
            command = commands.parse(body)
        except commands.CommandError as exc:
            command, problem = None, str(exc)
        else:
            problem = ""
        if command is None and not problem:
            return Intent("ignore", "no /loop command")
        kind = actor_kind(user, self.facts, self.config, self.repo, body)
        if kind == "self":
            return Intent("ignore", "loopbot's own comment")
        login = str(user["login"])
        if problem:
            if not may_steer(kind):  # outsiders get no replies they could use to flood an issue
                return Intent("ignore", "a malformed command from someone who cannot steer loops")
            return Intent("refuse", "bad_command", where=number, reply=f"{MARK}\n@{login} {problem}", actor=login)
        assert command is not None
        if not may_steer(kind):
            return self._refused(kind, number, login, f"`/loop {command.verb}`")
        plan = number
        if "pull_request" in issue:
            found = next((pr.plan for pr in self.facts.loop_prs() if pr.number == number), None)
            if found is None:
                return Intent("refuse", "not_a_loop_pr", where=number, actor=login, reply=(
                    f"{MARK}\n@{login} loops run from plan issues: this pull request is not one a loop "
                    "opened, so `/loop` commands do nothing here."))
            plan = found
        if command.verb in ("status", "stop"):
            return Intent(command.verb, command.verb, where=number, plan=plan, actor=login)
        if command.verb == "context":
            return Intent("context", "context", where=number, plan=plan, actor=login,
                          reply=f"{MARK}\nNoted: the next loop run on this issue starts with this as context "
                                "(a loop already running goes on with what it started with).")
        # /loop run on the plan issue approves the body as the commenter saw it (the payload's).
        approved = str(issue.get("body") or "") if plan == number else None
        return self._start(command.verb, plan, number, login, approved=approved,
                           feedback_pr=number if plan != number else None)  # a run on the PR iterates on it

    def review(self) -> Intent:
        review, pull = _obj(self.payload, "review"), _obj(self.payload, "pull_request")
        head = _obj(pull, "head")
        ours = _obj(head, "repo").get("full_name") == self.repo.full_name
        plan = plan_of_branch(str(head.get("ref") or "")) if ours else None
        pr = _number(pull.get("number"))
        if plan is None or pr is None:
            return Intent("ignore", "a review on a pull request no loop opened")
        body = str(review.get("body") or "")
        if str(review.get("state") or "").lower() not in ("changes_requested", "commented"):
            return Intent("ignore", "an approval or dismissal asks for no iteration")
        user = _obj(review, "user")
        kind = actor_kind(user, self.facts, self.config, self.repo, body)
        if kind == "self" or "loopbot:review" in body:
            return Intent("ignore", "loopbot's own review")
        if kind == "unknown" and user.get("login"):
            return _permission_unknown(str(user["login"]))
        if not may_steer(kind):
            return Intent("ignore", "a review from someone who cannot steer loops")  # asks for no reply
        return self._start("run", plan, pr, str(user["login"]), approved=None, feedback_pr=pr)

    def tick(self, tick: dashboard.Tick) -> Intent:
        sender = _obj(self.payload, "sender")
        where = _number(_obj(self.payload, "issue").get("number"))
        kind = actor_kind(sender, self.facts, self.config, self.repo)
        if kind == "self":
            return Intent("ignore", "loopbot's own dashboard edit")
        login = str(sender.get("login") or "")
        if not may_steer(kind):
            return self._refused(kind, where or tick.issue, login, f"`/loop {tick.action}` (a dashboard box)")
        if tick.action == "stop":
            return Intent("stop", "stop", where=tick.issue, plan=tick.issue, actor=login)
        if self.facts.latest(tick.issue) is None:
            # Nothing approved to go on with: a box never approves the issue's current text.
            return Intent("refuse", "not_approved", where=tick.issue, plan=tick.issue, actor=login, reply=(
                f"{MARK}\n@{login} no loop has run on this issue, so the dashboard cannot {tick.action} it: approve "
                "the issue's goal here (add the run label, or comment `/loop run`)."))
        return self._start(tick.action, tick.issue, tick.issue, login, approved=None)

    def dispatched(self) -> Intent:
        """A workflow_dispatch with a loop command: the App sends these after its own authority
        check, and a writer may dispatch one by hand. GitHub lets only those with write access (or
        an App an admin granted actions: write) dispatch a workflow; a human dispatcher is checked
        again here like a commenter. What runs is held to the same rules as a command: with an
        `approved` digest, only the issue body it names; without one (by hand, the App's API or
        reconciler), only a loop a writer approved before, its goal unchanged."""
        inputs = _obj(self.payload, "inputs")
        verb = str(inputs.get("command") or "").strip().lower()
        raw = str(inputs.get("issue") or "").strip()
        number = int(raw) if raw.isdigit() and int(raw) > 0 else None
        if verb not in commands.VERBS or verb == "context" or number is None:
            # Only by hand: the inputs issue (a number) and command (run, resume, retry, stop, status).
            return Intent("refuse", "bad_dispatch", exit_code=2, reply=None)
        sender = _obj(self.payload, "sender")
        login = str(sender.get("login") or "")
        kind = actor_kind(sender, self.facts, self.config, self.repo)
        if kind in ("reader", "unknown") or not login:
            return self._refused(kind if login else "unknown", number, login, f"`/loop {verb}` (a dispatch)")
        plan = next((pr.plan for pr in self.facts.loop_prs() if pr.number == number and pr.plan), number)
        if verb in ("status", "stop"):
            return Intent(verb, verb, where=number, plan=plan, actor=login)
        body = self.facts.issue_body(plan)
        digest = str(inputs.get("approved") or "").strip().lower()
        if digest and digest != hashlib.sha256(body.strip().encode()).hexdigest():
            return Intent("refuse", "edited_after_approval", where=number, plan=plan, actor=login, reply=(
                f"{MARK}\nThe issue was edited after the loop was approved, so no loop ran. Read the current "
                "text and approve it again (remove and add the label, or comment `/loop run`)."))
        if not digest and self.facts.latest(plan) is None:
            return Intent("refuse", "not_approved", where=number, plan=plan, actor=login, reply=(
                f"{MARK}\nNo loop has run on this issue, so a dispatch cannot start one: approve the issue's goal "
                "(add the run label, or comment `/loop run`)."))
        # On a loop PR the approval check is the PR's (the goal the loop ran); on the issue, the digest's.
        approved = body if digest and plan == number else None
        return self._start(verb, plan, number, login, approved=approved,
                           feedback_pr=number if plan != number else None)

    # -- shared ----------------------------------------------------------------------------------
    def _refused(self, kind: ActorKind, where: int, login: str, what: str) -> Intent:
        if kind == "unknown":
            return _permission_unknown(login)
        who = "bots not named in `bots:` of .github/loopbot.yml" if kind == "bot" else "users without write access"
        return Intent("refuse", "refused", where=where, actor=login, reply=(
            f"{MARK}\n@{login} {what} was not started: loopbot takes commands from collaborators with write, "
            f"maintain or admin permission; {who} cannot trigger loops."))

    def _start(self, verb: str, plan: int, where: int, login: str, *, approved: str | None,
               feedback_pr: int | None = None) -> Intent:
        body = self.facts.issue_body(plan)
        if approved is not None and approved.strip() != body.strip():
            # Edited between the approval and this run: what runs must be what a writer saw.
            return Intent("refuse", "edited_after_approval", where=where, plan=plan, actor=login, reply=(
                f"{MARK}\n@{login} the issue was edited after the loop was approved, so no loop ran. Read the "
                "current text and approve it again (remove and add the label, or comment `/loop run`)."))
        try:
            goal = constrain(goal_from_markdown(body, f"issue #{plan}"), self.config, f"issue #{plan}")
        except InputError as exc:
            problems = "\n".join(f"- {p}" for p in exc.problems)
            return Intent("refuse", "invalid_goal", where=plan, plan=plan, actor=login, reply=(
                f"{MARK}\nThis issue's goal is not valid, so no loop ran:\n\n{problems}\n\n"
                "Fix the fenced ```yaml block and add the label again."))
        latest = self.facts.latest(plan)
        if approved is None and latest is not None and latest.approved != approval_key(goal):
            # A review or a command on the loop PR continues the approved loop: the issue's goal must
            # still be the one that loop ran, or a writer approves the edited one first.
            return Intent("refuse", "edited_after_approval", where=where, plan=plan, actor=login, reply=(
                f"{MARK}\n@{login} the issue's goal changed since the loop last ran, so no loop ran. Approve "
                "the current text on the issue (remove and add the label, or comment `/loop run` there)."))
        stopped = self._stopped_since(plan, where)
        if stopped:
            # This request waited behind a running loop; a writer said /loop stop after it was made.
            return Intent("refuse", "stopped_meanwhile", where=where, plan=plan, actor=login, reply=(
                f"{MARK}\n@{login} this request waited while a loop ran, and @{stopped} said `/loop stop` after it "
                "was made, so it was not started. Comment `/loop resume` (or `/loop run`) to go on."))
        context = self._context(plan)
        if context:
            goal = goal.model_copy(update={"context": "\n\n".join(filter(None, [goal.context, *context]))})
        trigger = trigger_of(self.event, self.payload)
        intent = Intent("run", verb, where=where, plan=plan, actor=login, goal=goal, trigger=trigger,
                        feedback_pr=feedback_pr if verb == "run" else None)
        if latest is not None and latest.finished and not latest.published and verb != "retry":
            # The runner died after the loop's end, before GitHub showed it: publish, never rerun.
            return replace(intent, kind="resume", why="publish", feedback_pr=None)
        if latest is not None and trigger is not None and latest.trigger == trigger:
            # The same event again (a redelivery, "Re-run jobs"): finish what it started, never rerun it.
            return replace(intent, kind="status", why="replayed") if latest.finished else _with(intent, "resume")
        if verb == "retry":
            return self._limited(_with(intent, "retry")) or _with(intent, "retry")
        if latest is not None and not latest.finished and intent.feedback_pr is None:
            return _with(intent, "resume")  # a previous runner died or the loop was stopped: continue it
        if verb == "resume" and latest is not None:
            if latest.reopenable:
                return _with(intent, "resume")  # stopped by a budget or the andon: a writer asks for more
            if latest.success:
                return Intent("status", "already_succeeded", where=where, plan=plan, actor=login)
        return self._limited(intent) or intent

    def _event_time(self) -> datetime | None:
        stamp = {"issue_comment": _obj(self.payload, "comment").get("created_at"),
                 "pull_request_review": _obj(self.payload, "review").get("submitted_at"),
                 "issues": _obj(self.payload, "issue").get("updated_at")}.get(self.event)
        return _when(stamp) if isinstance(stamp, str) and stamp else None

    def _stopped_since(self, plan: int, where: int) -> str | None:
        """Who said `/loop stop` (on the plan issue or where this was asked) after this event, if anyone."""
        since = self._event_time()
        if since is None:
            return None
        for number in dict.fromkeys((plan, where)):
            for item in self.facts.comments(number):
                body, user = str(item.get("body") or ""), item.get("user")
                created = item.get("created_at")
                if not isinstance(user, Mapping) or not isinstance(created, str) or _when(created) <= since:
                    continue
                try:
                    command = commands.parse(body)
                except commands.CommandError:
                    continue
                if command is not None and command.verb == "stop" and may_steer(
                        actor_kind(user, self.facts, self.config, self.repo, body)):
                    return str(user.get("login"))
        return None

    def _context(self, plan: int) -> list[str]:
        """`/loop context` texts of the plan issue's comments, from writers and listed bots only."""
        found = []
        for item in self.facts.comments(plan):
            body = str(item.get("body") or "")
            try:
                command = commands.parse(body)
            except commands.CommandError:
                continue
            if command is None or command.verb != "context":
                continue
            user = item.get("user")
            if isinstance(user, Mapping) and may_steer(actor_kind(user, self.facts, self.config, self.repo, body)):
                found.append(command.text)
        return found

    def _limited(self, intent: Intent) -> Intent | None:
        """A new loop would exceed the open-PR limits: say so instead (a loop's own PR never counts)."""
        others = [pr for pr in self.facts.loop_prs() if pr.plan != intent.plan]
        recent = others
        if self.now is not None:
            since = self.now - timedelta(hours=1)
            recent = [pr for pr in others if _when(pr.created_at) >= since]
        limits = self.config.limits
        if len(others) < limits.max_open_prs and len(recent) < limits.max_new_prs_per_hour:
            return None
        return Intent("limited", "limited", where=intent.where, plan=intent.plan, actor=intent.actor, reply=(
            f"{MARK}\nNot started yet: {len(others)} loop pull requests are open and {len(recent)} were opened "
            f"in the last hour (limits: max_open_prs {limits.max_open_prs}, max_new_prs_per_hour "
            f"{limits.max_new_prs_per_hour}). Comment `/loop run` again later."))


def _with(intent: Intent, kind: Kind) -> Intent:
    return replace(intent, kind=kind)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _when(stamp: str) -> datetime:
    """A PR's created_at; an unreadable one counts as long ago (the open-PR limit still counts it)."""
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return _EPOCH
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _permission_unknown(login: str) -> Intent:
    return Intent("refuse", "permission_unknown", actor=login, exit_code=2, reply=None)
