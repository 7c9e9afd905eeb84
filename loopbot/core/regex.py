"""Regexes that come from a model (the search tool) or a goal (`file: regex:`, metric patterns)
run on RE2: matching takes linear time whatever the pattern and the text, so `^(a+)+$` cannot hang
the host. RE2 has no backreferences or lookaround; such a pattern is refused with the reason.
"""

from __future__ import annotations

from typing import Any

import re2

MAX_PATTERN_CHARS = 4_000
# RE2's memory for one compiled program; a pattern needing more is refused, not run.
MAX_PROGRAM_BYTES = 32 * 1024 * 1024


class RegexRefused(ValueError):
    pass


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # errors are returned to the caller, not printed on stderr
    options.max_mem = MAX_PROGRAM_BYTES
    return options


class SafePattern:
    """A compiled linear-time pattern; the subset of `re.Pattern` loopbot uses."""

    def __init__(self, pattern: str, *, multiline: bool = False):
        if len(pattern) > MAX_PATTERN_CHARS:
            raise RegexRefused(f"the pattern is {len(pattern)} characters; at most {MAX_PATTERN_CHARS}")
        source = f"(?m){pattern}" if multiline else pattern
        try:
            self._compiled = re2.compile(source, _options())
        except re2.error as exc:
            reason = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
            raise RegexRefused(f"not a supported regular expression ({reason}); loopbot uses RE2 syntax: "
                               "no backreferences or lookaround") from None
        self.pattern = pattern
        self.groups: int = self._compiled.groups

    def search(self, text: str) -> bool:
        return self._compiled.search(text) is not None

    def findall(self, text: str) -> list[Any]:
        return list(self._compiled.findall(text))


def check(pattern: str) -> str | None:
    """Why a pattern cannot be used, or None."""
    try:
        SafePattern(pattern)
    except RegexRefused as exc:
        return str(exc)
    return None
