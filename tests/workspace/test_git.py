import subprocess

import pytest

from loopbot.errors import WorkspaceError
from loopbot.workspace.git import GitWorkspace, git, resolve_rev


def _status(repo):
    return git(repo, "status", "--porcelain").stdout


def test_worktree_snapshots_rollback_and_push_leave_user_tree_and_main_alone(kv_repo, tmp_path):
    repo, origin = kv_repo
    main_before = resolve_rev(repo, "main")
    ws = GitWorkspace.open(repo, tmp_path / "wt", "loop/1-x", main_before)
    (ws.path / "kvstore.py").write_text("# changed\n")
    (ws.path / "new.txt").write_text("new\n")
    first = ws.snapshot("iteration 1")
    assert first != main_before
    assert ws.changed_files(main_before, first) == ["kvstore.py", "new.txt"]
    (ws.path / "kvstore.py").write_text("# worse\n")
    (ws.path / "junk.txt").write_text("junk\n")
    ws.reset(first)
    assert (ws.path / "kvstore.py").read_text() == "# changed\n" and not (ws.path / "junk.txt").exists()
    assert ws.snapshot("nothing changed") == first
    result = ws.push("origin")
    assert result.pushed
    assert git(origin, "rev-parse", "refs/heads/loop/1-x").stdout.strip() == first
    assert resolve_rev(repo, "main") == main_before == git(origin, "rev-parse", "main").stdout.strip()
    assert _status(repo) == "" and "# changed" not in (repo / "kvstore.py").read_text()


def test_only_loop_branches(kv_repo, tmp_path):
    repo, _ = kv_repo
    with pytest.raises(WorkspaceError):
        GitWorkspace.open(repo, tmp_path / "wt", "main", "HEAD")


def test_hooks_in_the_repo_never_run(kv_repo, tmp_path):
    repo, _ = kv_repo
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text(f"#!/bin/sh\ntouch {tmp_path}/hook-ran\n")
    hook.chmod(0o755)
    ws = GitWorkspace.open(repo, tmp_path / "wt", "loop/2-x", "HEAD")
    (ws.path / "a.txt").write_text("a")
    ws.snapshot("s")
    assert not (tmp_path / "hook-ran").exists()


def test_lost_worktree_is_recreated_from_the_branch(kv_repo, tmp_path):
    repo, _ = kv_repo
    ws = GitWorkspace.open(repo, tmp_path / "wt", "loop/3-x", "HEAD")
    (ws.path / "a.txt").write_text("a")
    sha = ws.snapshot("s")
    subprocess.run(["rm", "-rf", str(ws.path)], check=True)
    again = GitWorkspace.open(repo, tmp_path / "wt", "loop/3-x", "HEAD")
    assert again.head() == sha and (again.path / "a.txt").read_text() == "a"


def test_push_without_remote_is_reported_not_raised(kv_repo, tmp_path):
    repo, _ = kv_repo
    ws = GitWorkspace.open(repo, tmp_path / "wt", "loop/4-x", "HEAD")
    assert not ws.push(None).pushed
    result = ws.push("nowhere")
    assert not result.pushed and "does not exist" in result.message


@pytest.mark.parametrize(("url", "problem"), [
    ("git@github.com:org/repo.git", None),
    ("github.com:org/repo.git", None),  # scp-like without a user: still a host, not a path
    ("https://github.com/org/repo.git", None),
    ("ssh://git@example.com/repo.git", None),
    ("../nowhere.git", "does not exist"),
    ("file:///nowhere/at/all.git", "does not exist"),
    ("/nowhere/at/all.git", "does not exist"),
])
def test_check_remote_judges_only_local_paths(kv_repo, url, problem):
    from loopbot.workspace.git import check_remote

    repo, _ = kv_repo
    git(repo, "remote", "add", "other", url)
    found = check_remote(repo, "other")
    assert (found is None) if problem is None else (problem in (found or ""))
    assert "does not exist" in (check_remote(repo, "missing") or "")
