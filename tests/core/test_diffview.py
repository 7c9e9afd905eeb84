"""The reviewer's view of a change: every file listed, sources never dropped, data trimmed first."""

from __future__ import annotations

from loopbot.core.changes import FileChange
from loopbot.core.diffview import render_change


def diff_of(path: str, size: int) -> str:
    return f"diff --git a/{path} b/{path}\n@@ -1 +1 @@\n" + "+" + "x" * size + "\n"


def test_every_file_is_listed_with_status_mode_size_and_notes() -> None:
    changes = [FileChange("a.py", "M", "100644", "100755", 10, 12),
               FileChange("vendor/lib", "A", "000000", "160000"),
               FileChange("link", "A", "000000", "120000", 0, 7),
               FileChange("img.png", "A", "000000", "100644", 0, 900, binary=True),
               FileChange("old.py", "D", "100644", "000000", 50, 0)]
    view = render_change(changes, {c.path: diff_of(c.path, 10) for c in changes})
    assert "- modified a.py (mode 100755, 10 -> 12 bytes) [mode 100644 -> 100755]" in view
    assert "gitlink (nested repository" in view and "[symlink]" in view and "[binary]" in view
    assert "- deleted old.py (mode 100644, was 50 bytes)" in view


def test_large_data_files_cannot_push_the_source_change_out_of_view() -> None:
    # Data files that sort around the real change: a head-and-tail trim showed only them.
    changes = [FileChange("aaa.json", "A", "000000", "100644", 0, 200_000),
               FileChange("src/core.py", "M", "100644", "100644", 100, 120),
               FileChange("zzz.csv", "A", "000000", "100644", 0, 200_000)]
    diffs = {"aaa.json": diff_of("aaa.json", 200_000), "src/core.py": "diff --git a/src/core.py\n+REAL_CHANGE\n",
             "zzz.csv": diff_of("zzz.csv", 200_000)}
    view = render_change(changes, diffs, limit=60_000)
    assert "REAL_CHANGE" in view
    assert len(view) < 62_000
    assert "more characters of aaa.json's diff not shown" in view


def test_many_source_files_each_keep_their_first_hunk() -> None:
    changes = [FileChange(f"src/m{i}.py", "M", "100644", "100644", 10, 10) for i in range(60)]
    diffs = {c.path: f"diff --git a/{c.path}\n+MARK{c.path}\n" + "+y" * 20_000 for c in changes}
    view = render_change(changes, diffs, limit=60_000)
    assert all(f"MARK{c.path}" in view for c in changes)
