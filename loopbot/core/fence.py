"""Markdown fences no text can break: other people's text shown literally in a report or transcript."""

from __future__ import annotations

import re

_BACKTICKS = re.compile(r"`+")


def fenced(text: str, info: str = "") -> str:
    """`text` as a fenced code block: the fence is longer than any run of backticks in the text, so
    no line of it (a model's ``` included) can close the block early; `~~~` lines cannot close a
    backtick fence at all."""
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{text.rstrip(chr(10))}\n{fence}"
