import subprocess
import tempfile
from pathlib import Path

import pytest

from loopbot.errors import WorkspaceError
from loopbot.workspace.git import GitWorkspace, commits_of, git, resolve_rev, write_blobs


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


def test_the_snapshot_is_the_whole_worktree_ignored_files_go_setup_outputs_stay(kv_repo, tmp_path):
    repo, _ = kv_repo
    base = resolve_rev(repo, "main")
    ws = GitWorkspace.open(repo, tmp_path / "wt", "loop/1-x", base)
    (ws.path / ".gitignore").write_text("__pycache__/\n*.pyc\nconftest.py\n.venv/\n")
    (ws.path / "conftest.py").write_text("# ignored, would rewire pytest\n")
    (ws.path / "tests" / "__pycache__").mkdir()
    (ws.path / "tests" / "__pycache__" / "test_ttl.cpython-311.pyc").write_bytes(b"forged")
    (ws.path / ".venv").mkdir()
    (ws.path / ".venv" / "marker").write_text("made by the setup step\n")
    ws.pinned = [".venv"]
    head = ws.snapshot("iteration 1")
    assert not (ws.path / "conftest.py").exists() and not (ws.path / "tests" / "__pycache__").exists()
    assert (ws.path / ".venv" / "marker").exists()
    listed = sorted(str(p.relative_to(ws.path)) for p in ws.path.rglob("*")
                    if p.is_file() and ".git" not in p.parts and ".venv" not in p.parts)
    assert listed == sorted(ws.files_at(head))
    # A maker that un-ignores the output still cannot commit it; variants link to it.
    (ws.path / ".gitignore").write_text("__pycache__/\n")
    later = ws.snapshot("iteration 2")
    assert ws.changed_files(head, later) == [".gitignore"]
    tree = ws.prepare_variant("base-tests", later, restore=[], drop=[], base=base)
    assert (tree / ".venv").is_symlink() and (tree / ".venv" / "marker").exists()


def test_changes_carry_modes_sizes_and_binary_from_git_not_from_attributes(kv_repo, tmp_path):
    repo, _ = kv_repo
    base = resolve_rev(repo, "main")
    ws = GitWorkspace.open(repo, tmp_path / "wt", "loop/1-x", base)
    (ws.path / ".gitattributes").write_text("*.py binary\n")
    (ws.path / "kvstore.py").write_text((ws.path / "kvstore.py").read_text() + "# REAL CHANGE\n")
    (ws.path / "data.bin").write_bytes(b"\0\1\2" * 100)
    (ws.path / "run.sh").write_text("#!/bin/sh\n")
    (ws.path / "run.sh").chmod(0o755)
    (ws.path / "link").symlink_to("kvstore.py")
    head = ws.snapshot("iteration 1")
    by_path = {c.path: c for c in ws.changes(base, head)}
    assert by_path["data.bin"].binary and by_path["data.bin"].new_size == 300
    assert by_path["run.sh"].new_mode == "100755" and by_path["link"].new_mode == "120000"
    assert by_path["kvstore.py"].status == "M" and not by_path["kvstore.py"].binary
    # `*.py binary` cannot turn the diff into "Binary files differ".
    assert "+# REAL CHANGE" in ws.file_diffs(base, head, ["kvstore.py"])["kvstore.py"]


def test_special_files_and_nested_repositories_are_removed_before_the_snapshot(kv_repo, tmp_path):
    import os

    repo, _ = kv_repo
    base = resolve_rev(repo, "main")
    ws = GitWorkspace.open(repo, tmp_path / "wt", "loop/1-x", base)
    os.mkfifo(ws.path / "pipe")
    nested = ws.path / "vendor" / "lib"
    nested.mkdir(parents=True)
    (nested / "x.py").write_text("x = 1\n")
    git(nested, "init", "-q")
    removed = ws.remove_special_files()
    assert removed == ["pipe (FIFO)", "vendor/lib (nested repository)"]
    head = ws.snapshot("iteration 1")
    assert ws.changed_files(base, head) == []


