"""The repo map: fills its budget and ranks first the files the goal names (issue #15)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from loopbot.context import repomap
from loopbot.core.context import CHARS_PER_TOKEN
from loopbot.tools import safefile

BUDGET = 400  # tokens: 1,600 characters


def write(root: Path, rel: str, text: str) -> str:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return rel


def overlap_repo(root: Path, fillers: int = 80) -> list[str]:
    """The mypy finding in small: a test file that names the goal's words often and fits, a source
    file whose one class is far over the budget, and the small module that defines the symbol."""
    files = [
        write(root, "tests/test_overlap.py", "".join(
            f"def test_is_overlapping_types_typeddict_keys_{i}():\n    assert is_overlapping_types(A, B)\n\n"
            for i in range(20))),
        write(root, "pkg/checker.py", "class TypeChecker:\n" + "".join(
            f"    def check_typeddict_keys_overlap_{i}(self):\n        pass\n" for i in range(200))),
        write(root, "pkg/meet.py", "def meet_types(a, b):\n    pass\n\n\ndef is_overlapping_types(a, b):\n    pass\n"),
    ]
    files += [write(root, f"pkg/sub/mod{i:02d}.py", f"def helper_{i}():\n    pass\n") for i in range(fillers)]
    return sorted(files)


def build(root: Path, files: list[str], goal: str, budget: int = BUDGET, scope: list[str] | None = None) -> str:
    return repomap.build(root, files, goal_text=goal, scope=scope or ["**"], budget_tokens=budget)


def listed(repo_map: str) -> list[str]:
    return [line.split(": ", 1)[0] for line in repo_map.splitlines() if not line.startswith("…")]


GOAL = "is_overlapping_types is wrong for TypedDict keys that overlap"


def test_the_file_defining_the_named_symbol_is_in_the_map_and_first(tmp_path):
    files = overlap_repo(tmp_path)
    paths = listed(build(tmp_path, files, GOAL))
    assert "pkg/meet.py" in paths
    assert paths[0] == "pkg/meet.py"


def test_an_entry_that_does_not_fit_does_not_end_the_map(tmp_path):
    files = overlap_repo(tmp_path)
    repo_map = build(tmp_path, files, GOAL)
    budget_chars = BUDGET * CHARS_PER_TOKEN
    assert len(repo_map) <= budget_chars
    assert len(repo_map) >= budget_chars * 3 // 4, "the budget is used beyond the entry that did not fit"
    assert any(p.startswith("pkg/sub/") for p in listed(repo_map)), "files ranked after the miss are shown"
    assert repo_map.splitlines()[-1].startswith("… and ")


def test_an_entry_with_no_room_left_is_skipped_and_shorter_ones_still_fill_the_map(tmp_path):
    deep = "/".join(["zebra" + "x" * 140] * 4) + "/zebra.py"  # 590 characters of path alone
    files = sorted([write(tmp_path, deep, "def zebra():\n    pass\n"),
                    *(write(tmp_path, f"m{i:02d}.py", f"def f{i}():\n    pass\n") for i in range(60))])
    repo_map = build(tmp_path, files, "the zebra stripes", budget=200)  # 800 characters
    paths = listed(repo_map)
    assert paths[0] == deep
    assert len(paths) > 5 and len(repo_map) >= 700

    files.append(write(tmp_path, "a/" + deep, "def zebra():\n    pass\n"))  # ranks second and cannot fit
    paths = listed(build(tmp_path, sorted(files), "the zebra stripes", budget=200))
    assert paths[0] == deep and "a/" + deep not in paths and "m00.py" in paths


def test_overloads_are_one_entry(tmp_path):
    files = [write(tmp_path, "o.py", "from typing import overload\n\n\n@overload\ndef f(x: int) -> int: ...\n"
                   "@overload\ndef f(x: str) -> str: ...\ndef f(x):\n    return x\n")]
    assert build(tmp_path, files, "f") == "o.py: f()"


def test_an_oversized_entry_is_shortened_to_what_fits(tmp_path):
    files = overlap_repo(tmp_path)
    repo_map = build(tmp_path, files, "check the typeddict keys overlap in the type checker")
    (line,) = [line for line in repo_map.splitlines() if line.startswith("pkg/checker.py")]
    assert line.startswith("pkg/checker.py: class TypeChecker[check_typeddict_keys_overlap_0, ")
    assert "…" in line
    assert len(line) < BUDGET * CHARS_PER_TOKEN // 2


def test_a_named_method_is_kept_in_a_shortened_entry(tmp_path):
    files = overlap_repo(tmp_path)
    repo_map = build(tmp_path, files, "TypeChecker.check_typeddict_keys_overlap_150 crashes on empty dicts")
    first = repo_map.splitlines()[0]
    assert first.startswith("pkg/checker.py: ")
    assert "check_typeddict_keys_overlap_150" in first
    assert len(first) < BUDGET * CHARS_PER_TOKEN


def test_a_test_file_does_not_outrank_the_defining_source_file(tmp_path):
    files = overlap_repo(tmp_path)
    files.append(write(tmp_path, "tests/fakes.py", "def is_overlapping_types(a, b):\n    return True\n"))
    paths = listed(build(tmp_path, sorted(files), GOAL, budget=2_048))
    assert paths.index("pkg/meet.py") < paths.index("tests/fakes.py") < paths.index("tests/test_overlap.py")


def test_an_exact_symbol_outranks_word_counts(tmp_path):
    files = overlap_repo(tmp_path)
    files.append(write(tmp_path, "pkg/words.py", "".join(
        f"def overlapping_{w}():\n    pass\n" for w in ("types", "typeddict", "keys", "wrong"))))
    paths = listed(build(tmp_path, sorted(files), GOAL, budget=2_048))
    assert paths.index("pkg/meet.py") < paths.index("pkg/words.py")


@pytest.mark.parametrize("goal", [
    "meet.py mishandles tuples",
    "fix pkg/meet.py: tuples are mishandled",
    "the meet module mishandles tuples",
    "pkg.meet mishandles tuples",
])
def test_a_file_named_in_the_goal_ranks_first(tmp_path, goal):
    files = overlap_repo(tmp_path)
    files.append(write(tmp_path, "pkg/tuple_ops.py", "def meet_mishandles_tuples_fix():\n    pass\n"))
    assert listed(build(tmp_path, sorted(files), goal))[0] == "pkg/meet.py"


def test_a_dotted_name_matches_the_class_and_method(tmp_path):
    files = sorted([
        write(tmp_path, "a/plain.py", "def visit_call():\n    pass\n"),
        write(tmp_path, "b/checker.py", "class TypeChecker:\n    def visit_call(self):\n        pass\n"),
        write(tmp_path, "c/other.py", "class Other:\n    def visit_call(self):\n        pass\n"),
    ])
    assert listed(build(tmp_path, files, "TypeChecker.visit_call drops the context"))[0] == "b/checker.py"


def test_plain_english_words_are_not_symbol_matches(tmp_path):
    files = sorted([
        write(tmp_path, "a/run.py", "def run():\n    pass\n"),
        write(tmp_path, "b/cache.py", "def cache_size():\n    pass\n"),
    ])
    # "run" is a word here, not a name: ordinary word relevance puts cache.py (cache, size) first.
    assert listed(build(tmp_path, files, "run out of cache size"))[0] == "b/cache.py"


def test_each_file_is_read_once_and_oversized_files_are_skipped(tmp_path, monkeypatch):
    files = overlap_repo(tmp_path, fillers=5)
    files.append(write(tmp_path, "pkg/huge.py", "def is_overlapping_types():\n    pass\n" + "#" * 5_000 + "\n"))
    monkeypatch.setattr(repomap, "MAX_FILE_BYTES", 4_000)
    reads: list[Path] = []
    real = safefile.read_bytes

    def counting(path: Path, max_bytes: int) -> bytes:
        reads.append(path)
        assert max_bytes == 4_000
        return real(path, max_bytes)

    monkeypatch.setattr(safefile, "read_bytes", counting)
    repo_map = build(tmp_path, sorted(files), GOAL)
    assert sorted(reads) == sorted(tmp_path / f for f in files)
    assert listed(repo_map)[0] == "pkg/meet.py"
    assert "pkg/huge.py: " not in repo_map


def test_scope_still_ranks_in_scope_files_first(tmp_path):
    files = overlap_repo(tmp_path, fillers=5)
    paths = listed(build(tmp_path, files, "helpers", scope=["pkg/sub/mod03.py"]))
    assert paths[0] == "pkg/sub/mod03.py"


def test_a_map_that_fits_has_no_trailer_and_an_empty_repo_says_so(tmp_path):
    files = overlap_repo(tmp_path, fillers=3)
    repo_map = build(tmp_path, [f for f in files if f.startswith("pkg/sub/")], GOAL)
    assert repo_map.splitlines() == ["pkg/sub/mod00.py: helper_0()", "pkg/sub/mod01.py: helper_1()",
                                     "pkg/sub/mod02.py: helper_2()"]
    assert build(tmp_path, [], GOAL) == "(empty repository)"


def test_a_two_thousand_file_repo_builds_quickly(tmp_path):
    files = sorted(write(tmp_path, f"src/p{i // 100:02d}/m{i:04d}.py",
                         f'"""Module {i}."""\n\n\ndef f_{i}(x):\n    return x\n\n\nclass C{i}:\n    def run(self):\n'
                         f"        pass\n") for i in range(2_000))
    started = time.perf_counter()
    repo_map = build(tmp_path, files, "f_1234 returns the wrong value in C77.run", budget=2_048)
    assert time.perf_counter() - started < 10
    assert set(listed(repo_map)[:2]) == {"src/p00/m0077.py", "src/p12/m1234.py"}


@pytest.mark.parametrize("goal", ["a" * 1_000_000, "Ab.cd.ef.gh.ij.kl.mn.op " * 40_000, "x Foo " * 200_000,
                                  "`" * 1_000_000, "module " * 150_000, "a_b(c) " * 150_000])
def test_a_hostile_goal_is_read_in_bounded_time(tmp_path, goal):
    files = overlap_repo(tmp_path, fillers=5)
    started = time.perf_counter()
    build(tmp_path, files, goal)
    assert time.perf_counter() - started < 2
