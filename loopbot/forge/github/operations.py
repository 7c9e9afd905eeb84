"""Every GitHub operation loopbot may perform. Anything else is refused before it is sent.

The same list trims GitHub's OpenAPI description for the contract tests
(scripts/vendor_github_contracts.py), so the two cannot drift apart.
"""

from __future__ import annotations

import re
from functools import lru_cache

from graphql import FieldNode, GraphQLError, OperationDefinitionNode, OperationType, parse

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
    # the App's dashboard issue per repository, edited in place
    ("PATCH", "/repos/{owner}/{repo}/issues/{issue_number}"),
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
    # the App (`loopbot serve`): its installations' repositories, a loop command dispatched to the
    # repository's workflow, that workflow's runs (was a dispatch sent?), and the loop's state and
    # config read from their branches (a commit's tree, then the file's blob)
    ("GET", "/installation/repositories"),
    ("GET", "/app"),  # the App's slug: its bot user `<slug>[bot]` is who opened its dashboard issues
    ("POST", "/repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches"),
    ("GET", "/repos/{owner}/{repo}/actions/runs"),
    ("GET", "/repos/{owner}/{repo}/commits"),
    ("GET", "/repos/{owner}/{repo}/git/trees/{tree_sha}"),
    ("GET", "/repos/{owner}/{repo}/git/blobs/{file_sha}"),
    # a plan's lease held by another job: has that workflow run attempt ended (killed, cancelled)?
    ("GET", "/repos/{owner}/{repo}/actions/runs/{run_id}/attempts/{attempt_number}"),
    # draft -> ready for review exists only in GraphQL; its mutations are listed below
    ("POST", "/graphql"),
})

GRAPHQL_MUTATIONS = frozenset({"markPullRequestReadyForReview"})
GRAPHQL_QUERIES: frozenset[str] = frozenset()  # loopbot reads nothing through GraphQL
# A document loopbot sends is a few hundred characters; anything far larger is not one of them.
GRAPHQL_MAX_CHARS = 10_000
GRAPHQL_MAX_TOKENS = 2_000

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
    """The allowed top-level field a GraphQL document performs, or None. The document is parsed
    (graphql-core), never pattern-matched: exactly one definition, an operation (no fragments), and
    exactly one selection in it, a plain field (no fragment spread, no inline fragment) whose name,
    not its alias, is allowed for the operation's type. Comments and strings are the parser's."""
    if len(query) > GRAPHQL_MAX_CHARS:
        return None
    try:
        document = parse(query, no_location=True, max_tokens=GRAPHQL_MAX_TOKENS)
    except GraphQLError:
        return None
    if len(document.definitions) != 1:
        return None
    (operation,) = document.definitions
    if not isinstance(operation, OperationDefinitionNode):
        return None
    allowed = {OperationType.MUTATION: GRAPHQL_MUTATIONS, OperationType.QUERY: GRAPHQL_QUERIES}.get(
        operation.operation, frozenset())
    selections = operation.selection_set.selections
    if len(selections) != 1 or not isinstance(selections[0], FieldNode):
        return None
    name = selections[0].name.value
    return name if name in allowed else None
