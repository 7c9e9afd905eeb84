"""Untrusted text (issue bodies, comments, file contents) enters prompts only as delimited data."""

from __future__ import annotations

import re

_HTML_COMMENT = re.compile(r"<!--.*?(-->|$)", re.DOTALL)
# Zero-width, bidi overrides and other invisible format characters used to hide instructions.
_INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\U000e0000-\U000e007f]")


def clean(text: str) -> str:
    return _INVISIBLE.sub("", _HTML_COMMENT.sub("", text))


def as_data(text: str, source: str) -> str:
    """Wrap text as data; a forged closing tag inside it cannot end the block early."""
    body = clean(text).replace("</untrusted-data", "<\\/untrusted-data")
    return f'<untrusted-data source="{source}">\n{body}\n</untrusted-data>'


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Characters that make markdown (or a shell that later reads the file) treat text as syntax:
# code spans, emphasis, links, raw HTML, tables, and `$`/backticks for command substitution.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*\[\]<>$|~])")


def markdown_inline(text: str, limit: int = 200) -> str:
    """Text from a contributor (a commit subject, a page title) as one line of literal markdown."""
    flat = _CONTROL.sub(" ", clean(text)).strip()[:limit]
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", flat)
    return "\\" + escaped if escaped.startswith(("#", "-", "+", ">")) else escaped
