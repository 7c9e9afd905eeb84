import os
from pathlib import Path

from loopbot.clock import SystemClock
from loopbot.config import Config
from loopbot.forge.local import LocalForge
from loopbot.sandbox.subprocess_runner import SubprocessSandbox
from loopbot.testing.scripted import Script, ScriptedModel
from loopbot.wiki.update import docs
from loopbot.workspace.git import git, resolve_rev

PAGE = "# Purging\n\n`KVStore.purge_expired()` in `kvstore.py` drops every key whose deadline passed.\n"


def documenter(*tools) -> ScriptedModel:
    return ScriptedModel(Script.model_validate({"documenter": [{"iteration": "*", "turns": [
        {"text": "Documenting.", "tools": list(tools)}, {"tools": [{"done": {"summary": "wrote a page"}}]}]}]}))


def merge_a_change(repo):
    before = resolve_rev(repo, "main")
    code = (repo / "kvstore.py").read_text() + "\n    def purge_expired(self) -> int:\n        return 0\n"
    (repo / "kvstore.py").write_text(code)
    git(repo, "commit", "--quiet", "-am", "Add purge_expired()")
    return before


def run_docs(repo, model, since):
    state_root = repo / ".git" / "loopbot"
    return docs(repo, since=since, model=model, config=Config(), forge=LocalForge(repo, state_root / "proposals"),
                sandbox=SubprocessSandbox(), clock=SystemClock(), state_root=state_root, remote="origin")


def test_docs_loop_updates_the_wiki_on_its_own_branch_and_never_main(kv_repo):
    repo, origin = kv_repo
    since = merge_a_change(repo)
    git(repo, "push", "--quiet", "origin", "main")
    main_before = resolve_rev(repo, "main")
    run_dir = repo / ".git" / "loopbot" / "runs" / "kvstore-ttl-abc123"
    run_dir.mkdir(parents=True)
    (run_dir / "report.md").write_text("# loopbot run `kvstore-ttl-abc123`\n\n**Outcome**: SUCCESS: goal met\n\n"
                                       "- Push: pushed to origin\n")

    result = run_docs(repo, documenter(
        {"write": {"path": "wiki/10_DOMAIN/purging.md", "content": PAGE}},
        {"edit": {"path": "wiki/index.md", "search": "- [Log](log.md): timeline of documented merges",
                  "replace": "- [Log](log.md): timeline of documented merges\n- [Purging](10_DOMAIN/purging.md): purge"}},
    ), since)

    assert result.pushed and result.branch.startswith("loop/wiki-") and result.error is None
    shown = lambda path: git(origin, "show", f"{result.branch}:{path}").stdout  # noqa: E731
    assert "purge_expired" in shown("wiki/10_DOMAIN/purging.md")
    assert "Add purge_expired()" in shown("wiki/log.md")
    assert "SUCCESS" in shown("wiki/90_LOG/kvstore-ttl-abc123.md")
    assert {"wiki/00_SCHEMA.md", "wiki/index.md", "wiki/20_SYSTEM/README.md"} <= set(result.changed)
    assert result.findings == []  # the run record was indexed by the lint fix
    assert resolve_rev(repo, "main") == main_before == git(origin, "rev-parse", "main").stdout.strip()
    assert not (repo / "wiki").exists()  # the user's checkout is untouched
    proposal = Path(result.proposal).read_text()
    assert "wiki/10_DOMAIN/purging.md" in proposal and "wrote a page" in proposal


def test_the_documenter_cannot_write_outside_the_wiki(kv_repo):
    repo, origin = kv_repo
    since = merge_a_change(repo)
    result = run_docs(repo, documenter({"write": {"path": "kvstore.py", "content": "broken = True\n"}},
                                       {"write": {"path": "wiki/10_DOMAIN/purging.md", "content": PAGE}}), since)
    assert result.pushed
    assert "purge_expired" in git(origin, "show", f"{result.branch}:kvstore.py").stdout
    assert all(path.startswith("wiki/") for path in result.changed)


def test_wiki_pages_linked_outside_the_repository_are_never_written(kv_repo, tmp_path):
    """On main, wiki/log.md and wiki/index.md are symlinks to files outside: refused, untouched."""
    repo, _ = kv_repo
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "profile.sh").write_text("# sourced by a login shell\n")
    (outside / "index.md").write_text("kept\n")
    (repo / "wiki").mkdir()
    os.symlink(outside / "profile.sh", repo / "wiki" / "log.md")
    os.symlink(outside / "index.md", repo / "wiki" / "index.md")
    git(repo, "add", "wiki")
    git(repo, "commit", "--quiet", "-m", "wiki links")
    since = resolve_rev(repo, "HEAD")
    (repo / "kvstore.py").write_text((repo / "kvstore.py").read_text() + "\n# more\n")
    git(repo, "commit", "--quiet", "-am", "$(touch /tmp/loopbot-docs-pwned) `id`")
    result = run_docs(repo, documenter(), since)
    assert result.error is not None and "symlink" in result.error and not result.pushed
    assert (outside / "profile.sh").read_text() == "# sourced by a login shell\n"
    assert (outside / "index.md").read_text() == "kept\n"


