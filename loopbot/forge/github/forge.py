"""The GitHub forge. Idempotent writes: every comment, review and check run it makes is found
again (by a hidden marker, a head branch, or a check name) before anything new is created.

Every list is read to its last page; every body is cut to GitHub's limit with a note; rate limits
(primary, secondary, with or without headers) are waited out with bounded backoff and then raise
`RateLimited`; GitHub's refusals are typed errors the publisher can explain.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import httpx
from githubkit import AppAuthStrategy, AppInstallationAuthStrategy, GitHub, TokenAuthStrategy
from githubkit.exception import GraphQLFailed, RateLimitExceeded, RequestError, RequestFailed
from githubkit.response import Response

from loopbot.config import Labels
from loopbot.core import memory
from loopbot.errors import InputError, LoopbotError, Problem
from loopbot.forge.github import limits
from loopbot.forge.github.policy import ForbiddenOperation, RequestPolicy
from loopbot.plans import FiledPlan, Plan, goal_from_markdown, read_marker

CHECK_NAME = "loopbot / goal"
WRITERS = frozenset({"admin", "maintain", "write"})
# Lists longer than this many pages are refused rather than read without end.
MAX_PAGES = 100
# The repository setting that lets the Actions token open pull requests, as GitHub's UI names it.
ACTIONS_PR_SETTING = ("Settings → Actions → General → Workflow permissions → "
                      "\"Allow GitHub Actions to create and approve pull requests\"")
_ACTIONS_MAY_NOT = "GitHub Actions is not permitted to create or approve pull requests"
_NO_DRAFTS = "Draft pull requests are not supported"
_OWN_PR = "your own pull request"

T = TypeVar("T")


# A push token is minted again when it has less than this left (a push may take minutes).
TOKEN_MARGIN_SECONDS = 600

class GitHubError(LoopbotError):
    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class PermissionUnknown(GitHubError):
    """The permission lookup failed (5xx, rate limit, network): never read as "no access"."""


class RateLimited(GitHubError):
    """GitHub kept answering with a rate limit after every retry (or asked for a longer wait than
    a run waits): the request was not made."""

    def __init__(self, message: str, status: int | None, *, kind: str, waited: float):
        super().__init__(message, status)
        self.kind, self.waited = kind, waited


class PullRequestsNotPermitted(GitHubError):
    """The repository does not let GitHub Actions open pull requests (its default)."""


class DraftsUnsupported(GitHubError):
    """The repository has no draft pull requests (private repositories on GitHub Free)."""


@dataclass(frozen=True)
class Issue:
    number: int
    title: str
    body: str
    labels: tuple[str, ...]
    author: str
    is_pull_request: bool


@dataclass(frozen=True)
class PullRequest:
    number: int
    node_id: str
    head: str
    draft: bool
    state: str
    body: str
    labels: tuple[str, ...] = ()


def client_options(api_url: str, policy: RequestPolicy, transport: httpx.BaseTransport | None = None) -> dict[str, Any]:
    """githubkit's options for every client loopbot makes, the Action's and the App's."""
    # Retries are loopbot's (bounded, with an injected sleep): githubkit's own would sleep for real.
    # No HTTP cache: githubkit's (hishel, one in-memory store per process) keeps every answer and
    # scans all of a URL's entries on each request, so a long-running App slowed with every read.
    options: dict[str, Any] = {"base_url": api_url, "event_hooks": {"request": [policy]}, "auto_retry": False,
                               "http_cache": False}
    if transport is not None:
        options["transport"] = transport
    return options


