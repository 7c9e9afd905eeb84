"""The end of a failed check's output, where test runners print what failed: shown in the report,
the event log and on the console."""

from __future__ import annotations

TAIL_CHARS = 1500
TAIL_LINES = 25


def output_tail(text: str, chars: int = TAIL_CHARS, lines: int = TAIL_LINES) -> str:
    """The last `lines` lines of `text`, at most `chars` characters, trailing blank lines dropped."""
    kept = text.rstrip().splitlines()[-lines:]
    tail = "\n".join(kept)
    return tail if len(tail) <= chars else "…" + tail[-(chars - 1):]


def last_line(text: str) -> str:
    """The last non-blank line of `text` (a test runner's summary), or ""."""
    return next((line.strip() for line in reversed(text.splitlines()) if line.strip()), "")
