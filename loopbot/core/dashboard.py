"""The dashboard issue of a repository (Renovate's Dependency Dashboard pattern). Pure: loops in,
Markdown out; two bodies in, the boxes a person ticked out.

One issue per repository, found by MARKER and edited in place. Each loop line carries a box whose
hidden marker names the loop, its plan issue and the action; ticking it on GitHub edits the issue
(`issues.edited`, the old body in `changes.body.from`), which the router turns into the same intent
as that `/loop` command, with the same authority check. Every render writes every box unticked, so
a refused or handled tick is unticked by the next render.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

MARKER = "<!-- loopbot:dashboard -->"
TITLE = "loopbot dashboard"
Action = Literal["stop", "resume", "retry"]
Section = Literal["running", "blocked", "done"]
RUNNING = frozenset({"dispatched", "queued", "running"})
DONE = frozenset({"success"})
ACTIONS: dict[Section, tuple[Action, ...]] = {"running": ("stop",), "blocked": ("resume", "retry"),
                                              "done": ("retry",)}
HEADINGS: dict[Section, str] = {"running": "Running", "blocked": "Blocked", "done": "Done"}
# GitHub refuses bodies over 65,536 characters; done loops are cut first, running ones never.
BODY_LIMIT = 60_000
MAX_DONE = 30
_BOX = re.compile(r"^- \[([ xX])\] <!-- loopbot:loop=(\d+) issue=(\d+) action=(stop|resume|retry) -->",
                  re.MULTILINE)
_ACTION: dict[str, Action] = {"stop": "stop", "resume": "resume", "retry": "retry"}
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-!|~>])")


@dataclass(frozen=True)
class DashboardLoop:
    loop_id: int
    issue: int
    status: str
    cost_usd: float = 0.0
    title: str = ""
    detail: str = ""
    run_url: str | None = None  # the loop's workflow run, if dispatched


@dataclass(frozen=True)
class Tick:
    loop_id: int
    issue: int
    action: Action


def section_of(status: str) -> Section:
    if status in RUNNING:
        return "running"
    return "done" if status in DONE else "blocked"


def inline(text: str, limit: int = 120) -> str:
    """Untrusted text as one line of literal Markdown: no HTML, no markers, no links, no mentions."""
    flat = " ".join(text.split())
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    escaped = _MARKDOWN.sub(r"\\\1", html.escape(flat, quote=False))
    return escaped.replace("@", "@\u2060")  # a word joiner: @name is shown, nobody is notified


def render(repo: str, loops: Sequence[DashboardLoop], *, server_url: str = "https://github.com") -> str:
    by_section: dict[Section, list[DashboardLoop]] = {"running": [], "blocked": [], "done": []}
    for loop in sorted(loops, key=lambda x: (-x.issue, -x.loop_id)):
        by_section[section_of(loop.status)].append(loop)
    spent = sum(loop.cost_usd for loop in loops)
    head = [MARKER, f"# {TITLE}", "",
            f"Loops of {inline(repo)}: {len(by_section['running'])} running, {len(by_section['blocked'])} blocked, "
            f"{len(by_section['done'])} done; ${spent:,.2f} spent in all.",
            "", "Tick a box to stop, resume or retry a loop: it is the same as commenting the `/loop` command "
            "on the plan issue, and takes effect only for people with write access. Boxes are unticked "
            "on the next update.", ""]
    body = "\n".join([*head, *_sections(by_section, server_url, MAX_DONE)])
    if len(body) > BODY_LIMIT:  # the running and blocked loops are what a person acts on
        body = "\n".join([*head, *_sections(by_section, server_url, 0)])
    return body


def _sections(by_section: dict[Section, list[DashboardLoop]], server_url: str, max_done: int) -> list[str]:
    lines: list[str] = []
    for section in ("running", "blocked", "done"):
        shown = by_section[section]
        lines += [f"## {HEADINGS[section]}", ""]
        if not shown:
            lines += ["None.", ""]
            continue
        limit = max_done if section == "done" else len(shown)
        lines += [_line(loop, section, server_url) for loop in shown[:limit]]
        if len(shown) > limit:
            lines.append(f"- … and {len(shown) - limit} more")
        lines.append("")
    return lines


def _line(loop: DashboardLoop, section: Section, server_url: str) -> str:
    """One box per action, then the loop: its issue, title, state, cost, run and detail."""
    parts = [f"#{loop.issue}"]
    if loop.title:
        parts.append(inline(loop.title))
    parts.append(f"· {inline(loop.status, 20)} · ${loop.cost_usd:,.2f}")
    if loop.run_url and loop.run_url.startswith(server_url + "/"):
        parts.append(f"· [run]({loop.run_url})")
    if loop.detail:
        parts.append(f"· {inline(loop.detail)}")
    text = " ".join(parts)
    boxes = [f"- [ ] <!-- loopbot:loop={loop.loop_id} issue={loop.issue} action={action} --> {action} {text}"
             for action in ACTIONS[section]]
    return "\n".join(boxes)


def boxes(body: str) -> dict[Tick, bool]:
    """Every box of a dashboard body: ticked or not."""
    found: dict[Tick, bool] = {}
    for match in _BOX.finditer(body):
        found[Tick(int(match.group(2)), int(match.group(3)), _ACTION[match.group(4)])] = match.group(1) != " "
    return found


def ticked(old: str, new: str) -> list[Tick]:
    """The boxes unticked in `old` and ticked in `new`: what the edit asks for. A line that was not
    in the old body (typed in by hand) asks for nothing; nor does a body without the marker."""
    if MARKER not in new or MARKER not in old:
        return []
    before = boxes(old)
    return [tick for tick, checked in boxes(new).items() if checked and before.get(tick) is False]
