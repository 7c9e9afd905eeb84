"""How long one write to the repository's memory (loop/memory) takes as the memory grows: one
`record_run` (a finished run's report and incident) with 1, 100 and 1000 run records already kept,
pushed to a local bare origin, on this machine.

    python bench/memory_write.py                      # the current GitMemory
    python bench/memory_write.py --rev 55ac331        # also GitMemory as that commit had it
    python bench/memory_write.py --sizes 1 100 1000 --runs 5

The records are seeded in one `git fast-import` (two files a run), so seeding is not timed. Each
timed write is a fresh record on top of the seeded ones; prints the median and the slowest of
`--runs` writes per size, in milliseconds.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loopbot.store import git_memory  # noqa: E402


def _module_at(rev: str) -> ModuleType:
    """loopbot/store/git_memory.py as commit `rev` had it, importable beside the current one."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:loopbot/store/git_memory.py"],
                            capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp(prefix="memory-rev-")) / "git_memory_at_rev.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("git_memory_at_rev", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _seeded(root: Path, records: int) -> Path:
    """A bare origin whose loop/memory holds `records` runs, and a clone of it."""
    origin, checkout = root / "origin.git", root / "checkout"
    subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
    stream = ["commit refs/heads/loop/memory", "committer bench <bench@example.com> 0 +0000", "data 4", "seed"]
    for n in range(records):
        for name, text in (("report.md", f"# Report of run {n}\n\nSUCCESS after 3 iterations.\n"),
                           ("incident.md", f"# Incident {n}\n\nnone\n")):
            data = text.encode()
            stream += [f"M 100644 inline runs/seed-{n}/{name}", f"data {len(data)}", text]
    subprocess.run(["git", "-C", str(origin), "fast-import", "--quiet"], input="\n".join(stream) + "\n",
                   text=True, check=True)
    subprocess.run(["git", "clone", "-q", str(origin), str(checkout)], check=True, capture_output=True)
    return checkout


def _time_writes(module: ModuleType, records: int, runs: int) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="memory-bench-") as scratch:
        checkout = _seeded(Path(scratch), records)
        memory = module.GitMemory(checkout, "origin")
        seconds = []
        for n in range(runs):
            started = time.perf_counter()
            memory.record_run(f"timed-{n}", {"report.md": f"# Report {n}\n", "incident.md": f"# Incident {n}\n"})
            seconds.append(time.perf_counter() - started)
        kept = subprocess.run(["git", "-C", str(checkout), "ls-tree", "-r", "--name-only", "loop/memory"],
                              capture_output=True, text=True, check=True).stdout.count("\n")
        assert kept == 2 * (records + runs), kept  # every record kept, every write landed
        return seconds


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 100, 1000])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rev", help="also time GitMemory as this commit had it")
    args = parser.parse_args()
    variants = [("current", git_memory)] + ([(args.rev, _module_at(args.rev))] if args.rev else [])
    print(f"{'GitMemory':>10} {'records':>8} {'median ms':>10} {'max ms':>8}")
    for label, module in variants:
        for size in args.sizes:
            seconds = _time_writes(module, size, args.runs)
            print(f"{label:>10} {size:>8} {statistics.median(seconds) * 1000:>10.0f} {max(seconds) * 1000:>8.0f}",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
