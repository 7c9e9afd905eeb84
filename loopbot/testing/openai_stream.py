"""OpenAI's streamed answers as the API sends them, made from a whole reply: chat completion
chunks (`data: {chunk}` lines, then `data: [DONE]`) and the Responses API's typed events.

Text and arguments are cut into small deltas so a client is tested on putting them back
together, as it must be with the real API.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

PIECE = 16  # characters per delta


def _pieces(text: str) -> list[str]:
    return [text[i:i + PIECE] for i in range(0, len(text), PIECE)] or [""]


# -- chat completions ---------------------------------------------------------------------------

def chat_chunks(reply: dict[str, Any], *, include_usage: bool) -> list[dict[str, Any]]:
    """The chunks of a chat.completion `reply`. Usage comes only when the request asked for it
    (stream_options.include_usage): then every chunk carries "usage": null and a last chunk
    with no choices carries the figures."""
    choice = reply["choices"][0]
    message = choice["message"]
    base: dict[str, Any] = {"id": reply["id"], "object": "chat.completion.chunk", "created": reply["created"],
                            "model": reply["model"], "system_fingerprint": None}
    if include_usage:
        base["usage"] = None

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    chunks = [chunk({"role": "assistant", "content": "", "refusal": None})]
    if message.get("content"):
        chunks += [chunk({"content": piece}) for piece in _pieces(message["content"])]
    for index, call in enumerate(message.get("tool_calls") or []):
        function = call["function"]
        chunks.append(chunk({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                             "function": {"name": function["name"], "arguments": ""}}]}))
        chunks += [chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
                   for piece in _pieces(function["arguments"])]
    chunks.append(chunk({}, choice["finish_reason"]))
    if include_usage:
        chunks.append({**base, "choices": [], "usage": reply["usage"]})
    return chunks


def chat_sse(chunks: list[dict[str, Any]]) -> bytes:
    lines = [f"data: {json.dumps(c)}\n\n" for c in chunks]
    return ("".join(lines) + "data: [DONE]\n\n").encode()


# -- the Responses API --------------------------------------------------------------------------

def response_events(response: dict[str, Any]) -> list[dict[str, Any]]:
    """The events of a finished Responses API `response`, in the order the API sends them."""
    opening = {**response, "status": "in_progress", "output": [], "usage": None}
    events: list[dict[str, Any]] = [{"type": "response.created", "response": opening},
                                    {"type": "response.in_progress", "response": opening}]
    for index, item in enumerate(response["output"]):
        events += list(_item_events(index, item))
    final = "response.completed" if response["status"] == "completed" else f"response.{response['status']}"
    events.append({"type": final, "response": response})
    return [{**event, "sequence_number": number} for number, event in enumerate(events)]


def _item_events(index: int, item: dict[str, Any]) -> Iterator[dict[str, Any]]:
    where = {"item_id": item["id"], "output_index": index}
    kind = item["type"]
    if kind == "message":
        yield {"type": "response.output_item.added", "output_index": index,
               "item": {**item, "status": "in_progress", "content": []}}
        for part_index, part in enumerate(item["content"]):
            at = {**where, "content_index": part_index}
            yield {"type": "response.content_part.added", **at, "part": {**part, "text": ""}}
            for piece in _pieces(part.get("text", "")):
                yield {"type": "response.output_text.delta", **at, "delta": piece, "logprobs": []}
            yield {"type": "response.output_text.done", **at, "text": part.get("text", ""), "logprobs": []}
            yield {"type": "response.content_part.done", **at, "part": part}
    elif kind == "function_call":
        yield {"type": "response.output_item.added", "output_index": index,
               "item": {**item, "status": "in_progress", "arguments": ""}}
        for piece in _pieces(item["arguments"]):
            yield {"type": "response.function_call_arguments.delta", **where, "delta": piece}
        yield {"type": "response.function_call_arguments.done", **where, "arguments": item["arguments"]}
    elif kind == "custom_tool_call":
        yield {"type": "response.output_item.added", "output_index": index,
               "item": {**item, "status": "in_progress", "input": ""}}
        for piece in _pieces(item["input"]):
            yield {"type": "response.custom_tool_call_input.delta", **where, "delta": piece}
        yield {"type": "response.custom_tool_call_input.done", **where, "input": item["input"]}
    else:  # reasoning and anything else: announced and finished whole
        yield {"type": "response.output_item.added", "output_index": index, "item": item}
    yield {"type": "response.output_item.done", "output_index": index, "item": item}


def events_sse(events: list[dict[str, Any]]) -> bytes:
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()
