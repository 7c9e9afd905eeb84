"""Search/replace edits that survive whitespace drift and fail helpfully."""

from __future__ import annotations

import difflib
import heapq
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

# What an edit may grow a file to (the toolbox passes its own file cap).
MAX_RESULT_CHARS = 2_000_000

Status = Literal["applied", "fuzzy", "already_applied", "missing", "ambiguous", "invalid"]


@dataclass(frozen=True)
class EditResult:
    status: Status
    text: str
    message: str

    @property
    def ok(self) -> bool:
        return self.status in ("applied", "fuzzy", "already_applied")


@dataclass(frozen=True)
class _Span:
    """One match replaced: text[start:end] becomes body."""

    start: int
    end: int
    body: str
    reindented: bool = False


# A hit is (where, line): an offset for exact matches, a line index for whitespace-tolerant ones;
# the line is 1-based, for messages. Bodies are built only for hits that are applied.
_Hit = tuple[int, int]


def numbered(number: int, line: str) -> str:
    """A line as the read tool (and the nearest-match hint) shows it: "   12 | text"."""
    return f"{number:>5} | {line}"


# The shape numbered() gives a line; a blank line may have lost its trailing space on the way back.
_READ_PREFIX = re.compile(r" *(\d{1,9}) \|(?: |$)")


def unprefixed(search: str) -> str | None:
    """The search without read's line-number prefix, when every line carries it and the numbers
    run on as a read shows them; otherwise None (the search is taken as written)."""
    lines = search.splitlines()
    found = [m for m in map(_READ_PREFIX.match, lines) if m is not None]
    if not lines or len(found) < len(lines):
        return None
    first = int(found[0].group(1))
    if any(int(m.group(1)) != first + i for i, m in enumerate(found)):
        return None
    body = "\n".join(line[m.end() :] for line, m in zip(lines, found, strict=True))
    return body + ("\n" if search.endswith("\n") else "")


def unprefixed_replacement(replace: str) -> str | None:
    """The replacement for a pasted search: without the prefix when all its lines carry it, as
    written when none does, and None when only some do (which lines are code is a guess)."""
    lines = replace.split("\n")
    found = [_READ_PREFIX.match(line) for line in lines]
    carrying = sum(1 for f in found if f is not None)
    if carrying == 0:
        return replace
    if carrying < sum(1 for line in lines if line):
        return None
    return "\n".join(line[f.end() :] if f else line for line, f in zip(lines, found, strict=True))


def _lines_at(hits: list[_Hit], shown: int = 10) -> str:
    more = ", …" if len(hits) > shown else ""
    return ", ".join(str(line) for _, line in hits[:shown]) + more


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


def _exact_hits(text: str, search: str) -> list[_Hit]:
    """Every place the search occurs as written, left to right, none overlapping."""
    hits: list[_Hit] = []
    line, counted = 1, 0
    at = text.find(search)
    while at != -1:
        line += text.count("\n", counted, at)  # counted on from the last match: linear in the file
        counted = at
        hits.append((at, line))
        at = text.find(search, at + len(search))
    return hits


def _exact_span(text: str, at: int, search: str, replace: str, bodies: dict[str, str | None]) -> _Span:
    """An exact match replaced. One that begins after the line's indentation was copied without
    it, so the replacement's lines are given the file's depth."""
    end = at + len(search)
    line_start = text.rfind("\n", 0, at) + 1
    prefix = text[line_start:at]
    if not prefix or prefix.strip():  # at the line's start, or an inner match: literal
        return _Span(at, end, replace)
    if prefix not in bodies:  # matches at one depth share one body: replace_all stays linear
        bodies[prefix] = _reindented(prefix, search, replace)
    body = bodies[prefix]
    if body is None:
        return _Span(at, end, replace)
    return _Span(line_start, end, body, body != prefix + replace)


def _reindented(prefix: str, search: str, replace: str) -> str | None:
    """The replacement from the line's start, at the depth the prefix shows; None when it must
    stay literal because one search depth sits at two file depths (which is meant is a guess)."""
    pattern = search.split("\n")
    found = [prefix + pattern[0], *pattern[1:]]
    mapping = _indent_map(pattern, found)
    lines = replace.split("\n")
    consistent = all(mapping[_indent(w)] == _indent(a) for w, a in zip(pattern, found, strict=True) if w.strip())
    covered = all(any(_indent(ln).startswith(k) for k in mapping) for ln in lines if ln.strip())
    return "\n".join(_reindent(lines, mapping)) if consistent and covered else None


def _fuzzy_hits(lines: list[str], pattern: list[str]) -> list[_Hit]:
    """The windows matching ignoring whitespace, left to right, none overlapping."""
    hits: list[_Hit] = []
    for start in _windows(lines, pattern):
        if not hits or start >= hits[-1][0] + len(pattern):
            hits.append((start, start + 1))
    return hits


