"""The App's GitHub side: installation tokens (minted with the App's key through githubkit and
cached until ten minutes before they expire), clients on them held to loopbot's allow-list, and
the two writes the App makes: a loop command dispatched to the repository's loopbot workflow, and
a comment. Each write is paced per installation through the database (pacing.py), so every worker
and replica shares GitHub's secondary limits; a rate-limit answer blocks the installation's writes
for as long as GitHub asks and requeues the job (`WaitFor`), never holds a worker."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

import httpx
from githubkit import AppAuthStrategy, GitHub, TokenAuthStrategy
from githubkit.exception import RequestError, RequestFailed

from loopbot.app.store import AppStore
from loopbot.errors import LoopbotError
from loopbot.forge.github import limits
from loopbot.forge.github.forge import TOKEN_MARGIN_SECONDS, GitHubForge, client_options
from loopbot.forge.github.policy import ForbiddenOperation, RequestPolicy

WORKFLOW = "loopbot-run.yml"
RUN_PAGES = 10  # runs read for a dispatch a dead worker may have sent (the newest 1,000)
INLINE_WAIT_SECONDS = 5.0  # a paced write further away than this requeues its job instead
T = TypeVar("T")


class WaitFor(LoopbotError):
    """Not now: GitHub asked to wait (a rate limit), or the installation's write budget is spent
    for a while. The job goes back to the queue for `seconds`, not counted as a failed attempt."""

    def __init__(self, seconds: float, why: str):
        super().__init__(f"{why}; again in {seconds:.0f} s")
        self.seconds = seconds


class DispatchRefused(LoopbotError):
    """GitHub refused the dispatch for good (no such workflow, no workflow_dispatch trigger, an input
    the workflow does not take): retrying cannot help; the issue is told why."""


def _refuse_to_wait(seconds: float) -> None:
    """The forge's retry wait, in a worker: requeue the job instead of sleeping in it."""
    raise WaitFor(seconds, "GitHub asked to wait")


def _said(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:300]
    return str(data.get("message") or "")[:300] if isinstance(data, dict) else str(data)[:300]


class GitHubApp:
    """One GitHub App: its installation tokens and clients on them."""

    def __init__(self, app_id: int | str, private_key: str, api_url: str = "https://api.github.com", *,
                 transport: httpx.BaseTransport | None = None, wall: Callable[[], float] = time.time):
        self.api_url = api_url
        self.transport = transport
        self.wall = wall
        # Minting a token creates no content: not paced (and never a real sleep in a worker).
        minting = RequestPolicy(api_url, sleep=_refuse_to_wait, min_write_interval=0.0)
        self._app = GitHub(AppAuthStrategy(str(app_id), private_key), **self._options(minting))
        self._tokens: dict[int, tuple[str, float]] = {}
        self._bot_login: str | None = None
        self._lock = threading.Lock()

    def _options(self, policy: RequestPolicy) -> dict[str, Any]:
        return client_options(self.api_url, policy, self.transport)

    def token(self, installation_id: int) -> str:
        """The installation's token, minted again only when it has less than ten minutes left."""
        with self._lock:
            held = self._tokens.get(installation_id)
            if held is not None and held[1] - self.wall() > TOKEN_MARGIN_SECONDS:
                return held[0]
            data = call(lambda: self._app.rest.apps.create_installation_access_token(installation_id)).json()
            try:
                until = datetime.fromisoformat(str(data.get("expires_at") or "").replace("Z", "+00:00")).timestamp()
            except ValueError:
                until = self.wall() + 3600  # GitHub's installation tokens live an hour
            self._tokens[installation_id] = (str(data["token"]), until)
            return self._tokens[installation_id][0]

    def forget(self, installation_id: int) -> None:
        """A token GitHub no longer takes (401): mint a new one next time."""
        with self._lock:
            self._tokens.pop(installation_id, None)

    def client(self, installation_id: int, repository: str = "") -> GitHub[Any]:
        # min_write_interval 0: writes are paced through the database, across processes.
        policy = RequestPolicy(self.api_url, sleep=_refuse_to_wait, min_write_interval=0.0, repository=repository)
        return GitHub(TokenAuthStrategy(self.token(installation_id)), **self._options(policy))

    def forge(self, installation_id: int, repo: str) -> GitHubForge:
        """loopbot's forge for one repository on the installation's token; its waits requeue the job."""
        owner, name = repo.split("/", 1)
        policy = RequestPolicy(self.api_url, sleep=_refuse_to_wait, min_write_interval=0.0, repository=repo)
        github = GitHub(TokenAuthStrategy(self.token(installation_id)), **self._options(policy))
        return GitHubForge(github, owner, name, policy, wall=self.wall)

    def bot_login(self) -> str:
        """The login the App acts as on GitHub, `<slug>[bot]` (asked once, with the App's JWT)."""
        with self._lock:
            if self._bot_login is None:
                answer: Any = call(lambda: self._app.rest.apps.get_authenticated()).json()
                slug = str((answer or {}).get("slug") or "")
                if not slug:
                    raise LoopbotError("GitHub named no slug for this App (GET /app)")
                self._bot_login = f"{slug}[bot]"
            return self._bot_login

    def repositories(self, installation_id: int) -> list[str]:
        """Every repository the installation can reach (page after page)."""
        github, names, page = self.client(installation_id), [], 1
        while True:
            response = call(partial(github.rest.apps.list_repos_accessible_to_installation, per_page=100, page=page))
            names += [str(r["full_name"]) for r in response.json().get("repositories", [])]
            following = limits.next_page(response.headers.get("link"))
            if following is None:
                return names
            page = following


