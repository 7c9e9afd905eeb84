"""Live progress on the terminal: iteration, phase and budget use, one line per decided iteration.

Every line is a Rich Text built from parts, never markup: approaches, check names, checker reasons,
guard paths and push messages are other people's text and are printed as written.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.text import Text

from loopbot.core.events import (
    ApproachRefused,
    BaselineScored,
    Decided,
    Finished,
    LoopEvent,
    PhaseStarted,
    Pushed,
)
from loopbot.core.outputtail import last_line
from loopbot.core.state import LoopState
from loopbot.report import iteration_result, simulated


def _clip(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def line(*parts: str | tuple[str, str]) -> Text:
    """One console line: each str part literal, each (text, style) part styled."""
    return Text.assemble(*parts)


class ProgressDisplay:
    """The live bar (only on a terminal, and not with `bar=False`) and the iteration log (always)."""

    def __init__(self, console: Console, total_iterations: int, *, bar: bool = True):
        self.console = console
        self.progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}", style="bold", markup=False), BarColumn(bar_width=20),
            TextColumn("{task.fields[budget]}", markup=False), TimeElapsedColumn(),
            console=console, transient=False, disable=not bar or not console.is_terminal,
        )
        self.task: TaskID = self.progress.add_task("starting", total=total_iterations, budget="")

    def __enter__(self) -> ProgressDisplay:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def _print(self, *parts: str | tuple[str, str]) -> None:
        self.console.print(line(*parts), soft_wrap=True)

    def _budget(self, state: LoopState) -> str:
        b, s = state.budgets, state.spend
        cost = f"${s.cost_usd:.3f}/${b.max_cost_usd:g}" + (" simulated" if simulated(state) else "")
        return f"calls {s.model_calls}/{b.max_model_calls}  tokens {s.tokens:,}  {cost}"

    def event(self, event: LoopEvent, state: LoopState) -> None:
        phase = event.phase if isinstance(event, PhaseStarted) else state.phase.value
        label = f"iteration {state.iteration}/{state.budgets.max_iterations} · {phase}"
        self.progress.update(self.task, description=label, budget=self._budget(state),
                             completed=len(state.iterations))
        if isinstance(event, BaselineScored):
            self._print(f"baseline score {event.score:.2f}")
        elif isinstance(event, ApproachRefused):
            self._print("  ", ("refused", "yellow"), f" blocked approach: {event.approach}")
        elif isinstance(event, Decided):
            self._decided(state, event)
        elif isinstance(event, Pushed):
            self._print(f"push: {event.message}")
        elif isinstance(event, Finished):
            done = len(state.iterations)
            self.progress.update(self.task, description=f"finished: {event.outcome}", total=max(done, 1),
                                 completed=max(done, 1))
            self.progress.stop_task(self.task)

    def _decided(self, state: LoopState, event: Decided) -> None:
        record = state.iterations[-1]
        color = {"SUCCESS": "green", "RETRY": "yellow", "STOP": "red"}[event.decision]
        kept = "kept" if event.kept else "rolled back"
        self._print((f"iteration {event.iteration}: {event.decision}", color),
                    f" score {event.score:.2f} ({kept}) · {record.approach or '-'}")
        told = False
        if record.maker_error:  # the iteration failed before anything was evaluated: say why
            self._print("  ", ("failed", "red"), f": {_clip(record.maker_error)}")
            told = True
        for verdict in record.verdicts:
            if not verdict.passed:  # how it failed: the exit code and the runner's last line
                said = [f"exit {verdict.exit_code}"] if verdict.exit_code is not None else []
                said += [_clip(last_line(verdict.evidence))] if last_line(verdict.evidence) else []
                self._print("  ", ("failed check", "red"), f" {verdict.name}: {' · '.join(said) or 'failed'}")
                told = True
        if record.checker is not None and record.checker.decision == "REJECT":
            for reason in record.checker.reasons:
                self._print("  ", ("checker REJECT", "red"), f": {_clip(reason)}")
            told = True
        if record.goal_check is not None and not record.goal_check.met:
            unmet = [c for c in record.goal_check.criteria if not c.met]
            for c in unmet:
                self._print("  ", ("goal NOT MET", "red"), f": {_clip(c.criterion)} — {_clip(c.evidence)}")
            if not unmet:
                self._print("  ", ("goal NOT MET", "red"), f": {_clip(record.goal_check.summary or '-')}")
            told = True
        for violation in record.violations:
            self._print("  ", (f"guard {violation.guard}", "red"), f": {violation.path}")
            told = True
        if not told and event.decision != "SUCCESS" and not record.blocked_fingerprint:
            # Whatever else ended it (a spec conflict, an incomplete session): the report's words.
            self._print("  ", ("failed", "red"), f": {_clip(iteration_result(record))}")
