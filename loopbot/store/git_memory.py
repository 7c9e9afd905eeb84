"""A repository's memory on GitHub, kept on the `loop/memory` branch of the repository itself:
the lesson book every loop's prompts read, and the record (report, incident) of each finished run,
which the documentation loop files in the wiki's 90_LOG/. A fresh Actions runner starts with what
every earlier runner learned.

Writers race (two plan issues finishing at once), so a write is fetch, merge, commit and a push
that is never forced: a rejected push fetches the other's commit and merges again.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from loopbot.core.andon import Lesson
from loopbot.core.lessonbook import LessonBook
from loopbot.core.redact import NO_SECRETS
from loopbot.errors import StateError
from loopbot.workspace.git import git

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

        def change(files: dict[str, str]) -> None:
            book = _parse_book(files.get(LESSONS_FILE))
            files[LESSONS_FILE] = json.dumps(book.add(redacted, run_id, now).model_dump(), indent=1) + "\n"

        self._write(change, f"loopbot memory: lessons from {run_id or 'a run'}")

    def record_run(self, run_id: str, records: Mapping[str, str]) -> None:
        """Keep a finished run's report and incident record for the wiki's 90_LOG/."""
        if not _RUN_ID.match(run_id):
            raise StateError(f"not a run id: {run_id!r}")

        def change(files: dict[str, str]) -> None:
            for name, text in records.items():
                if name in _RECORD_NAMES and text:
                    files[f"runs/{run_id}/{name}"] = self.redact(text)

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

    def _files(self, tip: str | None) -> dict[str, str]:
        if tip is None:
            return {}
        listing = git(self.repo, "ls-tree", "-r", "--name-only", "-z", tip).stdout
        return {path: git(self.repo, "show", f"{tip}:{path}").stdout for path in filter(None, listing.split("\0"))}

    def _write(self, change: Callable[[dict[str, str]], None], message: str) -> None:
        for _ in range(PUSH_ATTEMPTS):
            self.fetch()
            parent = self._tip()
            files = self._files(parent)
            change(files)
            commit = self._commit(files, message, parent)
            if self.remote is None:
                git(self.repo, "update-ref", self.ref, commit)
                return
            # Never forced: a push that lost the race fetches the winner's commit and merges again.
            pushed = git(self.repo, "push", "--quiet", self.remote, f"{commit}:{self.ref}", check=False)
            if pushed.returncode == 0:
                git(self.repo, "update-ref", self.ref, commit)
                return
        raise StateError(f"could not update {self.ref} on {self.remote}: {PUSH_ATTEMPTS} pushes were rejected")

    def _commit(self, files: Mapping[str, str], message: str, parent: str | None) -> str:
        entries = []
        for path in sorted(files):
            blob = git(self.repo, "hash-object", "-w", "--stdin", input_text=files[path]).stdout.strip()
            entries.append((path, blob))
        tree = _tree(self.repo, entries)
        args = ["commit-tree", tree, "-m", message] + (["-p", parent] if parent else [])
        return git(self.repo, *args).stdout.strip()


def _parse_book(text: str | None) -> LessonBook:
    if not text:
        return LessonBook()
    try:
        return LessonBook.model_validate_json(text)
    except ValueError:
        return LessonBook()  # a damaged book is started again rather than stopping every loop


def _tree(repo: Path, entries: Sequence[tuple[str, str]]) -> str:
    """A nested tree from (path, blob) pairs, built bottom-up with mktree."""
    children: dict[str, list[tuple[str, str]]] = {}
    lines = []
    for path, blob in entries:
        head, _, rest = path.partition("/")
        if rest:
            children.setdefault(head, []).append((rest, blob))
        else:
            lines.append(f"100644 blob {blob}\t{head}")
    for name, nested in children.items():
        lines.append(f"040000 tree {_tree(repo, nested)}\t{name}")
    return git(repo, "mktree", input_text="".join(f"{line}\n" for line in sorted(lines, key=lambda x: x.split("\t")[1]))).stdout.strip()
