"""GitHub's limits, as pure functions: where the next page of a list is."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

_NEXT = re.compile(r'<([^<>]{1,2000})>\s*;\s*rel="next"')


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
