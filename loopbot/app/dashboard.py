"""Writes a repository's dashboard issue (loopbot/core/dashboard.py renders it): found by its hidden
marker among the open issues the App itself opened, page after page, and edited in place; opened
only when there is none, so a repository never gets a second one."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from githubkit import GitHub

from loopbot.app.store import LoopRow
from loopbot.core.dashboard import MARKER, TITLE, DashboardLoop, render
from loopbot.errors import LoopbotError
from loopbot.forge.github import limits

MAX_PAGES = 50  # 5,000 open issues; a repository with more has its dashboard found by a later round


@dataclass(frozen=True)
class Found:
    number: int | None  # the dashboard issue, if there is one
    body: str
    titles: dict[int, str]  # open issues' titles, for the loops' lines


def dashboard_loops(rows: Sequence[LoopRow], titles: Mapping[int, str],
                    server_url: str = "https://github.com") -> list[DashboardLoop]:
    """The registry's loops of one repository as the dashboard shows them."""
    return [DashboardLoop(loop_id=row.id, issue=row.issue, status=row.status, cost_usd=row.cost_usd or 0.0,
                          title=titles.get(row.issue, ""), detail=row.detail,
                          run_url=f"{server_url}/{row.repo}/actions/runs/{row.workflow_run_id}"
                          if row.workflow_run_id else None)
            for row in rows]


class DashboardWriter:
    def __init__(self, github: GitHub[Any], owner: str, repo: str, *, self_login: str,
                 server_url: str = "https://github.com",
                 send: Callable[[Callable[[], Any]], Any] = lambda request: request()):
        self.github, self.owner, self.repo = github, owner, repo
        self.self_login, self.server_url = self_login, server_url
        self.send = send  # how a content-creating write goes out (the App paces them per installation)

    def _ours(self, issue: Mapping[str, Any]) -> bool:
        """Opened by this App (`self_login`, `<slug>[bot]`): the marker in anyone else's issue, another
        App's included, does not make it the dashboard."""
        return str((issue.get("user") or {}).get("login") or "") == self.self_login

    def find(self) -> Found:
        titles: dict[int, str] = {}
        candidates: dict[int, str] = {}
        page = 1
        for _ in range(MAX_PAGES):
            response = self.github.rest.issues.list_for_repo(self.owner, self.repo, state="open", per_page=100,
                                                             page=page, sort="created", direction="asc")
            page_items: list[dict[str, Any]] = response.json()
            for issue in page_items:
                if "pull_request" in issue:
                    continue
                titles[int(issue["number"])] = str(issue.get("title") or "")
                body = str(issue.get("body") or "")
                if MARKER in body and self._ours(issue):
                    candidates[int(issue["number"])] = body
            try:
                following = limits.next_page(response.headers.get("link"))
            except ValueError as exc:
                raise LoopbotError(str(exc)) from None
            if following is None or following <= page:
                break
            page = following
        if not candidates:
            return Found(None, "", titles)
        number = min(candidates)  # the oldest is the one kept, whatever order the pages came in
        return Found(number, candidates[number], titles)

    def publish(self, rows: Sequence[LoopRow]) -> int:
        """Render the loops into the dashboard issue; returns its number. No request when unchanged."""
        found = self.find()
        body = render(f"{self.owner}/{self.repo}", dashboard_loops(rows, found.titles, self.server_url),
                      server_url=self.server_url)
        if found.number is None:
            created = self.send(lambda: self.github.rest.issues.create(self.owner, self.repo, title=TITLE, body=body))
            return int(created.json()["number"])
        number = found.number
        if found.body != body:
            self.send(lambda: self.github.rest.issues.update(self.owner, self.repo, number, body=body))
        return number
