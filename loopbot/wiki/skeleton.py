"""The wiki's layout, created on the first documentation run."""

from __future__ import annotations

import os
from pathlib import Path

from loopbot.tools import safefile

SCHEMA = """# Wiki schema

This folder is kept current by loopbot's documentation loop after merges to main; people edit
it too. Conventions:

- `index.md` is the catalogue: every page is listed there with a one-line summary.
- `log.md` is the timeline: one line per documented merge, newest last.
- `10_DOMAIN/` holds the concepts of the problem domain, one page per concept.
- `20_SYSTEM/` holds architecture and decisions: components, data flow, why things are as they are.
- `90_LOG/` holds loop reports and incident records, one page per run.
- Link pages with relative markdown links; name files as `path/from/repo/root.ext` and code
  symbols in backticks, so the wiki lint can tell when they stop existing.
"""

INDEX = """# Index

Every page of this wiki, with what it is for.

- [Schema](00_SCHEMA.md): conventions of this wiki
- [Log](log.md): timeline of documented merges
"""

LOG = "# Log\n\nDocumented merges, oldest first.\n"

SKELETON = {
    "00_SCHEMA.md": SCHEMA,
    "index.md": INDEX,
    "log.md": LOG,
    "10_DOMAIN/README.md": "# Domain\n\nConcepts of the problem domain, one page each.\n",
    "20_SYSTEM/README.md": "# System\n\nArchitecture and decisions.\n",
    "90_LOG/README.md": "# Loop log\n\nLoop reports and incident records.\n",
}
SECTION_READMES = ("10_DOMAIN/README.md", "20_SYSTEM/README.md", "90_LOG/README.md")


def ensure(wiki: Path) -> list[str]:
    """Create what is missing; returns the pages created (relative to the wiki)."""
    created = []
    for relative, text in SKELETON.items():
        page = wiki / relative
        if not os.path.lexists(page):  # a dangling symlink is not a missing page: it is refused below
            page.parent.mkdir(parents=True, exist_ok=True)
            safefile.write_text(page, text)
            created.append(relative)
    return created
