"""The Action's inputs, read once from the Actions environment into one typed object."""

from __future__ import annotations

import json
import math
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from loopbot.config import CONFIG_PATH, Config, parse_config
from loopbot.core.lease import github_actions_job
from loopbot.core.route import SELF_LOGINS, Mode
from loopbot.errors import InputError, Problem
from loopbot.workspace.git import git

MODES: tuple[Mode, ...] = ("auto", "audit", "docs", "run")


@dataclass(frozen=True)
class ActionInputs:
    env: Mapping[str, str]
    event: str
    payload: dict[str, Any]
    owner: str
    repo: str
    checkout: Path
    default_branch: str
    config_path: str
    mode: Mode
    max_cost_usd: float | None
    model: str | None
    api_url: str
    server_url: str  # where git pushes go (GITHUB_SERVER_URL): the push credential's scope
    token: str | None
    app_id: str | None
    private_key: str | None
    state_dir: Path
    output_path: str | None
    summary_path: str | None
    self_logins: frozenset[str]
    workflow_path: str | None = None  # the running workflow's file (GITHUB_WORKFLOW_REF), if it says
    runner: str = ""  # who runs this job (workflow run, attempt, host): the holder a state lease names
    job: str = ""  # this job attempt's handle in a lease, so a later job can ask GitHub whether it ended

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.repo}"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ActionInputs:
        problems: list[Problem] = []
        payload: dict[str, Any] = {}
        if env.get("GITHUB_EVENT_PATH"):
            try:
                loaded = json.loads(Path(env["GITHUB_EVENT_PATH"]).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                problems.append(_problem("GITHUB_EVENT_PATH", f"the event payload cannot be read: {exc}"))
            else:
                if isinstance(loaded, dict):
                    payload = loaded
                else:
                    problems.append(_problem("GITHUB_EVENT_PATH", "the event payload is not a JSON object"))
        owner, _, repo = env.get("GITHUB_REPOSITORY", "").partition("/")
        if not owner or not repo:
            problems.append(_problem("GITHUB_REPOSITORY", "must be owner/name"))
        mode = env.get("LOOPBOT_MODE") or "auto"
        if mode not in MODES:
            problems.append(_problem("mode", f"{mode!r} is not one of {', '.join(MODES)}"))
        cost = _cost(env.get("LOOPBOT_MAX_COST_USD", "").strip(), problems)
        if problems:
            raise InputError(problems)
        repository = payload.get("repository")
        default_branch = (repository.get("default_branch") if isinstance(repository, dict) else None) \
            or env.get("LOOPBOT_DEFAULT_BRANCH") or "main"
        app_slug = env.get("LOOPBOT_APP_SLUG", "").strip()
        return cls(
            env=env, event=env.get("GITHUB_EVENT_NAME", ""), payload=payload, owner=owner, repo=repo,
            checkout=Path(env.get("GITHUB_WORKSPACE", ".")), default_branch=str(default_branch),
            config_path=env.get("LOOPBOT_CONFIG") or CONFIG_PATH, mode=cast(Mode, mode), max_cost_usd=cost,
            model=env.get("LOOPBOT_MODEL") or None, api_url=env.get("GITHUB_API_URL") or "https://api.github.com",
            server_url=env.get("GITHUB_SERVER_URL") or "https://github.com",
            token=env.get("LOOPBOT_GITHUB_TOKEN") or env.get("GITHUB_TOKEN") or None,
            app_id=env.get("LOOPBOT_APP_ID") or None, private_key=env.get("LOOPBOT_APP_PRIVATE_KEY") or None,
            state_dir=Path(env.get("RUNNER_TEMP") or "/tmp") / "loopbot",
            output_path=env.get("GITHUB_OUTPUT") or None, summary_path=env.get("GITHUB_STEP_SUMMARY") or None,
            self_logins=SELF_LOGINS | ({f"{app_slug}[bot]"} if app_slug else frozenset()),
            workflow_path=_workflow_path(env.get("GITHUB_WORKFLOW_REF", ""), f"{owner}/{repo}"),
            runner=_runner(env),
            job=github_actions_job(env.get("GITHUB_RUN_ID", "").strip(), env.get("GITHUB_RUN_ATTEMPT", "").strip()),
        )

    def config(self) -> Config:
        """The trusted config: the default branch's file, the workflow's cost cap over it."""
        config = read_config(self.checkout, self.default_branch, self.config_path)
        if self.max_cost_usd is not None:
            budgets = config.budgets.model_copy(update={"max_cost_usd": self.max_cost_usd})
            config = config.model_copy(update={"budgets": budgets})
        return config


def read_config(checkout: Path, default_branch: str, path: str) -> Config:
    """The repo config from the default branch only: a pull request can never change the bot's config."""
    ref = _default_branch_ref(checkout, default_branch)
    if ref is None:
        # Never HEAD: on a pull request's checkout that is the PR's own config. Fail closed.
        raise InputError([Problem(f"{default_branch}:{path}", None, None, "", (
            f"the default branch {default_branch!r} is not in the checkout, so the config cannot be read from "
            "it; check out with `fetch-depth: 0` (or fetch the default branch) before loopbot runs"))])
    shown = git(checkout, "show", f"{ref}:{path}", check=False)
    return parse_config(shown.stdout, f"{default_branch}:{path}") if shown.returncode == 0 else Config()


def read_default_branch_file(checkout: Path, default_branch: str, path: str) -> str | None:
    """A file as the default branch has it (where the workflows of issue and comment events come
    from); None when the checkout has no default branch or the branch no such file."""
    ref = _default_branch_ref(checkout, default_branch)
    shown = git(checkout, "show", f"{ref}:{path}", check=False) if ref else None
    return shown.stdout if shown is not None and shown.returncode == 0 else None


def _default_branch_ref(checkout: Path, default_branch: str) -> str | None:
    # actions/checkout names its remote origin, whatever push.remote says: the config is read there.
    for ref in (f"refs/remotes/origin/{default_branch}", f"refs/heads/{default_branch}"):
        if git(checkout, "rev-parse", "--verify", "--quiet", ref, check=False).returncode == 0:
            return ref
    return None


def _workflow_path(workflow_ref: str, full_name: str) -> str | None:
    """GITHUB_WORKFLOW_REF is owner/repo/<path>@<ref>: the path, when it is this repository's workflow."""
    path = workflow_ref.removeprefix(f"{full_name}/").rpartition("@")[0]
    return path if workflow_ref.startswith(f"{full_name}/") and path.startswith(".github/workflows/") else None


def _runner(env: Mapping[str, str]) -> str:
    run_id = env.get("GITHUB_RUN_ID", "").strip()
    job = f"workflow run {run_id} attempt {env.get('GITHUB_RUN_ATTEMPT') or '1'}" if run_id else "a run"
    return f"{job} on {env.get('RUNNER_NAME') or socket.gethostname()}"


def _cost(text: str, problems: list[Problem]) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        problems.append(_problem("max_cost_usd", f"{text!r} is not a positive number of dollars (e.g. \"5\")"))
        return None
    return value


def _problem(field: str, message: str) -> Problem:
    return Problem("the Action's inputs", None, None, field, message)
