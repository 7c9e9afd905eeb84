"""Every GitHub operation loopbot may perform. Anything else is refused before it is sent.

The same list trims GitHub's OpenAPI description for the contract tests
(scripts/vendor_github_contracts.py), so the two cannot drift apart.
"""

from __future__ import annotations

import re
from functools import lru_cache

ALLOWED: frozenset[tuple[str, str]] = frozenset({
    # who may trigger
    ("GET", "/repos/{owner}/{repo}/collaborators/{username}/permission"),
    # plans and their issues
    ("GET", "/repos/{owner}/{repo}/issues"),
    ("POST", "/repos/{owner}/{repo}/issues"),
    ("GET", "/repos/{owner}/{repo}/issues/{issue_number}"),
    ("GET", "/repos/{owner}/{repo}/issues/{issue_number}/comments"),
    ("POST", "/repos/{owner}/{repo}/issues/{issue_number}/comments"),
    ("PATCH", "/repos/{owner}/{repo}/issues/comments/{comment_id}"),
    ("POST", "/repos/{owner}/{repo}/issues/{issue_number}/labels"),
    ("DELETE", "/repos/{owner}/{repo}/issues/{issue_number}/labels/{name}"),
    # loop pull requests (opened as drafts; never merged)
    ("GET", "/repos/{owner}/{repo}/pulls"),
    ("POST", "/repos/{owner}/{repo}/pulls"),
    ("GET", "/repos/{owner}/{repo}/pulls/{pull_number}"),
    ("PATCH", "/repos/{owner}/{repo}/pulls/{pull_number}"),
    ("GET", "/repos/{owner}/{repo}/pulls/{pull_number}/reviews"),
    ("POST", "/repos/{owner}/{repo}/pulls/{pull_number}/reviews"),
    ("GET", "/repos/{owner}/{repo}/pulls/{pull_number}/comments"),
    # the goal check run
    ("POST", "/repos/{owner}/{repo}/check-runs"),
    ("PATCH", "/repos/{owner}/{repo}/check-runs/{check_run_id}"),
    ("GET", "/repos/{owner}/{repo}/commits/{ref}/check-runs"),
    # App credentials -> installation token
    ("GET", "/repos/{owner}/{repo}/installation"),
    ("POST", "/app/installations/{installation_id}/access_tokens"),
    # draft -> ready for review exists only in GraphQL; its mutations are listed below
    ("POST", "/graphql"),
})

GRAPHQL_MUTATIONS = frozenset({"markPullRequestReadyForReview"})
GRAPHQL_QUERIES = frozenset({"pullRequestId"})

# Never, whatever a caller asks for: merging, pushing refs through the API, changing workflows.
FORBIDDEN = re.compile(r"/merge$|/merges$|/git/refs|/git/commits|/contents/|/actions/workflows/.+/(enable|disable)$")


@lru_cache(maxsize=1)
def _patterns() -> list[tuple[str, re.Pattern[str], str]]:
    compiled = []
    for method, template in ALLOWED:
        regex = "^" + re.sub(r"\{[^}]+\}", r"[^/]+", template) + "$"
        compiled.append((method, re.compile(regex), template))
    return compiled


def operation_for(method: str, path: str) -> str | None:
    """The allowed operation template a request matches, or None."""
    if FORBIDDEN.search(path):
        return None
    for allowed_method, pattern, template in _patterns():
        if allowed_method == method.upper() and pattern.match(path):
            return template
    return None


def graphql_operation(query: str) -> str | None:
    """The name of the single mutation or query a GraphQL document performs, if allowed."""
    body = re.sub(r"#.*", "", query)
    mutation = re.search(r"\bmutation\b[^{]*\{\s*(\w+)", body)
    if mutation:
        return mutation.group(1) if mutation.group(1) in GRAPHQL_MUTATIONS else None
    named = re.search(r"\bquery\s+(\w+)", body)
    return named.group(1) if named and named.group(1) in GRAPHQL_QUERIES else None
