"""Role prompts: jinja2 templates from prompts/, rendered with StrictUndefined."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from loopbot.core.untrusted import as_data


def _template_dirs() -> list[Path]:
    here = Path(__file__).parent
    return [p for p in (here / "_data" / "prompts", here.parent / "prompts") if p.is_dir()]


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(p) for p in _template_dirs()]),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # prompts are plain text; untrusted parts go through the data filter
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["data"] = as_data
    return env


def render(name: str, **values: Any) -> str:
    return environment().get_template(name).render(**values).strip() + "\n"
