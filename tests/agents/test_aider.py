"""The aider adapter with the real CLI (PyPI aider-chat, in tools/aider-venv made by `make test`)
in loopbot's bubblewrap, through loopbot's proxy, against the replay server answering with
aider's own edit blocks (streamed chat completions)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from loopbot.agents.aider import INSTALL, Aider
from loopbot.agents.base import PLACEHOLDER_KEY
from loopbot.testing.agent_harness import REAL_KEY, Ledger, run_session
from loopbot.testing.replay import Cassette, Exchange

MODEL = "gpt-4.1"
CALC = "def add(a, b):\n    return a - b\n"
FIX = ("APPROACH: add the operands instead of subtracting them.\n\nThe operator was wrong.\n\n"
       "calc.py\n```python\n<<<<<<< SEARCH\n    return a - b\n=======\n    return a + b\n>>>>>>> REPLACE\n```\n")
TASK = "Goal: add() in calc.py must return the sum of its arguments."


def aider_or_skip() -> Aider:
    adapter = Aider()
    missing = adapter.check_installed()
    if missing is not None:
        pytest.skip(missing)
    return adapter


def test_aider_edits_by_its_own_blocks_the_proxy_charges_the_streamed_usage_and_no_key_is_left(tmp_path: Path):
    adapter = aider_or_skip()
    cassette = Cassette(exchanges=[Exchange(api="openai", response={"message": {"content": FIX}})])
    done = run_session(tmp_path, adapter, cassette, model=MODEL, task=TASK, files={"calc.py": CALC})
    assert done.report.exit_code == 0, (done.report.folder / "stdout.jsonl").read_text()[-2000:]
    assert (done.worktree / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"
    # What aider sent: a streamed chat completion, the file it was told about already in it.
    [received] = done.server.received
    assert received.api == "openai" and received.status == 200
    assert received.body["stream"] is True and received.body["stream_options"] == {"include_usage": True}
    assert "return a - b" in json.dumps(received.body["messages"])
    # The proxy read the usage from the stream's last chunk and charged it.
    [charged] = done.ledger.charged
    usage = received.usage or {}
    assert (charged.usage.input_tokens, charged.usage.output_tokens) == (usage["prompt_tokens"],
                                                                        usage["completion_tokens"])
    outcome = done.report.outcome
    assert outcome.error is None and outcome.approach == "add the operands instead of subtracting them."
    assert "The operator was wrong." in outcome.final_message and "SEARCH" not in outcome.final_message
    assert outcome.usage is not None and outcome.usage.output_tokens > 0 and outcome.usage.cost_usd is not None
    assert outcome.notes == ["1 edit(s) applied"]
    # No key in the sandbox, the agent's home, the proxy's record or the worktree.
    left = done.left_behind()
    assert [name for name, data in left.items() if REAL_KEY.encode() in data] == []
    # aider was given the placeholder only; it kept its histories in the session's home.
    home = done.report.folder / "home"
    assert {"chat.history.md", "llm.history", "model-settings.yml"} <= {p.name for p in home.iterdir()}
    assert PLACEHOLDER_KEY not in (home / "llm.history").read_text()
    # Nothing of aider's in the worktree, and git's config untouched (aider writes an author
    # there when it finds none; the sandbox's .git is read-only).
    assert sorted(p.name for p in done.worktree.iterdir()) == [".git", "calc.py"]
    assert "user" not in (done.worktree / ".git" / "config").read_text()


def test_a_refused_call_ends_the_session_with_the_reason(tmp_path: Path):
    adapter = aider_or_skip()
    cassette = Cassette(exchanges=[Exchange(api="openai", response={"message": {"content": FIX}})])
    done = run_session(tmp_path, adapter, cassette, model=MODEL, task=TASK, files={"calc.py": CALC},
                       ledger=Ledger(allow=0))
    assert done.server.received == [] and done.report.refused == ["max_cost_usd 0.50 used up"]
    assert (done.worktree / "calc.py").read_text() == CALC
    error = done.report.outcome.error or ""
    assert error.startswith("aider: litellm.BadRequestError") and "max_cost_usd 0.50 used up" in error


def test_a_failed_edit_is_reflected_back_and_fixed_in_the_same_session(tmp_path: Path):
    adapter = aider_or_skip()
    wrong = FIX.replace("    return a - b\n=======", "    return a * b\n=======")  # matches nothing
    cassette = Cassette(exchanges=[Exchange(api="openai", response={"message": {"content": wrong}}),
                                   Exchange(api="openai", match={"text_contains": "SearchReplaceNoExactMatch"},
                                            response={"message": {"content": FIX}})])
    done = run_session(tmp_path, adapter, cassette, model=MODEL, task=TASK, files={"calc.py": CALC})
    assert [r.status for r in done.server.received] == [200, 200] and not done.server.misses
    assert (done.worktree / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"
    assert done.report.outcome.turns == 2 and len(done.ledger.charged) == 2


# -- the CLI's output, read ------------------------------------------------------------------

def test_usage_lines_with_rounded_counts_and_cache_figures_are_summed():
    stdout = "\n".join([
        "Aider v0.86.2", "Model: openai/gpt-4.1 with diff edit format", "Git repo: .git with 3 files",
        "Repo-map: disabled", "", "APPROACH: one step", "Did it.",
        "Tokens: 2.4k sent, 1.0k cache hit, 812 received. Cost: $0.0049 message, $0.0049 session.",
        "Applied edit to a.py",
        "Tokens: 31k sent, 2k cache write, 12 received. Cost: $0.06 message, $0.0649 session.",
    ])
    outcome = Aider().parse(stdout, "")
    assert outcome.usage is not None
    assert (outcome.usage.input_tokens, outcome.usage.cache_read_tokens, outcome.usage.cache_write_tokens,
            outcome.usage.output_tokens, outcome.usage.cost_usd) == (2400 - 1000 + 31000, 1000, 2000, 824, 0.0649)
    assert outcome.turns == 2 and outcome.approach == "one step" and outcome.error is None


def test_no_answer_at_all_is_an_error_naming_what_aider_said():
    outcome = Aider().parse("Aider v0.86.2\n", "Traceback (most recent call last):\nOSError: boom")
    assert outcome.error is not None and "OSError: boom" in outcome.error


def test_a_missing_cli_names_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    adapter = Aider(venv=tmp_path / "nowhere")
    assert adapter.check_installed() == f"aider is not installed (no `aider` on PATH): {INSTALL}"
    assert adapter.host_paths() == []


def test_a_repositorys_own_aider_config_and_env_file_change_none_of_loopbots_settings(tmp_path: Path):
    # An earlier iteration (or the repository) may hold aider's config files: the command line wins.
    adapter = aider_or_skip()
    hostile = {
        ".aider.conf.yml": ("auto-commits: true\ngitignore: true\nopenai-api-base: http://127.0.0.1:9/v1\n"
                            "openai-api-key: sk-from-the-repo\nchat-history-file: stolen.md\nanalytics: true\n"),
        ".env": "OPENAI_API_BASE=http://127.0.0.1:9/v1\nOPENAI_API_KEY=sk-from-dotenv\nAIDER_AUTO_COMMITS=true\n",
    }
    cassette = Cassette(exchanges=[Exchange(api="openai", response={"message": {"content": FIX}})])
    done = run_session(tmp_path, adapter, cassette, model=MODEL, task=TASK, files={"calc.py": CALC, **hostile})
    assert [r.status for r in done.server.received] == [200]  # through the proxy, with the placeholder
    assert (done.worktree / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"
    names = sorted(p.name for p in done.worktree.iterdir())
    assert names == [".aider.conf.yml", ".env", ".git", "calc.py"]  # no .gitignore, no stolen.md
    log = subprocess.run(["git", "log", "--oneline"], cwd=done.worktree, capture_output=True, text=True).stdout
    assert len(log.splitlines()) == 1  # aider committed nothing


def test_the_final_message_is_the_reply_without_the_chat_file_list_and_edit_blocks():
    stdout = "\n".join(["Repo-map: disabled", "", "", "README.md", "", "kvstore.py", "",
                        "APPROACH: expire lazily.", "One helper does it.", "", "kvstore.py", "```python",
                        "<<<<<<< SEARCH", "x", "=======", "y", ">>>>>>> REPLACE", "```", "",
                        "Tokens: 1.9k sent, 37 received. Cost: $0.0041 message, $0.0041 session.",
                        "Applied edit to kvstore.py"])
    outcome = Aider().parse(stdout, "")
    assert outcome.final_message == "APPROACH: expire lazily.\nOne helper does it."
    assert outcome.notes == ["1 edit(s) applied"]


def test_aider_creates_files_and_edits_one_the_task_did_not_name_without_touching_the_repositorys_git(
        tmp_path: Path):
    # aider `git add`s each file it creates; with the sandbox's .git read-only that would stop it,
    # so git gets an index and object store of its own in the session's home.
    adapter = aider_or_skip()
    reply = ("APPROACH: a new module, and calc fixed.\n\nnewmod.py\n```python\n<<<<<<< SEARCH\n=======\n"
             "X = 1\n>>>>>>> REPLACE\n```\n\n" + FIX.split("\n\n", 2)[2])
    cassette = Cassette(exchanges=[Exchange(api="openai", response={"message": {"content": reply}}, times=2)])
    done = run_session(tmp_path, adapter, cassette, model=MODEL, task="Fix the add function.",
                       files={"calc.py": CALC})
    assert (done.worktree / "newmod.py").read_text() == "X = 1\n"
    assert (done.worktree / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"
    # calc.py was not in the chat: aider asked once more with it added, as it does.
    assert len(done.server.received) == 2 and done.report.outcome.notes == ["2 edit(s) applied"]
    assert done.report.outcome.final_message == "APPROACH: a new module, and calc fixed."
    status = subprocess.run(["git", "status", "--porcelain"], cwd=done.worktree, capture_output=True, text=True,
                            check=True).stdout
    assert status.splitlines() == [" M calc.py", "?? newmod.py"]  # the repository's own index: unchanged
    assert (done.report.folder / "home" / "git" / "index").is_file()
