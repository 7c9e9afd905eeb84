"""Wiki lint: orphan pages, broken links, pages naming files or symbols that no longer exist,
and an index out of step with the pages."""

from __future__ import annotations

import builtins
import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from loopbot.core.untrusted import markdown_inline
from loopbot.tools import safefile
from loopbot.wiki.skeleton import SECTION_READMES

AUTO_FIX_LIMIT = 10
MAX_PAGE_BYTES = 2 * 1024 * 1024
# Names every page may use without the code defining them.
BUILTINS = set(dir(builtins)) | {"self", "cls", "None", "True", "False"}
ROOTS = ("index.md", "00_SCHEMA.md", "log.md")
Kind = Literal["orphan", "broken_link", "missing_file", "missing_symbol", "index_missing", "index_dead"]

_LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_CODE = re.compile(r"`([^`\n]+)`")
_FILE_LIKE = re.compile(r"^[\w./-]+\.(py|pyi|js|jsx|ts|tsx|go|rs|java|kt|rb|c|h|cpp|hpp|cs|sh|toml|yaml|yml|json|cfg|ini|md|sql)$")
_SYMBOL_LIKE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*(\(\))?$")


@dataclass(frozen=True)
class Finding:
    kind: Kind
    page: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.page}:{self.line}: {self.kind}: {self.message}"


def pages(wiki: Path) -> dict[str, str]:
    """Every regular markdown page under the wiki; links, FIFOs and devices are not pages."""
    found: dict[str, str] = {}
    for directory, dirs, files in os.walk(wiki):  # never follows a symlinked directory
        dirs.sort()
        for name in sorted(files):
            if not name.endswith(".md"):
                continue
            path = Path(directory) / name
            try:
                found[path.relative_to(wiki).as_posix()] = safefile.read_text(path, MAX_PAGE_BYTES)
            except OSError:
                continue
    return dict(sorted(found.items()))


def _links(text: str) -> list[tuple[int, str]]:
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for match in _LINK.finditer(line):
            target = match.group(2)
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target) and not target.startswith("#"):
                found.append((number, target.split("#", 1)[0]))
    return found


def _file_exists(token: str, page_dir: str, repo_files: set[str], wiki_prefix: str) -> bool:
    """A named file exists from the repository root, beside the page, or (a bare name) anywhere."""
    candidates = {token, posixpath.normpath(posixpath.join(wiki_prefix, page_dir, token)),
                  posixpath.normpath(posixpath.join(wiki_prefix, token))}
    if candidates & repo_files:
        return True
    return "/" not in token and any(f.endswith("/" + token) for f in repo_files)


def _is_symbol_reference(token: str) -> bool:
    """Backticked code that names a symbol: dotted, called, CamelCase or snake_case; not prose."""
    if not _SYMBOL_LIKE.match(token) or token.isupper() or len(token) < 3:
        return False
    bare = token.removesuffix("()")
    return token.endswith("()") or "." in bare or "_" in bare or (bare[0].isupper() and any(c.islower() for c in bare))


def lint(wiki: Path, *, repo_files: set[str], symbols: set[str], wiki_prefix: str) -> list[Finding]:
    texts = pages(wiki)
    findings: list[Finding] = []
    linked: set[str] = set()
    for page, text in texts.items():
        base = posixpath.dirname(page)
        for line, target in _links(text):
            if not target:
                continue
            resolved = posixpath.normpath(posixpath.join(base, target))
            if resolved in texts:
                linked.add(resolved)
                continue
            # A link out of the wiki into the repository.
            repo_path = posixpath.normpath(posixpath.join(wiki_prefix, resolved))
            if repo_path in repo_files or any(f.startswith(repo_path.rstrip("/") + "/") for f in repo_files):
                continue
            if page == "index.md" and target.endswith(".md"):
                continue  # reported once, as index_dead
            findings.append(Finding("broken_link", page, line, f"link target {target!r} does not exist"))
        if page.startswith("90_LOG/"):
            continue  # run records describe the past: files they name may be gone, rightly
        for number, row in enumerate(text.splitlines(), 1):
            for token in _CODE.findall(row):
                token = token.strip()
                if _FILE_LIKE.match(token):
                    if not _file_exists(token, base, repo_files, wiki_prefix):
                        findings.append(Finding("missing_file", page, number, f"names {token}, which no longer exists"))
                elif _is_symbol_reference(token):
                    # The member is what must exist: `Store.fetch_all()` is stale even if Store is not.
                    member = token.removesuffix("()").split(".")[-1]
                    if member not in symbols and member not in BUILTINS:
                        findings.append(Finding("missing_symbol", page, number, f"names `{token}`, defined nowhere in the code"))
    index = texts.get("index.md", "")
    indexed = {posixpath.normpath(t) for _, t in _links(index)}
    for page in texts:
        if page in ROOTS or page in SECTION_READMES:
            continue
        if page not in linked:
            findings.append(Finding("orphan", page, 1, "no other page links here"))
        if page not in indexed:
            findings.append(Finding("index_missing", page, 1, "not listed in index.md"))
    for line, target in _links(index):
        if posixpath.normpath(target) not in texts and target.endswith(".md"):
            findings.append(Finding("index_dead", "index.md", line, f"lists {target}, which does not exist"))
    return findings


def _title(text: str, fallback: str) -> str:
    return next((line[2:].strip() for line in text.splitlines() if line.startswith("# ")), fallback)


def fix(wiki: Path, findings: list[Finding]) -> list[Finding]:
    """Fix what can be fixed mechanically (the index); returns the findings left.

    With more than AUTO_FIX_LIMIT findings, nothing is touched: the wiki needs a person.
    """
    if len(findings) > AUTO_FIX_LIMIT:
        return findings
    index_path = wiki / "index.md"
    lines = safefile.read_text(index_path, MAX_PAGE_BYTES).splitlines() if os.path.lexists(index_path) else ["# Index", ""]
    dead = {f.message.split()[1].rstrip(",") for f in findings if f.kind == "index_dead"}
    lines = [line for line in lines if not any(f"]({target})" in line for target in dead)]
    missing = sorted({f.page for f in findings if f.kind in ("index_missing", "orphan")})
    texts = pages(wiki)
    for page in missing:
        if f"]({page})" not in "\n".join(lines):
            lines.append(f"- [{markdown_inline(_title(texts.get(page, ''), page))}]({page})")
    safefile.write_text(index_path, "\n".join(lines).rstrip() + "\n")
    return [f for f in findings if f.kind not in ("index_dead", "index_missing", "orphan")]
