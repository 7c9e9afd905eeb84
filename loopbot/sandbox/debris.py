"""What killed loopbot processes leave behind on the host: scratch directories in the temp dir
and pids cgroups. Each carries its owner's process id, so only a dead owner's are removed; swept
at every start and by `loopbot gc`."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from loopbot.sandbox.pids import PidsCgroup, stale_cgroups
from loopbot.store.sqlite import pid_alive

SCRATCH = re.compile(r"^loopbot-(?:sandbox|home|probe)-(\d+)-")


def stale_scratch(temp_dir: Path | None = None) -> list[tuple[Path, int]]:
    """Scratch directories whose process is gone, with that process id."""
    root = temp_dir or Path(tempfile.gettempdir())
    found: list[tuple[Path, int]] = []
    for child in sorted(root.glob("loopbot-*")):
        match = SCRATCH.match(child.name)
        if match and child.is_dir() and not child.is_symlink() and not pid_alive(int(match.group(1))):
            found.append((child, int(match.group(1))))
    return found


def sweep(*, dry_run: bool = False, temp_dir: Path | None = None) -> list[str]:
    """Remove (or list) dead processes' scratch directories and cgroups; what was found."""
    found: list[str] = []
    for path, pid in stale_scratch(temp_dir):
        found.append(f"scratch {path} (its process {pid} is gone)")
        if not dry_run:
            shutil.rmtree(path, ignore_errors=True)
    for cgroup in stale_cgroups(pid_alive):
        found.append(f"cgroup {cgroup} (its process is gone)")
        if not dry_run:
            PidsCgroup(cgroup).close()
    return found
