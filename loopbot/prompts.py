"""Role prompts: jinja2 templates from prompts/, rendered with StrictUndefined.

A repository may override any template with its own copy in `.github/loopbot/prompts/`; those
are read from the base commit when a loop starts, so a loop's own branch cannot change them.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from loopbot.core.untrusted import as_data
from loopbot.errors import InputError, Problem

OVERRIDE_DIR = ".github/loopbot/prompts"


def _template_dirs() -> list[Path]:
    here = Path(__file__).parent
    return [p for p in (here / "_data" / "prompts", here.parent / "prompts") if p.is_dir()]


def template_names() -> list[str]:
    return sorted({p.name for d in _template_dirs() for p in d.glob("*.j2")})


def _environment(loader: jinja2.BaseLoader) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # prompts are plain text; untrusted parts go through the data filter
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["data"] = as_data
    return env


@lru_cache(maxsize=1)
def _defaults() -> jinja2.Environment:
    return _environment(jinja2.FileSystemLoader([str(p) for p in _template_dirs()]))


@lru_cache(maxsize=8)
def _with_overrides(overrides: tuple[tuple[str, str], ...]) -> jinja2.Environment:
    return _environment(jinja2.ChoiceLoader([
        jinja2.DictLoader(dict(overrides)), jinja2.FileSystemLoader([str(p) for p in _template_dirs()])]))


def render(name: str, overrides: Mapping[str, str] | None = None, **values: Any) -> str:
    env = _with_overrides(tuple(sorted(overrides.items()))) if overrides else _defaults()
    return env.get_template(name).render(**values).strip() + "\n"


def check_overrides(overrides: Mapping[str, str], source: str) -> None:
    """Reject an override that is not a known template or does not compile, before the loop starts."""
    known = set(template_names())
    problems = []
    for name, text in overrides.items():
        where = f"{source}/{name}"
        if name not in known:
            problems.append(Problem(where, None, None, "", f"not a loopbot template; known: {', '.join(sorted(known))}"))
            continue
        try:
            _defaults().parse(text)
        except jinja2.TemplateSyntaxError as exc:
            problems.append(Problem(where, exc.lineno, None, "", f"template does not compile: {exc.message}"))
    if problems:
        raise InputError(problems)
