"""`/loop` commands in comments. Pure: text in, a command or a helpful error out."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Verb = Literal["run", "stop", "resume", "status", "retry", "context"]
VERBS: tuple[Verb, ...] = ("run", "stop", "resume", "status", "retry", "context")
HELP = (
    "`/loop run` start (or iterate) the loop on this issue or loop PR · `/loop stop` stop after the current "
    "step, best work kept · `/loop resume` continue a stopped or interrupted loop · `/loop retry` start over "
    "from main · `/loop status` show progress · `/loop context <text>` add context for the next iteration"
)
# [ \t]*, not \s*: \s crosses newlines, which made a body of blank lines quadratic to scan.
_LINE = re.compile(r"^[ \t]*/loop\b(.*)$", re.MULTILINE | re.IGNORECASE)


@dataclass(frozen=True)
class Command:
    verb: Verb
    text: str = ""


class CommandError(Exception):
    pass


def parse(body: str) -> Command | None:
    """The first `/loop` line of a comment; None when there is none. Quoted lines do not count."""
    for match in _LINE.finditer(body):
        line_start = body.rfind("\n", 0, match.start()) + 1
        if body[line_start:match.start()].strip().startswith(">"):
            continue
        words = match.group(1).strip()
        if not words:
            raise CommandError(f"`/loop` needs a command. {HELP}")
        verb, _, rest = words.partition(" ")
        verb = verb.lower()
        if verb not in VERBS:
            raise CommandError(f"unknown command `/loop {verb}`. {HELP}")
        if verb == "context" and not rest.strip():
            raise CommandError(f"`/loop context` needs the text to add, e.g. `/loop context the API must stay async`. {HELP}")
        return Command(verb=verb, text=rest.strip())
    return None
