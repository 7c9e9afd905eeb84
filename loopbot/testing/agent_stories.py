"""The kvstore story (loopbot/examples/kvstore) as an agent CLI plays it: the replay server answers
the agent's own requests in the agent's own wire format (Codex: Responses API items with its
apply_patch and exec_command tools; aider: chat completions whose text holds SEARCH/REPLACE
blocks), and the reviewers' requests as the demo script does.

The agent makes the demo's correct change (lazy TTL expiry, KVSTORE_WITH_TTL) in one session,
so one iteration reaches SUCCESS.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

from loopbot.examples import KVSTORE
from loopbot.testing.agent_turns import KVSTORE_WITH_TTL
from loopbot.testing.cassettes import ROLE_MARKERS, from_script
from loopbot.testing.replay import Exchange, Match
from loopbot.testing.scripted import load_script

TESTS = "python3 -m unittest discover -s tests -q"
APPROACH = "Add ttl_seconds to set() and expire keys lazily through one _expired() helper."
FINAL = f"APPROACH: {APPROACH}\nset() takes ttl_seconds; get, exists, delete, keys and len skip expired keys."
AIDER_SYSTEM = "Act as an expert software developer"  # the start of aider's system prompt


def kvstore_before() -> str:
    return (KVSTORE / "repo" / "kvstore.py").read_text(encoding="utf-8")


def kvstore_after() -> str:
    return KVSTORE_WITH_TTL


def _hunks(old: str, new: str, context: int) -> list[tuple[list[str], list[str], list[tuple[str, list[str], list[str]]]]]:
    before, after = old.splitlines(), new.splitlines()
    hunks = []
    for group in difflib.SequenceMatcher(a=before, b=after, autojunk=False).get_grouped_opcodes(context):
        parts = [(tag, before[i1:i2], after[j1:j2]) for tag, i1, i2, j1, j2 in group]
        hunks.append((before[group[0][1]:group[-1][2]], after[group[0][3]:group[-1][4]], parts))
    return hunks


def codex_patch(path: str, old: str, new: str, context: int = 3) -> str:
    """An apply_patch patch in Codex's own format: bare `@@` hunks of ' ', '-' and '+' lines."""
    lines = ["*** Begin Patch", f"*** Update File: {path}"]
    for _, _, parts in _hunks(old, new, context):
        lines.append("@@")
        for tag, removed, added in parts:
            if tag == "equal":
                lines += [f" {line}" for line in removed]
            else:
                lines += [f"-{line}" for line in removed] + [f"+{line}" for line in added]
    return "\n".join([*lines, "*** End Patch"]) + "\n"


def aider_reply(path: str, old: str, new: str, context: int = 2) -> str:
    """aider's diff edit format: the path, then a fenced SEARCH/REPLACE block per changed part."""
    blocks = []
    for search, replace, _ in _hunks(old, new, context):
        body = "\n".join(["<<<<<<< SEARCH", *search, "=======", *replace, ">>>>>>> REPLACE"])
        blocks.append(f"{path}\n```python\n{body}\n```")
    return "\n\n".join([FINAL, *blocks]) + "\n"


def reviewers(iterations: int = 1) -> list[Exchange]:
    """The checker's and goal-checker's answers from the demo script (chat completions)."""
    cassette = from_script(load_script(KVSTORE / "script.yaml"), "openai", iterations=iterations)
    markers = (ROLE_MARKERS["checker"], ROLE_MARKERS["goal_checker"])
    return [e for e in cassette.exchanges if e.match.system_contains in markers]


def codex_story() -> list[Exchange]:
    """Codex reads, patches, runs the tests, then answers with the APPROACH line."""
    def call(item_type: str, call_id: str, **fields: Any) -> dict[str, Any]:
        return {"type": item_type, "call_id": call_id, **fields}

    turns = [
        [{"type": "message", "content": "Reading the store and its TTL tests first."},
         call("function_call", "call_read", name="exec_command",
              arguments=json.dumps({"cmd": "cat kvstore.py tests/test_ttl.py"}))],
        [call("custom_tool_call", "call_patch", name="apply_patch",
              input=codex_patch("kvstore.py", kvstore_before(), kvstore_after()))],
        [call("function_call", "call_test", name="exec_command", arguments=json.dumps({"cmd": TESTS}))],
        [{"type": "message", "content": FINAL}],
    ]
    return [Exchange(api="responses", response={"output": output}) for output in turns] + reviewers()


def aider_story(*, with_a_failed_block: bool = False) -> list[Exchange]:
    """aider answers the task with its edit blocks (kvstore.py is named in the task, so aider
    has already added it to the chat). `with_a_failed_block`: one more block matches nothing,
    so aider applies the others and reflects the failure back in a second call."""
    reply = aider_reply("kvstore.py", kvstore_before(), kvstore_after())
    if with_a_failed_block:
        reply += "\nkvstore.py\n```python\n<<<<<<< SEARCH\n# no such line\n=======\n# x\n>>>>>>> REPLACE\n```\n"
    maker = Exchange(api="openai", match=Match(system_contains=AIDER_SYSTEM), response={"message": {"content": reply}})
    again = Exchange(api="openai", match=Match(text_contains="SearchReplaceNoExactMatch"),
                     response={"message": {"content": FINAL}})
    return [maker, *([again] if with_a_failed_block else []), *reviewers()]
