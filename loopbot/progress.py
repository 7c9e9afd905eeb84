"""Live progress on the terminal: iteration, phase and budget use, one line per decided iteration."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from loopbot.core.state import LoopState


def _clip(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ProgressDisplay:
    def __init__(self, console: Console, total_iterations: int):
        self.console = console
        self.progress = Progress(
            SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(bar_width=20),
            TextColumn("{task.fields[budget]}"), TimeElapsedColumn(),
            console=console, transient=False, disable=not console.is_terminal,
        )
        self.task: TaskID = self.progress.add_task("starting", total=total_iterations, budget="")

    def __enter__(self) -> ProgressDisplay:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def _budget(self, state: LoopState) -> str:
        b, s = state.budgets, state.spend
        return (f"calls {s.model_calls}/{b.max_model_calls}  tokens {s.tokens:,}  "
                f"${s.cost_usd:.3f}/${b.max_cost_usd:g}")

    def event(self, kind: str, state: LoopState, data: dict[str, Any]) -> None:
        label = f"iteration {state.iteration}/{state.budgets.max_iterations} · {state.phase.value}"
        if kind == "phase":
            label = f"iteration {state.iteration}/{state.budgets.max_iterations} · {data['phase']}"
        self.progress.update(self.task, description=label, budget=self._budget(state),
                             completed=len(state.iterations))
        if kind == "baseline":
            self.console.print(f"baseline score {data['score']:.2f}")
        elif kind == "refused":
            self.console.print(f"  [yellow]refused[/] blocked approach: {data['approach']}")
        elif kind == "decided":
            record = state.iterations[-1]
            color = {"SUCCESS": "green", "RETRY": "yellow", "STOP": "red"}[data["decision"]]
            kept = "kept" if data["kept"] else "rolled back"
            self.console.print(f"[{color}]iteration {data['iteration']}: {data['decision']}[/] "
                               f"score {data['score']:.2f} ({kept}) · {record.approach}", highlight=False)
            failed = [v.name for v in record.verdicts if not v.passed]
            if failed:
                self.console.print(f"  failed checks: {', '.join(failed)}", highlight=False)
            if record.checker is not None and record.checker.decision == "REJECT":
                for reason in record.checker.reasons:
                    self.console.print(f"  [red]checker REJECT[/]: {_clip(reason)}", highlight=False)
            if record.violations:
                for v in record.violations:
                    self.console.print(f"  [red]guard {v.guard}[/]: {v.path}", highlight=False)
        elif kind == "pushed":
            self.console.print(f"push: {data['message']}", highlight=False)
        elif kind == "finished":
            done = len(state.iterations)
            self.progress.update(self.task, description=f"finished: {state.status.value} {state.stop_label}".rstrip(),
                                 total=max(done, 1), completed=max(done, 1))
            self.progress.stop_task(self.task)