def connect(*, owner: str, repo: str, api_url: str, token: str | None = None, app_id: str | None = None,
            private_key: str | None = None, transport: httpx.BaseTransport | None = None,
            sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
            wall: Callable[[], float] = time.time) -> GitHubForge:
    """A forge for one repository, with a token, or App credentials (an installation token is minted).
    `sleep` serves the pacing of writes and every wait on a rate limit; `clock` paces, `wall`
    reads GitHub's reset times (epoch seconds)."""
    policy = RequestPolicy(base_url=api_url, sleep=sleep, clock=clock, repository=f"{owner}/{repo}")
    options = client_options(api_url, policy, transport)
    github: GitHub[Any]
    if app_id and private_key:
        app = GitHub(AppInstallationAuthStrategy(app_id, private_key, installation_id=0), **options)
        try:
            installation = app.rest.apps.get_repo_installation(owner, repo).json()["id"]
        except RequestFailed as exc:
            raise InputError([Problem("github", None, None, "", f"the App is not installed on {owner}/{repo}: "
                                      f"{exc.response.status_code}")]) from None
        github = GitHub(AppInstallationAuthStrategy(app_id, private_key, installation_id=installation), **options)
        forge = GitHubForge(github, owner, repo, policy, wall=wall)
        forge.minter = (GitHub(AppAuthStrategy(app_id, private_key), **options), int(installation))
        return forge
    elif token:
        github = GitHub(TokenAuthStrategy(token), **options)
    else:
        raise InputError([Problem("github", None, None, "", "no GitHub credentials: a token, or App id and private key")])
    return GitHubForge(github, owner, repo, policy, wall=wall)


def _messages(response: Response[Any]) -> str:
    """What GitHub said: its message and each of its errors (strings or objects)."""
    try:
        data = response.json()
    except ValueError:
        return response.text[:300]
    if not isinstance(data, dict):
        return str(data)[:300]
    said = [str(data.get("message") or "")]
    for error in data.get("errors") or []:
        said.append(error if isinstance(error, str) else str(error.get("message") or error.get("code") or "")
                    if isinstance(error, dict) else str(error))
    return "; ".join(dict.fromkeys(m for m in said if m))[:600]


def _refusal(exc: RequestFailed) -> GitHubError:
    status, said = exc.response.status_code, _messages(exc.response)
    message = f"GitHub answered {status} to {exc.request.method} {exc.request.url.path}: {said}"
    if _ACTIONS_MAY_NOT in said:
        return PullRequestsNotPermitted(message, status)
    if _NO_DRAFTS in said:
        return DraftsUnsupported(message, status)
    return GitHubError(message, status)


def html_base(api_url: str) -> str:
    """The web address of the GitHub an API address serves: api.github.com → github.com,
    api.<x>.ghe.com → <x>.ghe.com, <host>/api/v3 (Enterprise Server) → <host>."""
    parts = urlsplit(api_url)
    path = parts.path.rstrip("/")
    if path.endswith("/api/v3"):
        return f"{parts.scheme}://{parts.netloc}{path.removesuffix('/api/v3')}"
    return f"{parts.scheme}://{parts.netloc.removeprefix('api.')}"


