"""How long the Action's set-up takes to install loopbot: `pip install <repo>` (what action.yml did)
against `uv pip install <repo>` (what it does now, with setup-uv's cache), each into a fresh
virtual environment, on this machine.

    python bench/action_setup.py                 # warm caches, 3 timed runs each
    python bench/action_setup.py --runs 5 --cold # also once with empty caches (a cache miss)

Each tool gets its own cache directory under a temp dir; an untimed first install warms it, so the
timed runs measure what a runner with a restored cache pays. uv comes from PATH, or is installed
with pip into a throwaway virtual environment. Needs the package index (PyPI) for the first
install. Prints seconds per run and the median.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(command: list[str], env: dict[str, str]) -> float:
    started = time.monotonic()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"failed ({result.returncode}): {' '.join(command)}\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return elapsed


def _fresh_venv(path: Path, *, with_pip: bool) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    venv.EnvBuilder(with_pip=with_pip, clear=True).create(path)
    return path / "bin" / "python"


def _uv(work: Path, env: dict[str, str]) -> str:
    found = shutil.which("uv")
    if found:
        return found
    python = _fresh_venv(work / "uv-tool", with_pip=True)
    _run([str(python), "-m", "pip", "install", "--quiet", "uv"], env)
    return str(python.parent / "uv")


def measure(repo: Path, runs: int, cold: bool) -> dict[str, list[float]]:
    work = Path(tempfile.mkdtemp(prefix="loopbot-action-setup-"))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "VIRTUAL_ENV"))}
    pip_env = {**base, "PIP_CACHE_DIR": str(work / "pip-cache"), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    uv_env = {**base, "UV_CACHE_DIR": str(work / "uv-cache")}
    results: dict[str, list[float]] = {}
    try:
        uv = _uv(work, base)

        def pip_install() -> float:
            python = _fresh_venv(work / "pip-env", with_pip=True)
            return _run([str(python), "-m", "pip", "install", "--quiet", str(repo)], pip_env)

        def uv_install() -> float:
            python = _fresh_venv(work / "uv-env", with_pip=False)
            return _run([uv, "pip", "install", "--quiet", "--python", str(python), str(repo)], uv_env)

        for name, install, cache in (("pip", pip_install, work / "pip-cache"), ("uv", uv_install, work / "uv-cache")):
            shutil.rmtree(cache, ignore_errors=True)
            first = install()  # fills the cache (this is also the cold-cache figure)
            if cold:
                results[f"{name} install, empty cache"] = [first]
            results[f"{name} install, warm cache"] = [install() for _ in range(runs)]
        version = subprocess.run([uv, "--version"], capture_output=True, text=True).stdout.strip()
        results[f"(uv: {version}; pip: {_pip_version()})"] = []
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return results


def _pip_version() -> str:
    result = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, text=True)
    return result.stdout.split()[1] if result.returncode == 0 and result.stdout else "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=ROOT, help="the checkout to install (default: this one)")
    parser.add_argument("--runs", type=int, default=3, help="timed installs per tool (warm cache)")
    parser.add_argument("--cold", action="store_true", help="also report the first install, with an empty cache")
    args = parser.parse_args()
    print(f"installing {args.repo} into fresh virtual environments (Python {sys.version.split()[0]})")
    for label, seconds in measure(args.repo.resolve(), args.runs, args.cold).items():
        if not seconds:
            print(label)
            continue
        runs = ", ".join(f"{s:.1f}" for s in seconds)
        print(f"{label:<30} median {statistics.median(seconds):5.1f} s   (runs: {runs})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
