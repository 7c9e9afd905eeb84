"""Search/replace edits that survive whitespace drift and fail helpfully."""

from __future__ import annotations

import difflib
import heapq
from dataclasses import dataclass
from typing import Literal

Status = Literal["applied", "fuzzy", "already_applied", "missing", "ambiguous", "invalid"]


@dataclass(frozen=True)
class EditResult:
    status: Status
    text: str
    message: str

    @property
    def ok(self) -> bool:
        return self.status in ("applied", "fuzzy", "already_applied")


def _line_of(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _windows(lines: list[str], pattern: list[str]) -> list[int]:
    """Where the pattern's lines appear in a row, whitespace aside. Each line is stripped once and
    only windows whose first line matches are compared, so a large file costs linear time."""
    key = [p.strip() for p in pattern]
    if not key:  # a search of blank lines only matches nothing in particular
        return []
    stripped = [ln.strip() for ln in lines]
    width = len(key)
    return [i for i in range(len(stripped) - width + 1) if stripped[i] == key[0] and stripped[i:i + width] == key]


def _indent_map(pattern: list[str], found: list[str]) -> dict[str, str]:
    """How the search block's indentation reads in the file, line by line (tabs, depth, offset)."""
    mapping: dict[str, str] = {}
    for wanted, actual in zip(pattern, found, strict=False):
        if wanted.strip():
            mapping.setdefault(_indent(wanted), _indent(actual))
    return mapping


def _reindent(replacement: list[str], mapping: dict[str, str]) -> list[str]:
    """Give the replacement the file's indentation: mapped indents directly, deeper ones by
    extending the longest mapped prefix in the file's own style."""
    tab_file = any("\t" in v for v in mapping.values())
    unit = min((len(k) for k in mapping if k and "\t" not in k), default=4)
    out = []
    for line in replacement:
        if not line.strip():
            out.append(line)
            continue
        indent = _indent(line)
        if indent in mapping:
            out.append(mapping[indent] + line[len(indent):])
            continue
        base = max((k for k in mapping if indent.startswith(k)), key=len, default=None)
        if base is None:
            out.append(line)
            continue
        extra = indent[len(base):]
        if tab_file and "\t" not in extra:
            extra = "\t" * (len(extra) // unit) + " " * (len(extra) % unit)
        out.append(mapping[base] + extra + line[len(indent):])
    return out


# How many windows the similarity ratio is computed for, and on how many characters: the ratio
# is quadratic, so it runs only on the windows sharing the most lines with the search.
NEAREST_CANDIDATES = 20
NEAREST_MAX_CHARS = 8_000


def nearest(text: str, search: str) -> str:
    lines = text.splitlines()
    pattern = search.splitlines() or [search]
    width = max(1, len(pattern))
    stripped = [ln.strip() for ln in lines]
    wanted = {p.strip() for p in pattern if p.strip()}
    # Lines of each window that also occur in the search: a sliding sum, linear in the file.
    shared = [0]
    for line in stripped:
        shared.append(shared[-1] + (line in wanted))
    starts = range(max(1, len(lines) - width + 1))
    candidates = heapq.nlargest(NEAREST_CANDIDATES, starts,
                                key=lambda i: (shared[min(len(lines), i + width)] - shared[i], -i))
    joined = "\n".join(p.strip() for p in pattern)[:NEAREST_MAX_CHARS]
    best_ratio, best_at = 0.0, 0
    for i in sorted(candidates):
        window = "\n".join(stripped[i : i + width])[:NEAREST_MAX_CHARS]
        ratio = difflib.SequenceMatcher(None, joined, window, autojunk=False).ratio()
        if ratio > best_ratio:
            best_ratio, best_at = ratio, i
    snippet = "\n".join(f"{n + 1:>5} | {lines[n]}" for n in range(best_at, min(len(lines), best_at + width)))
    return f"nearest match ({best_ratio:.0%} similar) at line {best_at + 1}:\n{snippet}"


def apply_edit(text: str, search: str, replace: str) -> EditResult:
    if search == "":
        return EditResult("invalid", text, "search is empty: use the write tool to create or overwrite a file")
    if search == replace:
        return EditResult("invalid", text, "search and replace are identical: nothing to change")
    count = text.count(search)
    if count == 1:
        return EditResult("applied", text.replace(search, replace, 1), "applied")
    if count > 1:
        starts: list[int] = []
        at = text.find(search)
        while at != -1:
            starts.append(_line_of(text, at))
            at = text.find(search, at + 1)
        return EditResult("ambiguous", text,
                          f"search matches {count} places (lines {', '.join(map(str, starts))}); "
                          "include more surrounding lines so it matches exactly one")
    if replace and replace in text:
        return EditResult("already_applied", text, "the replacement is already in the file; nothing changed")

    lines = text.splitlines(keepends=True)
    bare = [ln.rstrip("\r\n") for ln in lines]
    pattern = [ln for ln in search.strip("\n").splitlines()]
    hits = _windows(bare, pattern)
    if len(hits) > 1:
        lines_at = ", ".join(str(h + 1) for h in hits)
        return EditResult("ambiguous", text,
                          f"ignoring whitespace, search matches {len(hits)} places (lines {lines_at}); "
                          "include more surrounding lines")
    if len(hits) == 1:
        start = hits[0]
        mapping = _indent_map(pattern, bare[start : start + len(pattern)])
        new_lines = _reindent(replace.strip("\n").splitlines(), mapping)
        ending = "\n" if lines[start + len(pattern) - 1].endswith("\n") else ""
        body = "\n".join(new_lines) + ending if new_lines else ""
        replaced = "".join(lines[:start]) + body + "".join(lines[start + len(pattern) :])
        if replace.strip() and replace.strip("\n") in text:
            return EditResult("already_applied", text, "the replacement is already in the file; nothing changed")
        return EditResult("fuzzy", replaced,
                          f"applied at line {start + 1} (matched ignoring whitespace differences)")
    return EditResult("missing", text, "search text not found; " + nearest(text, search))