def test_a_linked_wiki_folder_is_refused_and_subjects_are_escaped(kv_repo, tmp_path):
    repo, origin = kv_repo
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    os.symlink(outside, repo / "wiki")
    git(repo, "add", "wiki")
    git(repo, "commit", "--quiet", "-m", "linked wiki")
    result = run_docs(repo, documenter(), resolve_rev(repo, "HEAD~1"))
    assert result.error is not None and "wiki is a symlink" in result.error
    assert list(outside.iterdir()) == []
    # A real wiki: the hostile subject lands in log.md as literal text.
    git(repo, "rm", "--quiet", "wiki")
    git(repo, "commit", "--quiet", "-m", "$(touch /tmp/loopbot-docs-pwned) `id` [x](javascript:1)")
    result = run_docs(repo, documenter(), resolve_rev(repo, "HEAD~1"))
    assert result.error is None, result.error
    log = git(origin, "show", f"{result.branch}:wiki/log.md").stdout
    assert "\\$(touch /tmp/loopbot-docs-pwned) \\`id\\` \\[x\\](javascript:1)" in log


def test_a_linked_folder_inside_the_wiki_is_refused(kv_repo, tmp_path):
    repo, _ = kv_repo
    outside = tmp_path / "outside-log"
    outside.mkdir()
    (repo / "wiki").mkdir()
    (repo / "wiki" / "index.md").write_text("# Index\n")
    os.symlink(outside, repo / "wiki" / "90_LOG")
    git(repo, "add", "wiki")
    git(repo, "commit", "--quiet", "-m", "linked log folder")
    state_root = repo / ".git" / "loopbot"
    run = state_root / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "report.md").write_text("# run\n\n**Outcome**: SUCCESS\n")
    result = run_docs(repo, documenter(), resolve_rev(repo, "HEAD~1"))
    assert result.error is not None and "wiki/90_LOG is a symlink" in result.error
    assert list(outside.iterdir()) == []


def _record(state_root: Path, run_id: str, outcome: str, push: str, extra: str = "") -> None:
    run_dir = state_root / "runs" / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "report.md").write_text(f"# loopbot run `{run_id}`\n\n**Outcome**: {outcome}\n\n- Push: {push}\n{extra}")


def test_only_pushed_runs_are_logged_and_without_this_machines_paths(kv_repo, tmp_path):
    repo, origin = kv_repo
    since = merge_a_change(repo)
    state_root = repo / ".git" / "loopbot"
    home = tmp_path / "home" / "alice"
    worktree = state_root / "worktrees" / "pushed-1"
    failing = (f"\n## Failed check\n\n    File \"{worktree}/kvstore.py\", line 3\n    {repo}/tests/test_ttl.py::test_x\n"
               f"    config read from {home}/.config/thing and {repo.resolve()}/README.md\n")
    _record(state_root, "pushed-1", "STOPPED: STAGNATED", "pushed to origin", failing)
    _record(state_root, "local-experiment", "STOPPED: STAGNATED", "no remote configured")
    _record(state_root, "push-refused", "SUCCESS: goal met", "push failed: remote rejected")
    _record(state_root, "still-running", "running: iteration 2, next step evaluate", "pushed to origin")
    result = docs(repo, since=since, model=documenter({"write": {"path": "wiki/10_DOMAIN/purging.md", "content": PAGE}}),
                  config=Config(), forge=LocalForge(repo, state_root / "proposals"), sandbox=SubprocessSandbox(),
                  clock=SystemClock(), state_root=state_root, remote="origin", home=home)
    assert result.pushed and result.logged_runs == ["pushed-1.md"]
    listing = git(origin, "ls-tree", "-r", "--name-only", result.branch, "wiki/90_LOG/").stdout.split()
    assert [path for path in listing if not path.endswith("/README.md")] == ["wiki/90_LOG/pushed-1.md"]
    page = git(origin, "show", f"{result.branch}:wiki/90_LOG/pushed-1.md").stdout
    assert str(tmp_path) not in page and str(home) not in page and "/work/" not in page
    assert 'File "<state-dir>/worktrees/pushed-1/kvstore.py"' in page
    assert "<repo>/tests/test_ttl.py::test_x" in page and "~/.config/thing" in page and "<repo>/README.md" in page


def test_a_real_reports_push_line_is_what_the_log_reads(make_loop, demo_script):
    from loopbot.core.state import PushResult
    from loopbot.report import render_report, says_pushed

    loop = make_loop(demo_script)
    final = loop.run()
    assert final.push is not None and final.push.pushed and says_pushed(render_report(final))
    local = final.model_copy(update={"push": PushResult(remote=None, branch=final.branch, sha=final.best.sha,
                                                        pushed=False, message="no remote configured")})
    assert not says_pushed(render_report(local))
