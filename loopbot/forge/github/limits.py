"""GitHub's limits, as pure functions: how long a body may be, and where the next page of a list is."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

# Issue, pull request, comment and review bodies; a check run's output summary is one shorter.
BODY_LIMIT = 65_536
SUMMARY_LIMIT = 65_535

_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_NEXT = re.compile(r'<([^<>]{1,2000})>\s*;\s*rel="next"')


def fit(text: str, limit: int = BODY_LIMIT) -> str:
    """`text` cut to GitHub's limit with a note saying so; a code block or HTML comment the cut
    leaves open is closed, so the note is seen."""
    if len(text) <= limit:
        return text
    room = limit - len(_note(limit, len(text)))
    while True:
        cut = text[:room]
        newline = cut.rfind("\n")
        if newline > room * 0.9:
            cut = cut[:newline]
        closers = " -->" if cut.rfind("<!--") > cut.rfind("-->") else ""
        fence = _open_fence(cut)
        if fence:
            closers += "\n" + fence
        fitted = cut + closers + _note(limit, len(text) - len(cut))
        if len(fitted) <= limit:
            return fitted
        room -= len(fitted) - limit


def _note(limit: int, omitted: int) -> str:
    return f"\n\n… _(cut to fit GitHub's limit of {limit:,} characters: {omitted:,} characters left out)_"


def _open_fence(text: str) -> str:
    """The fence of a code block `text` leaves open ("" when none is)."""
    opened = ""
    for line in text.split("\n"):
        match = _FENCE.match(line)
        if match is None:
            continue
        fence = match.group(1)
        if not opened:
            opened = fence
        elif fence[0] == opened[0] and len(fence) >= len(opened) and not line[match.end():].strip():
            opened = ""
    return opened


def next_page(link: str | None) -> int | None:
    """The page number of the `Link` header's rel="next", or None on the last page. Only the
    number is taken: GitHub's links name the repository by id (/repositories/123/...), a path
    loopbot does not call, so the next page is asked for by the same operation."""
    match = _NEXT.search(link or "")
    if match is None:
        return None
    page = parse_qs(urlsplit(match.group(1)).query).get("page")
    if not page or not page[0].isdigit():
        raise ValueError(f"GitHub's next page has no page number: {match.group(1)[:200]}")
    return int(page[0])
