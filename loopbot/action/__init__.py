"""`loopbot action`: the GitHub Action's entrypoint, a composition root. It reads the Actions
environment once (`inputs`), connects to GitHub, lets the pure router (`core.route`) decide what
the event asks for with facts fetched from GitHub and git (`facts`), and carries that out
(`execute`).

| event                                  | what happens                                   |
|----------------------------------------|------------------------------------------------|
| schedule, workflow_dispatch            | audit loop → plan issues                       |
| issues.labeled (labels.run)            | execute that plan issue                        |
| issue_comment `/loop …`                | run, stop, resume, retry, status, context      |
| pull_request_review on a loop/* PR     | iterate again with the review as feedback      |
| push to the default branch             | documentation loop → wiki PR                   |
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import httpx

from loopbot.action.execute import Job, execute
from loopbot.action.facts import GitHubFacts
from loopbot.action.inputs import ActionInputs, read_config, read_default_branch_file
from loopbot.config import Config
from loopbot.core.route import MARK, Repo, route
from loopbot.core.state import LoopState
from loopbot.core.workflow_label import run_label_of
from loopbot.errors import InputError, LoopbotError
from loopbot.forge.github.forge import PermissionUnknown, connect

__all__ = ["PermissionUnknown", "main", "read_config", "run_action"]

OUTPUTS = ("loop_id", "status", "pr_number", "cost")


def run_action(env: Mapping[str, str], *, transport: httpx.BaseTransport | None = None,
               sleep: Callable[[float], None] = time.sleep,
               on_checkpoint: Callable[[LoopState], None] | None = None,
               lease_clock: Callable[[], float] = time.time) -> int:
    inputs = ActionInputs.from_env(env)
    outputs: dict[str, str] = {}
    try:
        forge = connect(owner=inputs.owner, repo=inputs.repo, api_url=inputs.api_url, token=inputs.token,
                        app_id=inputs.app_id, private_key=inputs.private_key, transport=transport, sleep=sleep)
        repo = Repo(inputs.full_name, inputs.default_branch, inputs.self_logins)
        try:
            config = inputs.config()
        except InputError as exc:
            outputs["status"] = "invalid_config"
            _say_config_is_invalid(exc, inputs, GitHubFacts(forge, inputs.checkout), repo)
            raise
        forge.labels = config.labels
        facts = GitHubFacts(forge, inputs.checkout, remote=config.push.remote)
        mismatch = _workflow_label_mismatch(inputs, config)
        if mismatch is not None:
            if inputs.event == "issues" and inputs.payload.get("action") == "labeled":
                # The label that started this job is not the one loopbot starts loops on (or the
                # other way round): said, instead of a label that silently does nothing.
                outputs["status"] = "label_mismatch"
                print(f"::error::{mismatch}; nothing was started")
                return 2
            print(f"::warning::{mismatch}")
        intent = route(inputs.event, inputs.payload, config, facts, repo, mode=inputs.mode, now=_now())
        print(f"loopbot: {inputs.event}.{inputs.payload.get('action')} → {intent.kind}"
              + (f" ({intent.why})" if intent.why and intent.why != intent.kind else ""))
        job = Job(inputs, config, forge, facts, repo, on_checkpoint, outputs, lease_clock)
        return execute(intent, job)
    except InputError:
        outputs.setdefault("status", "invalid_input")
        raise
    except Exception:
        # loopbot reported, with an error: the workflow's `dropped` job answers only a job that
        # died unreported (an empty status), such as one stopped at its time limit.
        outputs.setdefault("status", "error")
        raise
    finally:
        _write_outputs(inputs.output_path, outputs)  # on every path, early returns and errors included


def _say_config_is_invalid(error: InputError, inputs: ActionInputs, facts: GitHubFacts, repo: Repo) -> None:
    """A writer's command met a broken config: say so where they asked, not only in the job log.
    Routed with the default config, so only those who could steer a loop get the reply."""
    intent = route(inputs.event, inputs.payload, Config(), facts, repo, mode=inputs.mode)
    if intent.where is None or intent.kind in ("ignore", "refuse", "audit", "docs"):
        return
    problems = "\n".join(f"- {p}" for p in error.problems)
    facts.forge.comment(intent.where, f"{MARK}\n@{intent.actor} loopbot's config is not valid, so nothing ran:"
                                      f"\n\n{problems}\n\nFix it on the default branch and ask again.")


def _workflow_label_mismatch(inputs: ActionInputs, config: Config) -> str | None:
    """The running workflow's label filter and the config's labels.run, when they disagree and
    the workflow says which label it filters on."""
    if inputs.workflow_path is None:
        return None
    text = read_default_branch_file(inputs.checkout, inputs.default_branch, inputs.workflow_path)
    label = run_label_of(text) if text else None
    if label is None or label == config.labels.run:
        return None
    return (f"{inputs.workflow_path} starts loops on the label {label!r}, but labels.run in {inputs.config_path} "
            f"is {config.labels.run!r}: change one to match (`loopbot init --force` writes the workflows "
            "with the configured labels)")


def _now() -> datetime:
    return datetime.now(UTC)


def _write_outputs(path: str | None, outputs: Mapping[str, str]) -> None:
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            for key in OUTPUTS:
                handle.write(f"{key}={outputs.get(key, '')}\n")


def main(env: Mapping[str, str]) -> int:
    try:
        return run_action(env)
    except PermissionUnknown as exc:
        print(f"::error::{exc}; nothing was started, re-run the job")
        return 2
    except InputError as exc:
        for problem in exc.problems:
            print(f"::error::{problem}")
        return 2
    except LoopbotError as exc:
        print(f"::error::{exc}")
        return 2
