"""Git worktree workspace. The user's own checkout and main are never written.

Every git call disables hooks and signing: a snapshot must not run code from the repo outside the
sandbox, nor wait on a passphrase.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

from loopbot.core.changes import ABSENT, GITLINK, SYMLINK, FileChange, parse_raw
from loopbot.core.filekind import kind_of
from loopbot.core.state import PushResult
from loopbot.errors import WorkspaceError

AUTHOR = ("loopbot", "loopbot@users.noreply.github.com")
_SAFE = ["-c", "core.hooksPath=/dev/null", "-c", "commit.gpgsign=false", "-c", "core.quotepath=off",
         "-c", "submodule.recurse=false", "-c", "diff.submodule=short", "-c", "status.submoduleSummary=false"]
# What the checker and the drift guard read: text forced, no external diff or textconv driver, so
# no .gitattributes line (`*.py binary`, `-diff`, `diff=x`) can hide a change.
_DIFF = ["diff", "--text", "--no-ext-diff", "--no-textconv", "--no-color", "--no-renames", "--submodule=short"]
# git's own rule for "binary": a NUL in the first 8000 bytes.
_BINARY_PROBE_BYTES = 8000


def _git_env() -> dict[str, str]:
    return {
        **os.environ,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": AUTHOR[0],
        "GIT_AUTHOR_EMAIL": AUTHOR[1],
        "GIT_COMMITTER_NAME": AUTHOR[0],
        "GIT_COMMITTER_EMAIL": AUTHOR[1],
    }


def git(cwd: Path, *args: str, check: bool = True, input_text: str | None = None,
        timeout: float | None = None, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`env` adds to git's environment for this one command (a push credential, see credentials)."""
    env = {**_git_env(), **(env or {})}
    try:
        result = subprocess.run(
            ["git", *_SAFE, *args],
            cwd=cwd,
            env=env,
            input=input_text,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            # Its own session: Ctrl-C in a terminal reaches loopbot, which stops cleanly, and not
            # git halfway through writing a ref.
            start_new_session=True,
        )
    except OSError as exc:  # a missing directory, or no git on PATH
        raise WorkspaceError(f"git {' '.join(args)} could not run in {cwd}: {exc}") from None
    except subprocess.TimeoutExpired:
        raise WorkspaceError(f"git {' '.join(args)} did not finish within {timeout:g}s in {cwd}") from None
    if check and result.returncode != 0:
        raise WorkspaceError(f"git {' '.join(args)} failed in {cwd}: {result.stderr.strip() or result.stdout.strip()}")
    return result


def repo_root(path: Path) -> Path:
    result = git(path, "rev-parse", "--show-toplevel", check=False)
    if result.returncode != 0:
        raise WorkspaceError(f"{path} is not inside a git repository")
    return Path(result.stdout.strip())


def common_dir(repo: Path) -> Path:
    out = git(repo, "rev-parse", "--git-common-dir").stdout.strip()
    return (repo / out).resolve()


def resolve_rev(repo: Path, rev: str) -> str:
    result = git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
    if result.returncode != 0:
        raise WorkspaceError(f"cannot resolve {rev!r} in {repo} (does the repository have a commit?)")
    return result.stdout.strip()


def write_blobs(repo: Path, texts: Sequence[str]) -> list[str]:
    """Store each text as a blob: the ids, in order. One git process for them all (a checkpoint
    writes three; a process each was a fifth of a loop's git starts). The texts go through scratch
    files that `hash-object --stdin-paths --no-filters` reads as they are: no attribute or
    line-ending setting of the repository applies, as with `--stdin`."""
    if not texts:
        return []
    try:
        with tempfile.TemporaryDirectory(prefix="loopbot-blobs-") as scratch:
            paths = []
            for index, text in enumerate(texts):
                path = Path(scratch) / str(index)
                path.write_bytes(text.encode("utf-8", errors="replace"))
                paths.append(str(path))
            written = git(repo, "hash-object", "-w", "--no-filters", "--stdin-paths",
                          input_text="".join(f"{path}\n" for path in paths)).stdout.split()
    except OSError:
        # No temp dir to write to (missing, read-only, full): the checkpoint is still made, a
        # process a blob, rather than depend on it.
        written = [git(repo, "hash-object", "-w", "--stdin", input_text=text).stdout.strip() for text in texts]
    if len(written) != len(texts):
        raise WorkspaceError(f"git hash-object wrote {len(written)} blobs of {len(texts)} in {repo}")
    return written


