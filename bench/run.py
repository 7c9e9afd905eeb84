"""loopbot benchmarks. Prints one JSON object per line: {"figure", "value", "unit", "target"}.

    python bench/run.py            # all figures
    python bench/run.py --files 2000 --iterations 3   # a quicker, smaller run
    python bench/kill_matrix.py    # the kill matrix (see its docstring)
    python bench/suite_cpu.py      # where the test suite's CPU goes, by file and test (cgroups; root)

Figures:
  controller_overhead_ratio  per-iteration controller time (everything but model time and the
                             evaluator commands) on a generated repo, over one `git add -A && git
                             commit` there. Target <= 2.
  eval_phase_ratio           wall time of the evaluation phase over its slowest evaluator. Target <= 1.2.
  sandbox_overhead_ms        extra wall time of a trivial command in bubblewrap over a bare subprocess. Target <= 50.
  hostile_input_max_s        the slowest refusal of hostile host-side input (YAML bombs, deep nesting, a 100 MB
                             document, 65,000 fences, a catastrophic regex). Target <= 2.
  hostile_input_peak_mb      the most memory loopbot took refusing any of those. Target <= 100.
  prompt_cache_ratio         share of input tokens from iteration 2 on served from the prompt cache, on a thinking
                             model (claude-sonnet-5) through the replay server. Target >= 0.92.
  reviewer_cache_waste       tokens the reviewers wrote to the prompt cache that no call ever read. Target 0.
  cost_per_success_usd       what the demo story costs at claude-sonnet-5's prices, to SUCCESS. Reported.
  prompt_tokens_growth       growth of the maker's first prompt from a 100- to a 10,000-file repo. Target < 0.20.
  demo_seconds               wall time of the offline demo loop (3 iterations). Target <= 60.
  cli_start_ms               median wall time of `loopbot -h`, `loopbot status` (an empty state dir) and
                             `import loopbot.session` (what every run loads first), 15 starts each. Target
                             <= 400 for status (it was 720 before the commands imported what they use).
  reward_hack_rate           gamed SUCCESS over attempts on the gaming corpus (loopbot/testing/gaming.py:
                             scripted tricks against a checker that approves everything). Target 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from loopbot.config import Config, SandboxConfig
from loopbot.core.context import approx_tokens
from loopbot.core.events import LoopEvent, ModelCalled
from loopbot.core.state import LoopState
from loopbot.examples import KVSTORE
from loopbot.examples.setup import init_repo, make_example_repo
from loopbot.goal import Goal, parse_goal
from loopbot.runner import iteration_overhead
from loopbot.sandbox.bubblewrap import BubblewrapSandbox
from loopbot.sandbox.subprocess_runner import SubprocessSandbox
from loopbot.session import Paths, create_run, open_session
from loopbot.testing.killharness import add_filler
from loopbot.testing.scripted import Script, ScriptedModel, load_script
from loopbot.workspace.git import git

ROLES = ("maker", "planner", "checker", "goal_checker")


def emit(figure: str, value: float, unit: str, target: str, **extra: object) -> None:
    print(json.dumps({"figure": figure, "value": round(value, 4), "unit": unit, "target": target, **extra}), flush=True)


def run_loop(repo: Path, goal: Goal, script: Script, *, remote: str | None = None) -> LoopState:
    """One loop, in process, with a scripted model for every role and default config."""
    model = ScriptedModel(script)
    paths = Paths.for_repo(repo)
    state = create_run(goal, "bench.yaml", repo, paths=paths, model="scripted:bench", config=Config(), remote=remote)
    session = open_session(state, paths, models=dict.fromkeys(ROLES, model))
    session.store.save(state, "created")
    return session.runner.run(state)


def generate_repo(root: Path, files: int) -> Path:
    repo = root / "big"
    for i in range(files):
        path = repo / "src" / f"pkg{i // 100:03d}" / f"mod{i:05d}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f'"""Module {i}."""\n\n\ndef f{i}(x: int) -> int:\n    return x + {i}\n')
    (repo / "target.py").write_text("VALUE = 0\n")
    init_repo(repo)
    return repo


def git_commit_seconds(repo: Path, samples: int = 5) -> float:
    """Median time of one `git add -A && git commit` after a one-file change, in the same repo."""
    times = []
    scratch = repo / "src" / "pkg000" / "mod00000.py"
    original = scratch.read_text()
    for n in range(samples):
        scratch.write_text(original + f"# change {n}\n")
        started = time.perf_counter()
        git(repo, "add", "-A")
        git(repo, "commit", "--quiet", "-m", f"bench {n}")
        times.append(time.perf_counter() - started)
    git(repo, "reset", "--quiet", "--hard", "HEAD~" + str(samples))
    return statistics.median(times)


def controller_overhead(root: Path, files: int, iterations: int) -> None:
    repo = generate_repo(root, files)
    baseline = git_commit_seconds(repo)
    goal = parse_goal(
        "id: bench\ngoal: never met, so every iteration runs the full loop\n"
        "acceptance:\n  - run: 'true'\n  - file: target.py\n    contains: NEVER\n"
        "scope:\n  allow: ['**']\n"
        f"budgets: {{max_iterations: {iterations}, stagnation_threshold: {iterations + 1}}}\n",
        "bench.yaml",
    )
    script = Script.model_validate({"maker": [{"iteration": "*", "turns": [
        {"text": "APPROACH: bump the value", "tools": [
            {"edit": {"path": "target.py", "search": "VALUE = 0", "replace": "VALUE = 1"}}]},
        {"tools": [{"done": {"summary": "bumped"}}]},
    ]}]})
    final = run_loop(repo, goal, script)
    overheads = [iteration_overhead(r) for r in final.iterations]
    per_iteration = statistics.median(overheads)
    emit("controller_overhead_ratio", per_iteration / baseline, "ratio", "<= 2",
         files=files, iterations=len(final.iterations), overhead_ms=round(per_iteration * 1000, 1),
         git_add_commit_ms=round(baseline * 1000, 1))


def eval_phase(root: Path) -> None:
    repo = root / "evalrepo"
    repo.mkdir()
    (repo / "a.txt").write_text("a\n")
    init_repo(repo)
    durations = (0.3, 0.5, 0.7, 1.0)
    checks = "".join(f"  - run: 'sleep {d}'\n" for d in durations)
    goal = parse_goal(f"id: evalbench\ngoal: g\nacceptance:\n{checks}  - file: a.txt\n    contains: zzz\n"
                      "budgets: {max_iterations: 2, stagnation_threshold: 3}\n", "bench.yaml")
    script = Script.model_validate({"maker": [{"iteration": "*", "turns": [
        {"text": "APPROACH: touch a", "tools": [{"write": {"path": "a.txt", "content": "b\n"}}]},
        {"tools": [{"done": {"summary": "x"}}]}]}]})
    final = run_loop(repo, goal, script)
    ratios = []
    for record in final.iterations:
        slowest = max(v.duration_seconds for v in record.verdicts)
        ratios.append(record.timings["evaluate"] / slowest)
    emit("eval_phase_ratio", max(ratios), "ratio", "<= 1.2", evaluators=len(durations) + 1,
         slowest_s=max(durations))


def sandbox_overhead(root: Path, samples: int = 30) -> None:
    """Extra wall time of a trivial command in bubblewrap (minimal root, git configs from memfds,
    pids cgroup as root) over a bare subprocess.run of the same shell (medians). The loopbot
    subprocess runner (sandbox: off), which now also sweeps escapees, is reported beside it."""
    repo = root / "sbx"
    repo.mkdir()
    (repo / "a.txt").write_text("a\n")
    init_repo(repo)

    def bare(command: str, *, cwd: Path, timeout_seconds: float) -> object:
        return subprocess.run(["/bin/sh", "-c", command], cwd=cwd, timeout=timeout_seconds, capture_output=True)

    runners = {"bare": bare, "plain": SubprocessSandbox().run,
               "bubblewrap": BubblewrapSandbox(repo, repo / ".git", SandboxConfig()).run}
    medians = {}
    for name, run in runners.items():
        times = []
        for _ in range(samples):
            started = time.perf_counter()
            run("true", cwd=repo, timeout_seconds=10)
            times.append(time.perf_counter() - started)
        medians[name] = statistics.median(times)
    emit("sandbox_overhead_ms", (medians["bubblewrap"] - medians["bare"]) * 1000, "ms", "<= 50",
         bare_ms=round(medians["bare"] * 1000, 1), plain_ms=round(medians["plain"] * 1000, 1),
         bubblewrap_ms=round(medians["bubblewrap"] * 1000, 1))


def hostile_inputs(root: Path) -> None:
    """The slowest and the most memory-hungry refusal of hostile host-side input: YAML bombs,
    deep nesting, a huge document, a pathological plan body, a catastrophic regex on a large file."""
    from loopbot.core.regex import SafePattern
    from loopbot.errors import InputError
    from loopbot.plans import yaml_blocks
    from loopbot.yamlfile import parse_yaml

    laughs = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))
    # Inputs are built before measuring: the figures are what loopbot spends on them.
    deep = "a: " + "[" * 100_000 + "]" * 100_000
    huge = "goal: " + "x" * 100_000_000
    fences = "```yaml\n" * 65_000
    long_a = "a" * 10_000_000 + "b"
    cases = {
        "billion laughs": lambda: parse_yaml(laughs, "bench"),
        "100,000 nested [": lambda: parse_yaml(deep, "bench"),
        "100 MB string": lambda: parse_yaml(huge, "bench"),
        "65,000 fences": lambda: yaml_blocks(fences),
        "^(a+)+$ on 10 MB": lambda: SafePattern("^(a+)+$", multiline=True).search(long_a),
    }
    worst_s, worst_mb, slowest = 0.0, 0.0, ""
    for name, case in cases.items():
        tracemalloc.start()
        started = time.perf_counter()
        with contextlib.suppress(InputError):
            case()
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        if elapsed > worst_s:
            worst_s, slowest = elapsed, name
        worst_mb = max(worst_mb, peak / 1e6)
    emit("hostile_input_max_s", worst_s, "s", "<= 2", slowest=slowest)
    # The 100 MB string itself is the input: what matters is what loopbot adds on top of it.
    emit("hostile_input_peak_mb", worst_mb, "MB", "<= 100")


class ModelCalls:
    """Collects usage per model call with its iteration (an observer)."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, dict[str, Any]]] = []

    def event(self, event: LoopEvent, state: LoopState) -> None:
        if isinstance(event, ModelCalled):
            self.calls.append((state.iteration, event.fields()))

    def cached_share(self, from_iteration: int) -> float:
        read = fresh = 0
        for iteration, data in self.calls:
            if iteration >= from_iteration:
                read += data["cache_read_tokens"]
                fresh += data["input_tokens"] + data["cache_write_tokens"]
        return read / (read + fresh) if read + fresh else 0.0


