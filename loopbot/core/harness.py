"""The test harness is part of the specification: the files that decide what the acceptance
commands run and how their results are counted. A loop may not add, change or delete them unless
the goal names the file in `scope.allow` (by its exact path, never through a glob). Pure.
"""

from __future__ import annotations

import json
import shlex
import sys
import tomllib
from collections.abc import Callable, Collection, Iterable
from pathlib import PurePosixPath
from typing import Any

from loopbot.core.changes import FileChange
from loopbot.core.paths import is_test_path
from loopbot.core.state import GuardViolation

# Runner configuration, import hooks and repository attributes, by file name anywhere in the tree.
HARNESS_NAMES = frozenset({
    "conftest.py", "pytest.ini", ".pytest.ini", "pytest.toml", ".pytest.toml", "tox.ini", "setup.cfg",
    "noxfile.py", ".coveragerc", ".gitattributes", ".gitmodules", "sitecustomize.py", "usercustomize.py",
    ".mocharc.js", ".mocharc.cjs", ".mocharc.json", ".mocharc.yml", ".mocharc.yaml", ".babelrc",
    "jest.config.js", "jest.config.cjs", "jest.config.mjs", "jest.config.ts", "jest.config.json",
    "vitest.config.js", "vitest.config.mjs", "vitest.config.ts", "vitest.workspace.ts", "karma.conf.js",
    "phpunit.xml", "phpunit.xml.dist", ".rspec",
})
HARNESS_SUFFIXES = (".pth",)
# Installed-package metadata: a `*.dist-info/entry_points.txt` on sys.path registers pytest plugins.
METADATA_DIRS = (".dist-info", ".egg-info", ".egg-link")
# Compiled code that Python imports in place of the source beside it (an unchecked-hash .pyc is
# used without looking at the .py; an extension module wins over a .py of the same name).
COMPILED_SUFFIXES = (".pyc", ".pyo", ".so", ".pyd")
# Tables of these files that configure tests; the rest of the file is ordinary project metadata.
PYPROJECT_TEST_TABLES = ("pytest", "coverage", "tox", "nox", "hatch", "poe", "unittest")
PACKAGE_JSON_TEST_KEYS = ("scripts", "jest", "mocha", "vitest", "ava", "nyc", "c8", "tap")
# Test runners and their plugin machinery: a module by one of these names replaces the runner.
RUNNER_MODULES = frozenset({
    "pytest", "_pytest", "py", "pluggy", "unittest", "nose", "nose2", "hypothesis", "coverage", "tox", "nox",
    "xdist", "pytest_cov", "doctest", "iniconfig", "packaging", "exceptiongroup", "tomli",
})
# Plugins of test runners go by these prefixes (pytest_socket, pytest_cov…), installed or not.
RUNNER_PREFIXES = ("pytest_", "_pytest", "pytest-")
# Programs whose configuration file decides what an acceptance command runs.
PROGRAM_FILES = {
    "make": ("Makefile", "makefile", "GNUmakefile"),
    "just": ("justfile", "Justfile"),
    "npm": ("package.json",), "yarn": ("package.json",), "pnpm": ("package.json",),
    "tox": ("tox.ini",), "nox": ("noxfile.py",),
}


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


def _in_package(directory: str, files: Collection[str]) -> bool:
    return (f"{directory}/__init__.py" if directory else "__init__.py") in files


def top_level_name(path: str, files: Collection[str]) -> str | None:
    """The top-level name a file claims when its directory can be on sys.path (it is not inside a
    package): `tests/json.py` is `json` once tests/ is inserted, `pkg/json.py` is `pkg.json`;
    `x/__init__.py` outside a package makes a package `x`. String work only: this runs over
    every file of large repositories."""
    if not path.endswith(".py"):
        return None
    directory, name = _parent(path), path.rsplit("/", 1)[-1][:-3]
    if name == "__init__":
        if not directory or _in_package(_parent(directory), files):
            return None
        return directory.rsplit("/", 1)[-1]
    if name in ("__main__", "conftest") or _in_package(directory, files):
        return None
    return name


def _compiled_shadow(path: str, files: Collection[str], shadowable: set[str]) -> bool:
    """Bytecode is never source: any .pyc/.pyo counts. An extension module (`x.cpython-311-….so`,
    `pkg/__init__.….so`) counts when the module it would be shadows a known name."""
    pure = PurePosixPath(path)
    if pure.suffix in (".pyc", ".pyo"):
        return True
    module = pure.name.split(".", 1)[0]
    as_source = f"{_parent(path)}/{module}.py" if _parent(path) else f"{module}.py"
    name = top_level_name(as_source, files)
    return name is not None and (name in shadowable or name.startswith(RUNNER_PREFIXES))


def _on_test_path(path: str) -> bool:
    """Directories a test run puts on sys.path: the root, a src root, and test directories
    (pytest's rootdir insertion, unittest discovery). `scripts/profile.py` shadows nothing."""
    directory = _parent(path)
    if path.endswith("__init__.py"):
        directory = _parent(directory)  # a package is found in the directory that holds it
    return directory in ("", "src") or is_test_path(path)


