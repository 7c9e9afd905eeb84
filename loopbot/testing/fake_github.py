"""A stateful in-memory GitHub for flow tests, behind httpx.MockTransport (githubkit uses httpx).

Every request is held to GitHub's official OpenAPI description (a trimmed copy of
@octokit/openapi in tests/contracts/) and to loopbot's allow-list; anything either rejects is
recorded in `violations`, which the tests assert is empty.

It answers as GitHub does where loopbot has been caught out: lists come in pages (`per_page`
30 by default, at most 100) with a `Link` header whose URLs name the repository by id
(`/repositories/{id}/...`, as GitHub's do); bodies over 65,536 characters are refused; rate limits
(primary, secondary with `retry-after`, secondary with no headers at all, 429) can be queued; the
repository settings that refuse pull requests from Actions and drafts can be switched on; a
pull request's author cannot request changes on or approve it; GraphQL errors come in a 200.
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import itertools
import json
import math
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx
import jsonschema

from loopbot.forge.github.operations import graphql_operation, operation_for


def _nullable(schema: Any) -> Any:
    """OpenAPI 3.0's `nullable: true` as JSON Schema."""
    if isinstance(schema, dict):
        schema = {k: _nullable(v) for k, v in schema.items()}
        if schema.pop("nullable", False):
            if "type" in schema:
                types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
                schema["type"] = [*types, "null"]
            else:
                schema = {"anyOf": [schema, {"type": "null"}]}
        return schema
    if isinstance(schema, list):
        return [_nullable(x) for x in schema]
    return schema