def _fuzzy_span(lines: list[str], offsets: list[int], start: int, pattern: list[str], replace: str) -> _Span:
    """Whole lines matched ignoring whitespace, replaced in their own indentation."""
    stop = start + len(pattern)
    bare = [ln.rstrip("\r\n") for ln in lines[start:stop]]
    new_lines = _reindent(replace.strip("\n").splitlines(), _indent_map(pattern, bare))
    ending = "\n" if lines[stop - 1].endswith("\n") else ""
    body = "\n".join(new_lines) + ending if new_lines else ""
    return _Span(offsets[start], offsets[stop], body)


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
    snippet = "\n".join(numbered(n + 1, lines[n]) for n in range(best_at, min(len(lines), best_at + width)))
    return f"nearest match ({best_ratio:.0%} similar) at line {best_at + 1}:\n{snippet}"


def apply_edit(text: str, search: str, replace: str, replace_all: bool = False,
               max_chars: int = MAX_RESULT_CHARS) -> EditResult:
    found = _apply(text, search, replace, replace_all, max_chars)
    if found is not None:
        return found
    # Only a search that matches nowhere as written is read as pasted `read` output, so a file
    # that really holds lines like "   1 | a" is still edited literally.
    pasted = unprefixed(search)
    if pasted is None:
        return _missing(text, search)
    return _apply_pasted(text, pasted, replace, replace_all, max_chars)


def _missing(text: str, search: str, note: str = "") -> EditResult:
    return EditResult("missing", text, f"{note}search text not found; " + nearest(text, search))


def _apply_pasted(text: str, search: str, replace: str, replace_all: bool, max_chars: int) -> EditResult:
    new = unprefixed_replacement(replace)
    if new is None:
        return EditResult("invalid", text, "search carries the read tool's line-number prefix and only some lines "
                          "of replace do: give replace as the file's own text, without the prefix")
    note = f"stripped the read tool's line-number prefix ({numbered(12, '')!r}) from search"
    note += " and replace; " if new != replace else "; "
    found = _apply(text, search, new, replace_all, max_chars)
    if found is None:
        return _missing(text, search, note)
    return EditResult(found.status, found.text, note + found.message)


def _apply(text: str, search: str, replace: str, replace_all: bool, max_chars: int) -> EditResult | None:
    """The edit, or None when the search matches nowhere (the caller explains where it nearly did)."""
    if search == "":
        return EditResult("invalid", text, "search is empty: use the write tool to create or overwrite a file")
    if search == replace:
        return EditResult("invalid", text, "search and replace are identical: nothing to change")
    exact = _exact_hits(text, search)
    if exact:
        bodies: dict[str, str | None] = {}
        return _splice(text, exact, replace_all, "applied", max_chars,
                       lambda at: _exact_span(text, at, search, replace, bodies))
    if replace and replace in text:
        return EditResult("already_applied", text, "the replacement is already in the file; nothing changed")
    lines = text.splitlines(keepends=True)
    pattern = search.strip("\n").splitlines()
    fuzzy = _fuzzy_hits([ln.rstrip("\r\n") for ln in lines], pattern)
    if not fuzzy:
        return None
    if len(fuzzy) == 1 and replace.strip() and replace.strip("\n") in text:
        return EditResult("already_applied", text, "the replacement is already in the file; nothing changed")
    offsets = [0]
    for ln in lines:
        offsets.append(offsets[-1] + len(ln))
    return _splice(text, fuzzy, replace_all, "fuzzy", max_chars,
                   lambda start: _fuzzy_span(lines, offsets, start, pattern, replace))


def _splice(text: str, hits: list[_Hit], replace_all: bool, status: Status, max_chars: int,
            span_of: Callable[[int], _Span]) -> EditResult:
    where = _lines_at(hits)
    how = "ignoring whitespace, " if status == "fuzzy" else ""
    if len(hits) > 1 and not replace_all:
        return EditResult("ambiguous", text,
                          f"{how}search matches {len(hits)} places (lines {where}); add more surrounding "
                          "lines as context so it matches exactly one, or set replace_all to change every one")
    parts: list[str] = []
    done, size, reindented = 0, 0, False
    for key, _ in hits:
        span = span_of(key)
        parts += [text[done : span.start], span.body]
        size += span.start - done + len(span.body)
        done, reindented = span.end, reindented or span.reindented
        if size + len(text) - done > max_chars:  # a replace_all can multiply a file: refused before it is built
            return EditResult("invalid", text, f"the result would be over {max_chars:,} characters; nothing changed")
    new_text = "".join(parts) + text[done:]
    if status == "fuzzy":
        message = f"applied at line{'s' if len(hits) > 1 else ''} {where} (matched ignoring whitespace differences)"
    else:
        message = f"applied at {len(hits)} places (lines {where})" if len(hits) > 1 else "applied"
    if reindented:
        message += "; the replacement was re-indented to the file's indentation"
    return EditResult(status, new_text, message)
