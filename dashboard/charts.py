"""Every figure of the dashboard, in one Plotly house style."""

from __future__ import annotations

import plotly.graph_objects as go
import plotly.io as pio

HOUSE_COLORS = ["#1f4e79", "#2e86ab", "#f18f01", "#c73e1d", "#3b8d5a", "#6c757d"]
pio.templates["coalition"] = go.layout.Template(
    layout=go.Layout(
        font={"family": "Inter, Segoe UI, sans-serif", "size": 13},
        colorway=HOUSE_COLORS,
        margin={"l": 40, "r": 20, "t": 40, "b": 40},
        plot_bgcolor="white",
        xaxis={"gridcolor": "#eceff1"},
        yaxis={"gridcolor": "#eceff1", "separatethousands": True},
    )
)
pio.templates.default = "plotly_white+coalition"


def enrolments_by_merchant(rows: list[tuple[str, int]]) -> go.Figure:
    names = [name for name, _ in rows]
    counts = [count for _, count in rows]
    figure = go.Figure(
        go.Bar(x=counts, y=names, orientation="h", hovertemplate="%{x:,} members<extra></extra>")
    )
    figure.update_layout(
        title="Members by acquiring merchant",
        xaxis_title="members",
        yaxis={"autorange": "reversed"},
        height=max(240, 40 * len(rows)),
    )
    return figure
