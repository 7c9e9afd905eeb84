"""`loopbot init` and `loopbot new goal`: the files a repository needs to start, from what ships in
the package (loopbot.shipped) — the config with every default commented out (generated from the
schema), the three workflows pinned to a release of the action, and goal templates.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from loopbot import __version__
from loopbot.config import CONFIG_PATH, Config, Labels
from loopbot.core.workflow_label import unsafe_label, with_run_label
from loopbot.errors import InputError, Problem
from loopbot.goal import parse_goal
from loopbot.shipped import data_dir, templates

# The release of the action that written workflows use: a moving major-version tag (v0 follows the
# latest 0.x release), so fixes arrive without editing the workflows. README.md names the same ref.
ACTION_REF = "loopbot/loopbot@v0"
WORKFLOWS = ("loopbot-run.yml", "loopbot-audit.yml", "loopbot-docs.yml")
_LOCAL_ACTION = re.compile(r"^(?P<lead>[ \t]*(?:-[ \t]+)?)uses:[ \t]*\./[ \t]*$", re.MULTILINE)


def workflow_text(name: str, ref: str = ACTION_REF, labels: Labels | None = None) -> str:
    """A workflow as this repository runs it, with the action taken from the release `ref`
    instead of this checkout (`uses: ./`), and the run workflow's label filter naming the
    configured `labels.run` (a workflow cannot read the config)."""
    source = (data_dir("workflows", ".github/workflows") / name).read_text(encoding="utf-8")
    text, count = _LOCAL_ACTION.subn(lambda m: f"{m.group('lead')}uses: {ref}", source)
    if count == 0:
        raise InputError([Problem(name, None, None, "", "the shipped workflow names no local action (uses: ./)")])
    if labels is not None:
        problem = unsafe_label(labels.run)
        if problem:
            raise InputError([Problem(CONFIG_PATH, None, None, "labels.run", f"{labels.run!r}: {problem}")])
        text = with_run_label(text, labels.run)
    return f"# Written by `loopbot init` (loopbot {__version__}); the action is pinned to {ref}.\n" + text


def goal_text(template: str, goal_id: str | None = None) -> str:
    """A goal template's text, with its id replaced when one is given (the result must parse)."""
    known = templates()
    if template not in known:
        close = difflib.get_close_matches(template, list(known), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise InputError([Problem("--template", None, None, "",
                                  f"no goal template {template!r}; {hint}templates: {', '.join(known)}")])
    path = known[template]
    text = path.read_text(encoding="utf-8")
    if goal_id is not None:
        text, count = re.subn(r"^id:.*$", f"id: {goal_id}", text, count=1, flags=re.MULTILINE)
        assert count == 1, path
    parse_goal(text, f"template {template} with id {goal_id}" if goal_id else str(path))
    return text


@dataclass(frozen=True)
class Planned:
    path: str  # relative to the repository root (init) or the working directory (new goal)
    text: str


def init_files(goal_template: str | None = None, config: Config | None = None) -> list[Planned]:
    """The files `loopbot init` writes. `config` is the repository's existing config: it is kept
    (never rewritten, so the workflows and the config cannot disagree) and its labels go into the
    workflows; without one, the config with every default commented out is written too."""
    from loopbot.docsgen import commented_config

    files = [] if config is not None else [Planned(CONFIG_PATH, commented_config())]
    labels = config.labels if config is not None else Labels()
    files += [Planned(f".github/workflows/{name}", workflow_text(name, labels=labels)) for name in WORKFLOWS]
    if goal_template is not None:
        files.append(Planned(f"goals/{goal_template}.yaml", goal_text(goal_template)))
    return files


def write(root: Path, files: list[Planned], *, force: bool) -> list[Path]:
    """Write every file, or none: existing files are refused (all of them named) unless `force`."""
    targets = [(root / f.path, f) for f in files]
    if not force:
        existing = [str(t) for t, _ in targets if os.path.lexists(t)]
        if existing:
            raise InputError([Problem(path, None, None, "", "exists; nothing was written (--force overwrites it)")
                              for path in existing])
    for target, planned in targets:
        if target.is_symlink():
            target.unlink()  # --force replaces a link itself, never the file it points at
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(planned.text, encoding="utf-8")
    return [t for t, _ in targets]
