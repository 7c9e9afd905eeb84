"""Fitting repository facts into the maker's token budget. Pure."""

from __future__ import annotations

from collections import Counter

CHARS_PER_TOKEN = 4


def approx_tokens(text: str) -> int:
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def file_listing(files: list[str], *, focus: list[str], budget_chars: int) -> str:
    """All files when they fit; otherwise files matching the focus first, then folders with counts.

    The listing stays within budget however large the repository grows.
    """
    full = "\n".join(files)
    if len(full) <= budget_chars:
        return full or "(no files)"
    focused = [f for f in files if any(f == p or f.startswith(p.rstrip("*").rstrip("/") + "/") for p in focus)]
    lines: list[str] = []
    used = 0
    for f in focused:
        if used + len(f) + 1 > budget_chars // 2:
            lines.append(f"… {len(focused) - len(lines)} more in scope")
            break
        lines.append(f)
        used += len(f) + 1
    folders = Counter(f.split("/", 1)[0] + ("/" if "/" in f else "") for f in files)
    lines.append(f"{len(files)} files in all; by top-level entry:")
    for name, count in sorted(folders.items(), key=lambda kv: (-kv[1], kv[0])):
        entry = f"{name} ({count})" if name.endswith("/") else name
        if used + len(entry) + 1 > budget_chars:
            lines.append(f"… {len(folders)} entries in all")
            break
        lines.append(entry)
        used += len(entry) + 1
    return "\n".join(lines)
