"""The harness guard: runner configuration, import hooks, attributes and shadowing modules."""

from __future__ import annotations

import pytest

from loopbot.core.changes import FileChange
from loopbot.core.harness import check_harness, command_files, project_modules

BASE_FILES = ["stats.py", "pkg/__init__.py", "pkg/core.py", "tests/test_stats.py", "Makefile", "pyproject.toml",
              "package.json"]
PYPROJECT = '[project]\nname = "x"\nversion = "1"\n\n[tool.pytest.ini_options]\naddopts = "-q"\n'
PACKAGE = '{"name": "x", "dependencies": {"a": "1"}, "scripts": {"test": "jest"}}'


def judge(path: str, status: str = "A", *, allow: list[str] | None = None, texts: tuple[str | None, str | None] = (None, None),
          commands: list[str] | None = None, head_extra: list[str] | None = None) -> list[str]:
    old_mode = "000000" if status == "A" else "100644"
    change = FileChange(path, status, old_mode, "000000" if status == "D" else "100644")
    found = check_harness([change], base_files=BASE_FILES, head_files=[*BASE_FILES, path, *(head_extra or [])],
                          allow=allow or ["**"], acceptance_commands=commands or ["python -m pytest -q"],
                          texts=lambda _p: texts, installed={"anyio", "requests"}, setup_outputs=[".venv"])
    return [v.path for v in found]


@pytest.mark.parametrize("path", [
    "conftest.py", "tests/conftest.py", "pytest.ini", "tox.ini", "setup.cfg", "noxfile.py", ".gitattributes",
    ".gitmodules", "sitecustomize.py", "usercustomize.py", "src/evil.pth", "jest.config.js",
    "unittest.py", "pytest.py", "tests/json.py", "tests/stats.py", "src/pkg/__init__.py", "_pytest/__init__.py",
    "__pycache__/stats.cpython-311.pyc", "tests/__pycache__/test_stats.cpython-311.pyc",
    "stats.cpython-311-x86_64-linux-gnu.so", "pkg/__pycache__/core.cpython-312.pyc", "stats/__init__.pyc",
    "stats/__init__.cpython-311-x86_64-linux-gnu.so", "zz-1.0.dist-info/entry_points.txt",
    "x.egg-info/entry_points.txt", "pytest_socket.py", "pytest_zz.py", "anyio.py",
])
def test_new_harness_files_are_violations(path: str) -> None:
    assert judge(path) == [path]


def test_anything_committed_inside_a_setup_output_is_a_violation() -> None:
    assert judge(".venv/bin/python") == [".venv/bin/python"]
    assert judge(".venvs/x.py") == []


@pytest.mark.parametrize("path", ["conftest.py", "tests/conftest.py", "setup.cfg"])
def test_changing_or_deleting_harness_files_is_a_violation(path: str) -> None:
    assert judge(path, "M") == [path]
    assert judge(path, "D") == [path]


@pytest.mark.parametrize("path", ["helpers.py", "pkg/json.py", "tests/test_new.py", "pkg/stats.py", "docs/notes.md",
                                  "newpkg/__init__.py", "scripts/profile.py"])
def test_ordinary_new_files_are_not(path: str) -> None:
    assert judge(path) == []


def test_a_goal_opens_a_harness_file_only_by_its_exact_path() -> None:
    assert judge("tests/conftest.py", allow=["tests/conftest.py"]) == []
    assert judge("tests/conftest.py", allow=["tests/**"]) == ["tests/conftest.py"]
    assert judge("tests/conftest.py", allow=["tests/conftest.p?"]) == ["tests/conftest.py"]


def test_pyproject_only_its_test_tables_count() -> None:
    other = PYPROJECT.replace('version = "1"', 'version = "2"')
    rewired = PYPROJECT.replace('"-q"', '"--collect-only"')
    assert judge("pyproject.toml", "M", texts=(PYPROJECT, other)) == []
    assert judge("pyproject.toml", "M", texts=(PYPROJECT, rewired)) == ["pyproject.toml"]
    assert judge("pyproject.toml", "M", texts=(PYPROJECT, "[broken")) == ["pyproject.toml"]
    assert judge("pyproject.toml", "A", texts=(None, '[tool.pytest.ini_options]\naddopts = "--co"\n')) == ["pyproject.toml"]


def test_package_json_scripts_count_dependencies_do_not() -> None:
    deps = PACKAGE.replace('"a": "1"', '"a": "2"')
    scripts = PACKAGE.replace('"jest"', '"exit 0"')
    assert judge("package.json", "M", texts=(PACKAGE, deps), commands=["npx jest"]) == []
    assert judge("package.json", "M", texts=(PACKAGE, scripts), commands=["npx jest"]) == ["package.json"]


def test_files_the_acceptance_command_reads_are_harness() -> None:
    assert command_files(["make test", "./run_tests.sh && tox"], {"Makefile", "run_tests.sh", "tox.ini"}) == {
        "Makefile", "run_tests.sh", "tox.ini"}
    assert judge("Makefile", "M", commands=["make test"]) == ["Makefile"]
    assert judge("Makefile", "M", commands=["python -m pytest"]) == []


def test_project_modules_are_top_level_names() -> None:
    assert project_modules(["stats.py", "pkg/__init__.py", "pkg/core.py", "tests/helpers.py"]) == {
        "stats", "pkg", "helpers"}