def call(request: Callable[[], T], *, now: Callable[[], float] = time.time) -> T:
    """One GitHub request: a rate limit is a WaitFor, unreachable or 5xx a retryable error."""
    try:
        return request()
    except RequestFailed as exc:
        response = exc.response
        said = _said(response.raw_response)
        limited = limits.rate_limited(response.status_code, response.headers, said, now=now())
        if limited is not None:
            raise WaitFor(limited.seconds, f"GitHub's {limited.kind} rate limit") from None
        raise GitHubAnswered(response.status_code, f"GitHub answered {response.status_code} to "
                             f"{exc.request.method} {exc.request.url.path}: {said}") from None
    except RequestError as exc:
        if isinstance(exc.__cause__, ForbiddenOperation):
            raise exc.__cause__ from None
        raise LoopbotError(f"GitHub unreachable: {exc.exc!r}") from None


class GitHubAnswered(LoopbotError):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Dispatcher:
    """Dispatches and comments for the workers, paced per installation through the store."""

    def __init__(self, store: AppStore, app: GitHubApp, *, workflow: str = WORKFLOW,
                 sleep: Callable[[float], None] = time.sleep, inline_wait: float = INLINE_WAIT_SECONDS):
        self.store, self.app, self.workflow, self.sleep = store, app, workflow, sleep
        self.inline_wait = inline_wait

    def write(self, installation_id: int, send: Callable[[], T]) -> T:
        """A content-creating write, sent in its paced slot; a limit blocks the installation's writes."""
        at = self.store.reserve_write(installation_id, max_wait=self.inline_wait)
        wait = at - self.store.now()
        if wait > self.inline_wait:
            # At least a millisecond: a wait below the clock's resolution would come straight back.
            raise WaitFor(max(wait, 0.001), "the installation's write budget (GitHub's secondary limits) is spent")
        if wait > 0:
            self.sleep(wait)
        try:
            return send()
        except WaitFor as exc:
            self.store.block_writes(installation_id, self.store.now() + exc.seconds)
            raise

    def dispatch(self, installation_id: int, repo: str, issue: int, command: str, key: str, ref: str,
                 approved: str = "") -> bool:
        """`command` for issue #`issue` as a workflow_dispatch, at most once per (repo, issue, key):
        True when this call sent it, False when it had been sent before."""
        state = self.store.begin_dispatch(repo, issue, key, command)
        if state == "sent":
            return False
        owner, name = repo.split("/", 1)
        github = self.app.client(installation_id, repo)
        if state == "pending" and self._run_exists(github, owner, name, key):
            self.store.dispatch_sent(repo, issue, key)  # its worker died after GitHub took it
            return False
        inputs = {"issue": str(issue), "command": command, "delivery": key}
        if approved:
            inputs["approved"] = approved
        try:
            self.write(installation_id, lambda: call(lambda: github.rest.actions.create_workflow_dispatch(
                owner, name, self.workflow, data={"ref": ref, "inputs": inputs}), now=self.store.now))
        except GitHubAnswered as exc:
            if exc.status in (404, 422):
                raise DispatchRefused(f"{exc} (the workflow .github/workflows/{self.workflow} must exist on "
                                      f"{ref} with a workflow_dispatch trigger taking the inputs "
                                      f"{', '.join(sorted(inputs))})") from None
            raise
        self.store.dispatch_sent(repo, issue, key)
        return True

    def _run_exists(self, github: GitHub[Any], owner: str, name: str, key: str) -> bool:
        """Whether a dispatched run carries this key in its title (the workflow's run-name has it),
        on any page: a busy repository dispatches more than a page of runs while a dead worker's
        lease runs out."""
        def runs_page(page: int) -> Any:
            return call(lambda: github.rest.actions.list_workflow_runs_for_repo(
                owner, name, event="workflow_dispatch", per_page=100, page=page), now=self.store.now)

        for page in range(1, RUN_PAGES + 1):
            response = runs_page(page)
            runs = response.json().get("workflow_runs", [])
            if any(f"[{key}]" in str(run.get("display_title") or "") for run in runs):
                return True
            if len(runs) < 100 or 'rel="next"' not in (response.headers.get("link") or ""):
                return False
        return False

    def comment(self, installation_id: int, forge: GitHubForge, issue: int, body: str) -> None:
        self.write(installation_id, lambda: forge.comment(issue, body))
