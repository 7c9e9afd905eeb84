"""A short folder for a unix socket in a test: a socket's path may be at most 107 bytes, and
pytest's tmp_path is often longer. Removed afterwards, so the suite leaves nothing in /tmp."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def short_socket_dir(prefix: str = "loopbot-test-") -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=prefix) as folder:
        yield Path(folder)
