"""A repo map: the symbols each file defines, ranked by relevance to the goal, within a budget.

Python is read with `ast`; other common languages by their declaration keywords. The map is
computed once per loop (at the base commit) so it stays byte-identical across iterations and
the prompt prefix that holds it can be served from the provider's cache.

Ranking: first the files that define a name the goal writes as code (`is_overlapping_types`,
`HTTPAdapter.send`, `evolve()`), the rarer the name the higher; then the files the goal names by
path or module (`meet.py`, `mypy/meet.py`, `mypy.meet`, "the meet module"); then by goal words. In
the first two, test files come after source files. Each entry gets a share of the budget and is
shortened to it (the names the goal uses kept); one that does not fit the rest is skipped, and the
budget goes to the files after it.
"""

from __future__ import annotations

import ast
import contextlib
import itertools
import keyword
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from loopbot.core.context import CHARS_PER_TOKEN
from loopbot.core.paths import is_test_path, spec
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


def _public(method: str) -> bool:
    return not method.startswith("_") or method == "__init__"


@dataclass(frozen=True)
class Symbol:
    """One entry of a file's symbol list: its label in the map and, for a class, its methods (all of
    them, in order: the public ones and __init__ are shown, the rest only when the goal names one)."""

    name: str
    label: str
    methods: tuple[str, ...] = ()

    def render(self) -> str:
        shown = [m for m in self.methods if _public(m)]
        return self.label + (f"[{', '.join(shown)}]" if shown else "")


@dataclass
class _Outline:
    """What one read of a file gives: the symbols to show and every name it defines."""

    symbols: list[Symbol] = field(default_factory=list)
    top: set[str] = field(default_factory=set)  # module-level functions, classes, assignments
    nested: set[str] = field(default_factory=set)  # methods and nested definitions
    qualified: set[str] = field(default_factory=set)  # Class.method, Outer.Inner


def _python_outline(text: str) -> _Outline:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return _Outline()
    outline = _Outline()
    functions: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if node.name not in functions:  # an @overload's variants are one entry
                functions.add(node.name)
                outline.symbols.append(Symbol(node.name, f"{node.name}()"))
        elif isinstance(node, ast.ClassDef):
            methods = tuple(dict.fromkeys(
                n.name for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))))
            outline.symbols.append(Symbol(node.name, f"class {node.name}", methods))
        elif isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) and t.id.isupper() for t in node.targets):
            outline.symbols.extend(Symbol(t.id, t.id) for t in node.targets if isinstance(t, ast.Name))
    _collect_definitions(tree.body, outline, owner="", top=True)
    return outline


_BLOCKS = (ast.If, ast.Try, ast.TryStar, ast.With, ast.AsyncWith, ast.For, ast.AsyncFor, ast.While)


