"""A score trend in one line of text: reads the same in a terminal, a PR body and a wiki page."""

from __future__ import annotations

from collections.abc import Sequence

BARS = "▁▂▃▄▅▆▇█"


def sparkline(scores: Sequence[float]) -> str:
    """One bar per score on a fixed 0-1 scale (never stretched to the run's own range, so a flat
    0.5 reads as half, and two runs' lines compare)."""
    top = len(BARS) - 1
    return "".join(BARS[round(min(1.0, max(0.0, score)) * top)] for score in scores)
