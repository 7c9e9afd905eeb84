"""The `loopbot` command. A composition root: it alone reads the environment and wires adapters."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.text import Text

from loopbot import __version__
from loopbot.cancel import Cancellation, Interrupted
from loopbot.errors import InputError, LeaseHeld, LeaseLost, LoopbotError, Problem, StoreError

# The state models, the session's adapters and the SDKs are imported by the commands that use them,
# not here: `loopbot -h`, `status` and `stop` start without loading what only `run` needs.
if TYPE_CHECKING:
    from loopbot.cleanup import Debris
    from loopbot.config import Config
    from loopbot.core.state import LoopState
    from loopbot.goal import Goal
    from loopbot.providers import ProviderEnv
    from loopbot.session import Session
    from loopbot.statepaths import Paths

# -h is --help on every command: sub-commands inherit the root's context settings.
HELP = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(add_completion=True, no_args_is_help=True, rich_markup_mode=None, context_settings=HELP,
                  help="AI coding-agent loops that do the work on a loop/* branch, get it checked, and never merge.")
# Markup and emoji codes off: a plain string printed here is printed as written (model text, check
# names, paths, run ids, validation errors). Style comes only from Text objects built by `_styled`.
out = Console(soft_wrap=True, markup=False, emoji=False, highlight=False)
err = Console(stderr=True, soft_wrap=True, markup=False, emoji=False, highlight=False)

# 0 goal met; 1 stopped for good without success; 2 bad input (goal, config, store, a live owner);
# 3 suspended: cancelled, a transient error or a push that failed — `loopbot resume` continues.
EXIT_OK, EXIT_STOPPED, EXIT_BAD_INPUT, EXIT_SUSPENDED = 0, 1, 2, 3
# Fault injection for the kill-and-resume tests: SIGKILL this process after checkpoint N.
KILL_AFTER_ENV = "LOOPBOT_FAULT_KILL_AFTER_STEP"


def _styled(*parts: str | tuple[str, str]) -> Text:
    """One line: each str part literal, each (text, style) part styled. Never parsed as markup."""
    return Text.assemble(*parts)


def _fail(problems: list[Problem] | str) -> NoReturn:
    for problem in [problems] if isinstance(problems, str) else problems:
        err.print(_styled(("error:", "red"), f" {problem}"))
    raise typer.Exit(EXIT_BAD_INPUT)


@contextmanager
def _bad_input() -> Iterator[None]:
    try:
        yield
    except InputError as exc:
        _fail(exc.problems)
    except LoopbotError as exc:
        _fail(str(exc))


def _paths(repo: Path, state_dir: Path | None, *, write: bool = True) -> Paths:
    """Where runs are kept; a command that writes there finds out first that it can."""
    from loopbot.statepaths import Paths
    from loopbot.workspace.git import repo_root

    env_dir = os.environ.get("LOOPBOT_STATE_DIR")
    override = state_dir or (Path(env_dir) if env_dir else None)
    paths = Paths.for_repo(repo_root(repo), override)
    if write:
        _check_writable(paths.root, "--state-dir" if state_dir else "LOOPBOT_STATE_DIR" if override else "")
    return paths


def _check_writable(root: Path, named_by: str) -> None:
    """The state directory can be made and written to, or a clear error names it (never a traceback)."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".loopbot-probe-"):
            pass
    except OSError as exc:
        where = f"{named_by} {root}" if named_by else f"the state directory {root}"
        fix = "choose a writable directory" if named_by else "pass --state-dir DIR (a writable directory)"
        raise InputError([Problem(where, None, None, "",
                                  f"cannot hold loopbot's runs (making a file there failed: {exc.strerror or exc}); "
                                  f"{fix}")]) from None


def _config(root: Path, path: Path | None) -> Config:
    """The repo config: --config when given (it must exist), else .github/loopbot.yml or defaults."""
    from loopbot.config import CONFIG_PATH, load_config

    if path is None:
        return load_config(root / CONFIG_PATH)
    if not path.is_file():
        raise InputError([Problem(str(path), None, None, "", "no such config file (--config)")])
    return load_config(path)


def _secrets() -> list[str]:
    """Every secret this process holds: never in a sandbox, redacted from everything written."""
    from loopbot.core.redact import secrets_from_env

    return secrets_from_env(dict(os.environ))


def _provider_env() -> ProviderEnv:
    """Model keys and base URLs (ANTHROPIC_BASE_URL, OPENAI_BASE_URL point at proxies or replays)."""
    from loopbot.providers import ProviderEnv

    return ProviderEnv.from_mapping(os.environ)