def project_modules(files: Collection[str]) -> set[str]:
    """Top-level module and package names the project already has (`files` a set, for speed)."""
    return {name for path in files if (name := top_level_name(path, files)) is not None}


def command_files(commands: Iterable[str], tracked: set[str]) -> set[str]:
    """Files an acceptance command reads to decide what to run: scripts it names, and the
    configuration of the program it calls (`make` -> Makefile)."""
    found: set[str] = set()
    for command in commands:
        try:
            words = shlex.split(command)
        except ValueError:
            words = command.split()
        for word in words:
            candidate = word.removeprefix("./")
            if candidate in tracked:
                found.add(candidate)
            program = PurePosixPath(word).name
            for name in PROGRAM_FILES.get(program, ()):
                if name in tracked:
                    found.add(name)
    return found


def _tables_changed(old: str | None, new: str | None, parse: Callable[[str], dict[str, Any]],
                    pick: Callable[[dict[str, Any]], dict[str, Any]]) -> bool | None:
    """Whether the test-related part differs; None when a side cannot be read (judged a change)."""
    try:
        before = pick(parse(old)) if old is not None else {}
        after = pick(parse(new)) if new is not None else {}
    except (ValueError, TypeError, AttributeError):
        return None
    return before != after


def _pyproject_tables(data: dict[str, Any]) -> dict[str, Any]:
    tool = data.get("tool", {})
    return {name: tool.get(name) for name in PYPROJECT_TEST_TABLES if isinstance(tool, dict) and name in tool}


def _package_json_keys(data: dict[str, Any]) -> dict[str, Any]:
    return {key: data.get(key) for key in PACKAGE_JSON_TEST_KEYS if key in data}


def _json_object(text: str) -> dict[str, Any]:
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("not an object")
    return data


def explicitly_opened(allow: Iterable[str]) -> set[str]:
    """Harness files a goal opens: exact paths in scope.allow, never globs."""
    return {p.lstrip("/") for p in allow if not any(c in p for c in "*?[")}


def check_harness(
    changes: list[FileChange],
    *,
    base_files: Collection[str],
    head_files: Collection[str],
    allow: list[str],
    acceptance_commands: list[str],
    texts: Callable[[str], tuple[str | None, str | None]],
    project: set[str] | None = None,
    installed: Collection[str] = (),
    setup_outputs: Collection[str] = (),
) -> list[GuardViolation]:
    """Every change to the test harness; `texts(path)` gives a file's base and snapshot text.
    Pass the file lists as sets and `project` (project_modules of the base) when calling per
    iteration on a large repository. `installed`: top-level names of installed distributions
    (a module by such a name replaces the installed one). `setup_outputs`: paths the setup step
    made; committing anything there replaces them in a fresh clone."""
    opened = explicitly_opened(allow)
    shadowable = set(sys.stdlib_module_names) | RUNNER_MODULES | set(installed) | (
        project if project is not None else project_modules(set(base_files)))
    outputs = [o.strip("/") for o in setup_outputs]
    by_command = command_files(acceptance_commands, set(base_files))
    violations: list[GuardViolation] = []

    def flag(change: FileChange, why: str) -> None:
        if change.path not in opened:
            verb = {"A": "added", "D": "deleted"}.get(change.status, "changed")
            violations.append(GuardViolation(guard="harness", path=change.path,
                                             message=f"test harness file {verb}: {why} (a goal opens it by "
                                                     f"naming {change.path} in scope.allow)"))

    for change in changes:
        pure = PurePosixPath(change.path)
        if any(change.path == o or change.path.startswith(o + "/") for o in outputs):
            flag(change, "it is inside a setup output, which the fresh clone's setup step makes")
        elif pure.name in HARNESS_NAMES or pure.suffix in HARNESS_SUFFIXES:
            flag(change, "it decides what the tests run or how results count")
        elif any(part.endswith(METADATA_DIRS) for part in pure.parts[:-1]):
            flag(change, "package metadata: its entry points load plugins into the test runner")
        elif pure.suffix in COMPILED_SUFFIXES and not change.deleted and _compiled_shadow(
                change.path, head_files, shadowable):
            flag(change, "compiled code Python would import instead of the source")
        elif change.path in by_command:
            flag(change, "an acceptance command reads it to decide what to run")
        elif pure.name == "pyproject.toml":
            old, new = texts(change.path)
            changed = _tables_changed(old, new, tomllib.loads, _pyproject_tables)
            if changed is None or changed:
                flag(change, "its test tables ([tool.pytest], [tool.coverage], ...) changed"
                     if changed else "it does not parse, so its test tables cannot be compared")
        elif pure.name == "package.json":
            old, new = texts(change.path)
            changed = _tables_changed(old, new, _json_object, _package_json_keys)
            if changed is None or changed:
                flag(change, "its scripts or test-runner settings changed"
                     if changed else "it does not parse, so its scripts cannot be compared")
        elif change.added:
            name = top_level_name(change.path, head_files)
            if name and _on_test_path(change.path) and (name in shadowable or name.startswith(RUNNER_PREFIXES)):
                flag(change, f"a new module named {name!r} shadows the standard library, the test runner "
                             f"or a module of this project")
    return violations

