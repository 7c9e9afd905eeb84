"""`loopbot action`: the GitHub Action's entrypoint. A composition root: it reads the Actions
environment (event, inputs, credentials) and dispatches the event to a loop.

| event                                  | what happens                                   |
|----------------------------------------|------------------------------------------------|
| schedule, workflow_dispatch            | audit loop → plan issues                       |
| issues.labeled (labels.run)            | execute that plan issue                        |
| issue_comment `/loop …`                | run, stop, resume, retry, status, context      |
| pull_request_review on a loop/* PR     | iterate again with the review as feedback      |
| push to the default branch             | documentation loop → wiki PR                   |
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from loopbot.clock import SystemClock
from loopbot.config import CONFIG_PATH, Config, parse_config
from loopbot.core import commands
from loopbot.core.github_goal import constrain
from loopbot.core.redact import Redactor, secrets_from_env
from loopbot.core.state import LoopState, Status
from loopbot.errors import InputError, LoopbotError, Problem
from loopbot.forge.github.forge import GitHubForge, PermissionUnknown, connect
from loopbot.forge.github.publisher import GitHubPublisher
from loopbot.goal import Goal, slugify
from loopbot.plans import goal_from_markdown
from loopbot.providers import ProviderEnv
from loopbot.report import render_report
from loopbot.session import Paths, create_run, held_secrets, open_session
from loopbot.store.git_state import GitStateStore
from loopbot.workspace.git import git, resolve_rev

_LOOP_BRANCH = re.compile(r"^loop/(\d+)-[a-z0-9._-]+$")
_MARK = "<!-- loopbot:reply -->"


@dataclass
class Context:
    env: Mapping[str, str]
    event: str
    payload: dict[str, Any]
    owner: str
    repo: str
    checkout: Path
    default_branch: str
    config: Config
    forge: GitHubForge
    state_dir: Path
    on_checkpoint: Callable[[LoopState], None] | None
    outputs: dict[str, str]


def _read_config(checkout: Path, default_branch: str, path: str) -> Config:
    """The repo config from the default branch only: a pull request can never change the bot's config."""
    for ref in (f"refs/remotes/origin/{default_branch}", f"refs/heads/{default_branch}"):
        if git(checkout, "rev-parse", "--verify", "--quiet", ref, check=False).returncode != 0:
            continue
        shown = git(checkout, "show", f"{ref}:{path}", check=False)
        return parse_config(shown.stdout, f"{default_branch}:{path}") if shown.returncode == 0 else Config()
    # Never HEAD: on a pull request's checkout that is the PR's own config. Fail closed.
    raise InputError([Problem(f"{default_branch}:{path}", None, None, "", (
        f"the default branch {default_branch!r} is not in the checkout, so the config cannot be read from it; "
        "check out with `fetch-depth: 0` (or fetch the default branch) before loopbot runs"))])


def _context(env: Mapping[str, str], transport: httpx.BaseTransport | None, sleep: Callable[[float], None],
             on_checkpoint: Callable[[LoopState], None] | None) -> Context:
    event = env.get("GITHUB_EVENT_NAME", "")
    payload = json.loads(Path(env["GITHUB_EVENT_PATH"]).read_text()) if env.get("GITHUB_EVENT_PATH") else {}
    owner, _, repo = env.get("GITHUB_REPOSITORY", "/").partition("/")
    checkout = Path(env.get("GITHUB_WORKSPACE", "."))
    default_branch = payload.get("repository", {}).get("default_branch") or env.get("LOOPBOT_DEFAULT_BRANCH", "main")
    config_path = env.get("LOOPBOT_CONFIG") or CONFIG_PATH
    config = _read_config(checkout, default_branch, config_path)
    if env.get("LOOPBOT_MAX_COST_USD"):
        budgets = config.budgets.model_copy(update={"max_cost_usd": float(env["LOOPBOT_MAX_COST_USD"])})
        config = config.model_copy(update={"budgets": budgets})
    forge = connect(owner=owner, repo=repo, api_url=env.get("GITHUB_API_URL", "https://api.github.com"),
                    token=env.get("LOOPBOT_GITHUB_TOKEN") or env.get("GITHUB_TOKEN"),
                    app_id=env.get("LOOPBOT_APP_ID") or None, private_key=env.get("LOOPBOT_APP_PRIVATE_KEY") or None,
                    transport=transport, sleep=sleep)
    state_dir = Path(env.get("RUNNER_TEMP", "/tmp")) / "loopbot"
    return Context(env, event, payload, owner, repo, checkout, default_branch, config, forge, state_dir,
                   on_checkpoint, {})


