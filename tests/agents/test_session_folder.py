"""The session folder is writable from inside the sandbox (the agent's home and output live there),
so nothing loopbot does with it afterwards on the host may follow what the agent left: a symlink
in place of the proxy's log or the CLI's output points at a host file, a FIFO blocks a reader."""

from __future__ import annotations

import threading
from pathlib import Path

from loopbot.agents.template import CommandTemplate
from loopbot.testing.agent_harness import Outcome, run_session
from loopbot.testing.replay import Cassette, Exchange

HOST_SECRET = "host-only-" + "q" * 30

# One chat completion through the relay, so the proxy writes its log (stdlib only: the sandbox's python).
CALL = ("import json, sys, urllib.request; urllib.request.urlopen(urllib.request.Request("
        "sys.argv[1] + '/v1/chat/completions', data=json.dumps({'model': 'gpt-4.1', 'messages': "
        "[{'role': 'user', 'content': 'hi'}]}).encode(), headers={'content-type': 'application/json', "
        "'authorization': 'Bearer loopbot-proxy-placeholder-key'})).read()")


def agent(tmp_path: Path, script: str, exchanges: int = 0) -> Outcome:
    cassette = Cassette(exchanges=[Exchange(api="openai", response={"message": {"content": "ok"}},
                                            times=exchanges)] if exchanges else [], any_model=True)
    return run_session(tmp_path, CommandTemplate(["sh", "-c", script, "agent", "{config_dir}", "{proxy_url}"],
                                                 api="openai"),
                       cassette, model="gpt-4.1", task="attack", files={"a.txt": "a\n"}, wall_seconds=60)


def test_a_symlink_in_place_of_the_proxy_log_writes_nothing_to_its_host_target(tmp_path: Path) -> None:
    target = tmp_path / "host-file"
    target.write_text("untouched\n")
    # The agent swaps the log for a link to a host path it cannot see, then makes a model call.
    done = agent(tmp_path, f'ln -sf {target} "$1/../proxy.jsonl" && python3 -c "{CALL}" "$2"; echo done', 1)
    assert [r.status for r in done.server.received] == [200]
    assert target.read_text() == "untouched\n"


def test_a_symlink_in_place_of_the_cli_output_reads_no_host_file(tmp_path: Path) -> None:
    secret = tmp_path / "host-secret"
    secret.write_text(HOST_SECRET + "\n")
    done = agent(tmp_path, f'rm "$1/../stdout.jsonl"; ln -s {secret} "$1/../stdout.jsonl"; '
                           f'ln -sf {secret} "$1/../stderr.log"; exit 3')
    assert HOST_SECRET not in done.result.summary + (done.result.error or "") + done.report.outcome.final_message


def test_a_fifo_in_place_of_the_cli_output_does_not_block_loopbot(tmp_path: Path) -> None:
    outcome: list[Outcome] = []
    session = threading.Thread(target=lambda: outcome.append(agent(
        tmp_path, 'rm "$1/../stdout.jsonl" "$1/../stderr.log"; mkfifo "$1/../stdout.jsonl" "$1/../stderr.log"; '
                  'echo APPROACH: a fifo')), daemon=True)
    session.start()
    session.join(60)  # a bound on a hang, not a wait for timing: a fixed reader returns at once
    assert not session.is_alive() and outcome[0].report.exit_code == 0
