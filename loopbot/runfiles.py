"""Per-run files: an append-only JSONL event log and the markdown report, kept current."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from loopbot.core.events import Checkpointed, Finished, IncidentRecorded, LoopEvent
from loopbot.core.redact import NO_SECRETS
from loopbot.core.state import LoopState
from loopbot.report import render_report


class RunFiles:
    def __init__(self, directory: Path, *, sandbox_note: str = "", redact: Callable[[str], str] = NO_SECRETS,
                 web_url: str | None = None):
        self.directory = directory
        self.web_url = web_url  # the repository's page on GitHub, for links to the pushed branch
        self.redact = redact
        self.incident_path = directory / "incident.md"
        directory.mkdir(parents=True, exist_ok=True)
        self.events_path = directory / "events.jsonl"
        self.report_path = directory / "report.md"
        self.sandbox_note = sandbox_note

    def event(self, event: LoopEvent, state: LoopState) -> None:
        # after_step keys an event to the checkpoint it follows: a step replayed after a kill
        # emits events with the same key, so readers can tell a retry from new work.
        record = {"t": round(time.time(), 3), "event": event.kind, "run_id": state.run_id,
                  "iteration": state.iteration, "phase": state.phase.value, "after_step": state.steps_completed,
                  **event.fields()}
        with self.events_path.open("a", encoding="utf-8") as handle:
            handle.write(self.redact(json.dumps(record, default=str)) + "\n")
        if isinstance(event, IncidentRecorded):
            self.incident_path.write_text(self.redact(event.markdown), encoding="utf-8")
        if isinstance(event, (Checkpointed, Finished)):
            self.write_report(state)

    def write_report(self, state: LoopState) -> None:
        tmp = self.report_path.with_suffix(".tmp")
        tmp.write_text(self.redact(render_report(state, sandbox_note=self.sandbox_note, web_url=self.web_url)), encoding="utf-8")
        tmp.replace(self.report_path)
