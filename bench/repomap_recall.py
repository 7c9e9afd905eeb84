"""Repo-map target recall: does the map hold the file that defines the symbol a goal names?

    python bench/repomap_recall.py                      # the figure, with the default budget
    python bench/repomap_recall.py --verbose            # and each case's rank on stderr
    python bench/repomap_recall.py --repomap OLD.py     # measure another repomap module (e.g. from
                                                        # `git show HEAD:loopbot/context/repomap.py`)

Figure:
  repomap_target_recall  share of cases whose defining file is an entry of the map `repomap.build`
                         makes with Execution's default `repo_map_tokens`. Target >= 1.0.

The repositories are real projects pinned to a version: their sdists, found on the package index
(PIP_INDEX_URL, else PyPI; the only network there is here and in CI), checked against the sha256
below, and cached unpacked under ~/.cache/loopbot-bench (LOOPBOT_BENCH_CACHE to move it). An
sdist is close to the tracked tree (mypy's is 1,447 files against the repository's 1,921).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from loopbot.config import Execution
from loopbot.core.context import CHARS_PER_TOKEN

DEFAULT_BUDGET = Execution().repo_map_tokens
INDEX = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
CACHE = Path(os.environ.get("LOOPBOT_BENCH_CACHE", Path.home() / ".cache" / "loopbot-bench"))


@dataclass(frozen=True)
class Sdist:
    project: str
    version: str
    sha256: str

    @property
    def filename(self) -> str:
        return f"{self.project}-{self.version}.tar.gz"


@dataclass(frozen=True)
class Case:
    sdist: Sdist
    goal: str
    defining: str  # path inside the unpacked sdist


MYPY = Sdist("mypy", "1.13.0", "0291a61b6fbf3e6673e3405cfcc0e7650bebc7939659fdca2702958038bd835e")
REQUESTS = Sdist("requests", "2.32.3", "55365417734eb18255590a9ff9eb97e9e1da868d4ccd6402399eaf68af20a760")
RICH = Sdist("rich", "13.9.4", "439594978a49a09530cff7ebc4b5c7103ef57baf48d5ea3184f21d9a2befa098")
ATTRS = Sdist("attrs", "24.2.0", "5cfb1b9148b5b086569baec03f20d7b6bf3bcacc9a42bebf87ffaaca362f6346")

CASES = [
    Case(MYPY, "is_overlapping_types reports an overlap for two TypedDicts whose required keys are disjoint; "
               "it should not, so comparisons between them are flagged", "mypy/meet.py"),
    Case(MYPY, "format_type_bare prints a callable with a ParamSpec as `def (*P.args, **P.kwargs)`: "
               "print it the way it was written", "mypy/messages.py"),
    Case(MYPY, "erase_typevars leaves a TypeVarTuple inside Unpack[...] unerased", "mypy/erasetype.py"),
    Case(REQUESTS, "merge_environment_settings ignores REQUESTS_CA_BUNDLE when verify is True; "
                   "the environment's bundle should be used", "src/requests/sessions.py"),
    Case(REQUESTS, "get_encoding_from_headers should default to utf-8 for application/json responses "
                   "without a charset", "src/requests/utils.py"),
    Case(REQUESTS, "HTTPAdapter.send leaks the pooled connection when a read timeout is raised",
         "src/requests/adapters.py"),
    Case(RICH, "Table.add_row should raise when given more cells than there are columns", "rich/table.py"),
    Case(RICH, "Segment.split_and_crop_lines drops the style of the padding it adds", "rich/segment.py"),
    Case(RICH, "Text.expand_tabs miscounts the tab stops after wide (CJK) characters", "rich/text.py"),
    Case(ATTRS, "evolve() runs converters a second time on fields that were not changed",
         "src/attr/_funcs.py"),
    Case(ATTRS, "fields_dict should raise NotAnAttrsClassError when given an instance, not a class",
         "src/attr/_make.py"),
    Case(ATTRS, "the instance_of validator's message should name the expected type's qualified name",
         "src/attr/validators.py"),
]


def _sdist_url(sdist: Sdist) -> str:
    """The sdist's address on the index, from its JSON simple page (PEP 691)."""
    request = urllib.request.Request(f"{INDEX}/{sdist.project}/",
                                     headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        page = json.load(response)
    for entry in page.get("files", []):
        if entry.get("filename") == sdist.filename:
            return str(entry["url"])
    raise SystemExit(f"{sdist.filename}: not on {INDEX}")


def unpacked(sdist: Sdist) -> Path:
    """The sdist's tree, downloaded and checked once, then read from the cache."""
    tree = CACHE / f"{sdist.project}-{sdist.version}"
    if (tree / ".complete").exists():
        return tree
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as scratch:
        archive = Path(scratch) / sdist.filename
        with urllib.request.urlopen(_sdist_url(sdist), timeout=300) as response, archive.open("wb") as out:
            shutil.copyfileobj(response, out)
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        if digest != sdist.sha256:
            raise SystemExit(f"{sdist.filename}: sha256 {digest}, expected {sdist.sha256}")
        with tarfile.open(archive) as tar:
            tar.extractall(Path(scratch) / "x", filter="data")
        (top,) = (Path(scratch) / "x").iterdir()  # an sdist holds one directory, name-version/
        shutil.rmtree(tree, ignore_errors=True)
        top.rename(tree)
    (tree / ".complete").write_text(sdist.sha256 + "\n")
    return tree


def tracked(tree: Path) -> list[str]:
    return sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*")
                  if p.is_file() and not p.is_symlink() and p.name != ".complete")


