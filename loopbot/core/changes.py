"""What a snapshot changed, file by file, as git records it (modes, sizes), not as a diff shows it. Pure."""

from __future__ import annotations

from dataclasses import dataclass

GITLINK = "160000"
SYMLINK = "120000"
EXECUTABLE = "100755"
ABSENT = "000000"


@dataclass(frozen=True)
class FileChange:
    path: str
    status: str  # A added, M modified, D deleted, T type changed
    old_mode: str
    new_mode: str
    old_size: int = 0
    new_size: int = 0
    binary: bool = False

    @property
    def added(self) -> bool:
        return self.status == "A"

    @property
    def deleted(self) -> bool:
        return self.status == "D"

    @property
    def growth(self) -> int:
        """Bytes this change adds to the tree (0 for a file that shrank or went)."""
        return max(0, self.new_size - self.old_size)

    def notes(self) -> list[str]:
        """What a reader of the diff could otherwise miss about this file."""
        found = []
        if GITLINK in (self.old_mode, self.new_mode):
            found.append("gitlink (nested repository: its files are not in the commit)")
        if SYMLINK in (self.old_mode, self.new_mode):
            found.append("symlink")
        if self.binary:
            found.append("binary")
        if ABSENT not in (self.old_mode, self.new_mode) and self.old_mode != self.new_mode:
            found.append(f"mode {self.old_mode} -> {self.new_mode}")
        return found


def parse_raw(raw: str) -> list[tuple[str, str, str, str, str, str]]:
    """`git diff-tree -r -z --raw --no-renames` output as (old_mode, new_mode, old_sha, new_sha,
    status, path); paths are NUL-delimited, so no name can forge a record."""
    fields = raw.split("\0")
    records = []
    index = 0
    while index + 1 < len(fields):
        meta, path = fields[index], fields[index + 1]
        index += 2
        if not meta.startswith(":"):
            continue
        old_mode, new_mode, old_sha, new_sha, status = meta[1:].split(" ")
        records.append((old_mode, new_mode, old_sha, new_sha, status[:1], path))
    return records