def commits_of(repo: Path, revs: Sequence[str]) -> list[str | None]:
    """The commit each revision names, or None where it names none (no such ref or object, or not
    a commit): one `cat-file --batch-check` for them all."""
    if not revs:
        return []
    if any(not rev or rev != rev.strip() or "\n" in rev for rev in revs):
        raise WorkspaceError(f"not a revision: {revs!r}")
    answers = git(repo, "cat-file", "--batch-check=%(objectname) %(objecttype)",
                  input_text="".join(f"{rev}^{{commit}}\n" for rev in revs)).stdout.splitlines()
    if len(answers) != len(revs):
        raise WorkspaceError(f"git cat-file answered {len(answers)} of {len(revs)} revisions in {repo}")
    found: list[str | None] = []
    for answer in answers:
        parts = answer.split()
        found.append(parts[0] if len(parts) == 2 and parts[1] == "commit" else None)
    return found


# Second trees beside a run's worktree, named <worktree>.<variant>: gc and remove know them.
BASE_TESTS = "base-tests"
VARIANTS = (BASE_TESTS,)


def variant_path(worktree: Path, name: str) -> Path:
    return worktree.with_name(f"{worktree.name}.{name}")


def variant_owner(path: Path) -> Path | None:
    """The worktree a variant tree belongs to, or None when `path` is not a variant."""
    for name in VARIANTS:
        if path.name.endswith(f".{name}"):
            return path.with_name(path.name[: -len(name) - 1])
    return None


