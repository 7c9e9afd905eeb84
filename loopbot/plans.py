"""Plans: what the audit loop files. One markdown body for a local file and a GitHub issue:
context, chunks, scope, risks, and the goal in a fenced YAML block, with a hidden fingerprint
marker so an open plan is never filed twice.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from loopbot.core import memory
from loopbot.core.untrusted import as_rendered
from loopbot.errors import InputError, Problem
from loopbot.goal import Goal, Priority, parse_goal, slugify

MAX_CHUNKS = 10
MARKER = re.compile(r"<!--\s*loopbot:plan\s+fingerprint=([0-9a-f]{12})\s+status=(\w+)\s*-->")
_YAML_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})[ \t]*ya?ml\b[^`\n]*$", re.IGNORECASE)
# Any line that could open a YAML block somewhere a renderer might show it: quoted, indented,
# nested in another fence, inside HTML. More than one, and the page a writer read is ambiguous.
_ANY_YAML_OPENER = re.compile(r"^[ \t>]*(?:`{3,}|~{3,})[ \t]*ya?ml\b", re.IGNORECASE | re.MULTILINE)
DUPLICATE_SIMILARITY = 0.6


class Plan(BaseModel):
    """A plan as the auditor proposes it; the goal must pass the goal schema before filing."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=5, max_length=120)
    context: str = Field(min_length=1)
    chunks: list[str] = Field(min_length=1)
    scope: list[str] = Field(min_length=1)
    risks: list[str] = Field(default_factory=list)
    priority: Priority = Priority.ROUTINE
    goal: dict[str, Any]

    def to_goal(self) -> Goal:
        """The goal as filed: chunks, scope and priority come from the plan itself."""
        data = {**self.goal, "chunks": self.chunks, "priority": self.priority.value}
        data.setdefault("scope", {})
        if isinstance(data["scope"], dict):
            data["scope"] = {**data["scope"], "allow": self.scope}
        return parse_goal(yaml.safe_dump(data, sort_keys=False), f"plan '{self.title}'")

    @property
    def tokens(self) -> list[str]:
        return memory.normalise(f"{self.title} {self.goal.get('goal', '')}")

    @property
    def fingerprint(self) -> str:
        basis = "|".join(self.tokens) + "#" + "|".join(sorted(self.scope))
        return hashlib.sha256(basis.encode()).hexdigest()[:12]


class FiledPlan(BaseModel):
    """A plan that exists in a forge (a file locally, an issue on GitHub)."""

    ref: str
    title: str
    fingerprint: str
    open: bool
    tokens: list[str] = Field(default_factory=list)
    scope: list[str] = Field(default_factory=list)


def validate(plan_input: dict[str, Any]) -> tuple[Plan | None, str]:
    """The plan, or why it cannot be filed as it is."""
    try:
        plan = Plan.model_validate(plan_input)
    except ValidationError as exc:
        errors = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False))
        return None, f"not a valid plan: {errors}"
    if len(plan.chunks) > MAX_CHUNKS:
        return None, (f"{len(plan.chunks)} chunks is more than {MAX_CHUNKS}: split it into plans of at most "
                      f"{MAX_CHUNKS} chunks, each with its own objective acceptance, and propose those")
    try:
        plan.to_goal()
    except InputError as exc:
        return None, "its goal does not pass the goal schema: " + "; ".join(
            f"{p.field}: {p.message}" for p in exc.problems)
    return plan, "ok"


def render(plan: Plan, *, status: str = "open") -> str:
    goal = plan.to_goal()
    goal_yaml = yaml.safe_dump(goal.model_dump(mode="json", exclude_defaults=True), sort_keys=False, width=100)
    lines = [
        f"# {plan.title}", "",
        f"<!-- loopbot:plan fingerprint={plan.fingerprint} status={status} -->", "",
        f"**Priority**: {plan.priority.value}", "",
        "## Context", "", plan.context.strip(), "",
        "## Chunks", "", *[f"{i}. {c}" for i, c in enumerate(plan.chunks, 1)], "",
        "## Scope", "", *[f"- `{s}`" for s in plan.scope], "",
    ]
    if plan.risks:
        lines += ["## Risks", "", *[f"- {r}" for r in plan.risks], ""]
    lines += ["## Goal", "", "Run it with `loopbot run` on this file, or label the issue `loopbot:run`.", "",
              "```yaml", goal_yaml.rstrip(), "```", ""]
    return "\n".join(lines)


