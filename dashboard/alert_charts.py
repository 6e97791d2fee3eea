"""Figures of the Alerts page (to be folded into dashboard/charts.py, whose house template
they use when it is loaded)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import plotly.graph_objects as go

FIRING_COLOR = "#c73e1d"
PENDING_COLOR = "#f18f01"
VALUE_COLOR = "#1f4e79"
RECOVERY_COLOR = "#6c757d"


def _spans(points: Sequence, states: set[str]) -> list[tuple[datetime, datetime]]:
    """Consecutive ticks whose state is one of `states`, as (first, last) pairs."""
    spans, start, previous = [], None, None
    for point in points:
        if point.state in states:
            start = start or point.tick
        elif start is not None:
            spans.append((start, point.tick))
            start = None
        previous = point.tick
    if start is not None:
        spans.append((start, previous))
    return spans


def backtest_figure(
    points: Sequence,
    *,
    title: str,
    unit: str,
    threshold: float,
    recovery_threshold: float | None = None,
) -> go.Figure:
    """The rule's value at every tick (points with tick, value, state), its thresholds, and
    where it would have been pending (amber) and firing (red)."""
    figure = go.Figure(
        go.Scatter(
            x=[point.tick for point in points],
            y=[point.value for point in points],
            mode="lines",
            name="value",
            line={"color": VALUE_COLOR, "width": 1.5},
            connectgaps=False,
            hovertemplate="%{x|%Y-%m-%d %H:%M}<br>%{y:.4g}<extra></extra>",
        )
    )
    figure.add_hline(
        y=threshold, line={"color": FIRING_COLOR, "dash": "dash"}, annotation_text="threshold"
    )
    if recovery_threshold is not None and recovery_threshold != threshold:
        figure.add_hline(
            y=recovery_threshold,
            line={"color": RECOVERY_COLOR, "dash": "dot"},
            annotation_text="recovers",
            annotation_position="bottom right",
        )
    for start, end in _spans(points, {"pending"}):
        figure.add_vrect(x0=start, x1=end, fillcolor=PENDING_COLOR, opacity=0.15, line_width=0)
    for start, end in _spans(points, {"firing", "recovering"}):
        figure.add_vrect(x0=start, x1=end, fillcolor=FIRING_COLOR, opacity=0.2, line_width=0)
    figure.update_layout(
        title=title, yaxis_title=unit, showlegend=False, height=320, hovermode="x unified"
    )
    return figure


def changes_per_day(events: Sequence) -> go.Figure:
    """Notified changes (fired, resolved, no data) per day and severity."""
    counts: dict[tuple[str, str], int] = {}
    for event in events:
        if event.notified:
            key = (event.severity, event.tick.date().isoformat())
            counts[key] = counts.get(key, 0) + 1
    figure = go.Figure()
    for severity, color in (
        ("critical", FIRING_COLOR), ("warning", PENDING_COLOR), ("info", VALUE_COLOR),
    ):  # fmt: skip
        days = sorted(day for level, day in counts if level == severity)
        if days:
            figure.add_bar(
                x=days, y=[counts[(severity, day)] for day in days], name=severity,
                marker_color=color,
            )  # fmt: skip
    figure.update_layout(
        title="Notifications per day", barmode="stack", height=260, yaxis_title="changes"
    )
    return figure
