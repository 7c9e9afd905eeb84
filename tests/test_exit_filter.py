"""The exit filter: a secret loopbot holds never leaves in a push, whatever its encoding; the
commit message passes the redactor; the incident names file and line without the secret.
Real runner, real git, a bare origin: containment is what origin holds afterwards.
"""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest

from loopbot.core.redact import Redactor, secrets_in_git_config
from loopbot.core.state import StopReason
from loopbot.testing.origin import branch_head
from loopbot.workspace.git import git

TOKEN = "ghp_" + "E" * 18 + "exitfilter" + "3" * 8
CONFIG_ONLY = "cfgonly-" + "k" * 24  # held only in the repository's git config, as actions/checkout leaves it
APPROVE = [{"iteration": "*", "decision": "APPROVE", "reasons": ["ok"]}]
MET = [{"iteration": "*", "criteria": [{"met": True, "evidence": "ok"}]}]


def _url_encoded(text: str) -> str:
    return "".join(f"%{b:02X}" for b in text.encode())


FORMS = {
    "raw": f"token = {TOKEN}\n",
    "upper-cased": f"TOKEN = {TOKEN.upper()}\n",
    "reversed": f"x = '{TOKEN[::-1]}'\n",
    "hex": f"blob = {TOKEN.encode().hex()}\n",
    "hex upper": f"blob = {TOKEN.encode().hex().upper()}\n",
    "base64 at an offset": "data: " + base64.b64encode(b"prefix:" + TOKEN.encode() + b":suffix").decode() + "\n",
    "url-encoded": f"u = {_url_encoded(TOKEN)}\n",
    "split across lines": f"parts = (\n    \"{TOKEN[:9]}\"\n    \"{TOKEN[9:21]}\"\n    + '{TOKEN[21:]}'\n)\n",
    "from the git config": f"found = {CONFIG_ONLY}\n",
}


def _everything_on(origin: Path) -> bytes:
    """Every object origin holds, as bytes: blobs, trees and commit messages."""
    objects = git(origin, "rev-list", "--all", "--objects").stdout.split()
    shas = "\n".join(o for o in objects if len(o) == 40)
    return subprocess.run(["git", "cat-file", "--batch"], cwd=origin, input=shas.encode(), capture_output=True,
                          check=True).stdout


@pytest.fixture
def leaky(make_loop, kv_repo):
    repo, _ = kv_repo
    git(repo, "config", "http.https://github.com/.extraheader", f"AUTHORIZATION: bearer {CONFIG_ONLY}")

    def run(maker_turns, **kwargs):
        script = {"maker": [{"iteration": 1, "turns": maker_turns}], "checker": APPROVE, "goal_checker": MET}
        loop = make_loop(script, budgets={"max_iterations": 1}, secrets=(TOKEN,), **kwargs)
        return loop, loop.run()

    return run


def test_a_secret_in_any_encoding_stops_the_line_and_is_never_pushed(leaky, kv_repo):
    """One iteration writes every form, each in its own file: each is named, none is pushed."""
    _, origin = kv_repo
    files = {form: f"notes/leak-{index}.txt" for index, form in enumerate(FORMS)}
    writes = [{"write": {"path": path, "content": "# notes\n" + FORMS[form]}} for form, path in files.items()]
    loop, state = leaky([{"text": "APPROACH: leave notes", "tools": writes}, {"tools": [{"done": {"summary": "done"}}]}])
    assert state.stop_reason == StopReason.ANDON
    named = {v.path for v in state.iterations[0].violations if v.guard == "secret"}
    incident = loop.session.files.incident_path.read_text()
    for form, path in files.items():
        line = 3 if form == "split across lines" else 2  # where the secret starts
        assert f"{path}:{line}" in named, form
        assert f"{path}:{line}" in incident
    assert branch_head(origin, state.branch) is None  # the base alone is never pushed
    on_origin = _everything_on(origin).lower()
    assert TOKEN.lower().encode() not in on_origin and CONFIG_ONLY.encode() not in on_origin
    assert TOKEN not in incident and CONFIG_ONLY not in incident


def test_the_approach_line_reaches_the_commit_message_redacted(leaky, kv_repo):
    repo, _ = kv_repo
    _, state = leaky([{"text": f"APPROACH: store {TOKEN} for later", "tools": [
        {"write": {"path": "notes.txt", "content": "a note\n"}}]},
        {"tools": [{"done": {"summary": "done"}}]}])
    snapshot = state.iterations[0].head_sha
    message = git(repo, "log", "-1", "--format=%B", snapshot).stdout
    assert "[REDACTED]" in message and TOKEN not in message


def test_the_scan_finds_the_line_and_the_form():
    redactor = Redactor([TOKEN])
    text = "one\ntwo\n" + FORMS["split across lines"]
    hits = redactor.scan(text)
    assert hits and hits[0].line == 4 and hits[0].form == "raw"
    assert redactor.scan("an ordinary file\nwith nothing in it\n") == []
    assert [h.form for h in redactor.scan(FORMS["hex upper"])] == ["hex"]


def test_redaction_covers_the_encoded_forms():
    redactor = Redactor([TOKEN])
    for form in ("raw", "upper-cased", "reversed", "hex", "hex upper", "url-encoded"):
        cleaned = redactor(FORMS[form])
        assert "[REDACTED]" in cleaned, form


def test_credentials_in_git_configs_are_secrets():
    header = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    config = (f'[http "https://github.com/"]\n\textraheader = AUTHORIZATION: basic {header}\n'
              f'[remote "u"]\n\turl = https://bot:{CONFIG_ONLY}@example.invalid/r.git\n')
    found = secrets_in_git_config(config)
    assert TOKEN in found and CONFIG_ONLY in found and header in found


def test_files_whose_names_git_output_would_mangle_are_scanned(leaky, kv_repo):
    _, origin = kv_repo
    names = ["leak\\r", "bad\\xff name.txt", "caf\\303\\251.txt"]  # printf escapes: CR, invalid UTF-8, é
    command = "; ".join(f"printf 'x {TOKEN}\\n' > \"$(printf '{name}')\"" for name in names)
    _, state = leaky([{"text": "APPROACH: leave a note", "tools": [{"run": {"command": command}}]},
                      {"tools": [{"done": {"summary": "done"}}]}])
    assert state.stop_reason == StopReason.ANDON
    assert len([v for v in state.iterations[0].violations if v.guard == "secret"]) == len(names)
    assert TOKEN.lower().encode() not in _everything_on(origin).lower()


def test_a_secret_in_a_file_name_is_never_pushed(leaky, kv_repo):
    _, origin = kv_repo
    _, state = leaky([{"text": "APPROACH: name a file", "tools": [
        {"run": {"command": f"echo x > notes-{TOKEN}.txt"}}]}, {"tools": [{"done": {"summary": "done"}}]}])
    assert state.stop_reason == StopReason.ANDON
    assert any(v.guard == "secret" and v.path.startswith("file name") for v in state.iterations[0].violations)
    assert TOKEN.lower().encode() not in _everything_on(origin).lower()


def test_the_scan_stays_small_on_pathological_text():
    import tracemalloc

    redactor = Redactor([TOKEN])
    tracemalloc.start()
    try:
        hits = redactor.scan("\n" * 5_000_000 + TOKEN)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [h.line for h in hits] == [5_000_001]
    assert peak < 40 * 1024 * 1024  # two copies of the text, not a list per line
