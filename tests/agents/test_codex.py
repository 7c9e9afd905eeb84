"""The Codex adapter with the real CLI (npm @openai/codex, installed by `make test` into tools/)
against the replay server speaking the Responses API, scripted with Codex's own tool calls."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest

from loopbot.agents.base import PLACEHOLDER_KEY, AgentSession
from loopbot.agents.codex import INSTALL, Codex, find_binary
from loopbot.config import SandboxConfig
from loopbot.ports import Bind
from loopbot.sandbox.bubblewrap import BubblewrapSandbox
from loopbot.testing.agent_harness import REAL_KEY, run_session
from loopbot.testing.replay import Cassette, Exchange, ReplayServer

MODEL = "gpt-5.5"  # in Codex's own model catalog, so it offers apply_patch as it does for real
PATCH = ("*** Begin Patch\n*** Update File: notes.txt\n@@\n-draft\n+final\n*** Add File: added.txt\n+new file\n"
         "*** End Patch\n")


def codex_or_skip() -> Codex:
    adapter = Codex()
    missing = adapter.check_installed()
    if missing is not None:
        pytest.skip(missing)
    return adapter


def scripted(command: str, final: str) -> list[Exchange]:
    return [
        Exchange(api="responses", response={"output": [
            {"type": "message", "content": "Updating notes.txt, then checking."},
            {"type": "custom_tool_call", "name": "apply_patch", "call_id": "call_patch", "input": PATCH},
            {"type": "function_call", "name": "exec_command", "call_id": "call_run",
             "arguments": json.dumps({"cmd": command})}]}),
        Exchange(api="responses", response={"output": [{"type": "message", "content": final}]}),
    ]


def session_for(tmp_path: Path, url: str, task: str = "Make notes.txt final.") -> AgentSession:
    worktree, home = tmp_path / "work", tmp_path / "home"
    worktree.mkdir()
    home.mkdir()
    (worktree / "notes.txt").write_text("draft\n")
    subprocess.run(["git", "init", "-q"], cwd=worktree, check=True)
    task_file = tmp_path / "task.md"
    task_file.write_text(task)
    return AgentSession(task_file=str(task_file), task=task, worktree=str(worktree), config_dir=str(home),
                        proxy_url=url, model=MODEL, max_turns=10, wall_seconds=60)


def run(adapter: Codex, session: AgentSession) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", **adapter.env(session)}
    return subprocess.run(adapter.command(session), cwd=session.worktree, env=env, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL, check=False)


def test_codex_edits_and_runs_with_its_own_tools_and_reports_its_usage(tmp_path: Path):
    adapter = codex_or_skip()
    final = "Done: notes.txt says final.\nAPPROACH: patch notes.txt with apply_patch, then cat it."
    cassette = Cassette(exchanges=scripted("cat notes.txt > seen.txt", final), any_model=True,
                        api_key=PLACEHOLDER_KEY)  # any other key is a 401
    with ReplayServer(cassette) as server:
        session = session_for(tmp_path, server.url)
        done = run(adapter, session)
    worktree = Path(session.worktree)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (worktree / "notes.txt").read_text() == "final\n" and (worktree / "added.txt").read_text() == "new file\n"
    assert (worktree / "seen.txt").read_text() == "final\n"  # the command ran after the patch
    assert [r.status for r in server.received] == [200, 200] and not server.misses
    # What Codex asked for: the Responses API, streamed, with its tools minus those loopbot turns off.
    first = server.received[0].body
    assert first["stream"] is True and first["model"] == MODEL
    names = {tool.get("name") for tool in first["tools"]}
    assert {"exec_command", "apply_patch"} <= names
    assert not names & {"spawn_agent", "create_goal", None}  # no sub-agents, goals, hosted web search
    # The tools' results went back as Codex's own output items, answering its calls.
    outputs = {i["call_id"]: i["output"] for i in server.received[1].body["input"] if i.get("type", "").endswith("_output")}
    assert set(outputs) == {"call_patch", "call_run"} and "notes.txt" in outputs["call_patch"]
    outcome = adapter.parse(done.stdout, done.stderr)
    assert outcome.error is None and outcome.final_message == final
    assert outcome.approach == "patch notes.txt with apply_patch, then cat it."
    assert outcome.turns == 2  # one patch, one command
    served = [r.usage or {} for r in server.received]
    assert outcome.usage is not None
    assert outcome.usage.cache_read_tokens == sum(u["input_tokens_details"]["cached_tokens"] for u in served)
    assert outcome.usage.input_tokens + outcome.usage.cache_read_tokens == sum(u["input_tokens"] for u in served)
    assert outcome.usage.output_tokens == sum(u["output_tokens"] for u in served)


def test_a_refused_call_ends_the_session_with_the_work_so_far_and_the_reason(tmp_path: Path):
    adapter = codex_or_skip()
    budget = {"error": {"message": "loopbot: max_cost_usd 0.50 used up; no further model calls",
                        "type": "invalid_request_error", "code": "budget_exhausted"}}
    exchanges = scripted("true", "never sent")[:1]
    exchanges.append(Exchange(api="responses", fault={"status": 400, "body": json.dumps(budget)}))
    with ReplayServer(Cassette(exchanges=exchanges, any_model=True)) as server:
        session = session_for(tmp_path, server.url)
        done = run(adapter, session)
    assert [r.status for r in server.received] == [200, 400]  # not retried
    assert (Path(session.worktree) / "notes.txt").read_text() == "final\n"
    outcome = adapter.parse(done.stdout, done.stderr)
    assert outcome.error == "codex: loopbot: max_cost_usd 0.50 used up; no further model calls"
    assert outcome.final_message == "Updating notes.txt, then checking."


def test_the_session_takes_its_task_from_the_task_file_and_keeps_nothing_secret(tmp_path: Path):
    adapter = codex_or_skip()
    task = "Make notes.txt final.\n" + "Feedback from the last iteration: " + "x" * 200_000  # past one argument's limit
    with ReplayServer(Cassette(exchanges=scripted("true", "APPROACH: done"), any_model=True)) as server:
        session = session_for(tmp_path, server.url, task)
        done = run(adapter, session)
    assert done.returncode == 0, done.stderr[-2000:]
    users = [part["text"] for item in server.received[0].body["input"] if item.get("role") == "user"
             for part in item["content"] if "Feedback from the last iteration" in part.get("text", "")]
    assert [text.strip() for text in users] == [task.strip()]
    assert task[:40] not in " ".join(adapter.command(session))  # not an argument: read from the file
    # Codex keeps its state in the fresh home: nothing of it in the worktree.
    assert (Path(session.config_dir) / "sessions").is_dir()
    assert sorted(p.name for p in Path(session.worktree).iterdir()) == [".git", "added.txt", "notes.txt"]


@pytest.mark.parametrize("mode", ["workspace-write", "danger-full-access"])
def test_inside_loopbots_bubblewrap_only_codexs_full_access_mode_can_work(tmp_path: Path, mode: str):
    # Codex's own sandbox is a bubblewrap of its own: nested in loopbot's (capabilities dropped)
    # it cannot map its user, so every command and patch fails. loopbot's sandbox is the sandbox.
    adapter = codex_or_skip()
    with ReplayServer(Cassette(exchanges=scripted("echo ran > ran.txt", "APPROACH: x"), any_model=True)) as server:
        session = session_for(tmp_path, server.url)
        worktree = Path(session.worktree)
        sandbox = BubblewrapSandbox(worktree, worktree / ".git", SandboxConfig())
        argv = [("workspace-write" if part == "danger-full-access" else part) for part in adapter.command(session)]
        binds = (Bind(Path(session.config_dir), writable=True), Bind(tmp_path / "task.md"),
                 *(Bind(path) for path in adapter.host_paths()))
        # network=True here only so the CLI reaches the replay server on the host's loopback.
        result = sandbox.run(shlex.join(argv if mode == "workspace-write" else adapter.command(session)),
                             cwd=worktree, timeout_seconds=120, env=adapter.env(session), network=True,
                             binds=binds)
    assert result.exit_code == 0, result.output[-2000:]
    outputs = " ".join(i["output"] for i in server.received[1].body["input"] if i.get("type", "").endswith("_output"))
    if mode == "workspace-write":
        assert "bwrap: setting up uid map: Operation not permitted" in outputs
        assert (worktree / "notes.txt").read_text() == "draft\n" and not (worktree / "ran.txt").exists()
    else:
        assert (worktree / "notes.txt").read_text() == "final\n" and (worktree / "ran.txt").read_text() == "ran\n"


# -- finding the CLI ---------------------------------------------------------------------------

def test_a_missing_cli_names_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert Codex(package=tmp_path / "nowhere").check_installed() == (
        f"Codex is not installed (no `codex` on PATH, or its native build is missing): {INSTALL}")
    assert Codex(package=tmp_path / "nowhere").host_paths() == []


def test_the_native_binary_is_found_in_either_npm_layout(tmp_path: Path):
    for platform_package in (tmp_path / "a" / "codex" / "node_modules" / "@openai" / "codex-linux-x64",
                             tmp_path / "b" / "codex-linux-x64"):
        binary = platform_package / "vendor" / "x86_64-unknown-linux-musl" / "bin" / "codex"
        binary.parent.mkdir(parents=True)
        binary.write_text("")
    assert find_binary(tmp_path / "a" / "codex", "x86_64") == (
        tmp_path / "a/codex/node_modules/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex")
    assert find_binary(tmp_path / "b" / "codex", "x86_64") == (
        tmp_path / "b/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex")
    assert find_binary(tmp_path / "b" / "codex", "riscv64") is None


def test_through_loopbots_proxy_and_sandbox_the_work_is_done_and_no_key_is_left(tmp_path: Path):
    adapter = codex_or_skip()
    final = "APPROACH: patch notes.txt, then check it.\nnotes.txt is final."
    cassette = Cassette(exchanges=scripted("cat notes.txt > seen.txt", final), any_model=True)
    done = run_session(tmp_path, adapter, cassette, model=MODEL, task="Make notes.txt final.",
                       files={"notes.txt": "draft\n"})
    assert done.report.exit_code == 0 and done.report.outcome.error is None
    assert (done.worktree / "seen.txt").read_text() == "final\n"
    assert done.report.outcome.approach == "patch notes.txt, then check it."
    # The proxy swapped the placeholder for the key (the server takes no other) and charged
    # each streamed response's usage from its response.completed event.
    assert [r.status for r in done.server.received] == [200, 200]
    served = [r.usage or {} for r in done.server.received]
    assert [c.usage.output_tokens for c in done.ledger.charged] == [u["output_tokens"] for u in served]
    assert [c.usage.cache_read_tokens for c in done.ledger.charged] == [
        u["input_tokens_details"]["cached_tokens"] for u in served]
    left = done.left_behind()
    assert any("/home/" in name for name in left)  # codex's own state is in the session's home
    assert [name for name, data in left.items() if REAL_KEY.encode() in data] == []
    # Codex's own headers (x-codex-turn-metadata: installation id, worktree path, git HEAD, sandbox
    # mode; session ids; the SDK's machine details) stay in the proxy: none reaches the provider.
    for received in done.server.received:
        names = set(received.headers)
        assert names <= {"host", "content-type", "content-length", "accept", "accept-encoding", "authorization",
                         "user-agent", "openai-beta", "connection"}, names
        assert received.headers["user-agent"].startswith("codex_exec/")
        values = " ".join(received.headers.values())
        assert str(done.worktree) not in values and "/workspace/" not in values and done.worktree.name not in values


def test_the_call_past_the_sessions_turn_limit_is_refused_and_the_work_so_far_is_reviewed(tmp_path: Path):
    # Codex has no turn flag: the proxy refuses the (max_turns+1)-th model call before forwarding.
    adapter = codex_or_skip()
    cassette = Cassette(exchanges=scripted("cat notes.txt > seen.txt", "never asked"), any_model=True)
    done = run_session(tmp_path, adapter, cassette, model=MODEL, task="Make notes.txt final.",
                       files={"notes.txt": "draft\n"}, max_turns=1)
    assert [r.status for r in done.server.received] == [200]  # the second call never left the proxy
    assert len(done.ledger.charged) == 1 and done.ledger.asked == 1
    assert (done.worktree / "notes.txt").read_text() == "final\n" and (done.worktree / "seen.txt").exists()
    assert done.report.refused == ["this session's turn limit of 1 model calls is reached"]
    # An ordinary end: no maker error, the refusal noted, the work handed on to the reviewers.
    assert done.result.error is None
    assert done.result.notes[-1] == ("the proxy refused a model call: "
                                     "this session's turn limit of 1 model calls is reached")
