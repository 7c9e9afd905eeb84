"""Tool calls written as text: some OpenAI-compatible servers (local Qwen, Hermes and Llama
builds) return a call as JSON in the reply's content instead of as a tool call. Pure parsing."""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

_FENCE_INFO = re.compile(r"^(?:json|tool_call)?[ \t]*\n")
PROTOCOL = (
    "To call a tool, answer with exactly one fenced JSON block and nothing after it:\n"
    '```json\n{"tool": "<tool name>", "input": {<arguments>}}\n```\n'
    "Call one tool per reply; its result comes back in the next message.")


@dataclass(frozen=True)
class TextCall:
    name: str
    input: dict[str, Any]


def _as_call(value: Any, names: Collection[str]) -> TextCall | None:
    if not isinstance(value, dict):
        return None
    name = value.get("tool", value.get("name"))
    args = value.get("input", value.get("arguments", value.get("parameters", {})))
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except json.JSONDecodeError:
            return None
    if not isinstance(name, str) or name not in names or not isinstance(args, dict):
        return None
    return TextCall(name=name, input=args)


def _tagged(text: str) -> list[str]:
    """Hermes/Qwen <tool_call>{...}</tool_call> bodies. str.find, so linear in any reply (a regex
    with a lazy gap rescans from every opening tag: quadratic on a reply full of them)."""
    found, start = [], 0
    while (open_at := text.find("<tool_call>", start)) >= 0:
        close_at = text.find("</tool_call>", open_at)
        if close_at < 0:
            break
        # The opening tag nearest the close: stray unclosed tags before it are text. The spans
        # searched never overlap, so this stays linear.
        open_at = text.rfind("<tool_call>", open_at, close_at)
        found.append(text[open_at + len("<tool_call>"):close_at].strip())
        start = close_at + len("</tool_call>")
    return found


def _fenced(text: str) -> list[str]:
    """The bodies of ```json fences (or bare ``` fences): every other piece between fence marks."""
    pieces = text.split("```")
    found = []
    for piece in pieces[1:-1:2]:  # inside a fence: an odd piece with a closing mark after it
        info = _FENCE_INFO.match(piece)
        if info is not None:
            found.append(piece[info.end():].strip())
    return found


def parse_text_calls(text: str, names: Collection[str]) -> list[TextCall]:
    """The tool calls in `text` that name one of `names`; none when it holds no such call."""
    found: list[TextCall] = []
    candidates = _tagged(text) or _fenced(text)
    stripped = text.strip()
    if not candidates and stripped.startswith("{") and stripped.endswith("}"):
        candidates = [stripped]  # a bare JSON object as the whole reply
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        for item in value if isinstance(value, list) else [value]:
            call = _as_call(item, names)
            if call is not None:
                found.append(call)
    return found


def render_call(name: str, arguments: dict[str, Any]) -> str:
    """A call as the text protocol writes it (for the assistant turn sent back)."""
    return "```json\n" + json.dumps({"tool": name, "input": arguments}) + "\n```"