def test_a_variant_tree_holds_the_snapshot_with_test_files_swapped(kv_repo, tmp_path):
    repo, _ = kv_repo
    base = resolve_rev(repo, "main")
    ws = GitWorkspace.open(repo, tmp_path / "wt", "loop/1-x", base)
    (ws.path / "tests" / "test_new.py").write_text("def test_x():\n    pass\n")
    (ws.path / "tests" / "test_ttl.py").write_text("# rewritten\n")
    head = ws.snapshot("iteration 1")
    tree = ws.prepare_variant("base-tests", head, restore=["tests/test_ttl.py"], drop=["tests/test_new.py"], base=base)
    assert not (tree / "tests" / "test_new.py").exists()
    assert (tree / "tests" / "test_ttl.py").read_text() == git(repo, "show", f"{base}:tests/test_ttl.py").stdout
    (tree / "junk").write_text("left by a command\n")
    again = ws.prepare_variant("base-tests", head, restore=[], drop=[], base=base)
    assert again == tree and not (tree / "junk").exists() and (tree / "tests" / "test_new.py").exists()
    # A kill mid-checkout leaves a lock behind: the variant is remade, not a failure on every resume.
    admin = git(tree, "rev-parse", "--absolute-git-dir").stdout.strip()
    (Path(admin) / "index.lock").write_text("")
    ws.prepare_variant("base-tests", base, restore=[], drop=[], base=base)
    assert not (tree / "tests" / "test_new.py").exists()
    ws.remove()
    assert not tree.exists()


def test_file_diffs_pair_each_path_with_its_own_diff_even_with_a_type_change(kv_repo, tmp_path):
    repo, _ = kv_repo
    base = resolve_rev(repo, "main")
    ws = GitWorkspace.open(repo, tmp_path / "wt", "loop/1-x", base)
    (ws.path / "a.txt").write_text("diff --git a/kvstore.py b/kvstore.py\n")  # content posing as a header
    (ws.path / "README.md").unlink()
    (ws.path / "README.md").symlink_to("kvstore.py")  # a type change: git shows two sections
    head = ws.snapshot("iteration 1")
    paths = [c.path for c in ws.changes(base, head)]
    diffs = ws.file_diffs(base, head, paths)
    assert set(diffs) == {"README.md", "a.txt"}
    assert "+diff --git a/kvstore.py" in diffs["a.txt"] and "kvstore.py" not in diffs["README.md"].split("\n")[0]
    # Without the type change, one call serves all files and pairs them the same way.
    (ws.path / "b.txt").write_text("b\n")
    later = ws.snapshot("iteration 2")
    pair = ws.file_diffs(head, later, [c.path for c in ws.changes(head, later)])
    assert list(pair) == ["b.txt"] and pair["b.txt"].startswith("diff --git a/b.txt b/b.txt")


def test_blobs_are_written_in_one_process_exactly_as_given_whatever_the_attributes_say(kv_repo):
    repo, _ = kv_repo
    # Attributes and line-ending settings that would change a file checked in at these paths.
    (repo / ".gitattributes").write_text("* text eol=crlf\n0 filter=nope\n")
    git(repo, "config", "core.autocrlf", "true")
    texts = ['{"a": 1}\n', "line one\r\nline two\n", "", "ünïcode ✓\n", '{"a": 1}\n']
    blobs = write_blobs(repo, texts)
    assert blobs == [git(repo, "hash-object", "--stdin", input_text=text).stdout.strip() for text in texts]
    stored = [subprocess.run(["git", "cat-file", "blob", blob], cwd=repo, capture_output=True, check=True).stdout
              for blob in blobs]
    assert stored == [text.encode() for text in texts]
    assert write_blobs(repo, []) == []


def test_commits_are_looked_up_in_one_process_and_a_missing_one_is_none(kv_repo):
    repo, _ = kv_repo
    head = resolve_rev(repo, "HEAD")
    tree = git(repo, "rev-parse", "HEAD^{tree}").stdout.strip()
    found = commits_of(repo, ["refs/heads/main", "refs/heads/loop/none", head, "0" * 40, tree, "main~5"])
    assert found == [head, None, head, None, None, None]
    assert commits_of(repo, []) == []


def test_blobs_are_written_where_no_scratch_folder_can_be_made(kv_repo, tmp_path, monkeypatch):
    """A state checkpoint must not depend on a writable temp dir: without one, a process a blob."""
    repo, _ = kv_repo
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-dir"))
    texts = ['{"a": 1}\n', "two\n"]
    assert write_blobs(repo, texts) == [git(repo, "hash-object", "--stdin", input_text=t).stdout.strip() for t in texts]
