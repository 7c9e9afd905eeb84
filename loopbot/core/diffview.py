"""The change as a reviewer sees it: every file listed with what git records of it, then the
diffs, trimmed per file within a budget. Data files give way first; no source file is dropped. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath

from loopbot.core.changes import FileChange

VIEW_LIMIT_CHARS = 60_000
# The least of each source file's diff shown however large the change: its header and first hunk.
SOURCE_FLOOR_CHARS = 1_500
DATA_SUFFIXES = (
    ".json", ".csv", ".tsv", ".txt", ".lock", ".svg", ".xml", ".html", ".map", ".dat", ".bin", ".log",
    ".min.js", ".min.css", ".snap", ".ipynb", ".pb", ".parquet", ".sql", ".po",
)
DATA_NAMES = ("package-lock.json", "yarn.lock", "pnpm-lock.yaml", "poetry.lock", "Cargo.lock", "uv.lock", "go.sum")
_STATUS = {"A": "added", "D": "deleted", "M": "modified", "T": "type changed"}


def is_data(change: FileChange) -> bool:
    name = PurePosixPath(change.path).name
    return change.binary or name in DATA_NAMES or name.endswith(DATA_SUFFIXES)


def _size(change: FileChange) -> str:
    if change.added:
        return f"{change.new_size} bytes"
    if change.deleted:
        return f"was {change.old_size} bytes"
    return f"{change.old_size} -> {change.new_size} bytes"


def manifest(changes: Sequence[FileChange]) -> str:
    lines = [f"Changed files ({len(changes)}), as git records them:"]
    for change in changes:
        mode = change.new_mode if not change.deleted else change.old_mode
        notes = change.notes() + (["data"] if is_data(change) and not change.binary else [])
        extra = f" [{'; '.join(notes)}]" if notes else ""
        lines.append(f"- {_STATUS.get(change.status, change.status)} {change.path} (mode {mode}, {_size(change)}){extra}")
    return "\n".join(lines)


def _trim(text: str, limit: int, path: str) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[... {len(text) - limit} more characters of {path}'s diff not shown ...]\n"


def _shares(sizes: list[int], budget: int) -> list[int]:
    """Water-filling: small diffs whole, the rest share what is left equally."""
    shares = [0] * len(sizes)
    order = sorted(range(len(sizes)), key=lambda i: sizes[i])
    left = budget
    for position, index in enumerate(order):
        fair = left // max(1, len(order) - position)
        shares[index] = min(sizes[index], max(0, fair))
        left -= shares[index]
    return shares


def render_change(changes: Sequence[FileChange], diffs: Mapping[str, str], limit: int = VIEW_LIMIT_CHARS) -> str:
    """The manifest, then each file's diff: sources first and whole when they fit, data after."""
    head = manifest(changes)
    sources = [c for c in changes if not is_data(c)]
    data = [c for c in changes if is_data(c)]
    budget = max(0, limit - len(head))
    source_sizes = [len(diffs.get(c.path, "")) for c in sources]
    source_budget = max(budget - min(sum(len(diffs.get(c.path, "")) for c in data), budget // 5),
                        SOURCE_FLOOR_CHARS * len(sources))
    source_shares = [max(share, min(size, SOURCE_FLOOR_CHARS))
                     for share, size in zip(_shares(source_sizes, source_budget), source_sizes, strict=True)]
    data_budget = max(0, budget - sum(source_shares))
    data_shares = _shares([len(diffs.get(c.path, "")) for c in data], data_budget)
    parts = [head, ""]
    for change, share in [*zip(sources, source_shares, strict=True), *zip(data, data_shares, strict=True)]:
        text = diffs.get(change.path, "")
        if share <= 0 and text:
            parts.append(f"[diff of {change.path} not shown: {len(text)} characters of data; listed above]\n")
            continue
        parts.append(_trim(text, share, change.path))
    return "\n".join(parts)
