"""Long text cut to what matters: the end of a failed check's output, where test runners print what
failed (the report, the event log, the console), and the head and tail of a tool result (the
maker's conversation, the transcript)."""

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


def head_and_tail(text: str, limit: int, notice: str = "[… {omitted} bytes omitted …]") -> str:
    """`text` within about `limit` UTF-8 bytes: its head and tail around `notice` (which may name
    {omitted}, the bytes left out); unchanged when it fits."""
    data = text.encode("utf-8", errors="replace")
    if len(data) <= limit:
        return text
    half = limit // 2
    head = data[:half].decode("utf-8", errors="ignore")
    tail = data[-half:].decode("utf-8", errors="ignore")
    return f"{head}\n{notice.format(omitted=len(data) - 2 * half)}\n{tail}"