def entries(repo_map: str) -> list[str]:
    """The paths the map lists, in its order."""
    return [line.split(": ", 1)[0] for line in repo_map.splitlines() if line and not line.startswith("…")]


def load_repomap(path: str | None) -> ModuleType:
    if path is None:
        from loopbot.context import repomap
        return repomap
    spec = importlib.util.spec_from_file_location("repomap_under_test", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"{path}: not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=int, default=DEFAULT_BUDGET, help="repo map tokens")
    parser.add_argument("--repomap", help="a repomap.py to measure instead of loopbot.context.repomap")
    parser.add_argument("--verbose", action="store_true", help="each case on stderr")
    args = parser.parse_args()
    build: Callable[..., str] = load_repomap(args.repomap).build
    files_of: dict[Sdist, tuple[Path, list[str]]] = {}
    found, misses, slowest = 0, [], 0.0
    for case in CASES:
        if case.sdist not in files_of:
            tree = unpacked(case.sdist)
            files_of[case.sdist] = (tree, tracked(tree))
        tree, files = files_of[case.sdist]
        if case.defining not in files:
            raise SystemExit(f"{case.sdist.filename}: no {case.defining}")
        started = time.perf_counter()
        repo_map = build(tree, files, goal_text=case.goal, scope=["**"], budget_tokens=args.budget)
        slowest = max(slowest, time.perf_counter() - started)
        listed = entries(repo_map)
        hit = case.defining in listed
        found += hit
        if not hit:
            misses.append(f"{case.sdist.project}:{case.defining}")
        if args.verbose:
            rank = listed.index(case.defining) + 1 if hit else None
            print(f"{case.sdist.project:9} {case.defining:28} rank={rank} of {len(listed)} entries, "
                  f"{len(repo_map)} chars of {args.budget * CHARS_PER_TOKEN}  {case.goal[:50]!r}", file=sys.stderr)
    print(json.dumps({"figure": "repomap_target_recall", "value": round(found / len(CASES), 4), "unit": "ratio",
                      "target": ">= 1.0", "cases": len(CASES), "budget_tokens": args.budget,
                      "slowest_build_s": round(slowest, 3), "misses": misses}), flush=True)


if __name__ == "__main__":
    main()
