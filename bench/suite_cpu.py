"""Where the test suite's CPU goes: each test's CPU with every process it started, sandboxed and
daemonised ones too, by file and by test. The suite is CPU-bound on 2 cores, so this, not wall
time per test (which counts waiting for the other workers), says what makes `make test` slow.

    python bench/suite_cpu.py                      # the whole suite, as make test runs it
    python bench/suite_cpu.py tests/github -n 2    # a part, with pytest's own arguments
    python bench/suite_cpu.py --top 30

Each xdist worker moves itself into a cgroup of its own (cgroup v2, or v1's cpuacct) and reads
its usage around every test; its children inherit the group. Needs root (or a delegated cgroup).
Prints one JSON object per line: {"file" | "test", "cpu_s", "wall_s"}, then the totals.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = '''
import json, os, time
import pytest

_GROUP = None


def _make_group():
    for base, usage in (("/sys/fs/cgroup", "cpu.stat"), ("/sys/fs/cgroup/unified", "cpu.stat"),
                        ("/sys/fs/cgroup/cpuacct", "cpuacct.usage")):
        if os.path.isfile(os.path.join(base, "cgroup.procs")) and (usage == "cpuacct.usage" or
                                                                    os.path.isfile(os.path.join(base, "cgroup.controllers"))):
            group = os.path.join(base, f"loopbot-testcpu-{os.getpid()}")
            os.makedirs(group, exist_ok=True)
            with open(os.path.join(group, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
            with open(os.path.join(os.environ["LOOPBOT_TESTCPU_OUT"], f"{os.getpid()}.group"), "w") as f:
                f.write(group)  # removed once the run is over and the group is empty
            return group, usage
    raise RuntimeError("no writable cgroup (v2 or v1 cpuacct) to measure in")


def _usage():
    group, name = _GROUP
    text = open(os.path.join(group, name)).read()
    if name == "cpuacct.usage":
        return int(text) / 1e9
    return next(int(line.split()[1]) for line in text.splitlines() if line.startswith("usage_usec")) / 1e6


def pytest_configure(config):
    global _GROUP
    if hasattr(config, "workerinput") or not config.pluginmanager.hasplugin("xdist") or not config.getoption("numprocesses", None):
        _GROUP = _make_group()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if _GROUP is None:
        yield
        return
    wall, cpu = time.monotonic(), _usage()
    yield
    with open(os.path.join(os.environ["LOOPBOT_TESTCPU_OUT"], f"{os.getpid()}.jsonl"), "a") as f:
        f.write(json.dumps({"test": item.nodeid, "cpu_s": _usage() - cpu, "wall_s": time.monotonic() - wall}) + "\\n")
'''


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--top", type=int, default=15, help="how many files and tests to print")
    known, pytest_args = parser.parse_known_args()
    if not any(arg.startswith("-n") for arg in pytest_args):
        pytest_args += ["-n", "4", "--dist", "worksteal"]
    with tempfile.TemporaryDirectory(prefix="loopbot-testcpu-") as scratch:
        Path(scratch, "loopbot_testcpu.py").write_text(PLUGIN)
        out = Path(scratch, "out")
        out.mkdir()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [scratch, os.environ.get("PYTHONPATH")])),
               "LOOPBOT_TESTCPU_OUT": str(out)}
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "loopbot_testcpu", *pytest_args],
                              cwd=ROOT, env=env)
        rows = [json.loads(line) for path in out.glob("*.jsonl") for line in path.read_text().splitlines()]
        for record in out.glob("*.group"):
            with contextlib.suppress(OSError):  # a process of the run still in it: left to the OS
                os.rmdir(record.read_text())
    by_file: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for row in rows:
        totals = by_file[row["test"].split("::")[0]]
        totals[0] += row["cpu_s"]
        totals[1] += row["wall_s"]
    for name, (cpu, wall) in sorted(by_file.items(), key=lambda item: -item[1][0])[:known.top]:
        print(json.dumps({"file": name, "cpu_s": round(cpu, 1), "wall_s": round(wall, 1)}))
    for row in sorted(rows, key=lambda r: -r["cpu_s"])[:known.top]:
        print(json.dumps({"test": row["test"], "cpu_s": round(row["cpu_s"], 1), "wall_s": round(row["wall_s"], 1)}))
    print(json.dumps({"tests": len(rows), "cpu_s": round(sum(r["cpu_s"] for r in rows), 1)}))
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())