def run_action(env: Mapping[str, str], *, transport: httpx.BaseTransport | None = None,
               sleep: Callable[[float], None] = time.sleep,
               on_checkpoint: Callable[[LoopState], None] | None = None) -> int:
    ctx = _context(env, transport, sleep, on_checkpoint)
    mode = env.get("LOOPBOT_MODE", "auto")
    action = ctx.payload.get("action")
    if mode == "audit" or (mode == "auto" and ctx.event in ("schedule", "workflow_dispatch")):
        code = _audit(ctx)
    elif mode == "docs" or (mode == "auto" and ctx.event == "push"):
        code = _docs(ctx)
    elif ctx.event == "issues" and action == "labeled":
        if (ctx.payload.get("label") or {}).get("name") != ctx.config.labels.run:
            return 0
        issue = ctx.payload.get("issue") or {}
        # The body the labeller saw is the goal that runs.
        code = _execute(ctx, int(issue["number"]), actor=ctx.payload.get("sender") or {},
                        approved=issue.get("body") or "")
    elif ctx.event == "issue_comment" and action == "created":
        code = _comment(ctx)
    elif ctx.event == "pull_request_review" and action == "submitted":
        code = _review(ctx)
    else:
        print(f"loopbot: nothing to do for {ctx.event}.{action}")
        code = 0
    _write_outputs(ctx)
    return code


def _is_bot(user: Mapping[str, Any]) -> bool:
    return user.get("type") == "Bot" or str(user.get("login", "")).endswith("[bot]")


def _allowed(ctx: Context, user: Mapping[str, Any]) -> bool:
    """Writers, and bots the config names. A failed lookup raises PermissionUnknown (said so)."""
    login = str(user.get("login") or "")
    return bool(login) and ctx.forge.may_trigger(login, is_bot=_is_bot(user), bots=ctx.config.bots)


def _own(comment: Mapping[str, Any]) -> bool:
    """loopbot's own comments (its refusals and reports quote commands): never commands or context."""
    return _is_bot(comment.get("user") or {}) and "<!-- loopbot:" in (comment.get("body") or "")


def _plan_issue_of_branch(ref: str) -> int | None:
    """The plan issue of a loop branch loopbot made (loop/<issue>-<slug>); None for any other."""
    found = _LOOP_BRANCH.match(ref)
    return int(found.group(1)) if found else None


def _refuse(ctx: Context, number: int, user: Mapping[str, Any], what: str) -> int:
    login = user.get("login", "someone")
    who = "bots not named in `bots:` of .github/loopbot.yml" if _is_bot(user) else "users without write access"
    ctx.forge.comment(number, f"{_MARK}\n@{login} {what} was not started: loopbot takes commands from collaborators "
                              f"with write, maintain or admin permission; {who} cannot trigger loops.")
    ctx.outputs["status"] = "refused"
    return 0


