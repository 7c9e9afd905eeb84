"""Host-side file access for paths a maker or a contributor controls: only regular files, never
through a final symlink, never blocking (a FIFO or device is refused, not waited on), and never
more than a size cap. The type is checked on the opened descriptor, so what is read or written is
what was checked.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from loopbot.core.filekind import kind_of
from loopbot.tools.confine import PathRefused

_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class FileRefused(PathRefused, OSError):
    """Refused by the file's type or size: a tool refusal, and an OSError to readers that skip."""


def _open(path: Path, flags: int, mode: int = 0o644) -> int:
    try:
        return os.open(path, flags | _FLAGS, mode)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK):
            raise FileRefused(f"{path.name}: is a symlink; loopbot does not follow it") from None
        if exc.errno == errno.ENXIO:
            raise FileRefused(f"{path.name}: is a FIFO or socket, not a regular file") from None
        if exc.errno == errno.EISDIR:
            raise FileRefused(f"{path.name}: is a directory") from None
        raise


def read_bytes(path: Path, max_bytes: int) -> bytes:
    """A regular file's bytes; FileRefused for anything else or anything larger than max_bytes."""
    fd = _open(path, os.O_RDONLY)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileRefused(f"{path.name}: is a {kind_of(info.st_mode)}, not a regular file")
        if info.st_size > max_bytes:
            raise FileRefused(f"{path.name}: {info.st_size} bytes is over the {max_bytes}-byte limit")
        chunks: list[bytes] = []
        size = 0
        while size <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > max_bytes:  # it grew while being read
            raise FileRefused(f"{path.name}: over the {max_bytes}-byte limit")
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_text(path: Path, max_bytes: int) -> str:
    return read_bytes(path, max_bytes).decode("utf-8", errors="replace")


def write_text(path: Path, text: str) -> None:
    """Create or overwrite a regular file with one link; refuse links, FIFOs, devices, directories."""
    fd = _open(path, os.O_WRONLY | os.O_CREAT)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileRefused(f"{path.name}: is a {kind_of(info.st_mode)}, not a regular file")
        if info.st_nlink > 1:
            # A hard link may lead to a file outside the worktree; loopbot writes it unsandboxed.
            raise FileRefused(f"{path.name}: has several hard links; refusing to write through it")
        os.ftruncate(fd, 0)
        data = text.encode("utf-8")
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
    finally:
        os.close(fd)