class Contract:
    def __init__(self, path: Path):
        data = json.loads(path.read_text())
        self.operations: list[tuple[str, re.Pattern[str], dict[str, Any]]] = []
        # Each body schema checked once and compiled once: jsonschema.validate checks the schema
        # against its meta-schema on every call (12 ms for a check run's, against 0.5 ms to validate).
        self._validators: dict[str, jsonschema.protocols.Validator] = {}
        for template, methods in data["paths"].items():
            regex = re.compile("^" + re.sub(r"\{[^}]+\}", r"[^/]+", template) + "$")
            for method, operation in methods.items():
                self.operations.append((method.upper(), regex, operation))

    def check(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> str | None:
        """Why GitHub's description rejects this request, or None."""
        if path == "/graphql":
            return None
        operation = next((op for allowed, regex, op in self.operations if allowed == method and regex.match(path)), None)
        if operation is None:
            return f"{method} {path}: no such operation in GitHub's description"
        known = {p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"}
        unknown = set(query) - known
        if unknown:
            return f"{operation['operationId']}: unknown query parameters {sorted(unknown)}"
        request_body = operation.get("requestBody")
        if request_body is None:
            return None if body in (None, b"", {}) else f"{operation['operationId']}: takes no body"
        schema = request_body.get("content", {}).get("application/json", {}).get("schema")
        if schema is None:
            return None
        if body is None and request_body.get("required"):
            return f"{operation['operationId']}: body required"
        error = jsonschema.exceptions.best_match(self._validator(operation["operationId"], schema).iter_errors(body))
        if error is not None:
            return f"{operation['operationId']}: {error.message} at {'/'.join(map(str, error.absolute_path))}"
        return None

    def _validator(self, operation_id: str, schema: Any) -> jsonschema.protocols.Validator:
        """What jsonschema.validate builds on each call, built once per operation."""
        validator = self._validators.get(operation_id)
        if validator is None:
            converted = _nullable(schema)
            cls = jsonschema.validators.validator_for(converted)
            cls.check_schema(converted)
            validator = self._validators[operation_id] = cls(converted)
        return validator


@functools.cache
def _contract(path: Path) -> Contract:
    """One per description and process: every test's fake reads the same file, and the compiled
    validators are what take the time."""
    return Contract(path)


def _ok(data: Any, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=data)


# GitHub's limits and refusals, word for word.
BODY_LIMIT = 65_536
SUMMARY_LIMIT = 65_535
DOCS = "https://docs.github.com/rest"
ACTIONS_MAY_NOT_CREATE_PRS = "GitHub Actions is not permitted to create or approve pull requests."
DRAFTS_UNSUPPORTED = "Draft pull requests are not supported in this repository."
SECONDARY_LIMIT = ("You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
                   "If you reach out to GitHub Support for help, please include the request ID 0000:1111:2222.")
OWN_PR = {"REQUEST_CHANGES": "Can not request changes on your own pull request",
          "APPROVE": "Can not approve your own pull request"}


def _invalid(resource: str, field: str, message: str, code: str = "custom") -> httpx.Response:
    return httpx.Response(422, json={"message": "Validation Failed", "documentation_url": DOCS, "status": "422",
                                     "errors": [{"resource": resource, "code": code, "field": field,
                                                 "message": message}]})


def _too_long(resource: str, body: Any, limit: int = BODY_LIMIT) -> httpx.Response | None:
    if isinstance(body, str) and len(body) > limit:
        return _invalid(resource, "body", f"body is too long (maximum is {limit} characters)")
    return None


class FakeGitHub:
    def __init__(self, contract: Path, *, owner: str = "acme", repo: str = "kvstore",
                 permissions: dict[str, str] | None = None):
        self.contract = _contract(contract)
        self.owner, self.repo = owner, repo
        self.permissions = permissions or {}
        self.issues: dict[int, dict[str, Any]] = {}
        self.comments: dict[int, dict[str, Any]] = {}
        self.pulls: dict[int, dict[str, Any]] = {}
        self.reviews: dict[int, list[dict[str, Any]]] = {}
        self.review_comments: dict[int, list[dict[str, Any]]] = {}
        self.check_runs: dict[int, dict[str, Any]] = {}
        self.log: list[tuple[str, str]] = []
        self.violations: list[str] = []
        self._numbers = itertools.count(1)
        self._ids = itertools.count(1000)
        # Refuses REQUEST_CHANGES from anyone (GitHub refuses it from the PR's author in any case).
        self.refuse_request_changes = False
        # Logins whose permission lookup fails with this status (a 502, a rate limit), as GitHub can.
        self.failing_permission: dict[str, int] = {}
        self.auth_seen: list[str] = []
        self.repo_id = 1300192
        # GitHub serves at most 100 items a page; a test may lower it to see more pages.
        self.max_per_page = 100
        # The repository settings: Settings → Actions → General → Workflow permissions → "Allow GitHub
        # Actions to create and approve pull requests" (off by default), and drafts (not on private
        # repositories of the Free plan). The refusal's status: 403 today, 422 in older answers.
        self.actions_may_create_prs = True
        self.actions_refusal_status = 403
        self.drafts_supported = True
        # Who each token is: the checkout's GITHUB_TOKEN is the Actions bot, a minted installation
        # token the App's bot; a test may name others (a human's token).
        self.token_logins: dict[str, str] = {}
        self.installation_token = "ghs_" + "I" * 36
        # Rate limits queued for the next requests: (kind, method or None, retry_after or reset seconds).
        self.throttles: list[tuple[str, str | None, int | None]] = []
        self.wall: Callable[[], float] = time.time
        # GraphQL errors queued for the next GraphQL requests, as GitHub answers them: in a 200.
        self.graphql_errors: list[list[dict[str, Any]]] = []
        self.graphql_seen: list[dict[str, Any]] = []
        self._login = "github-actions[bot]"
        # Refusals queued for requests matching (method, path pattern): (status, message).
        self.refusals: list[tuple[str, re.Pattern[str], int, str]] = []
        # The App's side: installations that may mint tokens (and when the tokens expire), the
        # installation's repositories, workflows by file name (their workflow_dispatch inputs, or
        # None when the workflow has no such trigger), their runs, and branches with files.
        self.installation_ids: set[int] = {42}
        self.token_expires_at = "2099-01-01T00:00:00Z"
        self.tokens_minted = 0
        self.installation_repos: list[str] = [f"{owner}/{repo}"]
        self.workflows: dict[str, dict[str, Any]] = {}
        self.workflow_runs: list[dict[str, Any]] = []
        self.app_slug = "loopbot"  # the App's installation token acts as `<slug>[bot]`
        self.branches: dict[str, dict[str, Any]] = {}
        self.trees: dict[str, list[dict[str, Any]]] = {}
        self.blobs: dict[str, str] = {}

    # -- setup helpers ------------------------------------------------------------------------
    def add_issue(self, title: str, body: str, *, labels: list[str] | None = None, author: str = "alice") -> int:
        number = next(self._numbers)
        self.issues[number] = {"number": number, "title": title, "body": body, "user": {"login": author},
                               "labels": [{"name": n} for n in labels or []], "state": "open"}
        return number

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def labels_of(self, number: int) -> list[str]:
        return [label["name"] for label in self.issues[number]["labels"]]

    def comments_on(self, number: int) -> list[dict[str, Any]]:
        return [c for c in self.comments.values() if c["issue_number"] == number]

    def add_comment(self, number: int, body: str, *, login: str = "alice", user_type: str = "User") -> int:
        comment_id = next(self._ids)
        self.comments[comment_id] = {"id": comment_id, "issue_number": number, "body": body,
                                     "user": {"login": login, "type": user_type}}
        return comment_id

    def add_pull(self, head: str, *, base: str = "main", title: str = "t", body: str = "", draft: bool = True,
                 author: str = "github-actions[bot]", repo: str | None = None) -> int:
        """A pull request as if someone had opened it (`repo`: the head's repository, a fork's name)."""
        number = next(self._numbers)
        branch = {"ref": head, "repo": {"full_name": repo or f"{self.owner}/{self.repo}"}}
        user = {"login": author, "type": "Bot" if author.endswith("[bot]") else "User"}
        self.pulls[number] = {"number": number, "node_id": f"PR_node{number}", "head": branch,
                              "base": {"ref": base}, "draft": draft, "state": "open", "title": title,
                              "body": body, "user": user,
                              "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self.issues[number] = {"number": number, "title": title, "body": body, "user": user, "labels": [],
                               "state": "open", "pull_request": {}}
        return number

    def refuse(self, method: str, path: str, status: int = 422, message: str = "Validation Failed", *,
               times: int = 1) -> None:
        """The next `times` requests of `method` whose path matches the `path` pattern get this error
        (a 422 on a comment update, a 502 from a load balancer), as GitHub sometimes answers."""
        self.refusals += [(method, re.compile(path), status, message)] * times

    def throttle(self, kind: str, *, times: int = 1, method: str | None = None, seconds: int | None = None) -> None:
        """The next `times` requests (of `method`, if given) are rate limited, as GitHub limits them:
        "primary" (403, x-ratelimit-remaining 0, reset `seconds` ahead), "secondary" (403 with
        retry-after), "secondary-bare" (403 saying so, no headers at all), "429" (with retry-after)."""
        assert kind in ("primary", "secondary", "secondary-bare", "429"), kind
        self.throttles += [(kind, method, seconds)] * times

    def _throttled(self, method: str) -> httpx.Response | None:
        found = next((i for i, (_, wanted, _) in enumerate(self.throttles) if wanted in (None, method)), None)
        if found is None:
            return None
        kind, _, seconds = self.throttles.pop(found)
        if kind == "primary":
            reset = int(self.wall()) + (60 if seconds is None else seconds)
            return httpx.Response(403, headers={"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0",
                                                "x-ratelimit-used": "5000", "x-ratelimit-reset": str(reset),
                                                "x-ratelimit-resource": "core"},
                                  json={"message": "API rate limit exceeded for installation ID 42.",
                                        "documentation_url": f"{DOCS}/overview/rate-limits-for-the-rest-api"})
        if kind == "secondary-bare":
            return httpx.Response(403, json={"message": SECONDARY_LIMIT, "documentation_url":
                                             f"{DOCS}/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"})
        headers = {"retry-after": str(30 if seconds is None else seconds)}
        if kind == "429":
            return httpx.Response(429, headers=headers, json={"message": SECONDARY_LIMIT})
        return httpx.Response(403, headers=headers, json={"message": SECONDARY_LIMIT})

    def _page(self, path: str, query: dict[str, list[str]], items: list[Any], key: str | None = None
              ) -> httpx.Response:
        """One page of a list, with GitHub's `Link` header (URLs by repository id, as GitHub's are)."""
        per_page = max(1, min(int((query.get("per_page") or ["30"])[0]), self.max_per_page))
        page = max(1, int((query.get("page") or ["1"])[0]))
        last = max(1, math.ceil(len(items) / per_page))
        chunk = items[(page - 1) * per_page: page * per_page]
        base = f"/repos/{self.owner}/{self.repo}"
        by_id = f"https://api.github.com/repositories/{self.repo_id}{path[len(base):]}"
        others = {k: v[0] for k, v in query.items() if k not in ("page", "per_page")}

        def url(n: int) -> str:
            return f"{by_id}?{urlencode({**others, 'per_page': per_page, 'page': n})}"

        links = []
        if page < last:
            links += [f'<{url(page + 1)}>; rel="next"', f'<{url(last)}>; rel="last"']
        if page > 1:
            links += [f'<{url(1)}>; rel="first"', f'<{url(min(page - 1, last))}>; rel="prev"']
        headers = {"link": ", ".join(links)} if links else {}
        data: Any = chunk if key is None else {"total_count": len(items), key: chunk}
        return httpx.Response(200, json=data, headers=headers)

    def _pull_view(self, number: int) -> dict[str, Any]:
        """A pull request as GitHub shows it: its labels are its issue's."""
        return {**self.pulls[number], "labels": copy.deepcopy((self.issues.get(number) or {}).get("labels", []))}

    # -- the App's side -----------------------------------------------------------------------
    def add_workflow(self, file: str, inputs: dict[str, bool] | None, *, run_name: str = "") -> None:
        """A workflow in .github/workflows/: its workflow_dispatch inputs (name -> required), or None
        for a workflow without that trigger; `run_name` formats a dispatched run's title from its inputs."""
        self.workflows[file] = {"id": next(self._ids), "path": f".github/workflows/{file}", "inputs": inputs,
                                "run_name": run_name}

    def set_branch(self, name: str, files: dict[str, str], *, date: str = "2026-01-01T00:00:00Z") -> str:
        """A branch whose newest commit holds `files` (path -> text); returns the commit's sha."""
        def tree(prefix: str) -> str:
            entries: list[dict[str, Any]] = []
            dirs = sorted({p[len(prefix):].split("/")[0] for p in files
                                        if p.startswith(prefix) and "/" in p[len(prefix):]})
            for directory in dirs:
                entries.append({"path": directory, "mode": "040000", "type": "tree",
                                "sha": tree(f"{prefix}{directory}/")})
            for path, text in sorted(files.items()):
                rest = path[len(prefix):]
                if path.startswith(prefix) and "/" not in rest:
                    sha = hashlib.sha1(f"blob {text}".encode()).hexdigest()
                    self.blobs[sha] = text
                    entries.append({"path": rest, "mode": "100644", "type": "blob", "sha": sha,
                                    "size": len(text.encode())})
            sha = hashlib.sha1(json.dumps(entries, sort_keys=True).encode()).hexdigest()
            self.trees[sha] = entries
            return sha

        root = tree("")
        commit = hashlib.sha1(f"{name} {root} {date}".encode()).hexdigest()
        self.branches[name] = {"sha": commit, "tree": root, "date": date}
        return commit

    def _dispatch(self, workflow_id: str, body: dict[str, Any]) -> httpx.Response:
        """As GitHub answers a workflow_dispatch: 404 for an unknown workflow, 422 when it has no
        workflow_dispatch trigger, an input it does not declare or a required one missing, or the
        ref is no branch; 204 and a queued run otherwise."""
        workflow = self.workflows.get(workflow_id) or next(
            (w for w in self.workflows.values() if str(w["id"]) == workflow_id), None)
        if workflow is None:
            return httpx.Response(404, json={"message": "Not Found", "documentation_url": DOCS, "status": "404"})
        declared = workflow["inputs"]
        if declared is None:
            return httpx.Response(422, json={"message": "Workflow does not have 'workflow_dispatch' trigger",
                                             "documentation_url": DOCS, "status": "422"})
        inputs = body.get("inputs") or {}
        unexpected = sorted(set(inputs) - set(declared))
        if unexpected:
            return httpx.Response(422, json={"message": f"Unexpected inputs provided: {json.dumps(unexpected)}",
                                             "documentation_url": DOCS, "status": "422"})
        missing = [name for name, required in declared.items() if required and not inputs.get(name)]
        if missing:
            return httpx.Response(422, json={"message": f"Required input '{missing[0]}' not provided",
                                             "documentation_url": DOCS, "status": "422"})
        if self.branches and body["ref"] not in self.branches:
            return httpx.Response(422, json={"message": f"No ref found for: {body['ref']}",
                                             "documentation_url": DOCS, "status": "422"})
        title = workflow["run_name"].format(**inputs) if workflow["run_name"] else workflow["path"]
        self.workflow_runs.append({"id": next(self._ids), "name": "loopbot run", "display_title": title,
                                   "event": "workflow_dispatch", "status": "queued", "conclusion": None,
                                   "path": workflow["path"], "head_branch": body["ref"], "inputs": dict(inputs),
                                   "actor": {"login": self._login}})
        return httpx.Response(204)

    def job(self, run_id: int, attempt: int = 1, status: str = "in_progress") -> None:
        """A workflow run of the repository at `attempt` (earlier attempts completed), as a job
        holding a lease would be; `status` is the latest attempt's."""
        self.workflow_runs = [r for r in self.workflow_runs if r["id"] != run_id]
        self.workflow_runs.append({"id": run_id, "name": "loopbot run", "display_title": "loopbot run",
                                   "event": "issues", "status": status,
                                   "conclusion": "cancelled" if status == "completed" else None,
                                   "run_attempt": attempt, "path": ".github/workflows/loopbot-run.yml",
                                   "head_branch": "main", "actor": {"login": self._login}})

    def _run_attempt(self, run_id: int, attempt: int) -> httpx.Response:
        # GitHub: an attempt that never existed is a 404; every attempt before the latest is over.
        run = next((r for r in self.workflow_runs if r["id"] == run_id), None)
        if run is None or not 1 <= attempt <= int(run.get("run_attempt", 1)):
            return httpx.Response(404, json={"message": "Not Found", "documentation_url": DOCS})
        latest = attempt == int(run.get("run_attempt", 1))
        return httpx.Response(200, json={**run, "run_attempt": attempt,
                                         "status": run["status"] if latest else "completed",
                                         "conclusion": run["conclusion"] if latest else "cancelled"})

    # -- the API ------------------------------------------------------------------------------
    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        query = parse_qs(request.url.query.decode())
        body = json.loads(request.content) if request.content else None
        self.log.append((request.method, path))
        token = request.headers.get("authorization", "").split(" ")[-1]
        self._login = self.token_logins.get(token) or (
            f"{self.app_slug}[bot]" if token == self.installation_token else "github-actions[bot]")
        if operation_for(request.method, path) is None:
            self.violations.append(f"outside the allow-list: {request.method} {path}")
            return httpx.Response(403, json={"message": "not allowed"})
        if path == "/graphql" and graphql_operation((body or {}).get("query", "")) is None:
            self.violations.append("graphql operation outside the allow-list")
            return httpx.Response(403, json={"message": "not allowed"})
        problem = self.contract.check(request.method, path, query, body)
        if problem is not None:
            self.violations.append(problem)
            return httpx.Response(422, json={"message": problem})
        throttled = self._throttled(request.method)
        if throttled is not None:
            return throttled
        refused = next((i for i, (m, pattern, _, _) in enumerate(self.refusals)
                        if m == request.method and pattern.search(path)), None)
        if refused is not None:
            _, _, status, message = self.refusals.pop(refused)
            return httpx.Response(status, json={"message": message, "documentation_url": DOCS})
        return self._route(request.method, path, query, body or {})

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: dict[str, Any]) -> httpx.Response:
        base = f"/repos/{self.owner}/{self.repo}"
        rest = path[len(base):] if path.startswith(base) else path
        parts = rest.strip("/").split("/")
        ok = _ok
        if path == "/graphql":
            self.graphql_seen.append(body)
            if self.graphql_errors:
                return ok({"data": None, "errors": self.graphql_errors.pop(0)})
            node = (body.get("variables") or {}).get("id")
            found = [pull for pull in self.pulls.values() if pull["node_id"] == node]
            if not found:
                return ok({"data": {"markPullRequestReadyForReview": None}, "errors": [
                    {"type": "NOT_FOUND", "path": ["markPullRequestReadyForReview"],
                     "message": f"Could not resolve to a node with the global id of '{node}'"}]})
            found[0]["draft"] = False
            return ok({"data": {"markPullRequestReadyForReview": {"clientMutationId": None}}})
        if parts[:1] == ["collaborators"]:
            if parts[1] in self.failing_permission:
                return httpx.Response(self.failing_permission[parts[1]], json={"message": "Server Error"})
            permission = self.permissions.get(parts[1], "none")
            if permission == "none":
                return httpx.Response(404, json={"message": "Not a collaborator"})
            return ok({"permission": permission, "role_name": permission, "user": {"login": parts[1]}})
        if parts == ["installation"]:
            self.auth_seen.append("jwt")
            return ok({"id": 42})
        if path == "/app":  # the App itself (JWT): its slug names its bot user, `<slug>[bot]`
            self.auth_seen.append("jwt")
            return ok({"id": 12345, "slug": self.app_slug, "name": self.app_slug, "node_id": "A_1",
                       "owner": {"login": self.owner}, "html_url": f"https://github.com/apps/{self.app_slug}"})
        if path.startswith("/app/installations/") and path.endswith("/access_tokens"):
            if int(path.split("/")[3]) not in self.installation_ids:
                return httpx.Response(404, json={"message": "Not Found", "documentation_url": DOCS})
            self.auth_seen.append("installation-token")
            self.tokens_minted += 1
            return ok({"token": self.installation_token, "expires_at": self.token_expires_at}, 201)
        if path == "/installation/repositories":
            repos = [{"full_name": name, "name": name.split("/")[1], "owner": {"login": name.split("/")[0]}}
                     for name in self.installation_repos]
            return self._page(path, query, repos, key="repositories")
        if parts[:2] == ["actions", "workflows"] and parts[3:] == ["dispatches"]:
            return self._dispatch(parts[2], body)
        if parts[:2] == ["actions", "runs"] and len(parts) == 5 and parts[3] == "attempts":
            return self._run_attempt(int(parts[2]), int(parts[4]))
        if parts[:2] == ["actions", "runs"]:
            event = query["event"][0] if query.get("event") else None
            runs = [r for r in reversed(self.workflow_runs) if event in (None, r["event"])]
            return self._page(f"{base}/actions/runs", query, runs, key="workflow_runs")
        if parts == ["commits"]:
            branch = self.branches.get((query.get("sha") or [""])[0])
            if branch is None:
                return httpx.Response(404, json={"message": "Not Found", "documentation_url": DOCS})
            return self._page(path, query, [{"sha": branch["sha"], "commit": {
                "committer": {"date": branch["date"]}, "tree": {"sha": branch["tree"]}}}])
        if parts[:2] == ["git", "trees"] and len(parts) == 3:
            if parts[2] not in self.trees:
                return httpx.Response(404, json={"message": "Not Found", "documentation_url": DOCS})
            return ok({"sha": parts[2], "tree": self.trees[parts[2]], "truncated": False})
        if parts[:2] == ["git", "blobs"] and len(parts) == 3:
            if parts[2] not in self.blobs:
                return httpx.Response(404, json={"message": "Not Found", "documentation_url": DOCS})
            text = self.blobs[parts[2]]
            return ok({"sha": parts[2], "size": len(text.encode()), "encoding": "base64",
                       "content": base64.b64encode(text.encode()).decode()})
        if parts[:1] == ["issues"]:
            return self._issues(method, parts[1:], query, body, ok)
        if parts[:1] == ["pulls"]:
            return self._pulls(method, parts[1:], query, body, ok)
        if parts[:1] == ["check-runs"] or parts[:1] == ["commits"]:
            return self._checks(method, parts, query, body, ok)
        return httpx.Response(404, json={"message": f"fake has no {method} {path}"})

    def _issues(self, method: str, parts: list[str], query: dict[str, list[str]], body: dict[str, Any],
               ok: Callable[..., httpx.Response]
                ) -> httpx.Response:
        path = f"/repos/{self.owner}/{self.repo}/issues/{'/'.join(parts)}".rstrip("/")
        if not parts:
            if method == "POST":
                refused = _too_long("Issue", body.get("body"))
                if refused is not None:
                    return refused
                number = self.add_issue(body["title"], body.get("body", ""), labels=body.get("labels"),
                                        author=self._login)
                return ok(self.issues[number], 201)
            wanted = set((query.get("labels") or [""])[0].split(",")) - {""}
            state = (query.get("state") or ["open"])[0]
            found = [i for i in self.issues.values() if wanted <= {lab["name"] for lab in i["labels"]}
                     and state in ("all", i["state"])]
            # Newest first, as GitHub sorts them (created, desc); pull requests are issues too.
            return self._page(path, query, sorted(found, key=lambda i: -i["number"]))
        if parts[0] == "comments":
            refused = _too_long("IssueComment", body.get("body"))
            if refused is not None:
                return refused
            comment = self.comments[int(parts[1])]
            comment["body"] = body["body"]
            return ok(comment)
        number = int(parts[0])
        issue = self.issues.get(number)
        if issue is None:
            return httpx.Response(404, json={"message": "Not Found"})
        if len(parts) == 1:
            if method == "PATCH":
                refused = _too_long("Issue", body.get("body"))
                if refused is not None:
                    return refused
                issue.update({k: body[k] for k in ("title", "body", "state") if k in body})
            return ok(issue)
        if parts[1] == "comments":
            if method == "POST":
                refused = _too_long("IssueComment", body.get("body"))
                if refused is not None:
                    return refused
                # As GitHub answers: the author is the token's user (the Actions bot, the App's bot).
                comment_id = self.add_comment(number, body["body"], login=self._login,
                                              user_type="Bot" if self._login.endswith("[bot]") else "User")
                return ok(self.comments[comment_id], 201)
            # Oldest first, as GitHub lists them.
            return self._page(path, query, self.comments_on(number))
        if parts[1] == "labels":
            if method == "POST":
                for name in body["labels"]:
                    if name not in self.labels_of(number):
                        issue["labels"].append({"name": name})
                return ok(issue["labels"])
            name = parts[2]
            if name not in self.labels_of(number):
                return httpx.Response(404, json={"message": "Label does not exist"})
            issue["labels"] = [lab for lab in issue["labels"] if lab["name"] != name]
            return ok(issue["labels"])
        return httpx.Response(404, json={"message": "Not Found"})

    def _pulls(self, method: str, parts: list[str], query: dict[str, list[str]], body: dict[str, Any],
               ok: Callable[..., httpx.Response]
               ) -> httpx.Response:
        path = f"/repos/{self.owner}/{self.repo}/pulls/{'/'.join(parts)}".rstrip("/")
        if not parts:
            if method == "POST":
                if self._login == "github-actions[bot]" and not self.actions_may_create_prs:
                    if self.actions_refusal_status == 422:
                        return _invalid("PullRequest", "base", ACTIONS_MAY_NOT_CREATE_PRS)
                    return httpx.Response(403, json={"message": ACTIONS_MAY_NOT_CREATE_PRS, "status": "403",
                                                     "documentation_url": f"{DOCS}/pulls/pulls#create-a-pull-request"})
                if body.get("draft") and not self.drafts_supported:
                    return _invalid("PullRequest", "draft", DRAFTS_UNSUPPORTED)
                refused = _too_long("PullRequest", body.get("body"))
                if refused is not None:
                    return refused
                number = self.add_pull(body["head"], base=body["base"], title=body["title"],
                                       body=body.get("body", ""), draft=body.get("draft", False), author=self._login)
                return ok(self._pull_view(number), 201)
            head = (query.get("head") or [""])[0].split(":")[-1]
            state = (query.get("state") or ["open"])[0]
            found = [self._pull_view(n) for n, p in self.pulls.items() if (not head or p["head"]["ref"] == head)
                     and (state == "all" or p["state"] == state)]
            return self._page(path, query, sorted(found, key=lambda p: -p["number"]))
        number = int(parts[0])
        pull = self.pulls[number]
        if len(parts) == 1:
            if method == "PATCH":
                refused = _too_long("PullRequest", body.get("body"))
                if refused is not None:
                    return refused
                pull.update({k: v for k, v in body.items() if k in ("body", "title")})
            return ok(self._pull_view(number))
        if parts[1] == "reviews":
            if method == "POST":
                event = body.get("event", "COMMENT")
                own = self._login == (pull.get("user") or {}).get("login")
                if event in OWN_PR and (own or (event == "REQUEST_CHANGES" and self.refuse_request_changes)):
                    return httpx.Response(422, json={"message": "Unprocessable Entity", "errors": [OWN_PR[event]],
                                                     "documentation_url": f"{DOCS}/pulls/reviews", "status": "422"})
                refused = _too_long("PullRequestReview", body.get("body"))
                if refused is not None:
                    return refused
                review = {"id": next(self._ids), "body": body.get("body", ""), "state": event,
                          "user": {"login": self._login, "type": "Bot" if self._login.endswith("[bot]") else "User"}}
                self.reviews.setdefault(number, []).append(review)
                return ok(review)
            return self._page(path, query, self.reviews.get(number, []))
        if parts[1] == "comments":
            return self._page(path, query, self.review_comments.get(number, []))
        return httpx.Response(404, json={"message": "Not Found"})

    def _checks(self, method: str, parts: list[str], query: dict[str, list[str]], body: dict[str, Any],
               ok: Callable[..., httpx.Response]
                ) -> httpx.Response:
        if parts[0] == "commits":
            name = query["check_name"][0] if query.get("check_name") else None
            runs = [r for r in self.check_runs.values() if r["head_sha"] == parts[1] and (name is None or r["name"] == name)]
            return self._page(f"/repos/{self.owner}/{self.repo}/{'/'.join(parts)}", query, runs, key="check_runs")
        summary = (body.get("output") or {}).get("summary")
        if isinstance(summary, str) and len(summary) > SUMMARY_LIMIT:
            return _invalid("CheckRun", "output.summary", f"summary is too long (maximum is {SUMMARY_LIMIT} characters)")
        if body.get("status") == "completed" and not body.get("conclusion"):
            return _invalid("CheckRun", "conclusion", "conclusion is required when status is completed", "missing_field")
        if len(parts) == 1:
            run_id = next(self._ids)
            self.check_runs[run_id] = {"id": run_id, "status": "queued", "conclusion": None, **copy.deepcopy(body)}
            return ok(self.check_runs[run_id], 201)
        run = self.check_runs[int(parts[1])]
        run.update(copy.deepcopy(body))
        return ok(run)