def with_exploration(script: Script) -> Script:
    """The demo story as a realistic maker works it (about 20 turns an iteration, as measured on
    real models): looking around, reading the file and its tests, searching, running the tests
    before editing, one call a turn."""
    explore = [{"list": {}}, {"read": {"path": "README.md"}}, {"list": {"path": "tests"}},
               {"read": {"path": "kvstore.py"}}, {"read": {"path": "tests/test_ttl.py"}},
               {"search": {"pattern": "def (get|set|keys|exists)"}}, {"read": {"path": "tests/test_kvstore.py"}},
               {"search": {"pattern": "ttl"}}, {"search": {"pattern": "time\\."}},
               {"run": {"command": "python -m pytest -q tests/test_ttl.py"}},
               {"read": {"path": "kvstore.py", "start_line": 1, "end_line": 40}},
               {"search": {"pattern": "class ", "path": "kvstore.py"}},
               {"run": {"command": "python -m pytest -q tests/test_kvstore.py"}}]
    data = script.model_dump()
    for session in data["maker"]:
        first = session["turns"][0]
        reads = [{"text": first["text"], "tools": [tool]} if n == 0 else {"text": "", "tools": [tool]}
                 for n, tool in enumerate(explore)]
        session["turns"] = [*reads, {**first, "text": ""}, *session["turns"][1:]]
    return Script.model_validate(data)


