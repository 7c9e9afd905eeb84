"""Kill matrix: chains of `loopbot run` / `loopbot resume` SIGKILLed at random moments (the pid or
its process group), on the small example repo and on one with 10,000 more files, each resumed to
the end and compared with an uninterrupted run of the same repo.

    python bench/kill_matrix.py [--chains 20] [--files 10000] [--seed N]
    python bench/kill_matrix.py --every-step

--every-step is the independent matrix that `make test` runs as one chain: for every step k of the
small example, a run SIGKILLed after step k and one resume to the end, each compared with the
uninterrupted run (kill_matrix_every_step_identical_ratio, target 1.0).

Figures (one JSON object per line):
  kill_matrix_chains            chains run
  kill_matrix_identical_ratio   chains whose outcome (decisions, memory, pushed tree) matches the
                                uninterrupted run. Target 1.0.
  kill_matrix_spend_exact_ratio chains whose ledger equals the replies the model delivered (a kill
                                between delivery and the ledger write loses that one reply).
  kill_matrix_debris            worktrees or loop branches left besides the run's own. Target 0.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from loopbot.testing.killharness import Case, chain, clean_env


def reference(root: Path, filler: int) -> tuple[dict[str, object], float]:
    case = Case(root / f"reference-{filler}", filler=filler)
    started = time.monotonic()
    done = subprocess.run(case.run_argv(), env=clean_env(), capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"the uninterrupted run failed: {done.stdout}{done.stderr}")
    return case.outcome(), time.monotonic() - started


def matrix(root: Path, label: str, chains: int, filler: int, rng: random.Random) -> None:
    expected, seconds = reference(root, filler)
    plans = [[(rng.uniform(0.2, seconds * 0.95), rng.random() < 0.5) for _ in range(rng.choice((1, 2, 3)))]
             for _ in range(chains)]

    def one(index: int) -> tuple[bool, bool, int]:
        got, spent, delivered, debris = chain(Case(root / f"{label}-{index}", filler=filler), plans[index])
        return got == expected, spent == delivered, len(debris)

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(one, range(chains)))
    identical = sum(1 for same, _, _ in results if same)
    exact = sum(1 for _, spend, _ in results if spend)
    debris = sum(n for _, _, n in results)
    extra = {"repo": label, "files_added": filler}
    for figure, value, unit, target in (
        ("kill_matrix_chains", chains, "chains", "-"),
        ("kill_matrix_identical_ratio", identical / chains, "ratio", "1.0"),
        ("kill_matrix_spend_exact_ratio", exact / chains, "ratio", "-"),
        ("kill_matrix_debris", debris, "items", "0"),
    ):
        print(json.dumps({"figure": figure, "value": round(value, 4), "unit": unit, "target": target, **extra}),
              flush=True)


def every_step(root: Path) -> None:
    uninterrupted = Case(root / "reference")
    done = subprocess.run(uninterrupted.run_argv(), env=clean_env(), capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"the uninterrupted run failed: {done.stdout}{done.stderr}")
    expected, steps = uninterrupted.outcome(), int(uninterrupted.state().steps_completed)

    def one(step: int) -> bool:
        case = Case(root / f"step-{step:02d}")
        env = {**clean_env(), "LOOPBOT_FAULT_KILL_AFTER_STEP": str(step)}
        subprocess.run(case.run_argv(), env=env, capture_output=True, text=True, timeout=900)
        done = subprocess.run(case.resume_argv(), env=clean_env(), capture_output=True, text=True, timeout=900)
        return done.returncode == 0 and case.outcome() == expected and \
            case.state().spend.model_calls == case.delivered_calls()

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(one, range(1, steps + 1)))
    for figure, value, unit, target in (
        ("kill_matrix_every_step_points", steps, "steps", "-"),
        ("kill_matrix_every_step_identical_ratio", sum(results) / steps, "ratio", "1.0"),
    ):
        print(json.dumps({"figure": figure, "value": round(value, 4), "unit": unit, "target": target}), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chains", type=int, default=20)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--every-step", action="store_true", help="kill after each step k, resume once")
    args = parser.parse_args(argv)
    if args.every_step:
        with tempfile.TemporaryDirectory(prefix="loopbot-kills-") as tmp:
            every_step(Path(tmp))
        return 0
    rng = random.Random(args.seed)
    print(json.dumps({"figure": "kill_matrix_seed", "value": args.seed, "unit": "seed", "target": "-"}), flush=True)
    with tempfile.TemporaryDirectory(prefix="loopbot-kills-") as tmp:
        matrix(Path(tmp), "small", args.chains, 0, rng)
        if args.files:
            matrix(Path(tmp), "large", max(4, args.chains // 4), args.files, rng)
    return 0


if __name__ == "__main__":
    sys.exit(main())
