"""Provider-neutral model messages: what roles send and what a Model port returns."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from loopbot.core.budgets import Spend

Role = Literal["maker", "planner", "checker", "goal_checker", "auditor", "documenter"]


class TextBlock(BaseModel):
    type: Literal["text"] = "text"
    text: str
    # A prompt-cache breakpoint: everything up to and including this block is a stable prefix.
    cache: bool = False


class ToolCall(BaseModel):
    type: Literal["tool_use"] = "tool_use"
    id: str
    name: str
    input: dict[str, Any] = Field(default_factory=dict)
    # Set when the provider's call could not be read (arguments not JSON, not an object): the
    # call is answered with this error instead of being run, so the model sees it and goes on.
    error: str | None = None


class ToolResult(BaseModel):
    type: Literal["tool_result"] = "tool_result"
    tool_use_id: str
    content: str
    is_error: bool = False


class OpaqueBlock(BaseModel):
    """A provider's block loopbot does not interpret (Anthropic's thinking and redacted_thinking),
    carried verbatim: the API refuses a later turn whose assistant message lacks it unchanged."""

    type: Literal["opaque"] = "opaque"
    provider: str
    data: dict[str, Any]


Block = Annotated[TextBlock | ToolCall | ToolResult | OpaqueBlock, Field(discriminator="type")]


class Message(BaseModel):
    role: Literal["user", "assistant"]
    content: list[Block]

    @property
    def text(self) -> str:
        return "\n".join(b.text for b in self.content if isinstance(b, TextBlock))

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [b for b in self.content if isinstance(b, ToolCall)]


class ToolSpec(BaseModel):
    name: str
    description: str
    input_schema: dict[str, Any]


class ModelRequest(BaseModel):
    role: Role
    system: str
    messages: list[Message]
    tools: list[ToolSpec] = Field(default_factory=list)
    # Force a call to this tool (typed replies from checker and goal-checker). A provider whose
    # model refuses forced tool use sends auto instead; the role's prompt asks for the call.
    tool_choice: str | None = None
    # A single-turn call (the reviewers): no cache breakpoint on the conversation's tail, which no
    # later call would read.
    single_turn: bool = False
    max_tokens: int = 4096
    # Where in the loop this call is made; scripted models key on it, providers log it.
    iteration: int = 0
    turn: int = 0


class Usage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0


class ModelReply(BaseModel):
    """A model's answer; `charge_to(spend)` counts it against a budget."""

    message: Message
    stop_reason: Literal["end_turn", "tool_use", "max_tokens", "refusal", "error"]
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = 0.0
    model: str = ""
    seconds: float = 0.0

    def charge_to(self, spend: Spend, seconds: float | None = None) -> None:
        u = self.usage
        spend.charge(input_tokens=u.input_tokens, output_tokens=u.output_tokens, cache_write_tokens=u.cache_write_tokens,
                     cache_read_tokens=u.cache_read_tokens, cost_usd=self.cost_usd,
                     seconds=self.seconds if seconds is None else seconds)
