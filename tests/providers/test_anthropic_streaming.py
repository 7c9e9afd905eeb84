"""The Messages API's streamed answer from the replay server, read back by the real anthropic SDK
(what Claude Code does on every call), and what else Claude Code asks: HEAD, count_tokens."""

from __future__ import annotations

import anthropic
import httpx
import pytest

from loopbot.testing.replay import Cassette, Exchange, ReplayServer

MODEL = "claude-sonnet-4-5"
CONTENT = [{"type": "text", "text": "APPROACH: read the store, then write expiry into set() and get()."},
           {"type": "tool_use", "id": "toolu_1", "name": "Edit",
            "input": {"file_path": "/w/kvstore.py", "old_string": "def set(self, key", "new_string": "def set(self, k"}}]


def server(times: int = 1) -> ReplayServer:
    reply = {"content": CONTENT, "stop_reason": "tool_use"}
    return ReplayServer(Cassette(exchanges=[Exchange(api="anthropic", response=reply, times=times)]))


def client(replay: ReplayServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key="sk-ant-test", base_url=replay.url, max_retries=0)


def test_a_streamed_reply_is_put_back_together_by_the_sdk_with_its_usage():
    with server() as replay, client(replay).messages.stream(
            model=MODEL, max_tokens=2000, messages=[{"role": "user", "content": "add expiry"}]) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert {"content_block_start", "content_block_delta", "content_block_stop", "message_delta"} <= set(kinds)
    assert [b.type for b in final.content] == ["text", "tool_use"]
    assert final.content[0].text == CONTENT[0]["text"]
    assert final.content[1].input == CONTENT[1]["input"] and final.content[1].name == "Edit"
    assert final.stop_reason == "tool_use"
    # The figures the server billed, as the stream told them: input at the start, output at the end.
    billed = replay.received[0].usage
    assert billed is not None
    assert final.usage.input_tokens == billed["input_tokens"] and final.usage.output_tokens == billed["output_tokens"]


def test_a_thinking_budget_the_api_refuses_is_a_400():
    with server() as replay, pytest.raises(anthropic.BadRequestError, match="budget_tokens"):
        client(replay).messages.create(model=MODEL, max_tokens=2000, stream=True,
                                       thinking={"type": "enabled", "budget_tokens": 4000},
                                       messages=[{"role": "user", "content": "x"}])
    assert replay.received[0].status == 400


def test_head_and_count_tokens_are_answered_without_a_charge():
    with server() as replay:
        assert httpx.head(replay.url + "/").status_code == 200
        counted = client(replay).messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "hi " * 50}])
        assert counted.input_tokens > 10
        with pytest.raises(anthropic.NotFoundError):
            client(replay).messages.count_tokens(model="claude-nonesuch-9", messages=[{"role": "user", "content": "x"}])
    assert replay.received == []  # nothing billed, the recorded exchange still unused
    assert len(replay.remaining) == 1
