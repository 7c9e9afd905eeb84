"""Cassettes in the real APIs' wire formats, made from a scripted story (one story, two APIs)."""

from __future__ import annotations

import json
from typing import Any, Literal

from loopbot.core.textcalls import render_call
from loopbot.testing.replay import Cassette, Exchange, Fault, Match
from loopbot.testing.scripted import Script, pick

# A phrase from each role's system prompt (prompts/*_system.md.j2) that tells the roles apart.
ROLE_MARKERS = {
    "maker": "an engineering loop that changes",
    "planner": "PLAN MODE",
    "checker": "You are the checker",
    "goal_checker": "You are the goal-checker",
}

Api = Literal["anthropic", "openai"]
_STOPS = {"anthropic": {"tool_use": "tool_use", "end_turn": "end_turn", "max_tokens": "max_tokens"},
          "openai": {"tool_use": "tool_calls", "end_turn": "stop", "max_tokens": "length"}}


def _reply(api: Api, text: str, calls: list[tuple[str, str, dict[str, Any]]], stop: str,
           text_calls: bool = False) -> dict[str, Any]:
    if text_calls:
        # A local server that writes calls as JSON in the content (Qwen, Hermes builds).
        written = "\n\n".join([text] * bool(text) + [render_call(name, args) for _, name, args in calls])
        return {"message": {"content": written or None}, "finish_reason": "stop"}
    if api == "anthropic":
        content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
        content += [{"type": "tool_use", "id": call_id, "name": name, "input": args} for call_id, name, args in calls]
        return {"content": content, "stop_reason": _STOPS[api][stop]}
    message: dict[str, Any] = {"content": text or None}
    if calls:
        message["tool_calls"] = [{"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
                                 for call_id, name, args in calls]
    return {"message": message, "finish_reason": _STOPS[api][stop]}


def from_script(script: Script, api: Api, *, iterations: int, checked: list[int] | None = None,
                judged: list[int] | None = None, text_calls: bool = False) -> Cassette:
    """Every reply the script would give over `iterations` iterations, role by role, in order.

    Only the caller knows which iterations reach the checker (objective checks passed) and the
    goal-checker (checker approved): `checked` and `judged` name them (default: every iteration).
    """
    exchanges: list[Exchange] = []
    for role, entries in (("maker", script.maker), ("planner", script.planner)):
        for iteration in range(1, iterations + 1):
            session = pick(entries, iteration)
            if session is None:
                continue
            for turn_index, turn in enumerate(session.turns):
                calls = [(f"toolu_{role}_{iteration}_{turn_index}_{i}", *next(iter(entry.items())))
                         for i, entry in enumerate(turn.tools)]
                stop = turn.stop_reason or ("tool_use" if calls else "end_turn")
                exchanges.append(Exchange(api=api, match=Match(system_contains=ROLE_MARKERS[role]),
                                          response=_reply(api, turn.text, calls, stop, text_calls)))
    everything = list(range(1, iterations + 1))
    for iteration in checked if checked is not None else everything:
        verdict = pick(script.checker, iteration)
        if verdict is not None:
            args = {"decision": verdict.decision, "reasons": verdict.reasons}
            exchanges.append(Exchange(api=api, match=Match(system_contains=ROLE_MARKERS["checker"]),
                                      response=_reply(api, "", [(f"toolu_check_{iteration}", "verdict", args)], "tool_use",
                                                      text_calls)))
    for iteration in judged if judged is not None else everything:
        criteria = pick(script.goal_checker, iteration)
        if criteria is not None:
            args = {"criteria": [c.model_dump() for c in criteria.criteria]}
            exchanges.append(Exchange(api=api, match=Match(system_contains=ROLE_MARKERS["goal_checker"]),
                                      response=_reply(api, "", [(f"toolu_goal_{iteration}", "goal_verdict", args)],
                                                      "tool_use", text_calls)))
    return Cassette(exchanges=exchanges, any_model=text_calls)


def with_fault(cassette: Cassette, role: str, fault: Fault, *, times: int = 1) -> Cassette:
    """The same cassette with a fault answering the next `times` requests of a role first."""
    api = cassette.exchanges[0].api
    first = Exchange(api=api, match=Match(system_contains=ROLE_MARKERS[role]), fault=fault, times=times)
    return Cassette(exchanges=[first, *cassette.exchanges])
