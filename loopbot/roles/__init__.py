"""Roles: a prompt in, a typed reply out. Each role sees only what it should."""

from __future__ import annotations

from collections.abc import Callable

from loopbot.messages import ModelReply, ModelRequest

# The runner's gate: checks budgets before the call, charges the spend after it.
Gate = Callable[[ModelRequest], ModelReply]
