"""A repository's lessons as one document: merged run by run, ranked for prompts. Pure; the git
memory keeps it on a ref, so every runner of the repository reads and extends the same book."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

from loopbot.core.andon import Lesson

MAX_ENTRIES = 200  # the weakest, least repeated lessons fall out first


class Entry(BaseModel):
    text: str
    level: str
    source: str
    count: int = 1
    last_seen: float = 0.0
    runs: list[str] = Field(default_factory=list)  # the runs that taught it (each counts once)


class LessonBook(BaseModel):
    entries: list[Entry] = Field(default_factory=list)

    def add(self, lessons: Sequence[Lesson], run_id: str, now: float) -> LessonBook:
        """The book with these lessons counted, once per run: a replayed finish step counts nothing."""
        entries = {e.text: e.model_copy(deep=True) for e in self.entries}
        for lesson in lessons:
            entry = entries.get(lesson.text)
            if entry is None:
                entries[lesson.text] = Entry(text=lesson.text, level=lesson.level.value, source=lesson.source,
                                             last_seen=now, runs=[run_id] if run_id else [])
                continue
            if run_id and run_id in entry.runs:
                continue
            entry.count += 1
            entry.last_seen = now
            if run_id:
                entry.runs = [*entry.runs, run_id][-20:]
        kept = sorted(entries.values(), key=_rank)[:MAX_ENTRIES]
        return LessonBook(entries=kept)

    def for_prompt(self, limit: int = 12) -> list[str]:
        """Strongest prevention level first, then the most repeated, then the most recent."""
        return [f"[{e.level}] {e.text}" + (f" (seen {e.count}x)" if e.count > 1 else "")
                for e in sorted(self.entries, key=_rank)[:limit]]


def _rank(entry: Entry) -> tuple[str, int, float]:
    return entry.level, -entry.count, -entry.last_seen
