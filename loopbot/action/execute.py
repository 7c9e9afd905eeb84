"""Carrying out what the router decided: replies, status, stop, the loops. Wiring only: every
decision about who may do what, and which goal runs, was made in `core.route`."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from loopbot.action.facts import GitHubFacts, state_store
from loopbot.action.inputs import ActionInputs
from loopbot.clock import SystemClock
from loopbot.config import Config
from loopbot.core.decide import reopen, reopenable
from loopbot.core.lease import HEARTBEAT_SECONDS, Lease, parse_github_actions_job
from loopbot.core.redact import Redactor, secrets_from_env
from loopbot.core.route import MARK, Intent, Repo, actor_kind, may_steer
from loopbot.core.state import LoopState, Status
from loopbot.errors import LeaseLost
from loopbot.forge.github.forge import GitHubForge
from loopbot.forge.github.publisher import GitHubPublisher
from loopbot.goal import slugify
from loopbot.providers import ProviderEnv
from loopbot.providers.preflight import preflight
from loopbot.report import render_report
from loopbot.session import Session, create_run, held_secrets, open_session
from loopbot.statepaths import Paths
from loopbot.store.git_state import GitStateStore, LeaseBusy
from loopbot.workspace.credentials import push_env
from loopbot.workspace.git import git, resolve_rev


@dataclass
class Job:
    inputs: ActionInputs
    config: Config
    forge: GitHubForge
    facts: GitHubFacts
    repo: Repo
    on_checkpoint: Callable[[LoopState], None] | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    lease_clock: Callable[[], float] = time.time  # the heartbeat of the plan's lease (epoch seconds)


def execute(intent: Intent, job: Job) -> int:
    if intent.kind == "ignore":
        print(f"loopbot: {intent.why}; nothing to do")
        return 0
    if intent.kind in ("run", "resume", "retry"):
        return _loop(intent, job)
    if intent.kind == "audit":
        return _audit(job)
    if intent.kind == "docs":
        return _docs(intent, job)
    job.outputs["status"] = intent.why
    if intent.why == "permission_unknown":
        # Never read as "no access": nothing started, and the log says why.
        for problem in job.facts.problems or [f"could not look up @{intent.actor}'s permission"]:
            print(f"::error::{problem}; nothing was started, re-run the job")
    assert intent.where is not None or intent.reply is None
    if intent.kind == "status":
        assert intent.plan is not None and intent.where is not None
        latest = job.facts.state(intent.plan)
        text = render_report(latest) if latest else "No loop has run for this issue yet."
        job.forge.comment(intent.where, f"{MARK}\n{text}")
    elif intent.kind == "stop":
        assert intent.plan is not None and intent.where is not None
        job.forge.add_labels(intent.plan, job.config.labels.stop)
        job.forge.comment(intent.where, f"{MARK}\nStopping after the current step; the best work so far stays on "
                                        "the branch. `/loop resume` continues it.")
    elif intent.reply is not None and intent.where is not None:
        job.forge.comment(intent.where, intent.reply)
    return intent.exit_code


def _loop(intent: Intent, job: Job) -> int:
    assert intent.plan is not None and intent.goal is not None
    number, goal, inputs = intent.plan, intent.goal, job.inputs
    remote, checkout = job.config.push.remote, inputs.checkout
    git(checkout, "fetch", "--quiet", remote, check=False)
    secrets = secrets_from_env(dict(inputs.env))
    push_token = job.forge.push_token()  # App credentials: loop pushes start the repository's workflows
    if push_token:
        secrets = [*secrets, push_token]
    stop_label = job.config.labels.stop
    # The plan's lease names this job, so another runner on the plan is told who holds it.
    store = state_store(checkout, remote, number, stop_label=stop_label, redact=Redactor(held_secrets(checkout, secrets)),
                        cancel_check=lambda: stop_label in job.forge.issue(number).labels,
                        runner=inputs.runner, clock=job.lease_clock, heartbeat_seconds=HEARTBEAT_SECONDS,
                        job=inputs.job, holder_ended=lambda lease: _job_ended(job.forge, lease))
    latest = job.facts.state(number)
    branch = f"loop/{number}-{slugify(goal.id, 30)}"
    paths = Paths(inputs.state_dir)
    if intent.kind == "resume" and latest is not None:
        # A previous runner died or the loop was stopped: resume where it left off, on this checkout.
        state = latest.model_copy(update={"repo": str(checkout), "worktree": str(paths.worktree(latest.run_id))})
        if reopenable(state) and intent.why != "publish":
            # Stopped by a budget or the andon, and a writer asks for more: the same run goes on, on
            # its branch, with one more allowance of the (current) caps.
            state = reopen(state, goal.budgets.apply_to(job.config.budgets))
    else:
        base = "HEAD"
        on_origin = git(checkout, "rev-parse", "--verify", "--quiet", f"refs/remotes/{remote}/{branch}",
                        check=False).returncode == 0
        has_pr = any(pr.plan == number for pr in job.facts.loop_prs())
        if on_origin and intent.kind != "retry" and (intent.feedback_pr is not None or has_pr):
            # Iterate on the PR's work as it is on origin, a maintainer's commits included; retry
            # starts over from the default branch.
            base = f"refs/remotes/{remote}/{branch}"
        state = create_run(goal, f"issue #{number}", checkout, paths=paths, model=inputs.model, config=job.config,
                           remote=remote, base=base, run_id=f"{goal.id}-{number}-{int(time.time())}", branch=branch,
                           protect_adds=True)
        # Every push is leased against the branch as it is on origin now: a maintainer's commit pushed
        # while the loop runs is kept, never overwritten (retry starts over on purpose: its lease is
        # the head it replaces).
        remote_head = resolve_rev(checkout, f"refs/remotes/{remote}/{branch}") if on_origin else ""
        update: dict[str, Any] = {"trigger": intent.trigger, "remote_head": remote_head}
        if latest is not None:
            update["memory"] = latest.memory  # approaches that failed on this plan stay blocked in the next run
        if base != "HEAD":
            update["base_sha"] = resolve_rev(checkout, f"refs/remotes/{remote}/{inputs.default_branch}")
        feedback = _feedback(intent.feedback_pr, job) if intent.feedback_pr is not None else ""
        if feedback:
            update["feedback"] = "## Review feedback from a human\n\n" + feedback
        state = state.model_copy(update=update)
    # Validates models and the sandbox, then records a new run (or claims a resumed one) before acting:
    # both take the plan's lease, so nothing is written to GitHub before it is held.
    try:
        # The report's links go to this server (GitHub Enterprise too), not to what the remote URL says.
        session = open_session(state, paths, store=store, secrets=secrets, on_checkpoint=job.on_checkpoint,
                               web_url=f"{inputs.server_url.rstrip('/')}/{inputs.full_name}",
                               provider_env=ProviderEnv.from_mapping(inputs.env),
                               resume=intent.kind == "resume" or state.steps_completed > 0 or state.suspended is not None)
    except LeaseBusy as busy:
        return _busy(intent, job, busy)
    job.forge.remove_label(number, stop_label)
    try:
        return _run(job, session, state, store, number, push_token)
    except LeaseLost as lost:
        # Another runner took the plan over (this one's lease went stale): stop, write nothing more.
        job.outputs["status"] = "lease_lost"
        print(f"::error::{lost}")
        return 2
    finally:
        store.close()


def _job_ended(forge: GitHubForge, lease: Lease) -> bool:
    """A lease held by a GitHub Actions job that GitHub says has completed (killed, cancelled, timed
    out, or an earlier attempt of a re-run) is free now, not in ten minutes."""
    held_by = parse_github_actions_job(lease.job)
    return held_by is not None and forge.job_ended(*held_by)


def _busy(intent: Intent, job: Job, busy: LeaseBusy) -> int:
    """Another runner holds the plan (another workflow, a manual dispatch, the App): said where asked."""
    job.outputs["status"] = busy.status
    print(f"::warning::{busy}")
    if intent.where is not None:
        job.forge.comment(intent.where, f"{MARK}\n@{intent.actor} {busy}.")
    return 0


def _run(job: Job, session: Session, state: LoopState, store: GitStateStore, number: int,
         push_token: str | None) -> int:
    inputs = job.inputs
    if push_token:
        server, forge = inputs.server_url, job.forge
        # Asked for at each push: a loop outlives an installation token's hour. State pushes keep
        # the checkout's GITHUB_TOKEN, whose pushes start no workflows.
        session.runner.workspace.push_env = lambda: push_env(server, forge.push_token() or "")
    publisher = GitHubPublisher(job.forge, issue=number, base_branch=inputs.default_branch, labels=job.config.labels,
                                redact=session.redact, sandbox_note=session.files.sandbox_note, clock=SystemClock(),
                                web_url=session.files.web_url)
    session.runner.observers.append(publisher)
    final = session.runner.run(state)
    job.outputs.update({"loop_id": final.run_id, "cost": f"{final.spend.cost_usd:.4f}",
                        "status": "suspended" if final.suspended is not None else final.status.value,
                        "pr_number": str(publisher.pr.number) if publisher.pr else ""})
    if final.finished and not final.published:
        # A finished run on a DONE state only tells its observers again: this is publishing, a
        # resumable phase after the loop's last step. Done once GitHub took all of it.
        unshown = [note for note in session.runner.observer_failures if note.startswith("GitHubPublisher")]
        if unshown:
            print(f"::warning::the outcome is not fully shown on GitHub ({unshown[-1]}); `/loop resume` shows it")
        else:
            final = final.model_copy(update={"published": True})
            store.save(final, "published")
    if final.finished:
        # The run's record for the wiki's 90_LOG/: the documentation loop files it after a merge.
        incident = session.files.incident_path
        store.memory.record_run(final.run_id, {
            "report.md": render_report(final, sandbox_note=session.files.sandbox_note),
            "incident.md": incident.read_text(encoding="utf-8") if incident.is_file() else ""})
    if inputs.summary_path:
        with open(inputs.summary_path, "a", encoding="utf-8") as handle:
            handle.write(session.redact(render_report(final, sandbox_note=session.files.sandbox_note)))
    # A goal met whose push is still pending is not done: the job fails until it is delivered.
    return 0 if final.status == Status.SUCCESS and final.suspended is None else 1


def _feedback(pr: int, job: Job) -> str:
    """The loop PR's reviews and inline comments, from those who may steer the loop only."""
    def trusted(user: Mapping[str, Any]) -> bool:
        return may_steer(actor_kind(user, job.facts, job.config, job.repo))

    return job.forge.review_feedback(pr, trusted=trusted)