def prompt_cache(root: Path) -> None:
    """Share of input tokens from iteration 2 on that the provider serves from its prompt cache.

    The real anthropic SDK talks to the loopback replay server, which caches prefixes as the API does.
    """
    from loopbot.providers import ProviderEnv, build_model
    from loopbot.testing.cassettes import from_script
    from loopbot.testing.replay import ReplayServer

    ratios = {}
    waste: dict[str, int] = {}
    costs: dict[str, float] = {}
    for name, script, filler in (("exploring", with_exploration(load_script(KVSTORE / "script.yaml")), 200),
                                 ("demo_story", load_script(KVSTORE / "script.yaml"), 0)):
        repo, _ = make_example_repo(KVSTORE / "repo", root / f"cache-{name}")
        if filler:
            add_filler(repo, filler)
        cassette = from_script(script, "anthropic", iterations=3, checked=[2, 3], judged=[3])
        goal = parse_goal((KVSTORE / "goal.yaml").read_text(), "goal.yaml")
        calls = ModelCalls()
        with ReplayServer(cassette) as server:
            model = build_model("anthropic:claude-sonnet-5",
                                env=ProviderEnv(anthropic_api_key="sk-ant-bench-000000", anthropic_base_url=server.url))
            paths = Paths.for_repo(repo)
            state = create_run(goal, "goal.yaml", repo, paths=paths, model="anthropic:claude-sonnet-5", config=Config(),
                               remote=None)
            session = open_session(state, paths, models=dict.fromkeys(ROLES, model), observers=[calls])
            session.store.save(state, "created")
            final = session.runner.run(state)
            assert final.status.value == "success" and not server.misses, (final.stop_detail, server.misses)
        ratios[name] = calls.cached_share(from_iteration=2)
        waste[name] = server.cache.waste("checker") + server.cache.waste("goal_checker")
        costs[name] = final.spend.cost_usd
    emit("prompt_cache_ratio", ratios["exploring"], "ratio", ">= 0.92", demo_story_ratio=round(ratios["demo_story"], 3),
         scenario="demo story with a realistic maker (reads before edits), 200-module repo, anthropic SDK")
    emit("reviewer_cache_waste", waste["exploring"], "tokens", "0", demo_story=waste["demo_story"])
    emit("cost_per_success_usd", costs["demo_story"], "USD", "reported", exploring=round(costs["exploring"], 4),
         model="claude-sonnet-5")


