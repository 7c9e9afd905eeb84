"""A pids cgroup per command, for when loopbot runs as root (RLIMIT_NPROC does not bind root)."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _own_cgroup_dirs() -> list[Path]:
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
        for parent in _own_cgroup_dirs():
            path = parent / f"loopbot-{secrets.token_hex(4)}"
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

    def close(self) -> None:
        """Kill whatever is left in the cgroup, then remove it."""
        for _ in range(50):
            pids = [int(p) for p in _read(self.procs).split()]
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, 9)
        with contextlib.suppress(OSError):
            self.path.rmdir()