def _restore_run_records(inputs: ActionInputs, remote: str) -> None:
    """The records of runs on other runners, from the memory branch, where the docs loop looks."""
    from loopbot.store.git_memory import GitMemory

    runs = Paths(inputs.state_dir)
    for run_id, records in GitMemory(inputs.checkout, remote).runs().items():
        directory = runs.run_dir(run_id)
        directory.mkdir(parents=True, exist_ok=True)
        for name, text in records.items():
            target = directory / name
            if not target.exists():
                target.write_text(text, encoding="utf-8")


def _audit(job: Job) -> int:
    from loopbot.audit import audit
    from loopbot.providers import build_model
    from loopbot.sandbox.subprocess_runner import SubprocessSandbox

    config, inputs = job.config, job.inputs
    spec = inputs.model or config.models.resolve(config.models.auditor)
    model = build_model(spec, models=config.models, env=ProviderEnv.from_mapping(inputs.env))
    preflight([model])  # an unreachable endpoint or a refused key: exit 2 before anything is made
    result = audit(inputs.checkout, model=model, config=config, forge=job.forge, sandbox=SubprocessSandbox(),
                   clock=SystemClock(), lessons=[])
    job.outputs["status"] = f"filed {len(result.filed)}"
    print(result.markdown())
    return 0


def _docs(intent: Intent, job: Job) -> int:
    from loopbot.forge.local import LocalForge
    from loopbot.providers import build_model
    from loopbot.sandbox.subprocess_runner import SubprocessSandbox
    from loopbot.wiki.update import docs

    config, inputs = job.config, job.inputs
    _restore_run_records(inputs, config.push.remote)
    spec = inputs.model or config.models.resolve(config.models.documenter)
    model = build_model(spec, models=config.models, env=ProviderEnv.from_mapping(inputs.env))
    preflight([model])
    result = docs(inputs.checkout, since=intent.since or "HEAD~1", model=model, config=config,
                  forge=LocalForge(inputs.checkout, inputs.state_dir / "proposals"), sandbox=SubprocessSandbox(),
                  clock=SystemClock(), state_root=inputs.state_dir, remote=config.push.remote)
    if result.pushed:
        pr = job.forge.open_pr(result.branch, inputs.default_branch, f"docs: wiki for {result.branch[10:]}",
                               result.body())
        job.outputs["pr_number"] = str(pr.number)
    job.outputs["status"] = "documented" if result.changed else "current"
    return 0