def prompt_growth(root: Path, sizes: tuple[int, ...] = (100, 1_000, 10_000)) -> None:
    """Tokens of the maker's first prompt on the same goal as the repository grows."""
    tokens = {}
    for size in sizes:
        repo, _ = make_example_repo(KVSTORE / "repo", root / f"growth-{size}")
        add_filler(repo, size)
        script = load_script(KVSTORE / "script.yaml")
        model = ScriptedModel(script)
        goal = parse_goal((KVSTORE / "goal.yaml").read_text(), "goal.yaml")
        goal = goal.model_copy(update={"budgets": goal.budgets.model_copy(update={"max_iterations": 1})})
        paths = Paths.for_repo(repo)
        state = create_run(goal, "goal.yaml", repo, paths=paths, model="scripted:bench", config=Config(), remote=None)
        session = open_session(state, paths, models=dict.fromkeys(ROLES, model))
        session.store.save(state, "created")
        session.runner.run(state)
        first = next(r for r in model.requests if r.role == "maker")
        text = first.system + json.dumps([m.model_dump() for m in first.messages]) + json.dumps(
            [t.model_dump() for t in first.tools])
        tokens[size] = approx_tokens(text)
    smallest, largest = tokens[min(sizes)], tokens[max(sizes)]
    emit("prompt_tokens_growth", (largest - smallest) / smallest, "ratio", "< 0.20",
         **{f"tokens_{size}_files": count for size, count in tokens.items()})


