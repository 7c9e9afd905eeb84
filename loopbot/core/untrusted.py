"""Untrusted text (issue bodies, comments, file contents) enters prompts only as delimited data."""

from __future__ import annotations

import re
import unicodedata

# `<!-->` and `<!--->` are empty comments to GitHub's renderer; anything else runs to `-->`.
_HTML_COMMENT = re.compile(r"<!--->?|<!--(?!>).*?(-->|$)", re.DOTALL)
# Zero-width, bidi overrides and other invisible format characters used to hide instructions.
_INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\U000e0000-\U000e007f]")


# Any spelling of the delimiter a model might read as one: case, spaces, a slash anywhere.
_DELIMITER = re.compile(r"<(?=[\W_]*untrusted)", re.IGNORECASE)


def clean(text: str) -> str:
    """Text as GitHub renders it and a model reads it: NFKC (a fullwidth less-than becomes <), then HTML
    comments, zero-width, bidi and Unicode tag characters removed."""
    return _INVISIBLE.sub("", _HTML_COMMENT.sub("", unicodedata.normalize("NFKC", text)))


def as_rendered(text: str) -> str:
    """What a reader of GitHub's rendering sees, line for line: HTML comments blanked (their
    newlines kept, so located errors still point at the right line), invisible characters gone."""
    normal = unicodedata.normalize("NFKC", text)
    visible = _HTML_COMMENT.sub(lambda m: "\n" * m.group(0).count("\n"), normal)
    return _INVISIBLE.sub("", visible)


def as_data(text: str, source: str) -> str:
    """Wrap text as data; no spelling of the delimiter inside it can end or open a block."""
    body = _DELIMITER.sub("&lt;", clean(str(text)))
    label = re.sub(r"[^a-z0-9 _.-]", "", source.lower())
    return f'<untrusted-data source="{label}">\n{body}\n</untrusted-data>'


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Characters that make markdown (or a shell that later reads the file) treat text as syntax:
# code spans, emphasis, links, raw HTML, tables, and `$`/backticks for command substitution.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*\[\]<>$|~])")


def markdown_inline(text: str, limit: int = 200) -> str:
    """Text from a contributor (a commit subject, a page title) as one line of literal markdown."""
    flat = _CONTROL.sub(" ", clean(text)).strip()[:limit]
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", flat)
    return "\\" + escaped if escaped.startswith(("#", "-", "+", ">")) else escaped
