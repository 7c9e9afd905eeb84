"""The offline demo: all three loops on the bundled example, with a scripted model.

audit → plan file → execution loop (fails, is rejected, succeeds) → a reviewer merges →
documentation loop → wiki branch. loopbot never merges; the demo plays the human for that step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.text import Text

from loopbot.audit import audit
from loopbot.clock import SystemClock
from loopbot.config import Config
from loopbot.core.state import LoopState, Status
from loopbot.examples import KVSTORE
from loopbot.examples.setup import make_example_repo
from loopbot.forge.local import LocalForge
from loopbot.plans import goal_from_markdown
from loopbot.sandbox.subprocess_runner import SubprocessSandbox
from loopbot.session import Session, create_run, open_session
from loopbot.statepaths import Paths
from loopbot.testing.scripted import ScriptedModel
from loopbot.wiki.update import DocsResult, docs
from loopbot.workspace.git import git, resolve_rev

SCRIPT = KVSTORE / "script.yaml"


@dataclass
class DemoResult:
    repo: Path
    origin: Path
    loop: LoopState
    session: Session
    docs: DocsResult | None


def run_demo(base: Path, console: Console, drive: Callable[[Session], LoopState], secrets: list[str]) -> DemoResult:
    repo, origin = make_example_repo(KVSTORE / "repo", base)
    paths = Paths.for_repo(repo)
    config = Config()
    forge = LocalForge(repo, paths.root / "proposals")
    model_spec = f"scripted:{SCRIPT}"
    console.print(Text(f"demo repo: {repo}  (origin: {origin})"))

    console.rule(Text("1. audit loop: review the repository, file plans"))
    audited = audit(repo, model=ScriptedModel.from_file(SCRIPT), config=config, forge=forge,
                    sandbox=SubprocessSandbox(), clock=SystemClock(), lessons=[])
    for plan in audited.filed:
        console.print(Text(f"  filed plan: {plan.title} → {plan.ref}"))
    ttl_plan = next(p for p in audited.filed if "TTL" in p.title)

    console.rule(Text("2. execution loop: run the TTL plan on a loop/* branch"))
    plan_path = repo / ttl_plan.ref
    goal = goal_from_markdown(plan_path.read_text(encoding="utf-8"), str(plan_path))
    state = create_run(goal, str(plan_path), repo, paths=paths, model=model_spec, config=config)
    # The demo's commands are our own bundled tests: without bubblewrap it still runs, saying so.
    session = open_session(state, paths, allow_unsandboxed=True, secrets=secrets)
    console.print(Text(f"sandbox: {session.files.sandbox_note}"))
    final = drive(session)
    if final.status != Status.SUCCESS:
        return DemoResult(repo, origin, final, session, None)

    console.rule(Text("3. a reviewer merges the pull request (the demo plays the human; loopbot never merges)"))
    before = resolve_rev(repo, "main")
    git(repo, "merge", "--no-ff", "--quiet", "-m", f"Merge {final.branch}: {goal.goal}", final.branch)
    git(repo, "push", "--quiet", "origin", "main")
    console.print(Text(f"  main: {before[:10]} → {resolve_rev(repo, 'main')[:10]}"))

    console.rule(Text("4. documentation loop: bring the wiki up to date on a loop/wiki-* branch"))
    documented = docs(repo, since=before, model=ScriptedModel.from_file(SCRIPT), config=config, forge=forge,
                      sandbox=SubprocessSandbox(), clock=SystemClock(), state_root=paths.root, remote="origin")
    for page in documented.changed:
        console.print(Text(f"  wiki: {page}"))
    return DemoResult(repo, origin, final, session, documented)