PREFLIGHT_ENV = "LOOPBOT_PREFLIGHT"


def _preflight() -> bool:
    """Ask each model endpoint before starting (default). LOOPBOT_PREFLIGHT=0 skips it, for a
    server that answers the model calls but not the models API."""
    return os.environ.get(PREFLIGHT_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def _kill_hook() -> Callable[[LoopState], None] | None:
    raw = os.environ.get(KILL_AFTER_ENV)
    if not raw:
        return None
    target = int(raw)

    def hook(state: LoopState) -> None:
        if state.steps_completed == target:
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


@contextmanager
def _signals() -> Iterator[Cancellation]:
    """Installed first thing: the first SIGINT/SIGTERM cancels at once (running commands killed, the
    model call abandoned, best work pushed, the run suspended); a second one exits on the spot,
    resumable from the last checkpoint."""
    cancel = Cancellation()
    received = 0

    def handle(signum: int, _frame: Any) -> None:
        nonlocal received
        received += 1
        name = signal.Signals(signum).name
        if received > 1:
            os.write(2, f"{name} again: exiting now; `loopbot resume` continues from the last checkpoint\n".encode())
            cancel.set(f"{name} received twice")  # kills running commands, if the first one had not yet
            os._exit(128 + signum)
        os.write(2, f"{name}: stopping now; the best work is pushed and the run can be resumed "
                    "(send it again to exit at once)\n".encode())
        cancel.set(f"{name} received")

    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield cancel
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


SANDBOX_OFF_WARNING = (
    " the sandbox is OFF: the agent's and the checks' commands run as you, with your files and the network "
    "within reach. Install bubblewrap to isolate them: sudo apt-get install bubblewrap "
    "(then drop `sandbox: off` from the config)."
)


def _warn_if_unsandboxed(session: Session) -> None:
    from loopbot.sandbox import OFF_NOTE

    if session.files.sandbox_note.startswith(OFF_NOTE):
        err.print(_styled(("WARNING:", "bold red"), SANDBOX_OFF_WARNING))


def _drive(session: Session, *, quiet: bool) -> LoopState:
    """Run with live progress until the run ends or is suspended."""
    from loopbot.progress import ProgressDisplay

    runner = session.runner
    _warn_if_unsandboxed(session)
    try:
        # -q hides the live bar only: the iteration log (decisions, failed checks, reasons) stays.
        with ProgressDisplay(err, session.state.budgets.max_iterations, bar=not quiet) as display:
            runner.observers.append(display)
            return runner.run(session.state)
    except LeaseLost as exc:
        _fail(str(exc))
    except StoreError as exc:
        _fail(f"{exc} (the run is resumable from its last checkpoint)")
    finally:
        session.store.close()


def _summary(state: LoopState, session: Session, *, to: Console | None = None) -> int:
    from loopbot.core.state import Status
    from loopbot.report import simulated

    say = to or out
    if state.suspended is not None:
        pause = state.suspended
        say.print(_styled(("SUSPENDED", "yellow"), f" {pause.reason.value}: {session.redact(pause.detail)}"))
        if pause.push is not None:
            say.print(f"best work: {session.redact(pause.push.message)} ({pause.push.sha[:10]})")
    elif state.status == Status.SUCCESS:
        say.print(_styled(("SUCCESS", "green"), f" goal {state.goal.id} met in {len(state.iterations)} iterations"))
    else:
        say.print(_styled(("STOPPED", "red"), f" {state.stop_label}: {session.redact(state.stop_detail)}"))
        if session.files.incident_path.exists():
            say.print(f"incident: {session.files.incident_path}")
    pushed = state.push.message if state.push else "not pushed"
    say.print(f"branch:   {state.branch} ({session.redact(pushed)})")
    say.print(f"cost:     ${state.spend.cost_usd:.4f} of ${state.budgets.max_cost_usd:g}, "
              f"{state.spend.model_calls} model calls"
              + (" (simulated: a scripted model; nothing was billed)" if simulated(state) else ""))
    say.print(f"worktree: {state.worktree}")
    say.print(f"report:   {session.files.report_path}")
    say.print(f"events:   {session.files.events_path}")
    if session.transcript is not None:
        say.print(f"transcript: {session.transcript.markdown_path}")
    if state.suspended is not None:
        say.print(f"run id:   {state.run_id}  (resumable: loopbot resume {state.run_id}; "
                  f"or loopbot abandon {state.run_id})")
        return EXIT_SUSPENDED
    say.print(f"run id:   {state.run_id}  (loopbot status)")
    return EXIT_OK if state.status == Status.SUCCESS else EXIT_STOPPED


def _final_record(state: LoopState, session: Session, code: int) -> dict[str, Any]:
    """`run --json`: what a script needs to act on the run."""
    from loopbot.core.state import Status
    from loopbot.report import simulated

    status = "suspended" if state.suspended is not None else state.status.value
    outcome = state.suspended.reason.value if state.suspended is not None else (
        "SUCCESS" if state.status == Status.SUCCESS else state.stop_label)
    return {"run_id": state.run_id, "goal": state.goal.id, "status": status, "outcome": outcome,
            "detail": session.redact(state.suspended.detail if state.suspended else state.stop_detail) or None,
            "exit_code": code, "iterations": len(state.iterations), "model_calls": state.spend.model_calls,
            "cost_usd": state.spend.cost_usd, "cost_simulated": simulated(state), "branch": state.branch,
            "pushed": bool(state.push and state.push.pushed), "worktree": state.worktree,
            "report": str(session.files.report_path), "events": str(session.files.events_path),
            "transcript": str(session.transcript.jsonl_path) if session.transcript else None}


def _finish(final: LoopState, session: Session, *, as_json: bool) -> NoReturn:
    code = _summary(final, session, to=err if as_json else out)
    if as_json:
        _json_line(_final_record(final, session, code))
    raise typer.Exit(code)


def _load_goal_or_plan(path: Path) -> Goal:
    """A goal file, or a plan (markdown with the goal in a fenced YAML block)."""
    from loopbot.goal import load_goal
    from loopbot.plans import goal_from_markdown

    if path.suffix == ".md":
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError([Problem(str(path), None, None, "", f"cannot read: {exc}")]) from None
        return goal_from_markdown(text, str(path))
    return load_goal(path)


def _role_model(role: str, config: Config, override: str | None) -> Any:
    from loopbot.providers import build_model

    spec = override or config.models.resolve(getattr(config.models, role))
    if spec.startswith("scripted:"):
        spec = "scripted:" + str(Path(spec.split(":", 1)[1]).resolve())
    model = build_model(spec, models=config.models, env=_provider_env())
    if _preflight():
        from loopbot.providers.preflight import preflight

        preflight([model])
    return model


def _repo_setup(repo: Path, state_dir: Path | None, config: Path | None) -> tuple[Path, Config, Paths]:
    from loopbot.workspace.git import repo_root

    root = repo_root(repo)
    loaded = _config(root, config)
    return root, loaded, _paths(root, state_dir)


RepoOpt = Annotated[Path, typer.Option("--repo", help="the git checkout to work on")]
StateDirOpt = Annotated[Path | None, typer.Option("--state-dir", help="where runs are kept (default .git/loopbot)")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="no live progress bar (the iteration log stays)")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="repo config (default .github/loopbot.yml)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON object at the end (the summary goes to stderr)")]


