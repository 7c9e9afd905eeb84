"""OpenAI's streamed answers from the replay server, read back by the real openai SDK: chat
completion chunks and the Responses API (which Codex speaks), with the API's refusals."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from loopbot.testing.replay import Cassette, Exchange, ReplayServer

MODEL = "gpt-5.4"
TOOL = {"type": "function", "function": {"name": "shell", "parameters": {"type": "object"}}}
CALL = {"id": "call_1", "type": "function",
        "function": {"name": "shell", "arguments": json.dumps({"cmd": "python3 -m unittest -q " + "x" * 40})}}
CHAT_REPLY = {"message": {"content": "APPROACH: run the tests first, then fix what fails.", "tool_calls": [CALL]},
              "finish_reason": "tool_calls"}
PATCH = "*** Begin Patch\n*** Update File: kvstore.py\n@@\n-    return 1\n+    return 2\n*** End Patch\n"
OUTPUT = [{"type": "message", "content": "APPROACH: patch kvstore, then run the tests."},
          {"type": "function_call", "name": "exec_command", "call_id": "call_a",
           "arguments": json.dumps({"cmd": "python3 -m unittest discover -s tests -q"})},
          {"type": "custom_tool_call", "name": "apply_patch", "call_id": "call_b", "input": PATCH}]


def client(server: ReplayServer) -> openai.OpenAI:
    return openai.OpenAI(api_key="sk-test", base_url=server.url + "/v1", max_retries=0)


def chat_server(times: int = 1) -> ReplayServer:
    return ReplayServer(Cassette(exchanges=[Exchange(api="openai", response=CHAT_REPLY, times=times)]))


def responses_server(times: int = 1, **response: Any) -> ReplayServer:
    answer = {"output": OUTPUT, **response}
    return ReplayServer(Cassette(exchanges=[Exchange(api="responses", response=answer, times=times)]))


# -- chat completions ---------------------------------------------------------------------------

def test_a_streamed_chat_completion_reassembles_to_the_same_message_with_usage_last_when_asked():
    with chat_server(times=2) as server:
        whole = client(server).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "go"}],
                                                       tools=[TOOL])
        chunks = list(client(server).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "go"}], tools=[TOOL],
            stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    arguments = "".join(call.function.arguments or "" for c in chunks if c.choices
                        for call in c.choices[0].delta.tool_calls or [] if call.function)
    assert text == whole.choices[0].message.content
    assert arguments == CALL["function"]["arguments"]
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 1  # really cut into deltas
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert [c.usage is not None for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_a_streamed_chat_completion_carries_no_usage_unless_asked():
    with chat_server() as server:
        chunks = list(client(server).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "go"}], stream=True))
    assert chunks and all(c.usage is None for c in chunks) and all(c.choices for c in chunks)


def test_stream_options_without_stream_are_refused():
    with chat_server() as server, pytest.raises(openai.BadRequestError, match="only allowed when 'stream'"):
        client(server).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "go"}],
                                               stream_options={"include_usage": True})


# -- the Responses API --------------------------------------------------------------------------

def test_a_streamed_response_gives_the_events_codex_reads_and_the_sdk_rebuilds_the_items():
    with responses_server() as server, client(server).responses.stream(model=MODEL, input="fix it") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    for kind in ("response.output_item.added", "response.output_text.delta", "response.output_item.done",
                 "response.function_call_arguments.delta", "response.custom_tool_call_input.delta"):
        assert kind in kinds
    assert final.output_text == "APPROACH: patch kvstore, then run the tests."
    call, patch = final.output[1], final.output[2]
    assert call.type == "function_call" and call.name == "exec_command" and call.call_id == "call_a"
    assert json.loads(call.arguments) == {"cmd": "python3 -m unittest discover -s tests -q"}
    assert patch.type == "custom_tool_call" and patch.input == PATCH
    assert final.usage is not None and final.usage.input_tokens > 0 and final.usage.output_tokens > 0
    recorded = server.received[-1].usage or {}
    assert (recorded["input_tokens"], recorded["output_tokens"]) == (final.usage.input_tokens,
                                                                    final.usage.output_tokens)


def test_sequence_numbers_count_up_and_a_whole_response_equals_the_streamed_one():
    with responses_server(times=2) as server:
        whole = client(server).responses.create(model=MODEL, input="fix it")
        events = list(client(server).responses.create(model=MODEL, input="fix it", stream=True))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-1].type == "response.completed"
    def shown(output: list[Any]) -> list[dict[str, Any]]:
        return [item.model_dump(exclude={"id"}) for item in output]

    assert shown(events[-1].response.output) == shown(whole.output)


def test_a_tool_output_goes_back_with_its_call_and_a_kept_response_can_be_continued():
    with responses_server(times=3) as server:
        first = client(server).responses.create(model=MODEL, input="fix it")
        calls = [item.model_dump(exclude_none=True) for item in first.output if item.type != "message"]
        answers = [{"type": "function_call_output", "call_id": "call_a", "output": "OK"},
                   {"type": "custom_tool_call_output", "call_id": "call_b", "output": "Done!"}]
        second = client(server).responses.create(model=MODEL, input=[{"role": "user", "content": "fix it"},
                                                                     *calls, *answers])
        third = client(server).responses.create(model=MODEL, previous_response_id=second.id, input="go on")
    assert third.status == "completed"


@pytest.mark.parametrize("request_body, refusal", [
    ({"input": [{"type": "function_call_output", "call_id": "call_x", "output": "?"}]},
     "No tool call found for function call output with call_id call_x"),
    ({"input": [{"type": "function_call", "call_id": "call_y", "name": "shell", "arguments": "{}"}]},
     "No tool output found for function call call_y"),
    ({"input": [{"type": "custom_tool_call", "call_id": "call_z", "name": "apply_patch", "input": "x"},
                {"type": "function_call_output", "call_id": "call_z", "output": "?"}]},
     "No tool call found for function call output"),
    ({"input": [{"role": "tool", "content": "x"}]}, "Supported values are: 'assistant'"),
    ({"input": "go", "tool_choice": "required"}, "must be specified with 'tools'"),
    ({"input": "go", "max_output_tokens": 8}, "Expected a value >= 16"),
    ({"input": "go", "max_output_tokens": 1_000_000}, "max_output_tokens is too large"),
    ({"input": "go", "tools": [{"type": "function", "name": "bad name", "parameters": {}}]}, "tool names"),
    ({}, "Missing required parameter: 'input'"),
])
def test_the_responses_api_refuses_what_the_real_api_refuses(request_body, refusal):
    with responses_server() as server, pytest.raises(openai.BadRequestError, match=refusal):
        client(server).responses.create(model=MODEL, **request_body)
    assert server.received[-1].status == 400


def test_an_unknown_previous_response_and_an_unknown_model_are_not_found():
    with responses_server() as server:
        with pytest.raises(openai.NotFoundError, match="Previous response with id 'resp_nope' not found"):
            client(server).responses.create(model=MODEL, input="go", previous_response_id="resp_nope")
        with pytest.raises(openai.NotFoundError):
            client(server).responses.create(model="gpt-nonexistent-9", input="go")
        with pytest.raises(openai.NotFoundError, match="Items are not persisted when `store` is set to false"):
            client(server).responses.create(model=MODEL, input=[{"type": "reasoning", "id": "rs_1", "summary": []}],
                                            store=False)
        unstored = client(server).responses.create(model=MODEL, input="go", store=False)
        with pytest.raises(openai.NotFoundError):
            client(server).responses.create(model=MODEL, input="go", previous_response_id=unstored.id)
