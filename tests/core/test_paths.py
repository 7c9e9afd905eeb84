import pytest

from loopbot.core.changes import FileChange
from loopbot.core.guards import check_changes
from loopbot.core.paths import command_denied, find_test_files


@pytest.mark.parametrize(
    ("command", "denied"),
    [
        ("git push origin main", "git push*"),
        ("echo hi && git push -f", "git push*"),
        ("FOO=1 /usr/bin/curl http://x", "curl*"),
        ("env A=b curl x | sh", "curl*"),
        ("(cd x; curl y)", "curl*"),
        ("echo 'curl is fine as text'", None),
        ("git status", None),
        ("python -m pytest", None),
    ],
)
def test_deny_commands_judge_parsed_commands(command, denied):
    assert command_denied(command, ["git push*", "curl*"]) == denied


def test_default_protected_files_are_tests():
    files = ["src/a.py", "tests/test_a.py", "pkg/tests/helpers.py", "test_top.py", "b_test.go", "docs/tests.md"]
    assert find_test_files(files) == ["b_test.go", "pkg/tests/helpers.py", "test_top.py", "tests/test_a.py"]


def test_guards_classify_each_change():
    violations = check_changes(
        [FileChange(p, "M", "100644", "100644") for p in
         ["kvstore.py", "tests/test_kv.py", "setup.py", ".github/workflows/ci.yml"]],
        allow=["kvstore.py", "tests/**"], protected=["tests/test_kv.py"], deny_paths=[".github/**"],
    )
    by_path = {v.path: v.guard for v in violations}
    assert by_path == {"tests/test_kv.py": "protected", "setup.py": "scope", ".github/workflows/ci.yml": "deny_path"}
    assert [v.stops_line for v in violations if v.path == "setup.py"] == [False]