class GitWorkspace:
    def __init__(self, repo: Path, path: Path, branch: str):
        if not branch.startswith("loop/"):
            raise WorkspaceError(f"refusing to work on {branch!r}: loop branches are loop/*")
        self.repo = repo
        self.path = path
        self.branch = branch
        # The setup step's outputs (a virtualenv, node_modules): ignored paths in this worktree
        # that cleaning keeps and variant trees link to.
        self.pinned: list[str] = []
        # Environment for pushes only, asked for at each push: a per-command credential that is
        # fresh when the push happens (installation tokens expire within the hour; see credentials).
        self.push_env: Callable[[], Mapping[str, str]] = dict

    @classmethod
    def open(cls, repo: Path, path: Path, branch: str, base: str) -> GitWorkspace:
        """Create the worktree, or bring back one that was lost or damaged (a fresh machine, a kill).

        Called only by the run's lease holder, so git lock files found in loopbot's own worktree
        were left by a dead process and are removed.
        """
        ws = cls(repo, path, branch)
        if path.exists():
            ws.remove_stale_locks()
            if ws.healthy():
                return ws
            # Damaged beyond a reset (no .git, a lost registration, an unreadable HEAD): remake it.
            shutil.rmtree(path, ignore_errors=True)
        git(repo, "worktree", "prune")
        ws.remove_stale_locks()
        path.parent.mkdir(parents=True, exist_ok=True)
        exists = git(repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False).returncode == 0
        if exists:
            git(repo, "worktree", "add", "--quiet", str(path), branch)
        else:
            git(repo, "worktree", "add", "--quiet", "-b", branch, str(path), base)
        return ws

    def _admin_dir(self) -> Path | None:
        """The worktree's private git directory (<common>/worktrees/<name>), read from its .git file."""
        try:
            text = (self.path / ".git").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
        found = re.match(r"gitdir:\s*(.+)", text.strip())
        return Path(found.group(1)) if found else None

    def remove_stale_locks(self) -> list[Path]:
        """Lock files a killed git left behind in this worktree and on its loop branch."""
        common = common_dir(self.repo)
        candidates = [common / "refs" / "heads" / f"{self.branch}.lock"]
        admin = self._admin_dir()
        if admin is not None and admin.is_dir():
            candidates += [admin / name for name in ("index.lock", "HEAD.lock", "ORIG_HEAD.lock")]
        removed = []
        for lock in candidates:
            if lock.is_file():
                lock.unlink(missing_ok=True)
                removed.append(lock)
        return removed

    def healthy(self) -> bool:
        admin = self._admin_dir()
        if admin is None or not admin.is_dir():
            return False
        if git(self.path, "rev-parse", "--verify", "--quiet", "HEAD", check=False).returncode != 0:
            return False
        return git(self.path, "rev-parse", "--abbrev-ref", "HEAD", check=False).stdout.strip() == self.branch

    def ensure_at(self, sha: str) -> None:
        """Raise unless the worktree is there with HEAD at `sha`: verdicts from a vanished or moved
        worktree say nothing about the snapshot, so the step must fail rather than record them."""
        if not (self.path / ".git").exists():
            raise WorkspaceError(f"the worktree {self.path} is gone")
        head = self.head()
        if head != sha:
            raise WorkspaceError(f"the worktree {self.path} is at {head[:12]}, not the snapshot {sha[:12]}")

    def head(self) -> str:
        return git(self.path, "rev-parse", "HEAD").stdout.strip()

    def snapshot(self, message: str) -> str:
        """Commit everything in the worktree; the same commit back when nothing changed.

        Plumbing after `add -A`: porcelain `commit` would scan the whole tree a second time.
        """
        git(self.path, "add", "-A", "--", ".", *[f":(exclude,top){rel}" for rel in self._unignored_pinned()])
        tree = git(self.path, "write-tree").stdout.strip()
        head, head_tree = git(self.path, "rev-parse", "HEAD", "HEAD^{tree}").stdout.split()
        if tree != head_tree:
            sha = git(self.path, "commit-tree", tree, "-p", head, "-m", message).stdout.strip()
            git(self.path, "update-ref", "-m", "loopbot snapshot", "HEAD", sha, head)
            head = sha
        # What the evaluators see is exactly what is pushed: ignored files (caches, a forged .pyc,
        # an ignored conftest.py) go; only the setup outputs stay.
        self.clean_ignored()
        return head

    def _unignored_pinned(self) -> list[str]:
        """Setup outputs git would commit (a maker that un-ignored them): excluded from `add` by
        name, so thousands of files never enter the index. (Naming a path git ignores anyway is an
        error, so only these are named.)"""
        present = [rel for rel in self.pinned if (self.path / rel).exists() or (self.path / rel).is_symlink()]
        if not present:
            return []
        ignored = git(self.path, "check-ignore", "--no-index", "-z", "--stdin", check=False,
                      input_text="\0".join(present) + "\0").stdout
        return [rel for rel in present if rel not in set(ignored.split("\0"))]

    def clean_ignored(self) -> None:
        keep = [arg for rel in self.pinned for arg in ("-e", f"/{rel}")]
        git(self.path, "clean", "--quiet", "-ffdx", *keep)

    def link_pinned(self, tree: Path) -> None:
        """Symlink this worktree's setup outputs into a variant tree (after its clean)."""
        for rel in self.pinned:
            dest = tree / rel
            if dest.exists() or dest.is_symlink():
                continue  # the snapshot tracks something there: its own file wins
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.symlink_to(self.path / rel, target_is_directory=(self.path / rel).is_dir())

    def remove_special_files(self) -> list[str]:
        """Remove what git cannot carry but a command could trip over: FIFOs, sockets, device
        files and nested repositories (pushed as an empty gitlink). Returns what was removed."""
        removed: list[str] = []
        pinned = set(self.pinned)
        stack = [(self.path, "")]
        while stack:
            directory, prefix = stack.pop()
            try:
                entries = list(os.scandir(directory))
            except OSError:
                continue
            for entry in entries:
                rel = f"{prefix}{entry.name}"
                if (not prefix and entry.name == ".git") or rel in pinned:
                    continue
                if prefix and entry.name == ".git":
                    # A nested repository (or a submodule's .git file): gone with its directory.
                    shutil.rmtree(directory, ignore_errors=True)
                    removed.append(f"{prefix.rstrip('/')} (nested repository)")
                    break
                if entry.is_symlink() or entry.is_file(follow_symlinks=False):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append((Path(entry.path), f"{rel}/"))
                    continue
                kind = _kind(entry.path)
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                removed.append(f"{rel} ({kind})")
        return sorted(self._not_ignored(removed))

    def _not_ignored(self, found: list[str]) -> list[str]:
        """What was removed from paths git ignores (a FIFO in __pycache__) was never going to be
        evaluated or pushed: only the rest is reported."""
        if not found:
            return []
        names = [entry.rsplit(" (", 1)[0] for entry in found]
        ignored = set(git(self.path, "check-ignore", "--no-index", "-z", "--stdin", check=False,
                          input_text="\0".join(names) + "\0").stdout.split("\0"))
        return [entry for entry, name in zip(found, names, strict=True) if name not in ignored]

    def reset(self, sha: str) -> None:
        """Exactly the tree of `sha`: edits undone, files the loop or its commands created removed."""
        result = git(self.path, "reset", "--quiet", "--hard", sha, check=False)
        if result.returncode != 0 and "index" in result.stderr:
            # A kill mid-write can leave a torn index; it is only a cache of the tree, so rebuild it.
            admin = self._admin_dir()
            if admin is not None:
                (admin / "index").unlink(missing_ok=True)
            result = git(self.path, "reset", "--quiet", "--hard", sha, check=False)
        if result.returncode != 0:
            raise WorkspaceError(f"git reset --hard {sha[:12]} failed in {self.path}: {result.stderr.strip()}")
        self.clean_ignored()

    def changed_files(self, base: str, head: str) -> list[str]:
        out = git(self.path, "diff", "--no-renames", "--name-only", "-z", base, head).stdout
        return sorted(p for p in out.split("\0") if p)

    def deleted_files(self, base: str, head: str) -> list[str]:
        out = git(self.path, "diff", "--no-renames", "--diff-filter=D", "--name-only", "-z", base, head).stdout
        return sorted(p for p in out.split("\0") if p)

    def diff(self, base: str, head: str, paths: list[str] | None = None) -> str:
        # Literal pathspecs: a file named `:(bad)` is a name, not pathspec magic.
        return git(self.path, "--literal-pathspecs", *_DIFF, base, head, *(["--", *paths] if paths else [])).stdout

    def changes(self, base: str, head: str) -> list[FileChange]:
        """Every changed path with its status, modes, sizes and whether it is binary."""
        raw = git(self.path, "diff-tree", "-r", "-z", "--raw", "--no-renames", "--no-commit-id", base, head).stdout
        records = parse_raw(raw)
        blobs = sorted({sha for old_mode, new_mode, old_sha, new_sha, _s, _p in records
                        for mode, sha in ((old_mode, old_sha), (new_mode, new_sha))
                        if mode not in (ABSENT, GITLINK) and set(sha) != {"0"}})
        sizes: dict[str, int] = {}
        if blobs:
            out = git(self.path, "cat-file", "--batch-check=%(objectname) %(objectsize)",
                      input_text="\n".join(blobs) + "\n").stdout
            for line in out.splitlines():
                sha, _, size = line.partition(" ")
                if size.isdigit():
                    sizes[sha] = int(size)
        found = []
        for old_mode, new_mode, old_sha, new_sha, status, path in records:
            binary = False
            if new_mode not in (ABSENT, GITLINK, SYMLINK):
                binary = self._looks_binary(path)
            found.append(FileChange(path=path, status=status, old_mode=old_mode, new_mode=new_mode,
                                    old_size=sizes.get(old_sha, 0), new_size=sizes.get(new_sha, 0), binary=binary))
        return found

    def _looks_binary(self, path: str) -> bool:
        """Read from the worktree, which holds the snapshot's exact files once it is cleaned."""
        try:
            with open(self.path / path, "rb") as handle:
                return b"\0" in handle.read(_BINARY_PROBE_BYTES)
        except OSError:
            return False

    def file_diffs(self, base: str, head: str, paths: list[str]) -> dict[str, str]:
        """Each changed path's own unified diff; `paths` in git's order (as `changes` lists them).

        One git call, split at `diff --git` lines: every content line carries a prefix (' ', '+',
        '-', '\\'), so only headers start that way. When the sections do not pair up one to one
        with the paths (a type change shows as two), one call per path instead.
        """
        if not paths:
            return {}
        sections = [part for part in re.split(r"(?m)^(?=diff --git )", self.diff(base, head)) if part]
        if len(sections) == len(paths):
            return dict(zip(paths, sections, strict=True))
        # Pair by header where it names one path unambiguously (`a/P b/P`); only the rest (type
        # changes, quoted names) get a call of their own.
        found: dict[str, str] = {}
        for section in sections:
            rest = section.split("\n", 1)[0][len("diff --git "):]
            if len(rest) % 2 == 1 and rest.startswith("a/"):
                name = rest[2:2 + (len(rest) - 5) // 2]
                if rest == f"a/{name} b/{name}" and name not in found:
                    found[name] = section
                elif rest == f"a/{name} b/{name}":
                    found[name] = ""  # two sections: a type change, asked for on its own below
        return {path: found[path] if found.get(path) else self.diff(base, head, [path]) for path in paths}

    def show(self, rev: str, path: str) -> str | None:
        """A file's text at a revision, or None when it is not there (or not a file)."""
        result = git(self.path, "cat-file", "blob", f"{rev}:{path}", check=False)
        return result.stdout if result.returncode == 0 else None

    def changed_blobs(self, base: str, head: str, max_bytes: int) -> Iterator[tuple[str, bytes | None]]:
        """(path, bytes) of every file base..head adds or changes; None for a file over max_bytes.

        Read as bytes (-z), so no file name — with a carriage return or invalid UTF-8 in it — is
        altered, and by blob id from one `cat-file --batch` process, one blob in memory at a time.
        """
        out = self._git_bytes("diff-tree", "-r", "-z", "--no-renames", "--raw", "-l0", base, head)
        fields = out.split(b"\0")
        blobs: list[tuple[str, str]] = []
        for header, raw_path in zip(fields[0::2], fields[1::2], strict=False):
            parts = header.lstrip(b":").split()
            if len(parts) >= 5 and parts[4][:1] != b"D" and parts[1] not in (b"160000", b"000000"):
                blobs.append((os.fsdecode(raw_path), parts[3].decode()))
        if not blobs:
            return
        batch = subprocess.Popen(["git", *_SAFE, "cat-file", "--batch"], cwd=self.path, env=_git_env(),
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 start_new_session=True)
        assert batch.stdin is not None and batch.stdout is not None
        try:
            for path, sha in blobs:
                # One request, one answer: nothing queues in either pipe.
                batch.stdin.write(f"{sha}\n".encode())
                batch.stdin.flush()
                answer = batch.stdout.readline().split()  # "<sha> blob <size>", or "<sha> missing"
                if len(answer) != 3:
                    yield path, None
                    continue
                size = int(answer[2])
                if size > max_bytes:
                    _skip(batch.stdout, size + 1)
                    yield path, None
                    continue
                data = batch.stdout.read(size)
                batch.stdout.read(1)  # the newline after each object
                yield path, data
        finally:
            batch.stdin.close()
            batch.kill()
            batch.wait()
            batch.stdout.close()

    def _git_bytes(self, *args: str) -> bytes:
        try:
            return subprocess.run(["git", *_SAFE, *args], cwd=self.path, env=_git_env(), capture_output=True,
                                  check=True, start_new_session=True).stdout
        except (OSError, subprocess.CalledProcessError) as exc:
            raise WorkspaceError(f"git {' '.join(args)} failed in {self.path}: {exc}") from None

    def messages(self, base: str, head: str) -> str:
        """The commit messages between two revisions (what a push carries besides files)."""
        return git(self.path, "log", "--format=%B", f"{base}..{head}").stdout

    def files_at(self, rev: str) -> list[str]:
        out = git(self.path, "ls-tree", "-r", "--name-only", "-z", rev).stdout
        return [p for p in out.split("\0") if p]

    # -- a second tree, for evaluating a variant of the snapshot ---------------------------
    def variant_path(self, name: str) -> Path:
        return variant_path(self.path, name)

    def prepare_variant(self, name: str, sha: str, *, restore: list[str], drop: list[str], base: str) -> Path:
        """A detached worktree holding `sha`'s tree with `restore` brought back to `base` and
        `drop` removed: nothing else in it, ignored files included."""
        path = self.variant_path(name)
        usable = (path / ".git").is_file() and git(path, "rev-parse", "--git-dir", check=False).returncode == 0
        if usable and git(path, "checkout", "--quiet", "--force", "--detach", sha, check=False).returncode == 0:
            pass
        else:
            # Missing, or left broken by a kill (a stale index.lock): it holds nothing, so remake it.
            shutil.rmtree(path, ignore_errors=True)
            git(self.repo, "worktree", "prune")
            git(self.repo, "worktree", "add", "--quiet", "--detach", str(path), sha)
        git(path, "clean", "--quiet", "-ffdx")
        if restore:
            git(path, "--literal-pathspecs", "checkout", "--quiet", base, "--", *restore)
        for rel in drop:
            target = path / rel
            if target.is_symlink() or target.is_file():
                target.unlink()
        self.link_pinned(path)
        return path

    def ignored_entries(self, tree: Path) -> tuple[list[str], list[str]]:
        """Top-level ignored paths in `tree`, and untracked paths git does not ignore."""
        ignored = git(tree, "ls-files", "-z", "--others", "--ignored", "--exclude-standard", "--directory").stdout
        loose = git(tree, "ls-files", "-z", "--others", "--exclude-standard", "--directory").stdout
        return ([p.rstrip("/") for p in ignored.split("\0") if p], [p.rstrip("/") for p in loose.split("\0") if p])

    def diff_stat(self, base: str, head: str) -> str:
        return git(self.path, "diff", "--stat", "--no-color", base, head).stdout

    def tracked_files(self) -> list[str]:
        out = git(self.path, "ls-files", "-z").stdout
        return [p for p in out.split("\0") if p]

    def tree(self, rev: str = "HEAD") -> str:
        return git(self.path, "rev-parse", f"{rev}^{{tree}}").stdout.strip()

    def push(self, remote: str | None, sha: str | None = None, timeout: float | None = None,
             lease: str | None = None) -> PushResult:
        """Push the loop branch (forced: rollbacks rewrite it). Only refs/heads/loop/* is ever pushed.

        With `lease` (the head loopbot last saw there, "" for none), the push is refused when the
        branch on the remote is anything else: a commit someone else pushed is never overwritten.

        Run from the repository, not the worktree: a remote given as a relative path means the
        same place it means to the user.
        """
        sha = sha or self.head()
        if remote is None:
            return PushResult(remote=None, branch=self.branch, sha=sha, pushed=False, message="no remote configured")
        known = git(self.repo, "remote").stdout.split()
        if remote not in known:
            return PushResult(remote=remote, branch=self.branch, sha=sha, pushed=False,
                              message=f"remote {remote!r} does not exist; the branch is local only")
        ref = f"refs/heads/{self.branch}"
        try:
            force = "--force" if lease is None else f"--force-with-lease={ref}:{lease}"
            result = git(self.repo, "push", "--quiet", force, remote, f"{sha}:{ref}", check=False,
                         timeout=timeout, env=self.push_env())
        except WorkspaceError as exc:
            return PushResult(remote=remote, branch=self.branch, sha=sha, pushed=False, message=f"push failed: {exc}")
        if result.returncode != 0:
            said = result.stderr.strip() or f"git push exited {result.returncode}"
            moved = lease is not None and "stale info" in said
            return PushResult(remote=remote, branch=self.branch, sha=sha, pushed=False, remote_moved=moved,
                              message=f"push failed: {said}")
        return PushResult(remote=remote, branch=self.branch, sha=sha, pushed=True, message=f"pushed to {remote}")

    def remote_head(self, remote: str, timeout: float | None = None) -> str:
        """The loop branch's head on the remote now ("" when it has none)."""
        listed = git(self.repo, "ls-remote", remote, f"refs/heads/{self.branch}", timeout=timeout,
                     env=self.push_env()).stdout.split()
        return listed[0] if listed else ""

    def remove(self) -> None:
        """Remove the worktree and its variants (not the branch: it holds the work)."""
        shutil.rmtree(self.path, ignore_errors=True)
        for name in VARIANTS:
            shutil.rmtree(self.variant_path(name), ignore_errors=True)
        git(self.repo, "worktree", "prune", check=False)


def fingerprint(tree: Path, paths: list[str]) -> str:
    """Every file under `paths` by name, size, mode and mtime: cheap enough to take before each
    evaluation, and any write, delete or replacement changes it."""
    digest = hashlib.sha256()
    for rel in sorted(paths):
        top = tree / rel
        entries = [top] if not top.is_dir() or top.is_symlink() else []
        if not entries:
            for directory, dirs, files in os.walk(top):
                dirs.sort()
                entries += [Path(directory) / name for name in sorted([*files, *dirs])]
        for entry in entries:
            try:
                info = os.lstat(entry)
            except OSError:
                digest.update(f"{entry}:missing\n".encode())
                continue
            digest.update(f"{entry.relative_to(tree)}:{info.st_size}:{info.st_mode}:{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def git_configs(common: Path) -> list[Path]:
    """Every config git keeps under a common directory: the repository's, each worktree's, and
    each submodule's (actions/checkout persists its token in all of them)."""
    found = [common / "config", common / "config.worktree"]
    worktrees = common / "worktrees"
    if worktrees.is_dir():
        found += [d / "config.worktree" for d in worktrees.iterdir() if d.is_dir()]
    modules = common / "modules"
    if modules.is_dir():
        for directory, dirs, files in os.walk(modules):
            dirs[:] = [d for d in dirs if d not in ("objects", "refs", "logs")]
            found += [Path(directory) / name for name in files if name in ("config", "config.worktree")]
    return [path for path in found if path.is_file()]


def _skip(stream: IO[bytes], count: int) -> None:
    while count > 0:
        chunk = stream.read(min(count, 1 << 20))
        if not chunk:
            return
        count -= len(chunk)


def _kind(path: str) -> str:
    try:
        return kind_of(os.lstat(path).st_mode)
    except OSError:
        return "special file"


def _local_path(url: str) -> Path | None:
    """The path a remote URL names on this machine, or None for a network URL.

    git's rules: `scheme://…` is a URL (file:// a path); a colon before the first slash is the
    scp-like `host:path` (with or without `user@`); anything else is a path.
    """
    if url.startswith("file://"):
        return Path(url.removeprefix("file://"))
    if "://" in url or ":" in url.split("/", 1)[0]:
        return None
    return Path(url)


def check_remote(repo: Path, remote: str) -> str | None:
    """Why pushing to `remote` cannot work, found before the loop starts; None when it can."""
    if remote not in git(repo, "remote").stdout.split():
        return f"remote {remote!r} does not exist in {repo} (git remote add {remote} URL, or --remote NAME)"
    url = git(repo, "remote", "get-url", "--push", remote, check=False).stdout.strip()
    target = _local_path(url) if url else None
    if target is not None:
        target = target if target.is_absolute() else repo / target
        if not target.exists():
            return f"remote {remote!r} points at {url} ({target}), which does not exist"
    return None
