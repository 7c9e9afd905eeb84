"""A repository's memory on GitHub, kept on the `loop/memory` branch of the repository itself:
the lesson book every loop's prompts read, and the record (report, incident) of each finished run,
which the documentation loop files in the wiki's 90_LOG/. A fresh Actions runner starts with what
every earlier runner learned.

Writers race (two plan issues finishing at once), so a write is fetch, merge, commit and a push
that is never forced: a rejected push fetches the other's commit and merges again. A write is
incremental: the new tree is the previous commit's with only the changed paths replaced (on a
temporary index), so its cost does not grow with the number of records kept.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from loopbot.core.andon import Lesson
from loopbot.core.lessonbook import LessonBook
from loopbot.core.redact import NO_SECRETS
from loopbot.errors import StateError
from loopbot.workspace.git import git, write_blobs

BRANCH = "loop/memory"
LESSONS_FILE = "lessons.json"
PUSH_ATTEMPTS = 5
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}$")
_RECORD_NAMES = ("report.md", "incident.md")


class GitMemory:
    def __init__(self, repo: Path, remote: str | None, *, branch: str = BRANCH,
                 redact: Callable[[str], str] = NO_SECRETS, clock: Callable[[], float] = time.time):
        self.repo, self.remote, self.redact, self.clock = repo, remote, redact, clock
        self.ref = f"refs/heads/{branch}"
        self._fetched = False

    # -- reading ---------------------------------------------------------------------------------
    def fetch(self) -> bool:
        self._fetched = True
        if self.remote is not None:
            git(self.repo, "fetch", "--quiet", self.remote, f"+{self.ref}:{self.ref}", check=False)
        return self._tip() is not None

    def lessons(self, limit: int = 12) -> list[str]:
        if not self._fetched:
            self.fetch()
        return self._book().for_prompt(limit)

    def runs(self) -> dict[str, dict[str, str]]:
        """Each finished run's records: run id → file name → text."""
        if not self._fetched:
            self.fetch()
        tip = self._tip()
        if tip is None:
            return {}
        listing = git(self.repo, "ls-tree", "-r", "--name-only", "-z", tip, "runs/", check=False).stdout
        found: dict[str, dict[str, str]] = {}
        for path in filter(None, listing.split("\0")):
            parts = path.split("/")
            if len(parts) == 3 and _RUN_ID.match(parts[1]) and parts[2] in _RECORD_NAMES:
                found.setdefault(parts[1], {})[parts[2]] = git(self.repo, "show", f"{tip}:{path}").stdout
        return found

    # -- writing ---------------------------------------------------------------------------------
    def add_lessons(self, lessons: Sequence[Lesson], run_id: str = "") -> None:
        if not lessons:
            return
        redacted = [Lesson(self.redact(lesson.text), lesson.level, lesson.source) for lesson in lessons]
        now = self.clock()

        def change(files: _Changes) -> None:
            book = _parse_book(files.read(LESSONS_FILE))
            files.write(LESSONS_FILE, json.dumps(book.add(redacted, run_id, now).model_dump(), indent=1) + "\n")

        self._write(change, f"loopbot memory: lessons from {run_id or 'a run'}")

    def record_run(self, run_id: str, records: Mapping[str, str]) -> None:
        """Keep a finished run's report and incident record for the wiki's 90_LOG/."""
        if not _RUN_ID.match(run_id):
            raise StateError(f"not a run id: {run_id!r}")

        def change(files: _Changes) -> None:
            for name, text in records.items():
                if name in _RECORD_NAMES and text:
                    files.write(f"runs/{run_id}/{name}", self.redact(text))

        self._write(change, f"loopbot memory: the record of {run_id}")

    # -- git -------------------------------------------------------------------------------------
    def _tip(self) -> str | None:
        found = git(self.repo, "rev-parse", "--verify", "--quiet", f"{self.ref}^{{commit}}", check=False)
        return found.stdout.strip() if found.returncode == 0 else None

    def _book(self) -> LessonBook:
        tip = self._tip()
        if tip is None:
            return LessonBook()
        shown = git(self.repo, "show", f"{tip}:{LESSONS_FILE}", check=False)
        return _parse_book(shown.stdout if shown.returncode == 0 else None)

    def _write(self, change: Callable[[_Changes], None], message: str) -> None:
        for _ in range(PUSH_ATTEMPTS):
            self.fetch()
            parent = self._tip()
            files = _Changes(self.repo, parent)
            change(files)
            if not files.written:
                return
            commit = self._commit(files.written, message, parent)
            if self.remote is None:
                git(self.repo, "update-ref", self.ref, commit)
                return
            # Never forced: a push that lost the race fetches the winner's commit and merges again.
            pushed = git(self.repo, "push", "--quiet", self.remote, f"{commit}:{self.ref}", check=False)
            if pushed.returncode == 0:
                git(self.repo, "update-ref", self.ref, commit)
                return
        raise StateError(f"could not update {self.ref} on {self.remote}: {PUSH_ATTEMPTS} pushes were rejected")

    def _commit(self, written: Mapping[str, str], message: str, parent: str | None) -> str:
        tree = _tree_with(self.repo, parent, written)
        args = ["commit-tree", tree, "-m", message] + (["-p", parent] if parent else [])
        return git(self.repo, *args).stdout.strip()


class _Changes:
    """What a write reads (from the parent commit, one path at a time) and the paths it writes."""

    def __init__(self, repo: Path, parent: str | None):
        self.repo, self.parent = repo, parent
        self.written: dict[str, str] = {}

    def read(self, path: str) -> str | None:
        if path in self.written:
            return self.written[path]
        if self.parent is None:
            return None
        shown = git(self.repo, "show", f"{self.parent}:{path}", check=False)
        return shown.stdout if shown.returncode == 0 else None

    def write(self, path: str, text: str) -> None:
        self.written[path] = text


def _parse_book(text: str | None) -> LessonBook:
    if not text:
        return LessonBook()
    try:
        return LessonBook.model_validate_json(text)
    except ValueError:
        return LessonBook()  # a damaged book is started again rather than stopping every loop


def _tree_with(repo: Path, parent: str | None, written: Mapping[str, str]) -> str:
    """The parent commit's tree with `written` paths replaced or added, built on a temporary index
    (read-tree, update-index, write-tree): the unchanged records are neither read nor hashed."""
    paths = sorted(written)
    blobs = write_blobs(repo, [written[path] for path in paths])
    lines = [f"100644 {blob}\t{path}\n" for path, blob in zip(paths, blobs, strict=True)]
    with tempfile.TemporaryDirectory(prefix="loopbot-memory-") as scratch:
        env = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
        git(repo, "read-tree", *([f"{parent}^{{tree}}"] if parent else ["--empty"]), env=env)
        git(repo, "update-index", "--add", "--index-info", input_text="".join(lines), env=env)
        return git(repo, "write-tree", env=env).stdout.strip()
