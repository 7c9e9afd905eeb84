"""The Messages API's streamed answer as the API sends it, made from a whole reply: message_start
(input usage), ping, per content block content_block_start / deltas (text_delta, input_json_delta
for a tool call's arguments, thinking_delta and signature_delta) / content_block_stop, then
message_delta (stop reason and output usage) and message_stop.

Text and arguments are cut into small deltas so a client is tested on putting them back
together, as it must be with the real API.
"""

from __future__ import annotations

import json
from typing import Any

PIECE = 16  # characters per delta


def _pieces(text: str) -> list[str]:
    return [text[i:i + PIECE] for i in range(0, len(text), PIECE)] or [""]


def message_events(reply: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) pairs for a whole Messages `reply` (as _anthropic_reply makes it)."""
    usage = reply["usage"]
    start_usage = {"input_tokens": usage["input_tokens"], "output_tokens": 1,
                   "cache_creation_input_tokens": usage.get("cache_creation_input_tokens", 0),
                   "cache_read_input_tokens": usage.get("cache_read_input_tokens", 0)}
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": {
            **{k: v for k, v in reply.items() if k not in ("content", "usage")},
            "content": [], "stop_reason": None, "stop_sequence": None, "usage": start_usage}}),
        ("ping", {"type": "ping"}),
    ]
    for index, block in enumerate(reply["content"]):
        kind = block.get("type")
        if kind == "text":
            start: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": piece} for piece in _pieces(block.get("text", ""))]
        elif kind == "tool_use":
            start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            arguments = json.dumps(block.get("input", {}))
            deltas = [{"type": "input_json_delta", "partial_json": ""}]
            deltas += [{"type": "input_json_delta", "partial_json": piece} for piece in _pieces(arguments)]
        elif kind == "thinking":
            start = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": piece} for piece in _pieces(block.get("thinking", ""))]
            deltas.append({"type": "signature_delta", "signature": block.get("signature", "")})
        else:  # redacted_thinking and other whole blocks arrive in their start event
            start, deltas = block, []
        events.append(("content_block_start", {"type": "content_block_start", "index": index,
                                               "content_block": start}))
        events += [("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
                   for delta in deltas]
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": reply["stop_reason"], "stop_sequence": None},
                                     "usage": {"output_tokens": usage["output_tokens"]}}))
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def message_sse(reply: dict[str, Any]) -> bytes:
    return "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in message_events(reply)).encode()
