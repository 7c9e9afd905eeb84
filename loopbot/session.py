"""Wiring a run: state directory, store, workspace, models, runner. Used by the CLI, demo and bench.

No environment is read here; the CLI passes everything in.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from loopbot.agents.wiring import external_maker
from loopbot.cancel import Cancellation, Interrupted
from loopbot.clock import SystemClock
from loopbot.config import CONFIG_PATH, Config, ModelsConfig, load_config
from loopbot.core.paths import find_test_files
from loopbot.core.redact import Redactor, secrets_in_git_config
from loopbot.core.state import LoopState, Phase, Snapshot
from loopbot.core.weblinks import repo_web_url
from loopbot.errors import InputError, LeaseHeld, LoopbotError, Problem
from loopbot.goal import Goal, slugify
from loopbot.ports import Clock, Model, Store
from loopbot.prompts import OVERRIDE_DIR, check_overrides
from loopbot.providers import ProviderEnv, build_model
from loopbot.providers.preflight import preflight as check_endpoints
from loopbot.runfiles import RunFiles
from loopbot.runner import Observer, Runner
from loopbot.sandbox import build_sandbox
from loopbot.statepaths import Paths
from loopbot.store.sqlite import SqliteStore
from loopbot.transcript import Transcript
from loopbot.workspace.git import (
    GitWorkspace,
    check_remote,
    common_dir,
    git,
    git_configs,
    repo_root,
    resolve_rev,
)

ROLES = ("maker", "planner", "checker", "goal_checker")


def role_specs(goal: Goal, config: Config, override: str | None) -> dict[str, str]:
    if override:
        return dict.fromkeys(ROLES, override)
    chosen = {
        "maker": goal.models.maker or config.models.maker,
        "checker": goal.models.checker or config.models.checker,
        "goal_checker": goal.models.goal_checker or config.models.goal_checker,
    }
    chosen["planner"] = chosen["maker"]
    return {role: config.models.resolve(value) for role, value in chosen.items()}


def build_models(specs: dict[str, str], config: ModelsConfig, env: ProviderEnv, clock: Clock | None = None
                 ) -> dict[str, Model]:
    built: dict[str, Model] = {}
    models: dict[str, Model] = {}
    for role, spec in specs.items():
        if spec not in built:
            built[spec] = build_model(spec, models=config, env=env, clock=clock)
        models[role] = built[spec]
    return models


def _absolute_spec(spec: str | None) -> str | None:
    """A scripted model path is stored absolute so `resume` works from any directory."""
    if spec and spec.startswith("scripted:"):
        return "scripted:" + str(Path(spec.split(":", 1)[1]).resolve())
    return spec


def create_run(
    goal: Goal,
    goal_source: str,
    repo: Path,
    *,
    paths: Paths,
    model: str | None = None,
    config: Config | None = None,
    remote: str | None = "origin",
    base: str = "HEAD",
    run_id: str | None = None,
    branch: str | None = None,
    protect_adds: bool = False,
) -> LoopState:
    """`protect_adds`: the goal's scope.protect adds to the default protected test files instead of
    replacing them (a goal from GitHub may not unprotect tests)."""
    repo = repo_root(repo)
    if config is None:
        # Read once from the user's checkout and frozen into the state: the maker's edits to the
        # config in its worktree never change the running loop.
        config = load_config(repo / CONFIG_PATH)
    base_sha = resolve_rev(repo, base)
    token = secrets.token_hex(3)
    run_id = run_id or f"{goal.id}-{token}"
    branch = branch or f"loop/{token}-{slugify(goal.id)}"
    tracked = [p for p in git(repo, "ls-tree", "-r", "--name-only", "-z", base_sha).stdout.split("\0") if p]
    if protect_adds:
        protected = sorted(set(find_test_files(tracked)) | set(goal.scope.protect or []))
    else:
        protected = goal.scope.protect if goal.scope.protect is not None else find_test_files(tracked)
    if remote is None:
        # The config's remote (default origin) is optional: without it the branch stays local.
        remote = config.push.remote
        if remote is not None and remote not in git(repo, "remote").stdout.split():
            remote = None
    if remote is not None:
        problem = check_remote(repo, remote)
        if problem is not None:
            raise InputError([Problem("--remote", None, None, "", problem)])
    specs = role_specs(goal, config, _absolute_spec(model))
    overrides = _prompt_overrides(repo, base_sha)
    return LoopState(
        run_id=run_id, goal=goal, goal_source=goal_source, config=config,
        budgets=goal.budgets.apply_to(config.budgets), models=specs, repo=str(repo), branch=branch,
        worktree=str(paths.worktree(run_id)), base_sha=base_sha, remote=remote, protected=protected,
        best=Snapshot(sha=base_sha, score=0.0, iteration=0), workspace_head=base_sha, phase=Phase.BASELINE,
        prompt_overrides=overrides,
    )


def _prompt_overrides(repo: Path, base_sha: str) -> dict[str, str]:
    listing = git(repo, "ls-tree", "--name-only", f"{base_sha}:{OVERRIDE_DIR}", check=False)
    if listing.returncode != 0:
        return {}
    overrides = {name: git(repo, "show", f"{base_sha}:{OVERRIDE_DIR}/{name}").stdout
                 for name in listing.stdout.split() if name.endswith(".j2")}
    check_overrides(overrides, OVERRIDE_DIR)
    return overrides


@dataclass
class Session:
    state: LoopState
    store: Store
    runner: Runner
    files: RunFiles
    redact: Redactor
    transcript: Transcript | None = None


def open_session(
    state: LoopState,
    paths: Paths,
    *,
    clock: Clock | None = None,
    models: dict[str, Model] | None = None,
    observers: list[Observer] | None = None,
    on_checkpoint: Callable[[LoopState], None] | None = None,
    allow_unsandboxed: bool = False,
    secrets: Sequence[str] = (),
    provider_env: ProviderEnv | None = None,
    store: Store | None = None,
    resume: bool = False,
    cancel: Cancellation | None = None,
    preflight: bool = True,
    web_url: str | None = None,
) -> Session:
    """Validate, record, then act.

    Models (spec, key, price, script; each distinct endpoint asked once whether it answers, takes
    the key and serves the model, unless `preflight` is off or `models` are given) and the sandbox
    are checked before anything is written; a new run is recorded — with its branch and worktree
    names, its lease taken — before either is made; a resumed run's lease is claimed (one owner)
    before its worktree is touched, and the worktree is repaired or recreated. A start that fails
    leaves nothing behind.

    `web_url`: the repository's page (GitHub Enterprise: server URL and repository); without it,
    a github.com remote's URL gives it. The report links the pushed branch there.
    """
    # The secrets loopbot holds: the caller's, and the credentials in the repository's git configs.
    redact = Redactor(held_secrets(Path(state.repo), secrets))
    # Models first, before the store is opened: a bad spec, a missing key, an endpoint that cannot
    # be reached, refuses the key or does not serve the model ends the start with nothing made.
    built = models if models is not None else build_models(state.models, state.config.models,
                                                           provider_env or ProviderEnv(), clock)
    if models is None and preflight:
        check_endpoints(built.values())
    # An agent CLI as maker: installed, and its model one the proxy can front (loopbot.agents).
    agent_maker = external_maker(state, built["maker"], paths.run_dir(state.run_id), redact)
    store = store if store is not None else SqliteStore(paths.db, redact=redact)
    if resume:
        store.claim(state.run_id)
    cancel = cancel or Cancellation()
    if isinstance(store, SqliteStore):
        chosen = cancel
        store.on_cancel_request = lambda: chosen.set("cancelled by `loopbot stop`")
    created = False
    try:
        repo = Path(state.repo)
        sandbox, sandbox_note = build_sandbox(state.config, Path(state.worktree), common_dir(repo),
                                              allow_fallback=allow_unsandboxed, cancel=cancel, state_dir=paths.root)
        if not resume:
            if cancel.is_set():
                raise Interrupted(cancel.reason)  # a signal during start-up: nothing is made
            store.create(state)
            created = True
        workspace = GitWorkspace.open(repo, Path(state.worktree), state.branch, state.base_sha)
    except BaseException:
        if created:
            _undo_start(store, state)
        elif resume:
            store.release(state.run_id)
        raise
    if web_url is None and state.remote is not None:
        remote_url = git(repo, "remote", "get-url", state.remote, check=False).stdout
        web_url = repo_web_url(remote_url)
    files = RunFiles(paths.run_dir(state.run_id), sandbox_note=sandbox_note, redact=redact, web_url=web_url)
    transcript = Transcript(paths.run_dir(state.run_id), state.run_id, redact=redact, resumed=resume)
    runner = Runner(
        store=store, workspace=workspace, sandbox=sandbox, models=built,
        clock=clock or SystemClock(), observers=[files, *(observers or [])], on_checkpoint=on_checkpoint,
        lessons=store.lessons(state.repo), cancel=cancel, redact=redact, recorder=transcript,
        agent_maker=agent_maker,
    )
    return Session(state=state, store=store, runner=runner, files=files, redact=redact, transcript=transcript)


def held_secrets(repo: Path, secrets: Sequence[str]) -> list[str]:
    """Every secret a run holds: the caller's, and the credentials in the repository's git configs
    (actions/checkout's extraheader, submodules' too). The exit filter knows all of them."""
    found: list[str] = list(secrets)
    for config in git_configs(common_dir(repo)):
        try:
            found += secrets_in_git_config(config.read_text(encoding="utf-8", errors="replace"))
        except OSError:
            continue
    return found


def _undo_start(store: Store, state: LoopState) -> None:
    """A new run whose worktree could not be made: remove the record and whatever git made."""
    repo = Path(state.repo)
    shutil.rmtree(state.worktree, ignore_errors=True)
    git(repo, "worktree", "prune", check=False)
    git(repo, "branch", "-D", state.branch, check=False)
    store.delete(state.run_id)


def load_for_resume(paths: Paths, run_id: str) -> LoopState:
    if not paths.db.exists():
        raise InputError([Problem(run_id, None, None, "", f"no loopbot runs recorded in {paths.root}")])
    store = SqliteStore(paths.db)
    try:
        state = store.load(run_id)
        owner = store.live_owner(run_id)
    except LoopbotError as exc:
        raise InputError([Problem(run_id, None, None, "", str(exc))]) from None
    finally:
        store.close()
    if owner is not None:
        raise InputError([Problem(run_id, None, None, "", str(LeaseHeld(run_id, owner)))])
    return state