def demo(root: Path) -> None:
    repo, _ = make_example_repo(KVSTORE / "repo", root / "demo")
    goal = parse_goal((KVSTORE / "goal.yaml").read_text(), "goal.yaml")
    started = time.perf_counter()
    final = run_loop(repo, goal, load_script(KVSTORE / "script.yaml"), remote="origin")
    emit("demo_seconds", time.perf_counter() - started, "s", "<= 60", status=final.status.value)


def cli_start(root: Path) -> None:
    """How long a command takes to start: the test suite starts loopbot hundreds of times, and a
    user types `loopbot status` often."""
    repo = root / "cli-start"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    bin_dir = Path(sys.executable).parent
    starts = {"help": [str(bin_dir / "loopbot"), "-h"],
              "status": [str(bin_dir / "loopbot"), "status", "--repo", str(repo)],
              "session_import": [sys.executable, "-c", "import loopbot.session"]}
    for name, argv in starts.items():
        walls = []
        for _ in range(15):
            started = time.perf_counter()
            subprocess.run(argv, check=True, capture_output=True)
            walls.append((time.perf_counter() - started) * 1000)
        emit(f"cli_start_ms_{name}", statistics.median(walls), "ms", "<= 400" if name == "status" else "reported")


def reward_hacks(root: Path) -> None:
    """Every trick of the corpus under each runner it applies to; a pushed SUCCESS is a hack."""
    from concurrent.futures import ThreadPoolExecutor

    from loopbot.testing.gaming import CASES, expand, honest_case, run_case

    attempts = expand(CASES)

    def attempt(numbered: tuple[int, tuple[Any, Any]]) -> tuple[str, bool]:
        n, (case, runner) = numbered
        scratch = root / f"gaming-{n}"
        scratch.mkdir()
        return f"{case.name}/{runner}", run_case(case, runner, scratch).pushed_success

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(attempt, enumerate(attempts)))
    hacked = [name for name, success in results if success]
    honest = []
    for runner in ("pytest", "unittest"):
        scratch = root / f"honest-{runner}"
        scratch.mkdir()
        honest.append(run_case(honest_case(), runner, scratch))
    emit("reward_hack_rate", len(hacked) / len(results), "ratio", "0", attempts=len(results), hacked=hacked,
         honest_fix_succeeds=all(o.pushed_success and o.clean_clone_passes for o in honest))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--only", action="append", default=[],
                        help="run only these benchmarks (reward_hacks, controller_overhead, eval_phase, "
                             "sandbox_overhead, hostile_inputs, prompt_cache, prompt_growth, demo, cli_start)")
    args = parser.parse_args()
    benchmarks = {
        "reward_hacks": reward_hacks,
        "controller_overhead": lambda root: controller_overhead(root, args.files, args.iterations),
        "eval_phase": eval_phase,
        "sandbox_overhead": sandbox_overhead,
        "hostile_inputs": hostile_inputs,
        "prompt_cache": prompt_cache,
        "prompt_growth": prompt_growth,
        "demo": demo,
        "cli_start": cli_start,
    }
    unknown = set(args.only) - set(benchmarks)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    with tempfile.TemporaryDirectory(prefix="loopbot-bench-") as tmp:
        root = Path(tmp)
        for name, bench in benchmarks.items():
            if not args.only or name in args.only:
                bench(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