@app.command()
def run(
    goal_file: Annotated[Path, typer.Argument(help="the goal YAML file")],
    repo: RepoOpt = Path("."),
    model: Annotated[str | None, typer.Option(help="model for every role, e.g. scripted:script.yaml")] = None,
    config: ConfigOpt = None,
    remote: Annotated[str | None, typer.Option(help="remote to push the loop branch to")] = None,
    state_dir: StateDirOpt = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Run a goal's execution loop on a loop/* branch of REPO."""
    from loopbot.session import create_run, open_session
    from loopbot.workspace.git import git, repo_root

    with _signals() as cancel:
        with _bad_input():
            goal = _load_goal_or_plan(goal_file)
            cfg = _config(repo_root(repo), config) if config else None
            paths = _paths(repo, state_dir)
            state = create_run(goal, str(goal_file), repo, paths=paths, model=model, config=cfg, remote=remote)
            try:
                session = open_session(state, paths, on_checkpoint=_kill_hook(), secrets=_secrets(),
                                       provider_env=_provider_env(), cancel=cancel,
                                       preflight=_preflight())
            except Interrupted:
                err.print("interrupted before the run started; nothing was created")
                raise typer.Exit(EXIT_SUSPENDED) from None
            dirty = git(Path(state.repo), "status", "--porcelain", "--untracked-files=no").stdout.strip()
        if dirty:
            err.print(_styled(("note:", "yellow"), " your working tree has uncommitted changes; the loop starts "
                              f"from {state.base_sha[:10]} (HEAD) and does not see them"))
        if state.remote is None:
            err.print(_styled(("note:", "yellow"), " no remote to push to: the loop branch stays in this "
                              "repository (--remote NAME, or push.remote in the config)"))
        (err if as_json else out).print(f"run {state.run_id} on branch {state.branch}")
        final = _drive(session, quiet=quiet)
    _finish(final, session, as_json=as_json)


@app.command()
def resume(
    run_id: Annotated[str, typer.Argument(help="the run to continue")],
    repo: RepoOpt = Path("."),
    state_dir: StateDirOpt = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Continue a run from its last completed step, every counter intact (a suspended run too:
    cancelled, a transient error, a push that failed)."""
    from loopbot.core.state import Status
    from loopbot.session import load_for_resume, open_session

    with _signals() as cancel:
        with _bad_input():
            paths = _paths(repo, state_dir)
            state = load_for_resume(paths, run_id)
            if state.finished:
                out.print(f"run {run_id} already finished: {state.status.value} {state.stop_label}".rstrip())
                raise typer.Exit(EXIT_OK if state.status == Status.SUCCESS else EXIT_STOPPED)
            try:
                session = open_session(state, paths, on_checkpoint=_kill_hook(), secrets=_secrets(),
                                       provider_env=_provider_env(), resume=True, cancel=cancel,
                                       preflight=_preflight())
            except LeaseHeld as exc:
                _fail(str(exc))
            session.store.clear_cancel(run_id)
        where = f"suspended ({state.suspended.reason.value})" if state.suspended else f"step {state.phase.value}"
        (err if as_json else out).print(f"resuming {run_id} at iteration {state.iteration}, {where}")
        final = _drive(session, quiet=quiet)
    _finish(final, session, as_json=as_json)


@app.command()
def abandon(run_id: str, repo: RepoOpt = Path("."), state_dir: StateDirOpt = None) -> None:
    """End a suspended or killed run for good (ABANDONED): it is no longer resumable; its branch stays."""
    from loopbot.core.decide import abandon_state
    from loopbot.store.sqlite import SqliteStore

    with _bad_input():
        paths = _paths(repo, state_dir)
        store = SqliteStore(paths.db)
        try:
            state = store.load(run_id)
            if state.finished:
                _fail(f"run {run_id} already finished: {state.status.value} {state.stop_label}".rstrip())
            store.claim(run_id)  # a live owner must be stopped first
            final = abandon_state(state)
            store.save(final, "abandon")
        finally:
            store.close()
    out.print(f"abandoned {run_id}; its branch {final.branch} keeps the work (loopbot gc removes the worktree)")


@app.command()
def status(
    repo: RepoOpt = Path("."),
    state_dir: StateDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per run")] = False,
) -> None:
    """List runs (id, goal, state, iteration, cost, stop reason, branch) and every loop branch loopbot made."""
    with _bad_input():
        paths = _paths(repo, state_dir, write=False)
        runs, recorded = _read_store(paths)
        strays = [entry for entry in recorded if entry.run_id not in {s.run_id for s in runs}]
    if as_json:  # JSON Lines: one compact object per run, full ids
        for s in runs:
            _json_line({"run_id": s.run_id, "goal": s.goal.id, "status": s.status.value, "state": s.state_label,
                        "phase": s.phase.value, "iteration": s.iteration,
                        "max_iterations": s.budgets.max_iterations, "model_calls": s.spend.model_calls,
                        "cost_usd": s.spend.cost_usd, "stop_reason": s.stop_label or None,
                        "suspended": s.suspended.reason.value if s.suspended else None, "branch": s.branch})
        for entry in strays:
            _json_line({"run_id": entry.run_id, "goal": None, "status": "unrecorded", "state": "unrecorded",
                        "branch": entry.branch})
        return
    if not runs and not strays:
        out.print(f"no runs in {paths.root}")
        return
    rows = [["run", "goal", "state", "iteration", "calls", "cost", "stop reason", "branch"]]
    rows += [[s.run_id, s.goal.id, s.state_label, f"{s.iteration}/{s.budgets.max_iterations}",
              str(s.spend.model_calls), f"${s.spend.cost_usd:.4f}", s.stop_label or "-", s.branch] for s in runs]
    rows += [[entry.run_id, "-", "unrecorded", "-", "-", "-", "-", entry.branch] for entry in strays]
    for line in _columns(rows):
        out.print(line, crop=False, overflow="ignore")


def _json_line(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def _columns(rows: list[list[str]]) -> list[str]:
    """Aligned columns that are never truncated nor wrapped, whatever the terminal's width: a run
    id is copied from here into `resume` and `abandon`."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]


def _read_store(paths: Paths) -> tuple[list[LoopState], list[Debris]]:
    """Every readable run, and every branch loopbot recorded before making it."""
    from loopbot.cleanup import Debris
    from loopbot.store.sqlite import SqliteStore

    if not paths.db.exists():
        return [], []
    store = SqliteStore(paths.db)
    try:
        branches = [Debris(repo=r, branch=b, run_id=i, worktree=w) for r, b, i, w in store.branches()]
        return list(store.list_runs()), branches
    finally:
        store.close()


@app.command()
def gc(
    repo: RepoOpt = Path("."),
    state_dir: StateDirOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list what would be removed")] = False,
) -> None:
    """Remove what dead runs left: worktrees of finished or unrecorded runs, branches of abandoned or
    unrecorded runs, stale git worktree entries. Branches of finished runs keep their work and stay."""
    from loopbot.cleanup import collect
    from loopbot.store.sqlite import SqliteStore
    from loopbot.workspace.git import repo_root

    with _bad_input():
        paths = _paths(repo, state_dir)
        store = SqliteStore(paths.db)
        try:
            found = collect(repo_root(repo), paths.root, store, dry_run=dry_run)
        finally:
            store.close()
    if not found:
        out.print("nothing to clean")
        return
    verb = "would remove" if dry_run else "removed"
    for item in found:
        out.print(f"{verb} {item}")


@app.command()
def stop(run_id: str, repo: RepoOpt = Path("."), state_dir: StateDirOpt = None) -> None:
    """Ask a running loop to stop after its current step (CANCELLED; best work pushed)."""
    from loopbot.store.sqlite import SqliteStore

    with _bad_input():
        paths = _paths(repo, state_dir)
        store = SqliteStore(paths.db)
        try:
            store.request_cancel(run_id)
        finally:
            store.close()
    out.print(f"stop requested for {run_id}")


class Kind(StrEnum):
    auto = "auto"
    goal = "goal"
    config = "config"


@app.command()
def validate(
    file: Annotated[Path, typer.Argument(help="a goal file or .github/loopbot.yml")],
    kind: Annotated[Kind, typer.Option(help="what the file is (auto: by its name)")] = Kind.auto,
) -> None:
    """Check a goal or config file; exit 0 when valid, 2 with located errors when not."""
    from loopbot.config import load_config
    from loopbot.goal import load_goal

    is_config = kind == Kind.config or (kind == Kind.auto and file.name in ("loopbot.yml", "loopbot.yaml"))
    with _bad_input():
        if is_config:
            if not file.exists():
                raise InputError([Problem(str(file), None, None, "", "no such file")])
            load_config(file)
            out.print(f"ok: {file} is a valid loopbot config")
        else:
            goal = load_goal(file)
            out.print(f"ok: {file} is a valid goal '{goal.id}' ({len(goal.objective_checks)} objective checks, "
                      f"{len(goal.criteria)} judged criteria, {len(goal.chunks)} chunks)")


class SchemaName(StrEnum):
    goal = "goal"
    config = "config"
    script = "script"


@app.command()
def schema(name: Annotated[SchemaName, typer.Argument(help="goal, config or script (the scripted model's file)")]
           ) -> None:
    """Print the JSON Schema of the goal file, the repo config or a scripted model's script."""
    from pydantic import BaseModel

    from loopbot.config import Config
    from loopbot.goal import Goal
    from loopbot.testing.scripted import Script

    models: dict[SchemaName, type[BaseModel]] = {SchemaName.goal: Goal, SchemaName.config: Config,
                                                 SchemaName.script: Script}
    model = models[name]
    document = model.model_json_schema()
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    sys.stdout.write(json.dumps(document, indent=2) + "\n")


@app.command()
def demo(
    directory: Annotated[Path | None, typer.Option("--dir", help="where to build the demo (default: a temp dir)")] = None,
    quiet: QuietOpt = False,
) -> None:
    """Offline demo of all three loops: audit files plans, a plan runs (fails, is rejected, succeeds),
    a reviewer merges, the wiki is updated on its own branch."""
    from loopbot.demo import run_demo

    if directory is not None and directory.exists() and any(directory.iterdir()):
        _fail(f"--dir {directory} is not empty")
    base = directory or Path(tempfile.mkdtemp(prefix="loopbot-demo-"))
    try:
        with _bad_input():
            result = run_demo(base, out, lambda session: _drive(session, quiet=quiet), _secrets())
        code = _summary(result.loop, result.session)
        if result.docs is not None:
            out.print(f"wiki:     {result.docs.branch} ({'pushed' if result.docs.pushed else 'not pushed'}); "
                      f"proposal {result.docs.proposal}")
            if not result.docs.changed:
                code = EXIT_STOPPED
        if directory is not None:
            out.print(f"inspect:  git -C {result.origin} log --oneline --all")
            out.print(f"          git -C {result.repo} diff main "
                      f"{result.docs.branch if result.docs else result.loop.branch}")
    finally:
        if directory is None:  # a temp dir is the demo's own: removed, not left behind on every run
            shutil.rmtree(base, ignore_errors=True)
    if directory is None:
        out.print(f"removed the demo's files ({base}); `loopbot demo --dir DIR` keeps them to inspect")
    raise typer.Exit(code)


@app.command()
def audit(
    repo: RepoOpt = Path("."),
    model: Annotated[str | None, typer.Option(help="model for the auditor (default: models.auditor)")] = None,
    config: ConfigOpt = None,
    state_dir: StateDirOpt = None,
) -> None:
    """Review the repository and file plans (at most limits.max_plans_per_run) under plans/."""
    from loopbot.audit import audit as run_audit
    from loopbot.clock import SystemClock
    from loopbot.forge.local import LocalForge
    from loopbot.sandbox.subprocess_runner import SubprocessSandbox
    from loopbot.store.sqlite import SqliteStore

    with _bad_input():
        root, cfg, paths = _repo_setup(repo, state_dir, config)
        auditor = _role_model("auditor", cfg, model)
        store = SqliteStore(paths.db)
        lessons = store.lessons(str(root))
        store.close()
    result = run_audit(root, model=auditor, config=cfg, forge=LocalForge(root, paths.root / "proposals"),
                       sandbox=SubprocessSandbox(), clock=SystemClock(), lessons=lessons)
    out.print(result.markdown())
    if result.model_failed:
        err.print(_styled(("error:", "red"), f" every model call failed, so nothing was reviewed: {result.error}"))
        raise typer.Exit(EXIT_STOPPED)


@app.command()
def docs(
    repo: RepoOpt = Path("."),
    since: Annotated[str, typer.Option(help="document what was merged after this revision")] = "HEAD~1",
    model: Annotated[str | None, typer.Option(help="model for the documenter (default: models.documenter)")] = None,
    remote: Annotated[str | None, typer.Option(help="remote for the loop/wiki-* branch")] = None,
    config: ConfigOpt = None,
    state_dir: StateDirOpt = None,
) -> None:
    """Bring the wiki up to date with what was merged, on a loop/wiki-<sha> branch (never main)."""
    from loopbot.clock import SystemClock
    from loopbot.forge.local import LocalForge
    from loopbot.sandbox.subprocess_runner import SubprocessSandbox
    from loopbot.wiki.update import docs as run_docs

    with _bad_input():
        root, cfg, paths = _repo_setup(repo, state_dir, config)
        documenter = _role_model("documenter", cfg, model)
        result = run_docs(root, since=since, model=documenter, config=cfg,
                          forge=LocalForge(root, paths.root / "proposals"), sandbox=SubprocessSandbox(),
                          clock=SystemClock(), state_root=paths.root, remote=remote or cfg.push.remote,
                          home=Path.home())
    if result.model_failed:
        err.print(_styled(("error:", "red"), f" every model call failed, so the wiki was left alone and nothing "
                                             f"was pushed: {result.error}"))
        raise typer.Exit(EXIT_STOPPED)
    if result.error:
        err.print(_styled(("note:", "yellow"), f" {result.error}"))
    out.print(result.body())
    if result.changed:
        out.print(f"branch:   {result.branch} ({'pushed' if result.pushed else 'local only'})")
        out.print(f"proposal: {result.proposal}")


def _template_names() -> str:
    from loopbot.shipped import templates

    try:
        return ", ".join(templates())
    except InputError:
        return "(none shipped)"


def _complete_template(incomplete: str) -> list[str]:
    from loopbot.shipped import templates

    return [name for name in templates() if name.startswith(incomplete)]


@app.command()
def init(
    repo: RepoOpt = Path("."),
    goal: Annotated[str | None, typer.Option("--goal", help=f"also write goals/TEMPLATE.yaml from a template: "
                                                            f"{_template_names()}",
                                             autocompletion=_complete_template)] = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite files that exist")] = False,
) -> None:
    """Set a repository up: .github/loopbot.yml (every default, commented out), the three workflows
    (pinned to a release of the action) and, with --goal, a first goal. Existing files are kept
    unless --force; an existing config is always kept, and its labels go into the workflows."""
    import shlex

    from loopbot.config import CONFIG_PATH, Config, load_config
    from loopbot.scaffold import ACTION_REF, init_files, write
    from loopbot.workspace.git import repo_root

    with _bad_input():
        root = repo_root(repo)
        kept = root / CONFIG_PATH  # a link is no config of this repository's: --force replaces it
        existing = load_config(kept) if kept.is_file() and not kept.is_symlink() else None
        written = write(root, init_files(goal, existing), force=force)
    if existing is not None:
        out.print(f"kept {CONFIG_PATH} (the run workflow starts loops on its labels.run)")
    run_label = (existing or Config()).labels.run
    for path in written:
        out.print(f"wrote {path.relative_to(root)}")
    out.print(f"\nThe workflows use {ACTION_REF}. Next:")
    out.print("  1. add the secret ANTHROPIC_API_KEY (or OPENAI_API_KEY) to the repository")
    out.print("  2. allow Actions to open pull requests: Settings > Actions > General > Workflow permissions >")
    out.print("     'Allow GitHub Actions to create and approve pull requests'")
    out.print(f"  3. create the run label: gh label create {shlex.quote(run_label)} "
              "--description 'loopbot: run this plan'")
    out.print("  (docs/github-setup.md has the details and the GitHub App set-up)")
    if goal is not None:
        out.print(f"  then edit goals/{goal}.yaml and try it locally: loopbot run goals/{goal}.yaml")


new_app = typer.Typer(no_args_is_help=True, help="Start a new file from a template.")
app.add_typer(new_app, name="new")


@new_app.command("goal")
def new_goal(
    template: Annotated[str, typer.Option("--template", "-t", help=f"one of: {_template_names()}",
                                          autocompletion=_complete_template)],
    out_file: Annotated[Path | None, typer.Option("--out", help="where to write it (default goals/TEMPLATE.yaml)")
                        ] = None,
    goal_id: Annotated[str | None, typer.Option("--id", help="the goal's id (default: the template's)")] = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite the file if it exists")] = False,
) -> None:
    """Write a goal file from one of the templates that ship with loopbot (bug fix, feature, refactor,
    performance, …); edit it, `loopbot validate` it, then `loopbot run` it."""
    from loopbot.scaffold import Planned, goal_text, write

    target = out_file or Path("goals") / f"{template}.yaml"
    with _bad_input():
        text = goal_text(template, goal_id)
        write(Path.cwd(), [Planned(str(target), text)], force=force)
    out.print(f"wrote {target} (from the {template} template)")
    out.print(f"next: edit its goal, acceptance and scope; loopbot validate {target}; loopbot run {target}")


wiki_app = typer.Typer(no_args_is_help=True, help="The committed wiki folder.")
app.add_typer(wiki_app, name="wiki")


@wiki_app.command("lint")
def wiki_lint(
    repo: RepoOpt = Path("."),
    fix: Annotated[bool, typer.Option(help="fix the index when there are at most 10 findings")] = False,
    config: ConfigOpt = None,
) -> None:
    """Orphans, broken links, names of files and symbols that no longer exist, index out of step.
    Exits 1 on findings, so CI can use it."""
    from loopbot.context import repomap
    from loopbot.wiki import lint
    from loopbot.workspace.git import git, repo_root

    with _bad_input():
        root = repo_root(repo)
        wiki_path = _config(root, config).wiki.path.strip("/")
    wiki = root / wiki_path
    if not wiki.is_dir():
        out.print(f"no wiki at {wiki_path}/ (loopbot docs creates one)")
        return
    tracked = [p for p in git(root, "ls-files", "-z").stdout.split("\0") if p]
    files = set(tracked) | {f"{wiki_path}/{p}" for p in lint.pages(wiki)}
    names = repomap.defined_names(root, [f for f in tracked if not f.startswith(wiki_path + "/")])
    findings = lint.lint(wiki, repo_files=files, symbols=names, wiki_prefix=wiki_path)
    if fix:
        if len(findings) > lint.AUTO_FIX_LIMIT:
            err.print(f"{len(findings)} findings: more than {lint.AUTO_FIX_LIMIT}, so nothing is fixed automatically")
        else:
            findings = lint.fix(wiki, findings)
    for finding in findings:
        out.print(str(finding))
    out.print(f"{len(findings)} finding(s)" if findings else "wiki lint: clean")
    raise typer.Exit(1 if findings else 0)


@app.command()
def action() -> None:
    """The GitHub Action's entrypoint: reads GITHUB_EVENT_NAME / GITHUB_EVENT_PATH and the inputs."""
    from loopbot.action import main as action_main

    raise typer.Exit(action_main(os.environ))


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="address to listen on [default: 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="port to listen on, 0 for any free one [default: 8080]")] = None,
    workers: Annotated[int | None, typer.Option(
        help="workers in this process; 0: only receive and serve, `loopbot worker` dispatches [default: 2]")] = None,
) -> None:
    """Run the GitHub App: webhooks in, a durable queue, loops dispatched to Actions (docs/app.md).
    Needs pip install 'loopbot[app]'; configured by LOOPBOT_* environment variables."""
    from loopbot.app.serve import serve as run_app

    with _bad_input():
        run_app(os.environ, host=host, port=port, workers=workers)


@app.command()
def worker(
    host: Annotated[str | None, typer.Option(help="address of /healthz, /readyz, /metrics [default: 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="their port, 0 for any free one [default: 8081]")] = None,
    workers: Annotated[int | None, typer.Option(help="workers in this process [default: 2]")] = None,
) -> None:
    """Run the App's workers and reconciler alone, beside `loopbot serve --workers 0` on the same
    database (LOOPBOT_DATABASE_URL): queued jobs become workflow dispatches (docs/app.md)."""
    from loopbot.app.serve import work

    with _bad_input():
        work(os.environ, host=host, port=port, workers=workers)


replay_app = typer.Typer(no_args_is_help=True, help="Serve recorded model exchanges, or record new ones.")
app.add_typer(replay_app, name="replay")


@replay_app.command("serve")
def replay_serve(
    cassette: Annotated[Path, typer.Argument(help="a cassette YAML file")],
    port: Annotated[int, typer.Option(help="loopback port (0: any free port)")] = 0,
) -> None:
    """Answer the Anthropic and OpenAI APIs on loopback from a cassette (point *_BASE_URL at it)."""
    import time

    from loopbot.testing.replay import Cassette, ReplayServer

    with _bad_input():
        try:
            loaded = Cassette.load(cassette)
        except (OSError, ValueError) as exc:
            raise InputError([Problem(str(cassette), None, None, "", f"not a cassette: {exc}")]) from None
    server = ReplayServer(loaded, port=port)
    with server:
        out.print(f"replaying {len(loaded.exchanges)} exchanges at {server.url}")
        out.print(f"  ANTHROPIC_BASE_URL={server.url}  OPENAI_BASE_URL={server.url}/v1")
        try:
            while server.remaining:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
    out.print(f"done: {len(server.received)} requests, {len(server.misses)} unmatched")


@replay_app.command("record")
def replay_record(
    out_file: Annotated[Path, typer.Option("--out", help="the cassette to write")],
    upstream: Annotated[str, typer.Option(help="the real API")] = "https://api.anthropic.com",
    port: Annotated[int, typer.Option(help="loopback port (0: any free port)")] = 0,
) -> None:
    """Proxy to the real API on loopback and record each reply into a cassette. Keys are never written."""
    import time

    from loopbot.testing.recorder import RecordingProxy

    with RecordingProxy(upstream, out_file, port=port) as proxy:
        out.print(f"recording {upstream} at {proxy.url} into {out_file}; Ctrl-C to stop")
        try:
            while True:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    out.print(f"recorded {len(proxy.cassette.exchanges)} exchanges")


class CompletionShell(StrEnum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"
    powershell = "powershell"


@app.command()
def completion(shell: Annotated[CompletionShell, typer.Argument(help="bash, zsh, fish or powershell")]) -> None:
    """Print the shell completion script for SHELL, e.g. `loopbot completion bash > ~/.loopbot-complete.bash`
    and source it from ~/.bashrc. (--show-completion guesses the shell from the parent process; this
    does not.)"""
    from typer._completion_shared import get_completion_script

    sys.stdout.write(get_completion_script(prog_name="loopbot", complete_var="_LOOPBOT_COMPLETE",
                                           shell=shell.value) + "\n")


def version_callback(value: bool) -> None:
    if value:
        out.print(f"loopbot {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[bool, typer.Option("--version", callback=version_callback, is_eager=True)] = False,
) -> None:
    pass


def main() -> None:
    app()