def _comment(ctx: Context) -> int:
    comment, issue = ctx.payload.get("comment") or {}, ctx.payload.get("issue") or {}
    user = comment.get("user") or {}
    if _own(comment) or not user.get("login"):
        return 0
    number = int(issue["number"])
    try:
        command = commands.parse(comment.get("body") or "")
    except commands.CommandError as exc:
        if _allowed(ctx, user):  # outsiders get no replies they could use to flood an issue
            ctx.forge.comment(number, f"{_MARK}\n@{user.get('login')} {exc}")
        return 0
    if command is None:
        return 0
    if not _allowed(ctx, user):
        return _refuse(ctx, number, user, f"`/loop {command.verb}`")
    plan = number
    if "pull_request" in issue:
        found = _loop_pr_plan(ctx, number)
        if found is None:
            ctx.forge.comment(number, f"{_MARK}\n@{user.get('login')} loops run from plan issues: this pull request is "
                                      "not one a loop opened, so `/loop` commands do nothing here.")
            ctx.outputs["status"] = "not_a_loop_pr"
            return 0
        plan = found
    if command.verb == "status":
        latest = GitStateStore(ctx.checkout, "origin", f"loop/state-{plan}").latest()
        text = render_report(latest) if latest else "No loop has run for this issue yet."
        ctx.forge.comment(number, text)
        return 0
    if command.verb == "stop":
        ctx.forge.add_labels(plan, ctx.config.labels.stop)
        ctx.forge.comment(number, "Stopping after the current step; the best work so far stays on the branch.")
        return 0
    if command.verb == "context":
        ctx.forge.comment(number, f"{_MARK}\nNoted: the next iteration gets this as context.")
        return 0
    feedback = _feedback(ctx, number) if "pull_request" in issue else None
    # A /loop run on the plan issue approves the body as the commenter saw it (the payload's).
    approved = issue.get("body") or "" if plan == number else None
    return _execute(ctx, plan, actor=user, fresh=command.verb == "retry", feedback=feedback, approved=approved)


def _feedback(ctx: Context, pr: int) -> str:
    return ctx.forge.review_feedback(pr, trusted=lambda user: _allowed(ctx, user))


def _loop_pr_plan(ctx: Context, number: int) -> int | None:
    """The plan issue of loop PR `number`: from the branch loopbot made, never from the PR's text."""
    for pr in ctx.forge.loop_prs():
        if int(pr.get("number", 0)) == number:
            return _plan_issue_of_branch(str((pr.get("head") or {}).get("ref", "")))
    return None


def _review(ctx: Context) -> int:
    review, pull = ctx.payload.get("review") or {}, ctx.payload.get("pull_request") or {}
    plan = _plan_issue_of_branch(str((pull.get("head") or {}).get("ref", ""))) if ctx.forge.is_loop_pr(pull) else None
    if plan is None or "loopbot:review" in (review.get("body") or ""):
        return 0
    if str(review.get("state") or "").lower() not in ("changes_requested", "commented"):
        return 0
    user = review.get("user") or {}
    if not _allowed(ctx, user):
        return 0  # reviews from outsiders are ignored silently: they do not ask for a reply
    return _execute(ctx, plan, actor=user, feedback=_feedback(ctx, int(pull["number"])))


