"""The run workflow's label filter, the one copy of `labels.run` kept by hand: a workflow cannot
read loopbot's config, so `loopbot init` writes the configured label into it and the Action reads it
back to refuse a workflow and a config that disagree. Pure text, no I/O."""

from __future__ import annotations

import re

# `github.event.label.name == '<label>'`: a single-quoted literal of GitHub's expression language,
# where a quote is written twice.
_FILTER = re.compile(r"github\.event\.label\.name\s*==\s*'((?:[^'\n]|'')*)'")
DEFAULT_RUN_LABEL = "loopbot:run"


def literal(text: str) -> str:
    """`text` as a string literal of GitHub's expression language."""
    return "'" + text.replace("'", "''") + "'"


def unsafe_label(label: str) -> str | None:
    """Why `label` cannot be written into a workflow's `if:`, or None."""
    if not label.strip() or any(ch in label for ch in "\r\n\t") or "${{" in label:
        return "a label written into a workflow has no line breaks, tabs or ${{ and is not blank"
    return None


def run_label_of(workflow: str) -> str | None:
    """The label the workflow's filter starts loops on; None when it names none, or several (then
    the Action cannot tell which one is meant)."""
    found = {match.replace("''", "'") for match in _FILTER.findall(workflow)}
    return found.pop() if len(found) == 1 else None


def with_run_label(workflow: str, label: str) -> str:
    """The workflow with its label filter naming `label`."""
    return _FILTER.sub(lambda _: f"github.event.label.name == {literal(label)}", workflow)
