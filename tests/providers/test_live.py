"""Optional: one real call per provider. Never runs unless asked for:

    LOOPBOT_LIVE_TESTS=1 ANTHROPIC_API_KEY=... .venv/bin/python -m pytest -p no:socket -m live tests/providers
"""

import os

import pytest

from loopbot.messages import Message, ModelRequest, TextBlock, ToolSpec
from loopbot.providers import ProviderEnv, build_model

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not os.environ.get("LOOPBOT_LIVE_TESTS"), reason="live model calls are off (LOOPBOT_LIVE_TESTS)"),
]


@pytest.mark.skipif(not os.environ.get("ANTHROPIC_API_KEY"), reason="no ANTHROPIC_API_KEY")
def test_anthropic_tool_call_round_trip():
    model = build_model(os.environ.get("LOOPBOT_LIVE_MODEL", "anthropic:claude-haiku-4-5"),
                        env=ProviderEnv(anthropic_api_key=os.environ["ANTHROPIC_API_KEY"]))
    reply = model.complete(ModelRequest(
        role="checker", system="Call the verdict tool.", tool_choice="verdict",
        messages=[Message(role="user", content=[TextBlock(text="Approve this: the diff is empty.")])],
        tools=[ToolSpec(name="verdict", description="decision", input_schema={
            "type": "object", "properties": {"decision": {"type": "string", "enum": ["APPROVE", "REJECT"]}},
            "required": ["decision"]})]))
    assert reply.message.tool_calls and reply.usage.input_tokens > 0 and reply.cost_usd > 0
