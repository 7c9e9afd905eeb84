"""Loop branches are pushed with the App's installation token, loopbot's state with the checkout's
GITHUB_TOKEN, over real git smart HTTP; the App token is written nowhere."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

from loopbot.store.git_state import GitStateStore
from loopbot.testing.git_http import serve
from loopbot.workspace.credentials import push_env
from loopbot.workspace.git import GitWorkspace, git

CHECKOUT_TOKEN = "ghs_" + "C" * 36  # what actions/checkout persists in .git/config
APP_TOKEN = "ghs_" + "A" * 36


def _checkout(root: Path, url: str) -> Path:
    """A clone as actions/checkout leaves it: the job token in an extraheader of .git/config."""
    seed = root / "seed"
    git(root, "init", "-q", "-b", "main", str(seed))
    (seed / "README.md").write_text("hello\n")
    git(seed, "add", "README.md")
    git(seed, "commit", "-qm", "first")
    git(root, "init", "-q", "--bare", "-b", "main", str(root / "served" / "origin.git"))
    git(seed, "push", "--quiet", str(root / "served" / "origin.git"), "main")
    checkout = root / "checkout"
    subprocess.run(["git", "clone", "--quiet", f"{url}/origin.git", str(checkout)], check=True, capture_output=True)
    header = "AUTHORIZATION: basic " + base64.b64encode(f"x-access-token:{CHECKOUT_TOKEN}".encode()).decode()
    git(checkout, "config", f"http.{url}/.extraheader", header)
    return checkout


def test_loop_pushes_carry_the_installation_token_and_state_pushes_the_job_token(tmp_path):
    (tmp_path / "served").mkdir()
    with serve(tmp_path / "served") as server:
        checkout = _checkout(tmp_path, server.url)
        workspace = GitWorkspace.open(checkout, tmp_path / "wt", "loop/3-ttl", "HEAD")
        tokens = iter([APP_TOKEN, APP_TOKEN.replace("A", "B")])  # asked for at each push: fresh when it runs
        workspace.push_env = lambda: push_env(server.url, next(tokens))
        (workspace.path / "ttl.py").write_text("TTL = 1\n")
        git(workspace.path, "add", "ttl.py")
        git(workspace.path, "commit", "-qm", "ttl")
        assert workspace.push("origin").pushed
        (workspace.path / "ttl.py").write_text("TTL = 2\n")
        git(workspace.path, "commit", "-qam", "ttl 2")
        assert workspace.push("origin").pushed
        GitStateStore(checkout, "origin", "loop/state-3").memory.record_run("run-1", {"report.md": "# r\n"})

    by_ref = [(push.refs, push.password) for push in server.pushes]
    assert by_ref == [(["refs/heads/loop/3-ttl"], APP_TOKEN), (["refs/heads/loop/3-ttl"], APP_TOKEN.replace("A", "B")),
                      (["refs/heads/loop/memory"], CHECKOUT_TOKEN)]
    # Written nowhere: not the repository's config, not the worktree's, not any file of either.
    for place in (checkout, tmp_path / "wt"):
        found = subprocess.run(["grep", "-rl", "AAAA", str(place)], capture_output=True, text=True).stdout
        assert found == "", found
    assert "AAAA" not in git(checkout, "config", "--list", "--show-origin").stdout


def test_without_the_app_the_checkouts_token_pushes_everything(tmp_path):
    (tmp_path / "served").mkdir()
    with serve(tmp_path / "served") as server:
        checkout = _checkout(tmp_path, server.url)
        workspace = GitWorkspace.open(checkout, tmp_path / "wt", "loop/3-ttl", "HEAD")
        assert workspace.push("origin").pushed
    assert [push.password for push in server.pushes] == [CHECKOUT_TOKEN]