def _collect_definitions(body: list[ast.stmt], outline: _Outline, *, owner: str, top: bool) -> None:
    """Definitions by walking statement bodies only (no expressions): cheap on a large file."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            (outline.top if top else outline.nested).add(node.name)
            if owner:
                outline.qualified.add(f"{owner}.{node.name}")
            _collect_definitions(node.body, outline, owner=node.name if isinstance(node, ast.ClassDef) else "",
                                 top=False)
        elif top and isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            outline.top.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, _BLOCKS):  # `if TYPE_CHECKING:`, `try: ... except ImportError:`
            blocks = [node.body, getattr(node, "orelse", []), getattr(node, "finalbody", [])]
            blocks += [handler.body for handler in getattr(node, "handlers", [])]
            for block in blocks:
                _collect_definitions(block, outline, owner=owner, top=top)


def _outline(path: str, text: str) -> _Outline:
    if path.endswith(".py"):
        return _python_outline(text)
    names = symbols_of(path, text)
    return _Outline([Symbol(n, n) for n in names], top=set(names))


def python_symbols(text: str) -> list[str]:
    return [symbol.render() for symbol in _python_outline(text).symbols]


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


# --- What the goal names: identifiers, dotted names, paths, modules -------------------------------

_IDENTIFIER = re.compile(r"(?<![\w.])[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_BACKTICKED = re.compile(r"`([^`\n]{1,200})`")
_PATHLIKE = re.compile(r"[\w.\-/]+")
_MODULE_WORD = re.compile(r"\b([A-Za-z_]\w*)`?\s+(?:module|package|file)\b|\b(?:module|package|file)\s+`?([A-Za-z_]\w*)")
MAX_DOTTED_PARTS = 8
_NOT_MODULES = {"the", "this", "that", "a", "an", "new", "same", "each", "every", "one", "which", "any", "some",
                "other", "whole", "entire", "source", "test", "tests", "config", "python", "init", "its", "in",
                "of", "to", "for", "and", "or", "is", "per", "by", "from", "with"}
# A name that many files define (`__init__`, `run`, `visit`) does not point at a file.
MAX_DEFINERS = 10
# Names, paths and modules are read from the goal's first characters (a goal is a few hundred);
# its words, for relevance, from all of it.
MAX_GOAL_CHARS = 20_000


@dataclass(frozen=True)
class GoalTerms:
    names: dict[str, float]  # identifier -> weight (strong 1.0, weak 0.5)
    qualified: frozenset[str]  # Class.method pairs out of dotted names
    paths: frozenset[str]  # tokens with a / or a . in them: "meet.py", "mypy/meet.py"
    modules: frozenset[str]  # dotted names as paths, two parts or more: "mypy/meet"
    stems: frozenset[str]  # "the meet module", "module meet"


def _looks_like_code(word: str) -> bool:
    """A name no sentence would use as a word: snake_case, camelCase, HTTPAdapter, TypeChecker."""
    return len(word) >= 2 and (("_" in word.strip("_") and not word.startswith("__"))
                               or re.search(r"[a-z0-9][A-Z]|[A-Z]{2}[a-z]", word) is not None)


def _starts_sentence(text: str, at: int) -> bool:
    before = text[max(0, at - 64):at].rstrip()
    return not before or before[-1] in ".!?:;-*#>"


def goal_terms(goal_text: str) -> GoalTerms:
    """The names, paths and modules a goal mentions, read from its text alone."""
    goal_text = goal_text[:MAX_GOAL_CHARS]
    names: dict[str, float] = {}
    qualified: set[str] = set()
    modules: set[str] = set()

    def name(word: str, weight: float) -> None:
        if not keyword.iskeyword(word) and word not in ("self", "cls"):
            names[word] = max(weight, names.get(word, 0.0))

    spans = {m.group(1).strip() for m in _BACKTICKED.finditer(goal_text)}
    for match in _IDENTIFIER.finditer(goal_text):
        token = match.group(0)
        parts = token.split(".")
        if len(parts) > MAX_DOTTED_PARTS:
            continue
        backticked = token in spans
        called = goal_text[match.end():match.end() + 1] == "("
        if len(parts) > 1:
            qualified.update(f"{a}.{b}" for a, b in itertools.pairwise(parts))
            modules.update("/".join(parts[i:j]) for i in range(len(parts)) for j in range(i + 2, len(parts) + 1))
            for part in parts:
                if _looks_like_code(part):
                    name(part, 1.0)
            if _looks_like_code(parts[0]) or (parts[0][:1].isupper() and len(parts[0]) > 1):
                name(parts[-1], 1.0)  # HTTPAdapter.send, Table.add_row
            continue
        if backticked or called or _looks_like_code(token):
            name(token, 1.0)
        elif token[:1].isupper() and len(token) > 2 and not token.isupper() \
                and not _starts_sentence(goal_text, match.start()):
            name(token, 0.5)  # a capitalized word mid-sentence: Segment, Table
    paths = {t.strip(".,:;'\"()[]`") for t in _PATHLIKE.findall(goal_text)}
    paths = {t for t in paths if ("/" in t or "." in t.strip(".")) and len(t) > 2}
    stems = {w for m in _MODULE_WORD.finditer(goal_text) for w in m.groups() if w and w.lower() not in _NOT_MODULES}
    stems |= {s for s in spans if re.fullmatch(r"[A-Za-z_]\w*", s)}
    return GoalTerms(names, frozenset(qualified), frozenset(paths), frozenset(modules), frozenset(stems))


def _path_named(rel: str, terms: GoalTerms) -> bool:
    parts = rel.split("/")
    if terms.paths and any("/".join(parts[i:]) in terms.paths for i in range(len(parts))):
        return True
    stem = parts[-1].rsplit(".", 1)[0] if "." in parts[-1] else parts[-1]
    module = [*parts[:-1], stem] if stem != "__init__" else parts[:-1]
    if terms.modules and any("/".join(module[i:]) in terms.modules for i in range(len(module) - 1)):
        return True
    return bool(module) and module[-1] in terms.stems


def _is_test(rel: str) -> bool:
    return is_test_path(rel) or any(part.startswith("test") for part in rel.split("/")[:-1])


# --- Fitting entries into the budget --------------------------------------------------------------

def _entry(path: str, symbols: list[Symbol], chosen: dict[int, list[str]]) -> str:
    """The entry showing the chosen symbols (and methods), in file order; `…` where some are left out."""
    if not chosen:
        return path
    parts: list[str] = []
    skipped = False
    for index, symbol in enumerate(symbols):
        if index not in chosen:
            skipped = True
            continue
        if skipped:
            parts.append("…")
        parts.append(_shown(symbol, chosen[index]))
        skipped = False
    if skipped:
        parts.append("…")
    return f"{path}: " + ", ".join(parts)


def _shown(symbol: Symbol, methods: list[str]) -> str:
    parts: list[str] = []
    skipped = False
    for method in symbol.methods:
        if method not in methods:
            skipped = skipped or _public(method)
            continue
        if skipped:
            parts.append("…")
        parts.append(method)
        skipped = False
    if skipped:
        parts.append("…")
    return symbol.label + (f"[{', '.join(parts)}]" if parts else "")


def _fit(path: str, symbols: list[Symbol], wanted: set[str], limit: int) -> str | None:
    """The file's entry in at most `limit` characters: the symbols the goal names, then the others
    in order until one does not fit. None when not even the path fits."""
    if len(path) > limit:
        return None
    chosen: dict[int, list[str]] = {}

    def take(index: int, method: str | None = None) -> bool:
        new = index not in chosen
        methods = chosen.setdefault(index, [])
        if method is not None:
            methods.append(method)
        if len(_entry(path, symbols, chosen)) <= limit:
            return True
        if new:
            del chosen[index]
        elif method is not None:
            methods.pop()
        return False

    for index, symbol in enumerate(symbols):  # what the goal names, wherever it is in the file
        if symbol.name in wanted:
            take(index)
        for method in symbol.methods:
            if method in wanted or f"{symbol.name}.{method}" in wanted:
                take(index, method)
    for index, symbol in enumerate(symbols[:MAX_SYMBOLS_PER_FILE]):  # then the rest, in order
        if index not in chosen and not take(index):
            break
        if not all(take(index, m) for m in symbol.methods if _public(m) and m not in chosen[index]):
            break
    return _entry(path, symbols, chosen)


@dataclass
class _Ranked:
    key: tuple[int, int, int, float, int, int, int, str]
    path: str
    symbols: list[Symbol]
    wanted: set[str]
    target: bool
    test: bool


def build(root: Path, files: Iterable[str], *, goal_text: str, scope: list[str], budget_tokens: int) -> str:
    """The repo map text within the budget, most relevant files first: those defining a name the
    goal uses, then those the goal names by path or module, then by goal words; a file whose entry
    does not fit is shortened or skipped, and the rest of the budget goes to the next ones."""
    allowed = spec(scope) if scope and scope != ["**"] else None
    keywords = _words(goal_text)
    terms = goal_terms(goal_text)
    wanted_names = set(terms.names)
    read: list[tuple[str, list[Symbol], set[str], set[str], set[str]]] = []
    definers: dict[str, int] = {}
    for rel in files:
        path = root / rel
        outline = _Outline()
        if path.suffix:
            with contextlib.suppress(OSError, UnicodeDecodeError):
                outline = _outline(rel, safefile.read_bytes(path, MAX_FILE_BYTES).decode("utf-8"))
        top = outline.top & wanted_names
        nested = (outline.nested & wanted_names) - top
        quals = outline.qualified & terms.qualified
        for matched in top | nested | quals:
            definers[matched] = definers.get(matched, 0) + 1
        read.append((rel, outline.symbols, top, nested, quals))
    items: list[_Ranked] = []
    for rel, symbols, top, nested, quals in read:
        exact = sum(terms.names[n] / definers[n] for n in top if definers[n] <= MAX_DEFINERS)
        exact += sum(terms.names[n] / 2 / definers[n] for n in nested if definers[n] <= MAX_DEFINERS)
        exact += sum(2 / definers[q] for q in quals)
        named = _path_named(rel, terms)
        in_scope = bool(allowed and allowed.match_file(rel))
        test = _is_test(rel)
        text = rel.lower() + " " + " ".join(s.render() for s in symbols[:MAX_SYMBOLS_PER_FILE]).lower()
        hits = len(keywords & _words(text))
        tier = 0 if exact else 1 if named else 2
        # Among the files the goal points at, a test file comes after the source files; by goal
        # words, after the source files with as many words.
        key = (tier, 0 if in_scope else 1, int(test) if tier < 2 else 0, -exact, -hits, int(test), rel.count("/"), rel)
        wanted = top | nested | quals | {q.split(".")[-1] for q in quals}
        items.append(_Ranked(key, rel, symbols, wanted, tier < 2, test))
    items.sort(key=lambda item: item.key)
    return _fill(items, budget_tokens * CHARS_PER_TOKEN)


def _fill(items: list[_Ranked], budget_chars: int) -> str:
    if not items:
        return "(empty repository)"
    trailer = "… and {} more files (use list/search to explore)"
    room = budget_chars - len(trailer.format(len(items))) - 1
    # One entry's share: the files the goal points at get a third of the map, any other file a
    # tenth, a test file (its list is mostly test names) a twentieth, so the map shows many files.
    targeted, ordinary, test = max(budget_chars // 3, 240), max(budget_chars // 10, 120), max(budget_chars // 20, 80)
    lines: list[str] = []
    used = 0
    for item in items:
        left = room - used - (1 if lines else 0)
        if left < 4:
            break
        share = targeted if item.target else test if item.test else ordinary
        line = _fit(item.path, item.symbols, item.wanted, min(max(share, len(item.path)), left))
        if line is None:
            continue
        lines.append(line)
        used += len(line) + (1 if len(lines) > 1 else 0)
    if len(lines) < len(items):
        lines.append(trailer.format(len(items) - len(lines)))
    return "\n".join(lines)


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
