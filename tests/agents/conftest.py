from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loopbot.testing.sockets import short_socket_dir


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    with short_socket_dir() as folder:
        yield folder
