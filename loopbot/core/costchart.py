"""Cost per repository per day as a stacked bar chart: geometry only (pure); the status page's
template draws it as inline SVG, so no script or front-end build is needed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#9c755f")
OTHERS = "other repositories"


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    color: str
    title: str  # the tooltip: repository, day and amount


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: tuple[Bar, ...]
    days: tuple[tuple[float, str], ...]  # (x of the label's centre, MM-DD)
    ticks: tuple[tuple[float, str], ...]  # (y, "$n")
    legend: tuple[tuple[str, str], ...]  # (color, repository)
    total: float
    plot_left: int
    plot_bottom: int


def layout(costs: Mapping[str, Mapping[str, float]], end: date, days: int = 14, top: int = 6,
           width: int = 720, height: int = 260) -> Chart:
    """`costs`: repository -> ISO date -> USD. The `days` days up to `end`; the `top` costliest
    repositories get a colour each, the rest share one."""
    dates = [(end - timedelta(days=days - 1 - i)).isoformat() for i in range(days)]
    totals = {repo: sum(by_day.get(d, 0.0) for d in dates) for repo, by_day in costs.items()}
    ranked = sorted((r for r, t in totals.items() if t > 0), key=lambda r: (-totals[r], r))
    named = ranked[:top]
    series: list[tuple[str, dict[str, float]]] = [(r, {d: costs[r].get(d, 0.0) for d in dates}) for r in named]
    rest = ranked[top:]
    if rest:
        series.append((OTHERS, {d: sum(costs[r].get(d, 0.0) for r in rest) for d in dates}))
    colors = {name: PALETTE[i % len(PALETTE)] for i, (name, _) in enumerate(series)}
    left, right, top_pad, bottom = 56, 12, 12, 28
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    per_day = [sum(values[d] for _, values in series) for d in dates]
    peak = _nice(max(per_day, default=0.0))
    slot = plot_w / days
    bars: list[Bar] = []
    for i, day in enumerate(dates):
        y = float(height - bottom)
        for name, values in series:
            usd = values[day]
            if usd <= 0:
                continue
            h = usd / peak * plot_h
            y -= h
            bars.append(Bar(round(left + i * slot + slot * 0.15, 2), round(y, 2), round(slot * 0.7, 2),
                            round(h, 2), colors[name], f"{name} {day}: ${usd:,.2f}"))
    labels = tuple((round(left + i * slot + slot / 2, 2), d[5:]) for i, d in enumerate(dates))
    ticks = tuple((round(height - bottom - plot_h * k / 4, 2), f"${peak * k / 4:,.2f}") for k in range(5))
    return Chart(width, height, tuple(bars), labels, ticks, tuple((colors[n], n) for n, _ in series),
                 round(sum(per_day), 2), left, height - bottom)


def _nice(value: float) -> float:
    """The axis top: the next of 1, 2 or 5 times a power of ten at or above the value (1 for an empty chart)."""
    if value <= 0:
        return 1.0
    step = 0.01
    while True:
        for m in (1, 2, 5):
            if step * m >= value:
                return step * m
        step *= 10
