"""A pids cgroup per command, for when loopbot runs as root (RLIMIT_NPROC does not bind root).

Each carries its owner's process id in its name (`loopbot-<pid>-<hex>`), so the ones a killed
loopbot left behind are told apart from a live one's and swept at the next start.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
from collections.abc import Callable
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
NAME = re.compile(r"^loopbot-(\d+)-[0-9a-f]{8}$")
_LEGACY_NAME = re.compile(r"^loopbot-[0-9a-f]{8}$")


def own_cgroup_dirs() -> list[Path]:
    """Where this process's pids cgroup lives, v2 first, then v1."""
    candidates: list[Path] = []
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        relative = path.lstrip("/")
        if controllers == "":
            for base in (CGROUP_ROOT, CGROUP_ROOT / "unified"):
                if "pids" in _read(base / "cgroup.controllers").split():
                    candidates.insert(0, base / relative)
        elif "pids" in controllers.split(","):
            candidates.append(CGROUP_ROOT / "pids" / relative)
    return candidates


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


class PidsCgroup:
    """Create with `open()`; None when no writable pids cgroup exists here."""

    def __init__(self, path: Path):
        self.path = path

    @classmethod
    def open(cls, max_pids: int) -> PidsCgroup | None:
        if os.geteuid() != 0:
            return None
        for parent in own_cgroup_dirs():
            path = parent / f"loopbot-{os.getpid()}-{secrets.token_hex(4)}"
            try:
                path.mkdir()
                (path / "pids.max").write_text(str(max_pids))
            except OSError:
                with contextlib.suppress(OSError):
                    path.rmdir()
                continue
            return cls(path)
        return None

    @property
    def procs(self) -> Path:
        return self.path / "cgroup.procs"

    def kill(self) -> None:
        """SIGKILL everything in the cgroup (cgroup.kill where the kernel has it: no race with forks)."""
        with contextlib.suppress(OSError):
            (self.path / "cgroup.kill").write_text("1")
        for _ in range(50):
            pids = [int(p) for p in _read(self.procs).split()]
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)

    def close(self) -> None:
        """Kill whatever is left in the cgroup, then remove it."""
        self.kill()
        with contextlib.suppress(OSError):
            self.path.rmdir()


def stale_cgroups(alive: Callable[[int], bool]) -> list[Path]:
    """Cgroups of loopbot processes that are gone (a SIGKILL skips every cleanup)."""
    found: list[Path] = []
    for parent in own_cgroup_dirs():
        try:
            children = list(parent.iterdir())
        except OSError:
            continue
        for child in children:
            named = NAME.match(child.name)
            legacy = _LEGACY_NAME.match(child.name) and not _read(child / "cgroup.procs").split()
            if (named and not alive(int(named.group(1)))) or legacy:
                found.append(child)
    return found
