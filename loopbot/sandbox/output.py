"""Capped command output: the head and the tail are kept, the middle is counted and dropped."""

from __future__ import annotations

from collections import deque


class CappedOutput:
    def __init__(self, cap_bytes: int):
        self.head_cap = cap_bytes // 2
        self.tail_cap = cap_bytes - self.head_cap
        self.head = bytearray()
        self.tail: deque[bytes] = deque()
        self.tail_size = 0
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.head_cap - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if not chunk:
            return
        self.tail.append(chunk)
        self.tail_size += len(chunk)
        while self.tail_size - len(self.tail[0]) >= self.tail_cap:
            self.tail_size -= len(self.tail.popleft())

    @property
    def dropped(self) -> int:
        kept_tail = min(self.tail_size, self.tail_cap)
        return self.total - len(self.head) - kept_tail

    def text(self) -> str:
        tail = b"".join(self.tail)[-self.tail_cap :] if self.tail else b""
        head = bytes(self.head).decode("utf-8", errors="replace")
        if self.dropped > 0:
            marker = f"\n[… {self.dropped} bytes of output omitted …]\n"
            return head + marker + tail.decode("utf-8", errors="replace")
        return head + tail.decode("utf-8", errors="replace")
