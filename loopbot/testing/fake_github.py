"""A stateful in-memory GitHub for flow tests, behind httpx.MockTransport (githubkit uses httpx).

Every request is held to GitHub's official OpenAPI description (a trimmed copy of
@octokit/openapi in tests/contracts/) and to loopbot's allow-list; anything either rejects is
recorded in `violations`, which the tests assert is empty.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

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
        try:
            jsonschema.validate(body, _nullable(schema))
        except jsonschema.ValidationError as exc:
            return f"{operation['operationId']}: {exc.message} at {'/'.join(map(str, exc.absolute_path))}"
        return None


def _ok(data: Any, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=data)


class FakeGitHub:
    def __init__(self, contract: Path, *, owner: str = "acme", repo: str = "kvstore",
                 permissions: dict[str, str] | None = None):
        self.contract = Contract(contract)
        self.owner, self.repo = owner, repo
        self.permissions = permissions or {}
        self.issues: dict[int, dict[str, Any]] = {}
        self.comments: dict[int, dict[str, Any]] = {}
        self.pulls: dict[int, dict[str, Any]] = {}
        self.reviews: dict[int, list[dict[str, Any]]] = {}
        self.check_runs: dict[int, dict[str, Any]] = {}
        self.log: list[tuple[str, str]] = []
        self.violations: list[str] = []
        self._numbers = itertools.count(1)
        self._ids = itertools.count(1000)
        self.refuse_request_changes = False
        # Logins whose permission lookup fails with this status (a 502, a rate limit), as GitHub can.
        self.failing_permission: dict[str, int] = {}
        self.auth_seen: list[str] = []

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

    # -- the API ------------------------------------------------------------------------------
    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        query = parse_qs(request.url.query.decode())
        body = json.loads(request.content) if request.content else None
        self.log.append((request.method, path))
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
        return self._route(request.method, path, query, body or {})

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: dict[str, Any]) -> httpx.Response:
        base = f"/repos/{self.owner}/{self.repo}"
        rest = path[len(base):] if path.startswith(base) else path
        parts = rest.strip("/").split("/")
        ok = _ok
        if path == "/graphql":
            node = (body.get("variables") or {}).get("id")
            for pull in self.pulls.values():
                if pull["node_id"] == node:
                    pull["draft"] = False
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
        if path == "/app/installations/42/access_tokens":
            self.auth_seen.append("installation-token")
            return ok({"token": "ghs_" + "I" * 36, "expires_at": "2099-01-01T00:00:00Z"}, 201)
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
        if not parts:
            if method == "POST":
                number = self.add_issue(body["title"], body.get("body", ""), labels=body.get("labels"), author="loopbot")
                return ok(self.issues[number], 201)
            wanted = set((query.get("labels") or [""])[0].split(",")) - {""}
            found = [i for i in self.issues.values() if wanted <= {lab["name"] for lab in i["labels"]}
                     and i["state"] == (query.get("state") or ["open"])[0]]
            return ok(found)
        if parts[0] == "comments":
            comment = self.comments[int(parts[1])]
            comment["body"] = body["body"]
            return ok(comment)
        number = int(parts[0])
        issue = self.issues.get(number)
        if issue is None:
            return httpx.Response(404, json={"message": "Not Found"})
        if len(parts) == 1:
            return ok(issue)
        if parts[1] == "comments":
            if method == "POST":
                comment_id = next(self._ids)
                # As GitHub answers: the author is the token's user (the Actions bot here).
                self.comments[comment_id] = {"id": comment_id, "issue_number": number, "body": body["body"],
                                             "user": {"login": "github-actions[bot]", "type": "Bot"}}
                return ok(self.comments[comment_id], 201)
            return ok(self.comments_on(number))
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
        if not parts:
            if method == "POST":
                number = next(self._numbers)
                branch = {"ref": body["head"], "repo": {"full_name": f"{self.owner}/{self.repo}"}}
                self.pulls[number] = {"number": number, "node_id": f"PR_node{number}", "head": branch,
                                      "base": {"ref": body["base"]}, "draft": body.get("draft", False),
                                      "state": "open", "title": body["title"], "body": body.get("body", ""),
                                      "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
                self.issues[number] = {"number": number, "title": body["title"], "body": body.get("body", ""),
                                       "user": {"login": "loopbot"}, "labels": [], "state": "open",
                                       "pull_request": {}}
                return ok(self.pulls[number], 201)
            head = (query.get("head") or [""])[0].split(":")[-1]
            state = (query.get("state") or ["open"])[0]
            found = [p for p in self.pulls.values() if (not head or p["head"]["ref"] == head)
                     and (state == "all" or p["state"] == state)]
            return ok(found)
        number = int(parts[0])
        pull = self.pulls[number]
        if len(parts) == 1:
            if method == "PATCH":
                pull.update({k: v for k, v in body.items() if k in ("body", "title")})
            return ok(pull)
        if parts[1] == "reviews":
            if method == "POST":
                if body["event"] == "REQUEST_CHANGES" and self.refuse_request_changes:
                    return httpx.Response(422, json={"message": "Can not request changes on your own pull request"})
                review = {"id": next(self._ids), "body": body.get("body", ""), "state": body["event"]}
                self.reviews.setdefault(number, []).append(review)
                return ok(review)
            return ok(self.reviews.get(number, []))
        if parts[1] == "comments":
            return ok([])
        return httpx.Response(404, json={"message": "Not Found"})

    def _checks(self, method: str, parts: list[str], query: dict[str, list[str]], body: dict[str, Any],
               ok: Callable[..., httpx.Response]
                ) -> httpx.Response:
        if parts[0] == "commits":
            name = query["check_name"][0] if query.get("check_name") else None
            runs = [r for r in self.check_runs.values() if r["head_sha"] == parts[1] and (name is None or r["name"] == name)]
            return ok({"total_count": len(runs), "check_runs": runs})
        if len(parts) == 1:
            run_id = next(self._ids)
            self.check_runs[run_id] = {"id": run_id, **copy.deepcopy(body)}
            return ok(self.check_runs[run_id], 201)
        run = self.check_runs[int(parts[1])]
        run.update(copy.deepcopy(body))
        return ok(run)
