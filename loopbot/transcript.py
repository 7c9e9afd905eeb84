"""The run's transcript: `transcript.jsonl` (one JSON object a line) and `transcript.md` (the
same for a person), beside the report in the run's directory.

Every model turn of every role and every tool call with its result, appended and closed as it
happens, so a killed run keeps what it had and a resumed one goes on in the same files. Every
text passes the redactor before it is written; other people's text sits in fences it cannot
close; long results keep their head and tail.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loopbot.core.fence import fenced
from loopbot.core.outputtail import head_and_tail
from loopbot.core.redact import NO_SECRETS
from loopbot.messages import ModelReply, ModelRequest, ToolCall, ToolResult, Usage

RESULT_BYTES = 4096  # of one tool result, or one argument of a call: head and tail kept
TEXT_BYTES = 64 * 1024  # of one model reply's text
_PLAIN = re.compile(r"[^A-Za-z0-9_.:/-]")


def clip(text: str, limit: int) -> str:
    """Head and tail of `text` within about `limit` bytes, saying how much was left out."""
    return head_and_tail(text, limit)


def _clip_values(value: Any, limit: int) -> Any:
    """A call's arguments with every long string clipped (a whole file written is not kept twice)."""
    if isinstance(value, str):
        return clip(value, limit)
    if isinstance(value, dict):
        return {key: _clip_values(item, limit) for key, item in value.items()}
    if isinstance(value, list):
        return [_clip_values(item, limit) for item in value]
    return value


def _plain(name: str) -> str:
    """A model-given name (a tool, a call id) safe to show outside a fence."""
    return _PLAIN.sub("?", name)[:80] or "?"


class Transcript:
    """A Recorder (loopbot.recording) that writes the run's transcript files."""

    def __init__(self, directory: Path, run_id: str, *, redact: Callable[[str], str] = NO_SECRETS,
                 resumed: bool = False, clock: Callable[[], float] = time.time):
        directory.mkdir(parents=True, exist_ok=True)
        self.jsonl_path = directory / "transcript.jsonl"
        self.markdown_path = directory / "transcript.md"
        self.redact = redact
        self.clock = clock
        if resumed:
            self._write({"kind": "resumed", "run_id": run_id}, "---\n\n**Resumed** from its last checkpoint.\n")
        elif not self.markdown_path.exists():
            self._write({"kind": "started", "run_id": run_id}, f"# Transcript of loopbot run `{_plain(run_id)}`\n")

    def model_turn(self, request: ModelRequest, model: str, reply: ModelReply | None, *, seconds: float,
                   error: str | None = None, usage: Usage | None = None, cost_usd: float = 0.0) -> None:
        if reply is not None:
            usage, cost_usd = reply.usage, reply.cost_usd
        usage = usage or Usage()
        text = clip(reply.message.text, TEXT_BYTES) if reply is not None else ""
        calls = [{"id": c.id, "name": c.name, "input": _clip_values(c.input, RESULT_BYTES)}
                 | ({"error": c.error} if c.error else {})
                 for c in (reply.message.tool_calls if reply is not None else [])]
        entry = {"kind": "model_turn", "iteration": request.iteration, "turn": request.turn, "role": request.role,
                 "model": model, "text": text, "tool_calls": calls,
                 "stop_reason": reply.stop_reason if reply is not None else None, "error": error,
                 "usage": usage.model_dump(), "cost_usd": cost_usd, "seconds": round(seconds, 3)}
        entry = self._redacted(entry)
        lines = [f"## Iteration {request.iteration} · {request.role} · turn {request.turn}", "",
                 f"{_plain(model)} · {usage.input_tokens:,} tokens in, {usage.output_tokens:,} out (cache "
                 f"{usage.cache_write_tokens:,} written, {usage.cache_read_tokens:,} read) · ${cost_usd:.4f} · "
                 f"{seconds:.2f}s · " + (f"stop: {reply.stop_reason}" if reply is not None else "failed"), ""]
        if entry["error"]:
            lines += ["The call failed:", "", fenced(entry["error"], "text"), ""]
        if entry["text"]:
            lines += [fenced(entry["text"], "text"), ""]
        for number, call in enumerate(entry["tool_calls"], 1):
            lines += [f"Tool call {number}: `{_plain(call['name'])}` ({_plain(call['id'])})", "",
                      fenced(json.dumps(call["input"], indent=2, ensure_ascii=False), "json"), ""]
            if call.get("error"):
                lines += ["Not readable:", "", fenced(call["error"], "text"), ""]
        self._write(entry, "\n".join(lines))

    def tool_call(self, request: ModelRequest, call: ToolCall, result: ToolResult) -> None:
        entry = self._redacted({
            "kind": "tool_result", "iteration": request.iteration, "turn": request.turn, "role": request.role,
            "call_id": call.id, "name": call.name, "is_error": result.is_error,
            "result_bytes": len(result.content.encode("utf-8", errors="replace")),
            "result": clip(result.content, RESULT_BYTES)})
        said = "error" if result.is_error else "result"
        self._write(entry, "\n".join([
            f"Tool {said} of `{_plain(call.name)}` ({_plain(call.id)}, {entry['result_bytes']:,} bytes):", "",
            fenced(entry["result"], "text"), ""]))

    def _redacted(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {key: self._redacted(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self._redacted(item) for item in value]
        return value

    def _write(self, entry: dict[str, Any], markdown: str) -> None:
        """Both files, each appended in one write and closed: what a kill leaves is whole entries."""
        line = json.dumps({"t": round(self.clock(), 3), **entry}, ensure_ascii=False, default=str)
        with self.jsonl_path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
        with self.markdown_path.open("a", encoding="utf-8") as handle:
            handle.write(markdown.rstrip("\n") + "\n\n")
