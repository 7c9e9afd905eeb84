"""The documentation loop: after merges, the documenter brings the wiki up to date on a
`loop/wiki-<sha>` branch, proposed for review. Main is never written."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from loopbot.config import Config
from loopbot.context import repomap
from loopbot.core.untrusted import markdown_inline
from loopbot.errors import WorkspaceError
from loopbot.forge.local import LocalForge
from loopbot.messages import ModelReply, ModelRequest, TextBlock
from loopbot.ports import Clock, Model, Sandbox
from loopbot.prompts import render
from loopbot.report import says_pushed
from loopbot.roles.checker import trim_diff
from loopbot.roles.maker import run_session
from loopbot.tools import safefile
from loopbot.tools.toolbox import ToolBox
from loopbot.wiki import lint, skeleton
from loopbot.workspace.git import GitWorkspace, git, resolve_rev

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # git's well-known empty tree


@dataclass
class DocsResult:
    branch: str
    changed: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    logged_runs: list[str] = field(default_factory=list)
    findings: list[lint.Finding] = field(default_factory=list)
    fixed: int = 0
    summary: str = ""
    pushed: bool = False
    proposal: str | None = None
    error: str | None = None
    model_failed: bool = False  # every model call failed: nothing was written or pushed

    def body(self) -> str:
        lines = ["Documentation loop: the wiki brought up to date with main.", "", self.summary or "", ""]
        if self.changed:
            lines += ["Changed pages:", *[f"- `{p}`" for p in self.changed], ""]
        if self.fixed:
            lines.append(f"Wiki lint fixed {self.fixed} index problem(s).")
        if self.findings:
            more = len(self.findings) > lint.AUTO_FIX_LIMIT
            lines += ["", f"Wiki lint: {len(self.findings)} finding(s)" + (" — more than 10: report only, nothing "
                      "was fixed automatically" if more else "") + ":", *[f"- {f}" for f in self.findings]]
        return "\n".join(lines).strip() + "\n"


def _copy_run_records(state_root: Path, log_dir: Path, local: list[tuple[str, str]]) -> list[str]:
    """Loop reports and incident records land in 90_LOG/, one page per finished run whose branch
    was pushed: a local experiment that never left this machine is not the project's history.
    Local absolute paths (`local`: path, what to write instead) are replaced, so the committed
    wiki does not carry this machine's layout or its user's home."""
    copied = []
    for run in sorted((state_root / "runs").glob("*")) if (state_root / "runs").is_dir() else []:
        report = run / "report.md"
        target = log_dir / f"{run.name}.md"
        if not report.is_file() or os.path.lexists(target):
            continue
        text = safefile.read_text(report, lint.MAX_PAGE_BYTES)
        if "**Outcome**: running" in text or not says_pushed(text):
            continue
        incident = run / "incident.md"
        if incident.is_file():
            text += "\n\n" + safefile.read_text(incident, lint.MAX_PAGE_BYTES).replace("# Incident", "## Incident", 1)
        for path, placeholder in local:
            text = text.replace(path, placeholder)
        log_dir.mkdir(parents=True, exist_ok=True)
        safefile.write_text(target, text)
        copied.append(target.name)
    return copied


def local_paths(repo: Path, state_root: Path, home: Path | None) -> list[tuple[str, str]]:
    """The machine's own paths a run record may name, longest first (the state directory usually
    lies inside the repository, the repository inside the home), each as written and resolved."""
    named = [(state_root, "<state-dir>"), (repo, "<repo>")] + ([(home, "~")] if home is not None else [])
    pairs: dict[str, str] = {}
    for path, placeholder in named:
        for form in (str(path), str(path.resolve())):
            if len(form) > 1:  # never "/": every absolute path would go
                pairs.setdefault(form.rstrip("/"), placeholder)
    return sorted(pairs.items(), key=lambda pair: len(pair[0]), reverse=True)


def _linked_component(root: Path, relative: str) -> str | None:
    """The first folder on the wiki's path, or inside the wiki, that is a symlink (it could lead
    anywhere: writes below it would land there), or None. Linked files are refused when opened."""
    current = root
    for part in Path(relative).parts:
        current = current / part
        if current.is_symlink():
            return current.relative_to(root).as_posix()
    for directory, dirs, _ in os.walk(current):  # os.walk does not descend into linked folders
        for name in sorted(dirs):
            if (Path(directory) / name).is_symlink():
                return (Path(directory) / name).relative_to(root).as_posix()
    return None


def _discard(repo: Path, worktree: Path, branch: str) -> None:
    """Remove the docs branch and its worktree, if they exist."""
    if worktree.exists():
        git(repo, "worktree", "remove", "--force", str(worktree), check=False)
        shutil.rmtree(worktree, ignore_errors=True)
    git(repo, "branch", "-D", branch, check=False)


def docs(repo: Path, *, since: str, model: Model, config: Config, forge: LocalForge, sandbox: Sandbox, clock: Clock,
         state_root: Path, remote: str | None, home: Path | None = None) -> DocsResult:
    """`home`: the user's home directory, replaced by `~` in the run records logged (the caller
    reads the environment; this module does not)."""
    head = resolve_rev(repo, "HEAD")
    try:
        start = resolve_rev(repo, since)
        log_range = f"{start}..{head}"
    except WorkspaceError:  # a first push: there is nothing before it, so everything is new
        start, log_range = EMPTY_TREE, head
    branch = f"loop/wiki-{head[:10]}"
    result = DocsResult(branch=branch)
    worktree = state_root / "worktrees" / f"wiki-{head[:10]}"
    _discard(repo, worktree, branch)  # a re-run starts from main again
    workspace = GitWorkspace.open(repo, worktree, branch, head)
    wiki_path = config.wiki.path.strip("/")
    wiki = workspace.path / wiki_path
    linked = _linked_component(workspace.path, wiki_path)
    if linked is not None:
        result.error = f"refused: {linked} is a symlink; the documentation loop writes only real files in the wiki"
        return result
    try:
        result.created = skeleton.ensure(wiki)
        result.logged_runs = _copy_run_records(state_root, wiki / "90_LOG", local_paths(repo, state_root, home))
    except safefile.FileRefused as exc:
        result.error = f"refused: {exc}"
        return result

    changed = workspace.changed_files(start, head)
    # First-parent history: a merged pull request is one entry, not every commit of its branch.
    commits = git(repo, "log", "--first-parent", "--max-count=50", "--format=%h %s", log_range).stdout.strip()
    context = render("documenter_context.md.j2", since=start, head=head, commits=commits or "(none)",
                     changed=changed or ["(none)"], diff=trim_diff(git(repo, "diff", "--no-color", start, head).stdout,
                                                                  40_000),
                     wiki_pages=sorted(lint.pages(wiki)))
    toolbox = ToolBox(root=workspace.path, sandbox=sandbox, mode="docs", write_allow=[f"{wiki_path}/**"])

    answered = 0

    def gate(request: ModelRequest) -> ModelReply:
        nonlocal answered
        reply = model.complete(request)
        answered += 1
        return reply

    session = run_session(gate, toolbox, role="documenter",
                          system=render("documenter_system.md.j2", wiki_path=wiki_path),
                          context=[TextBlock(text=context, cache=True)], iteration=1,
                          max_turns=config.execution.max_turns_per_iteration)
    result.summary, result.error = session.summary, session.error
    if session.error is not None and answered == 0:
        # No model answered (unreachable, unauthorised, a script without replies): a log entry and
        # lint fixes alone are not the documentation loop's work, so nothing is committed or pushed.
        _discard(repo, worktree, branch)
        result.model_failed = True
        return result

    day = time.strftime("%Y-%m-%d", time.gmtime(clock.wall()))
    log = wiki / "log.md"
    # A commit subject is a contributor's text: escaped, so it stays literal in the page.
    entries = [f"- {day} `{line.split()[0]}` {markdown_inline(line.split(' ', 1)[1]) if ' ' in line else ''}"
               for line in reversed(commits.splitlines()) if line.strip()]
    files = set(workspace.tracked_files()) | {f"{wiki_path}/{p}" for p in lint.pages(wiki)}
    names = repomap.defined_names(workspace.path, [f for f in workspace.tracked_files() if not f.startswith(wiki_path)])
    try:
        if entries:
            old_log = safefile.read_text(log, lint.MAX_PAGE_BYTES) if os.path.lexists(log) else "# Log\n"
            safefile.write_text(log, old_log.rstrip() + "\n" + "\n".join(entries) + "\n")
        findings = lint.lint(wiki, repo_files=files, symbols=names, wiki_prefix=wiki_path)
        remaining = lint.fix(wiki, findings)
    except safefile.FileRefused as exc:
        workspace.reset(head)
        result.error = f"refused: {exc}"
        return result
    result.fixed = len(findings) - len(remaining)
    result.findings = remaining

    sha = workspace.snapshot(f"docs: wiki for {head[:10]}")
    result.changed = workspace.changed_files(head, sha)
    outside = [p for p in result.changed if not p.startswith(wiki_path + "/")]
    if outside:  # the toolbox allows wiki writes only; this is a second line of defence
        workspace.reset(head)
        result.error = f"changes outside the wiki were refused: {', '.join(outside)}"
        result.changed = []
        return result
    if not result.changed:
        result.summary = result.summary or "the wiki is already current"
        return result
    push = workspace.push(remote)
    result.pushed = push.pushed
    result.proposal = forge.propose(branch, f"docs: wiki for {head[:10]}", result.body())
    return result
