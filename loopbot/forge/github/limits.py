"""GitHub's limits, as pure functions: how long a body may be, how long to wait when a rate limit
answers, and where the next page of a list is."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

# Issue, pull request, comment and review bodies; a check run's output summary is one shorter.
BODY_LIMIT = 65_536
SUMMARY_LIMIT = 65_535

# Rate limits: at most this many attempts of one request, no single wait longer than MAX_WAIT.
ATTEMPTS = 5
MAX_WAIT_SECONDS = 15 * 60
# "If the retry-after response header is present [...] Otherwise, wait for at least one minute
# before retrying" (GitHub's REST docs, "Exceeding the rate limit"); then exponentially longer.
SECONDARY_FLOOR_SECONDS = 60.0
SERVER_ERROR_ATTEMPTS = 4

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


@dataclass(frozen=True)
class Limited:
    kind: str  # "primary" or "secondary"
    seconds: float  # what GitHub asks for, before backoff


def rate_limited(status: int, headers: Mapping[str, str], message: str, *, now: float,
                 said_limited: bool = False) -> Limited | None:
    """Whether an answer is a rate limit, and how long GitHub asks to wait. A 403 is a rate limit
    only when its headers or its message say so (a 403 is also "not allowed")."""
    if status not in (403, 429) and not said_limited:
        return None
    lower = message.lower()
    secondary = "secondary rate limit" in lower or "abuse" in lower
    retry_after = headers.get("retry-after")
    if retry_after is not None:
        return Limited("secondary", max(1.0, _seconds(retry_after, SECONDARY_FLOOR_SECONDS)))
    if headers.get("x-ratelimit-remaining") == "0":
        reset = headers.get("x-ratelimit-reset")
        seconds = max(1.0, _seconds(reset, now + 60) - now + 1) if reset else SECONDARY_FLOOR_SECONDS
        return Limited("secondary" if secondary else "primary", seconds)
    if secondary or status == 429:
        return Limited("secondary", SECONDARY_FLOOR_SECONDS)
    if "rate limit" in lower or said_limited:
        return Limited("primary", SECONDARY_FLOOR_SECONDS)
    return None


def backoff(limited: Limited, retry: int) -> float:
    """The wait before retry number `retry` (1-based): a primary limit's reset is the reset; a
    secondary limit's wait doubles with every retry."""
    if limited.kind == "primary":
        return limited.seconds
    return limited.seconds * (1 << (retry - 1))


def _seconds(value: str, default: float) -> float:
    try:
        return float(int(value.strip()))
    except ValueError:
        return default


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
