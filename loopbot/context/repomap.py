"""A repo map: the symbols each file defines, ranked by relevance to the goal, within a budget.

Python is read with `ast`; other common languages by their declaration keywords. The map is
computed once per loop (at the base commit) so it stays byte-identical across iterations and
the prompt prefix that holds it can be served from the provider's cache.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from loopbot.core.context import CHARS_PER_TOKEN
from loopbot.core.paths import spec
from loopbot.tools import safefile

MAX_FILE_BYTES = 300_000
MAX_SYMBOLS_PER_FILE = 30

_DECLARATIONS = {
    (".js", ".jsx", ".ts", ".tsx", ".mjs", ".cjs"): re.compile(
        r"^\s*(?:export\s+)?(?:default\s+)?(?:async\s+)?(?:function\*?|class|interface|type|enum)\s+([A-Za-z_$][\w$]*)"
        r"|^\s*(?:export\s+)?const\s+([A-Za-z_$][\w$]*)\s*=\s*(?:async\s*)?\(", re.M),
    (".go",): re.compile(r"^func\s+(?:\([^)]*\)\s*)?([A-Za-z_]\w*)|^type\s+([A-Za-z_]\w*)", re.M),
    (".rs",): re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:async\s+)?(?:fn|struct|enum|trait|impl|mod)\s+([A-Za-z_]\w*)", re.M),
    (".java", ".kt", ".cs", ".scala"): re.compile(
        r"^\s*(?:public|private|protected|internal)?\s*(?:static\s+)?(?:final\s+)?(?:class|interface|enum|record|object|fun)\s+([A-Za-z_]\w*)", re.M),
    (".rb",): re.compile(r"^\s*(?:def|class|module)\s+([A-Za-z_][\w.?!]*)", re.M),
    (".c", ".h", ".cc", ".cpp", ".hpp"): re.compile(r"^[A-Za-z_][\w\s\*]*?\b([A-Za-z_]\w*)\s*\([^;]*\)\s*\{", re.M),
    (".sh", ".bash"): re.compile(r"^\s*(?:function\s+)?([A-Za-z_][\w-]*)\s*\(\)\s*\{", re.M),
}


@dataclass(frozen=True)
class FileSymbols:
    path: str
    symbols: tuple[str, ...]

    def render(self) -> str:
        if not self.symbols:
            return self.path
        return f"{self.path}: " + ", ".join(self.symbols)


def python_symbols(text: str) -> list[str]:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return []
    found: list[str] = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found.append(f"{node.name}()")
        elif isinstance(node, ast.ClassDef):
            methods = [n.name for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                       and (not n.name.startswith("_") or n.name == "__init__")]
            found.append(f"class {node.name}" + (f"[{', '.join(methods)}]" if methods else ""))
        elif isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) and t.id.isupper() for t in node.targets):
            found.extend(t.id for t in node.targets if isinstance(t, ast.Name))
    return found


def symbols_of(path: str, text: str) -> list[str]:
    if path.endswith(".py"):
        return python_symbols(text)
    for suffixes, pattern in _DECLARATIONS.items():
        if path.endswith(suffixes):
            names = [next(g for g in m.groups() if g) for m in pattern.finditer(text) if any(m.groups())]
            return list(dict.fromkeys(names))
    return []


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z][a-z0-9]{2,}", text.lower())}


def _relevance(item: FileSymbols, keywords: set[str], in_scope: bool) -> tuple[int, int, int, str]:
    text = item.path.lower() + " " + " ".join(item.symbols).lower()
    hits = len(keywords & _words(text))
    return (0 if in_scope else 1, -hits, item.path.count("/"), item.path)


def build(root: Path, files: Iterable[str], *, goal_text: str, scope: list[str], budget_tokens: int) -> str:
    """The repo map text, most relevant files first, cut at the budget (with a count of the rest)."""
    allowed = spec(scope) if scope and scope != ["**"] else None
    keywords = _words(goal_text)
    items: list[tuple[tuple[int, int, int, str], FileSymbols]] = []
    for rel in files:
        path = root / rel
        symbols: list[str] = []
        if path.suffix:
            try:
                symbols = symbols_of(rel, safefile.read_bytes(path, MAX_FILE_BYTES).decode("utf-8"))
            except (OSError, UnicodeDecodeError):
                symbols = []
        item = FileSymbols(rel, tuple(symbols[:MAX_SYMBOLS_PER_FILE]))
        in_scope = bool(allowed and allowed.match_file(rel))
        items.append((_relevance(item, keywords, in_scope), item))
    items.sort(key=lambda pair: pair[0])
    budget_chars = budget_tokens * CHARS_PER_TOKEN
    lines: list[str] = []
    used = 0
    for shown, (_, item) in enumerate(items):
        line = item.render()
        if used + len(line) + 1 > budget_chars:
            lines.append(f"… and {len(items) - shown} more files (use list/search to explore)")
            break
        lines.append(line)
        used += len(line) + 1
    return "\n".join(lines) if lines else "(empty repository)"


def wiki_excerpt(root: Path, wiki_path: str, budget_tokens: int) -> str:
    """The wiki's index (and schema), when the repository keeps one, trimmed to the budget."""
    parts = []
    for name in ("index.md", "00_SCHEMA.md"):
        page = root / wiki_path / name
        try:
            parts.append(f"### {wiki_path}/{name}\n" + safefile.read_text(page, MAX_FILE_BYTES))
        except OSError:
            continue
    text = "\n\n".join(parts)
    limit = budget_tokens * CHARS_PER_TOKEN
    return text if len(text) <= limit else text[:limit] + "\n[… wiki trimmed …]"


def defined_names(root: Path, files: Iterable[str]) -> set[str]:
    """Every name the code defines (functions, classes, methods, constants) and every module name."""
    names: set[str] = set()
    for rel in files:
        names.add(Path(rel).stem)
        path = root / rel
        if not path.suffix:
            continue
        try:
            text = safefile.read_bytes(path, MAX_FILE_BYTES).decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if rel.endswith(".py"):
            try:
                tree = ast.parse(text)
            except (SyntaxError, ValueError):
                continue
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    names.add(node.name)
                elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                    names.add(node.id)
                elif isinstance(node, ast.arg):
                    names.add(node.arg)
        else:
            names.update(symbols_of(rel, text))
    return names