def _execute(ctx: Context, number: int, *, actor: Mapping[str, Any], fresh: bool = False,
             feedback: str | None = None, approved: str | None = None) -> int:
    if not _allowed(ctx, actor):
        return _refuse(ctx, number, actor, "the loop")
    issue = ctx.forge.issue(number)
    if approved is not None and approved.strip() != issue.body.strip():
        # Edited between the approval and this run: what runs must be what a writer saw.
        ctx.forge.comment(number, f"{_MARK}\n@{actor.get('login')} the issue was edited after the loop was "
                                  "approved, so no loop ran. Read the current text and approve it again (remove "
                                  "and add the label, or comment `/loop run`).")
        ctx.outputs["status"] = "edited_after_approval"
        return 0
    remote = "origin"
    git(ctx.checkout, "fetch", "--quiet", remote, check=False)
    redact = Redactor(held_secrets(ctx.checkout, secrets_from_env(dict(ctx.env))))
    store = GitStateStore(ctx.checkout, remote, f"loop/state-{number}", redact=redact,
                          cancel_check=lambda: ctx.config.labels.stop in ctx.forge.issue(number).labels)
    latest = store.latest()
    try:
        goal = constrain(goal_from_markdown(issue.body, f"issue #{number}"), ctx.config, f"issue #{number}")
    except InputError as exc:
        problems = "\n".join(f"- {p}" for p in exc.problems)
        ctx.forge.comment(number, f"This issue's goal is not valid, so no loop ran:\n\n{problems}\n\n"
                                  "Fix the fenced ```yaml block and add the label again.")
        ctx.outputs["status"] = "invalid_goal"
        return 0
    if approved is None and latest is not None and _goal_key(latest.goal) != _goal_key(goal):
        # A review or a command on the loop PR continues the approved loop: the issue's goal must
        # still be the one that loop ran, or a writer approves the edited one first.
        ctx.forge.comment(number, f"{_MARK}\n@{actor.get('login')} the issue's goal changed since the loop "
                                  "last ran, so no loop ran. Approve the current text on the issue (remove "
                                  "and add the label, or comment `/loop run` there).")
        ctx.outputs["status"] = "edited_after_approval"
        return 0
    ctx.forge.remove_label(number, ctx.config.labels.stop)
    extra = _context_from_writers(ctx, number)
    if extra:
        goal = goal.model_copy(update={"context": "\n\n".join(filter(None, [goal.context, *extra]))})

    branch = f"loop/{number}-{slugify(goal.id, 30)}"
    paths = Paths(ctx.state_dir)
    if latest is not None and not latest.finished and not fresh and feedback is None:
        # A previous runner died: resume where it left off, on this runner's checkout.
        state = latest.model_copy(update={"repo": str(ctx.checkout),
                                          "worktree": str(paths.worktree(latest.run_id))})
    else:
        open_prs = [p for p in ctx.forge.loop_prs() if p["head"]["ref"] != branch]
        hour_ago = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
        recent = [p for p in open_prs if str(p.get("created_at", "")) >= hour_ago]
        limits = ctx.config.limits
        if len(open_prs) >= limits.max_open_prs or len(recent) >= limits.max_new_prs_per_hour:
            ctx.forge.comment(number, f"Not started yet: {len(open_prs)} loop pull requests are open and "
                                      f"{len(recent)} were opened in the last hour (limits: max_open_prs "
                                      f"{limits.max_open_prs}, max_new_prs_per_hour {limits.max_new_prs_per_hour}). "
                                      "Comment `/loop run` again later.")
            ctx.outputs["status"] = "limited"
            return 0
        base = "HEAD"
        if feedback is not None and git(ctx.checkout, "rev-parse", "--verify", "--quiet",
                                        f"refs/remotes/{remote}/{branch}", check=False).returncode == 0:
            base = f"refs/remotes/{remote}/{branch}"  # iterate on the PR's work, with the review as feedback
        run_id = f"{goal.id}-{number}-{int(time.time())}"
        state = create_run(goal, f"issue #{number}", ctx.checkout, paths=paths, model=ctx.env.get("LOOPBOT_MODEL") or None,
                           config=ctx.config, remote=remote, base=base, run_id=run_id, branch=branch,
                           protect_adds=True)
        if base != "HEAD":
            state = state.model_copy(update={"base_sha": resolve_rev(ctx.checkout, f"refs/remotes/{remote}/"
                                                                    f"{ctx.default_branch}")})
        if feedback:
            state = state.model_copy(update={"feedback": "## Review feedback from a human\n\n" + feedback})
    # Validates models and the sandbox, then records a new run (or claims a resumed one) before acting.
    session = open_session(state, paths, store=store, secrets=secrets_from_env(dict(ctx.env)),
                           on_checkpoint=ctx.on_checkpoint, provider_env=ProviderEnv.from_mapping(ctx.env),
                           resume=state.steps_completed > 0 or state.suspended is not None)
    publisher = GitHubPublisher(ctx.forge, session.runner.workspace, issue=number, base_branch=ctx.default_branch,
                                labels=ctx.config.labels, remote=remote, redact=session.redact,
                                sandbox_note=session.files.sandbox_note, clock=SystemClock())
    session.runner.observers.append(publisher)
    final = session.runner.run(state)
    ctx.outputs.update({"loop_id": final.run_id,
                        "status": "suspended" if final.suspended is not None else final.status.value, "cost": f"{final.spend.cost_usd:.4f}",
                        "pr_number": str(publisher.pr.number) if publisher.pr else ""})
    summary = ctx.env.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(session.redact(render_report(final, sandbox_note=session.files.sandbox_note)))
    return 0 if final.status == Status.SUCCESS else 1


