"""Where the files that ship with loopbot are: the workflows and the goal templates.

In a wheel they are under loopbot/_data/ (pyproject's force-include); in a checkout they are read
where they live, `.github/workflows/` and `goals/`. Kept apart from `scaffold` and free of the
config and goal models, so the CLI can name the templates in its help without loading them."""

from __future__ import annotations

from pathlib import Path

from loopbot.errors import InputError, Problem

_HERE = Path(__file__).parent


def data_dir(shipped: str, checkout: str) -> Path:
    for candidate in (_HERE / "_data" / shipped, _HERE.parent / checkout):
        if candidate.is_dir():
            return candidate
    raise InputError([Problem("loopbot", None, None, "", f"this installation has no {shipped} (reinstall loopbot)")])


def templates() -> dict[str, Path]:
    """Goal templates by name (bug-fix, feature, …)."""
    return {p.stem: p for p in sorted(data_dir("goals", "goals").glob("*.yaml"))}