def file_name(plan: Plan, date: str) -> str:
    return f"{date}-{slugify(plan.title, 50)}.md"


def read_marker(body: str) -> tuple[str, bool] | None:
    found = MARKER.search(body)
    return (found.group(1), found.group(2) == "open") if found else None


def yaml_blocks(body: str) -> list[tuple[int, str]]:
    """The fenced YAML blocks of a markdown body, as (line index of the first body line, text).

    One pass over the lines, so any body — 65,000 opening fences without a close included —
    costs linear time. A block closes at a fence of the same character at least as long (an
    unclosed one runs to the end, as in CommonMark).
    """
    blocks: list[tuple[int, str]] = []
    lines = body.split("\n")
    index = 0
    while index < len(lines):
        opened = _YAML_FENCE.match(lines[index])
        index += 1
        if not opened:
            continue
        fence = opened.group(1)
        start = index
        while index < len(lines):
            stripped = lines[index].strip()
            indent = len(lines[index]) - len(lines[index].lstrip(" "))
            # A closing fence is indented at most three spaces (CommonMark); a deeper one is content.
            if stripped and indent <= 3 and stripped == fence[0] * len(stripped) and len(stripped) >= len(fence):
                break
            index += 1
        blocks.append((start, "\n".join(lines[start:index])))
        index += 1
    return blocks


def goal_from_markdown(body: str, source: str) -> Goal:
    """The goal of a plan: the first fenced YAML block a reader of the page sees (a block hidden in
    an HTML comment, or behind invisible characters, is not it). Located errors."""
    openers = len(_ANY_YAML_OPENER.findall(body))
    if openers > 1:
        # Hidden in a comment, a <details>, a nested fence: loopbot will not guess which one the
        # approver saw.
        raise InputError([Problem(source, None, None, "", (
            f"{openers} ```yaml blocks: a plan holds exactly one goal block, so which one runs is never a guess; "
            "remove the others (hidden ones included)"))])
    blocks = yaml_blocks(as_rendered(body))
    if not blocks:
        raise InputError([Problem(source, None, None, "", "no fenced ```yaml block with a goal in it")])
    offset, text = blocks[0]
    try:
        return parse_goal(text, source)
    except InputError as exc:
        # Point at lines of the whole document, not of the block.
        raise InputError([Problem(p.source, p.line + offset if p.line else None, p.column, p.field, p.message)
                          for p in exc.problems]) from None


def duplicate_of(plan: Plan, filed: list[FiledPlan]) -> FiledPlan | None:
    """An open plan this one repeats: the same fingerprint, or nearly the same words about the same code."""
    tokens = set(plan.tokens)
    for other in filed:
        if not other.open:
            continue
        if other.fingerprint == plan.fingerprint:
            return other
        theirs = set(other.tokens)
        similar = bool(tokens and theirs) and len(tokens & theirs) / len(tokens | theirs) >= DUPLICATE_SIMILARITY
        ours, scope = set(plan.scope), set(other.scope)
        same_code = not scope or len(ours & scope) / len(ours | scope) >= 0.5
        if similar and same_code:
            return other
    return None


_PRIORITY_ORDER = {Priority.SECURITY: 0, Priority.INCIDENT: 1, Priority.ROUTINE: 2}


def triage(proposals: list[Plan], filed: list[FiledPlan], *, limit: int) -> tuple[list[Plan], list[tuple[Plan, str]]]:
    """Which proposals to file: priority first, duplicates of open plans skipped, at most `limit`."""
    accepted: list[Plan] = []
    skipped: list[tuple[Plan, str]] = []
    known = list(filed)
    for plan in sorted(proposals, key=lambda p: _PRIORITY_ORDER[p.priority]):
        twin = duplicate_of(plan, known)
        if twin is not None:
            skipped.append((plan, f"duplicate of open plan {twin.ref}"))
        elif len(accepted) >= limit:
            skipped.append((plan, f"over the limit of {limit} plans per run (circuit breaker)"))
        else:
            accepted.append(plan)
            known.append(FiledPlan(ref="(this run)", title=plan.title, fingerprint=plan.fingerprint, open=True,
                                   tokens=plan.tokens, scope=plan.scope))
    return accepted, skipped