def _goal_key(goal: Goal) -> str:
    """A goal as approved: everything but the context (which later `/loop context` comments add to)."""
    return json.dumps(goal.model_dump(mode="json", exclude={"context"}), sort_keys=True)


def _context_from_writers(ctx: Context, number: int) -> list[str]:
    """`/loop context` texts of the issue's comments, from writers only, loopbot's own never."""
    found = []
    for item in ctx.forge.comments(number):
        if _own(item):
            continue
        try:
            command = commands.parse(item.get("body") or "")
        except commands.CommandError:
            continue
        if command is not None and command.verb == "context" and _allowed(ctx, item.get("user") or {}):
            found.append(command.text)
    return found


def _audit(ctx: Context) -> int:
    from loopbot.audit import audit
    from loopbot.providers import build_model
    from loopbot.sandbox.subprocess_runner import SubprocessSandbox

    spec = ctx.env.get("LOOPBOT_MODEL") or ctx.config.models.resolve(ctx.config.models.auditor)
    model = build_model(spec, models=ctx.config.models, env=ProviderEnv.from_mapping(ctx.env))
    result = audit(ctx.checkout, model=model, config=ctx.config, forge=ctx.forge, sandbox=SubprocessSandbox(),
                   clock=SystemClock(), lessons=[])
    ctx.outputs["status"] = f"filed {len(result.filed)}"
    print(result.markdown())
    return 0


def _docs(ctx: Context) -> int:
    ref = ctx.payload.get("ref", "")
    if ref and ref != f"refs/heads/{ctx.default_branch}":
        return 0
    from loopbot.forge.local import LocalForge
    from loopbot.providers import build_model
    from loopbot.sandbox.subprocess_runner import SubprocessSandbox
    from loopbot.wiki.update import docs

    spec = ctx.env.get("LOOPBOT_MODEL") or ctx.config.models.resolve(ctx.config.models.documenter)
    model = build_model(spec, models=ctx.config.models, env=ProviderEnv.from_mapping(ctx.env))
    since = ctx.payload.get("before") or "HEAD~1"
    if set(since) == {"0"}:
        since = "HEAD~1"
    result = docs(ctx.checkout, since=since, model=model, config=ctx.config,
                  forge=LocalForge(ctx.checkout, ctx.state_dir / "proposals"), sandbox=SubprocessSandbox(),
                  clock=SystemClock(), state_root=ctx.state_dir, remote="origin")
    if result.pushed:
        pr = ctx.forge.open_pr(result.branch, ctx.default_branch, f"docs: wiki for {result.branch[10:]}", result.body())
        ctx.outputs["pr_number"] = str(pr.number)
    ctx.outputs["status"] = "documented" if result.changed else "current"
    return 0


def _write_outputs(ctx: Context) -> None:
    path = ctx.env.get("GITHUB_OUTPUT")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            for key in ("loop_id", "status", "pr_number", "cost"):
                handle.write(f"{key}={ctx.outputs.get(key, '')}\n")


def main(env: Mapping[str, str]) -> int:
    try:
        return run_action(env)
    except PermissionUnknown as exc:
        # Never read as "no access": the run did not start, and the log says why.
        print(f"::error::{exc}; nothing was started, re-run the job")
        return 2
    except InputError as exc:
        for problem in exc.problems:
            print(f"::error::{problem}")
        return 2
    except LoopbotError as exc:
        print(f"::error::{exc}")
        return 2