class GitHubForge:
    name = "github"

    def __init__(self, github: GitHub[Any], owner: str, repo: str, policy: RequestPolicy, *,
                 wall: Callable[[], float] = time.time):
        self.gh, self.owner, self.repo, self.policy = github, owner, repo, policy
        self.wall = wall
        # The repository's configured labels (plans are filed and found by labels.plan, a PR opened
        # ready for want of drafts gets labels.draft); the composition root sets them once read.
        self.labels = Labels()
        self._permissions: dict[str, str] = {}
        self._own_prs: set[int] = set()  # PRs GitHub said are the token's own (no change requests)
        self._check_heads: list[str] = []  # heads this forge made or updated a check run for, oldest first
        self._settled: set[str] = set()  # heads whose check runs are known completed
        # With App credentials: the app's own (JWT) client and the installation, to mint push tokens.
        self.minter: tuple[GitHub[Any], int] | None = None
        self._push_token: tuple[str, float] | None = None  # the token and when it expires (epoch)

    def push_token(self) -> str | None:
        """An installation token for git pushes (their pushes start the repository's workflows, the
        job's GITHUB_TOKEN's do not), minted once and again shortly before it expires; None
        without App credentials."""
        if self.minter is None:
            return None
        if self._push_token is not None and self._push_token[1] - self.wall() > TOKEN_MARGIN_SECONDS:
            return self._push_token[0]
        app, installation = self.minter
        data = self._send(lambda: app.rest.apps.create_installation_access_token(installation)).json()
        expires = data.get("expires_at") or ""
        try:
            until = datetime.fromisoformat(expires.replace("Z", "+00:00")).timestamp()
        except ValueError:
            until = self.wall() + 3600  # GitHub's tokens live an hour
        self._push_token = (str(data["token"]), until)
        return self._push_token[0]

    # -- sending ----------------------------------------------------------------------------
    def _send(self, request: Callable[[], T]) -> T:
        """One request, retried while GitHub rate-limits it (bounded, with backoff) or, when it
        changed nothing, answers 5xx; GitHub's other answers are GitHubErrors."""
        waited = 0.0
        for attempt in range(1, limits.ATTEMPTS + 1):
            try:
                return request()
            except GraphQLFailed as exc:
                said = "; ".join(error.message for error in exc.response.errors or [])
                raise GitHubError(f"GitHub's GraphQL API answered with errors: {said[:600]}") from None
            except RequestFailed as exc:
                response = exc.response
                limited = limits.rate_limited(response.status_code, response.headers, _messages(response),
                                              now=self.wall(), said_limited=isinstance(exc, RateLimitExceeded))
                if limited is None:
                    if (response.status_code >= 500 and exc.request.method != "POST"
                            and attempt < limits.SERVER_ERROR_ATTEMPTS):
                        self.policy.sleep(float(1 << (attempt - 1)))
                        continue
                    raise _refusal(exc) from None
                wait = limits.backoff(limited, attempt)
                where = f"{exc.request.method} {exc.request.url.path}"
                if attempt == limits.ATTEMPTS or (limited.kind == "primary" and wait > limits.MAX_WAIT_SECONDS):
                    after = f"; GitHub asks for {limited.seconds:.0f} s more" if attempt < limits.ATTEMPTS else ""
                    raise RateLimited(f"GitHub's {limited.kind} rate limit held on {where}: {attempt} "
                                      f"attempt(s), {waited:.0f} s waited{after}. Nothing was lost: the "
                                      "work is on the loop's branch; run the command again later",
                                      response.status_code, kind=limited.kind, waited=waited) from None
                wait = min(wait, limits.MAX_WAIT_SECONDS)
                self.policy.sleep(wait)
                waited += wait
            except RequestError as exc:
                if isinstance(exc.__cause__, ForbiddenOperation):
                    raise exc.__cause__ from None
                raise GitHubError(f"GitHub unreachable: {exc.exc!r}") from None
        raise AssertionError("unreachable")  # the last attempt returns or raises

    def _response(self, method: Callable[..., Response[Any]], *args: Any, **kwargs: Any) -> Response[Any]:
        return self._send(lambda: method(self.owner, self.repo, *args, **kwargs))

    def _graphql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        return self._send(lambda: self.gh.graphql.request(query, variables))

    @property
    def html_url(self) -> str:
        return f"{html_base(self.policy.base_url)}/{self.owner}/{self.repo}"

    def compare_url(self, base: str, branch: str) -> str:
        """Where a human opens the pull request loopbot could not."""
        return f"{self.html_url}/compare/{quote(base, safe='/')}...{quote(branch, safe='/')}?expand=1"

    def _call(self, method: Callable[..., Response[Any]], *args: Any, **kwargs: Any) -> Any:
        return self._response(method, *args, **kwargs).json()

    def _list(self, method: Callable[..., Response[Any]], *args: Any, key: str | None = None,
              **kwargs: Any) -> list[dict[str, Any]]:
        """Every item of a list, page after page as GitHub's `Link` header says (at most MAX_PAGES)."""
        items: list[dict[str, Any]] = []
        page = 1
        for _ in range(MAX_PAGES):
            response = self._response(method, *args, **kwargs, per_page=100, page=page)
            data = response.json()
            items += data[key] if key is not None else data
            try:
                following = limits.next_page(response.headers.get("link"))
            except ValueError as exc:
                raise GitHubError(str(exc)) from None
            if following is None or following <= page:
                return items
            page = following
        raise GitHubError(f"GitHub's list has more than {MAX_PAGES} pages; loopbot reads no further")

    # -- who may trigger ----------------------------------------------------------------------
    def permission(self, username: str) -> str:
        """The user's permission; "none" only when GitHub says so (404: not a collaborator).
        Any other failure, after the client's own retries, raises PermissionUnknown."""
        if not username:
            return "none"
        cached = self._permissions.get(username)
        if cached is not None:
            return cached
        try:
            data = self._call(self.gh.rest.repos.get_collaborator_permission_level, username)
        except GitHubError as exc:
            if exc.status != 404:
                raise PermissionUnknown(f"could not look up @{username}'s permission ({exc})", exc.status) from None
            data = {}
        self._permissions[username] = str(data.get("permission", "none"))
        return self._permissions[username]

    def may_trigger(self, username: str, *, is_bot: bool, bots: list[str]) -> bool:
        """Writers, maintainers and admins; bots only when the config names them."""
        if is_bot or username.endswith("[bot]"):
            return username in bots or username.removesuffix("[bot]") in bots
        return self.permission(username) in WRITERS

    # -- issues and comments ------------------------------------------------------------------
    def issue(self, number: int) -> Issue:
        data = self._call(self.gh.rest.issues.get, number)
        return Issue(number=number, title=data.get("title", ""), body=data.get("body") or "",
                     labels=tuple(label["name"] if isinstance(label, dict) else str(label)
                                  for label in data.get("labels") or []),
                     author=(data.get("user") or {}).get("login", ""), is_pull_request="pull_request" in data)

    def comments(self, number: int) -> list[dict[str, Any]]:
        """All of the issue's comments, oldest first."""
        return self._list(self.gh.rest.issues.list_comments, number)

    def comment(self, number: int, body: str, *, marker: str | None = None) -> int:
        """Post a comment, or update the one carrying `marker` (never two of them); a body over
        GitHub's limit is cut with a note."""
        if marker is not None:
            body = f"{marker}\n{body}"
        body = limits.fit(body)
        if marker is not None:
            for existing in self.comments(number):
                if marker in (existing.get("body") or ""):
                    if existing.get("body") != body:
                        self._call(self.gh.rest.issues.update_comment, existing["id"], body=body)
                    return int(existing["id"])
        return int(self._call(self.gh.rest.issues.create_comment, number, body=body)["id"])

    def add_labels(self, number: int, *labels: str) -> None:
        self._call(self.gh.rest.issues.add_labels, number, data={"labels": list(labels)})

    def remove_label(self, number: int, label: str) -> None:
        try:
            self._call(self.gh.rest.issues.remove_label, number, label)
        except GitHubError as exc:
            if exc.status != 404:  # 404: not there, nothing to remove; a rate limit is no such answer
                raise

    # -- plans --------------------------------------------------------------------------------
    def plans(self) -> list[FiledPlan]:
        found = []
        for item in self._list(self.gh.rest.issues.list_for_repo, labels=self.labels.plan, state="open"):
            if "pull_request" in item:
                continue  # the issues list holds pull requests too
            body = item.get("body") or ""
            marker = read_marker(body)
            if marker is None:
                continue
            goal_text, scope = "", []
            try:
                goal = goal_from_markdown(body, f"#{item['number']}")
                goal_text, scope = goal.goal, goal.scope.allow
            except InputError:
                pass
            found.append(FiledPlan(ref=f"#{item['number']}", title=item.get("title", ""), fingerprint=marker[0],
                                   open=marker[1], tokens=memory.normalise(f"{item.get('title', '')} {goal_text}"),
                                   scope=scope))
        return found

    def file_plan(self, plan: Plan, body: str, *, date: str) -> FiledPlan:
        data = self._call(self.gh.rest.issues.create, title=plan.title, body=limits.fit(body),
                          labels=[self.labels.plan])
        return FiledPlan(ref=f"#{data['number']}", title=plan.title, fingerprint=plan.fingerprint, open=True,
                         tokens=plan.tokens, scope=plan.scope)

    # -- pull requests ------------------------------------------------------------------------
    def _pull(self, data: dict[str, Any]) -> PullRequest:
        return PullRequest(number=data["number"], node_id=data.get("node_id", ""), head=data["head"]["ref"],
                           draft=bool(data.get("draft")), state=data.get("state", "open"), body=data.get("body") or "",
                           labels=tuple(label["name"] if isinstance(label, dict) else str(label)
                                        for label in data.get("labels") or []))

    def find_pr(self, branch: str) -> PullRequest | None:
        pulls = self._call(self.gh.rest.pulls.list, head=f"{self.owner}:{branch}", state="all", per_page=10)
        return self._pull(pulls[0]) if pulls else None

    def open_pr(self, branch: str, base: str, title: str, body: str) -> PullRequest:
        """A draft PR for the loop branch, or the one that exists already. Where the repository has
        no drafts, a ready PR labelled `labels.draft` (mark_ready takes the label off). A
        repository that lets no Actions token open PRs raises PullRequestsNotPermitted."""
        existing = self.find_pr(branch)
        if existing is not None:
            return existing
        body = limits.fit(body)
        try:
            return self._pull(self._call(self.gh.rest.pulls.create, head=branch, base=base, title=title, body=body,
                                         draft=True))
        except DraftsUnsupported:
            pass
        pull = self._pull(self._call(self.gh.rest.pulls.create, head=branch, base=base, title=title, body=body,
                                     draft=False))
        self.add_labels(pull.number, self.labels.draft)
        return dataclasses.replace(pull, labels=(*pull.labels, self.labels.draft))

    def update_pr(self, pr: PullRequest, body: str) -> None:
        body = limits.fit(body)
        if pr.body != body:
            self._call(self.gh.rest.pulls.update, pr.number, body=body)

    def mark_ready(self, pr: PullRequest) -> None:
        """Draft → ready for review (only GraphQL can do it); a PR opened ready for want of drafts
        loses its not-ready label. GitHub's GraphQL errors (which come in a 200) raise GitHubError."""
        if pr.draft:
            self._graphql("mutation($id: ID!) { markPullRequestReadyForReview(input: {pullRequestId: $id}) "
                          "{ clientMutationId } }", {"id": pr.node_id})
        if self.labels.draft in pr.labels:
            self.remove_label(pr.number, self.labels.draft)

    def loop_prs(self) -> list[dict[str, Any]]:
        """Open PRs from loop/* branches of this repository: a fork's branch of that name is not one."""
        return [p for p in self._list(self.gh.rest.pulls.list, state="open") if self.is_loop_pr(p)]

    def is_loop_pr(self, pull: dict[str, Any]) -> bool:
        head = pull.get("head") or {}
        repo = (head.get("repo") or {}).get("full_name")
        return str(head.get("ref", "")).startswith("loop/") and repo == f"{self.owner}/{self.repo}"

    def review(self, pr: PullRequest, body: str, *, marker: str, request_changes: bool) -> None:
        """The checker's verdict as a review; COMMENT on approval (approvals are for humans), and
        COMMENT where GitHub refuses REQUEST_CHANGES: on the token's own PR, which a loop PR is
        ("Can not request changes on your own pull request"; remembered, so asked once per PR).
        Any other refusal is an error, not a quiet comment."""
        for existing in self._list(self.gh.rest.pulls.list_reviews, pr.number):
            if marker in (existing.get("body") or ""):
                return
        text = f"{marker}\n{body}"
        if request_changes and pr.number not in self._own_prs:
            try:
                self._call(self.gh.rest.pulls.create_review, pr.number, body=limits.fit(text), event="REQUEST_CHANGES")
                return
            except GitHubError as exc:
                if exc.status != 422 or _OWN_PR not in str(exc):
                    raise
                self._own_prs.add(pr.number)
        if request_changes:
            note = ("\n\n_(a comment, not a change request: GitHub lets no one request changes on their own "
                    "pull request, and loopbot opened this one)_")
            text = limits.fit(text, limits.BODY_LIMIT - len(note)) + note
        self._call(self.gh.rest.pulls.create_review, pr.number, body=limits.fit(text), event="COMMENT")

    def review_feedback(self, pr_number: int, *, trusted: Callable[[dict[str, Any]], bool]) -> str:
        """Reviews and inline comments on a loop PR from the users `trusted` accepts only."""
        reviews = self._list(self.gh.rest.pulls.list_reviews, pr_number)
        inline = self._list(self.gh.rest.pulls.list_review_comments, pr_number)
        parts = [r["body"] for r in reviews
                 if r.get("body") and "loopbot:review" not in r["body"] and trusted(r.get("user") or {})]
        parts += [f"{c.get('path')}:{c.get('line') or c.get('original_line')}: {c.get('body')}" for c in inline
                  if trusted(c.get("user") or {})]
        return "\n\n".join(parts)

    # -- a lease's holder ---------------------------------------------------------------------
    def job_ended(self, run_id: int, attempt: int) -> bool:
        """Whether that workflow run attempt has completed (a job killed, cancelled or timed out
        holds a plan's lease it will never renew). Unknown or unreadable counts as not ended: the
        lease then lapses on its own."""
        try:
            data = self._call(self.gh.rest.actions.get_workflow_run_attempt, run_id, attempt)
        except GitHubError:
            return False
        return bool(data.get("status") == "completed")

    # -- the check run ------------------------------------------------------------------------
    def _runs(self, head_sha: str) -> list[dict[str, Any]]:
        return self._list(self.gh.rest.checks.list_for_ref, head_sha, check_name=CHECK_NAME, key="check_runs")

    def check_run(self, head_sha: str, *, status: str, title: str, summary: str, conclusion: str | None = None,
                  supersedes: Iterable[str] = ()) -> None:
        """The goal's check run on `head_sha`, created or updated. When a new head gets one, or a
        head's is completed, the runs still open on earlier heads (`supersedes`, and those this
        forge wrote) are completed as cancelled: a superseded head never stays in progress."""
        runs = self._runs(head_sha)
        output = {"title": title, "summary": limits.fit(summary, limits.SUMMARY_LIMIT)}
        fields: dict[str, Any] = {"status": status, "output": output}
        if conclusion is not None:
            fields["conclusion"] = conclusion
        if runs:
            self._call(self.gh.rest.checks.update, runs[0]["id"], **fields)
        else:
            self._call(self.gh.rest.checks.create, name=CHECK_NAME, head_sha=head_sha, **fields)
        if not runs or status == "completed":
            self._supersede(head_sha, [*self._check_heads, *supersedes])
        if head_sha in self._check_heads:
            self._check_heads.remove(head_sha)
        self._check_heads.append(head_sha)
        if status == "completed":
            self._settled.add(head_sha)
        else:
            self._settled.discard(head_sha)

    def _supersede(self, head_sha: str, earlier: Iterable[str]) -> None:
        for sha in dict.fromkeys(earlier):
            if sha == head_sha or sha in self._settled:
                continue
            for run in self._runs(sha):
                if run.get("status") != "completed":
                    self._call(self.gh.rest.checks.update, run["id"], status="completed", conclusion="cancelled",
                               output={"title": f"superseded by {head_sha[:12]}",
                                       "summary": f"The loop moved on: `{head_sha}` carries its check now."})
            self._settled.add(sha)
