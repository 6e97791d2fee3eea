"""Every figure of the dashboard, in one Plotly house style.

The `coalition` template is registered once, here, and made the default: fonts, colours,
grid, legend, hover labels and number separators. Figures take the shared/ dataclasses
as they come and format their own axes and hover texts with dashboard/formats.py, so a
number reads the same in a tile, a table and a chart. (ui.chart renders them with
`theme=None`: Streamlit's own theme would replace this template.)
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

import plotly.graph_objects as go
import plotly.io as pio

from dashboard import formats
from shared.analytics.overview import DayActivity
from shared.program import CURRENCY_EXPONENTS
from shared.settlement.liability import LiabilityReport
from shared.settlement.reads import ClearingCell, StatementView

if TYPE_CHECKING:  # scipy and statsmodels behind them load slowly: types only
    from shared.campaigns.effect import LiftEstimate
    from shared.campaigns.results import CampaignResults

FONT = "Inter, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
INK = "#1f2933"
GRID = "#eceff1"
NAVY, BLUE, ORANGE, RED, GREEN, GREY = (
    "#1f4e79", "#2e86ab", "#f18f01", "#c73e1d", "#3b8d5a", "#6c757d",
)  # fmt: skip
HOUSE_COLORS = [NAVY, BLUE, ORANGE, RED, GREEN, GREY]
# What a colour means, everywhere: points coming in are blue, points going out orange.
ISSUED, REDEEMED = BLUE, ORANGE
MERCHANT_PAYS, HQ_PAYS = NAVY, ORANGE
RISE, FALL, TOTAL = GREEN, RED, NAVY
SEQUENTIAL = [[0.0, "#f4f8fb"], [0.5, "#7fb3d5"], [1.0, NAVY]]

pio.templates["coalition"] = go.layout.Template(
    layout=go.Layout(
        font={"family": FONT, "size": 13, "color": INK},
        title={"font": {"size": 16}, "x": 0, "xanchor": "left"},
        colorway=HOUSE_COLORS,
        colorscale={"sequential": SEQUENTIAL},
        separators=".,",  # decimal point, thousands comma: as formats.py writes numbers
        margin={"l": 48, "r": 24, "t": 56, "b": 40},
        paper_bgcolor="white",
        plot_bgcolor="white",
        hoverlabel={"font": {"family": FONT, "size": 12}},
        legend={"orientation": "h", "x": 1, "xanchor": "right", "y": 1.02, "yanchor": "bottom"},
        xaxis={"gridcolor": GRID, "zerolinecolor": GRID, "automargin": True},
        yaxis={"gridcolor": GRID, "zerolinecolor": GRID, "automargin": True},
    )
)
pio.templates.default = "plotly_white+coalition"


def _points_axis(title: str) -> dict:
    return {"title": title, "tickformat": ",d", "ticksuffix": " pts"}


def _money_axis(title: str, currency: str) -> dict:
    decimals = CURRENCY_EXPONENTS.get(currency, 2)
    return {"title": title, "tickformat": f",.{decimals}f", "ticksuffix": f" {currency}"}


def _major_units(amount_minor: int, currency: str) -> float:
    return float(Decimal(amount_minor).scaleb(-CURRENCY_EXPONENTS.get(currency, 2)))


# --- Overview ---------------------------------------------------------------------------


def daily_points(days: Sequence[DayActivity]) -> go.Figure:
    dates = [day.day for day in days]
    figure = go.Figure(
        [
            go.Bar(
                name="issued",
                x=dates,
                y=[day.points_issued for day in days],
                marker_color=ISSUED,
                hovertemplate="%{x|%a %d %b}: %{y:,} pts issued<extra></extra>",
            ),
            go.Bar(
                name="redeemed",
                x=dates,
                y=[day.points_redeemed for day in days],
                marker_color=REDEEMED,
                hovertemplate="%{x|%a %d %b}: %{y:,} pts redeemed<extra></extra>",
            ),
        ]
    )
    figure.update_layout(
        title="Points issued and redeemed per day",
        barmode="group",
        yaxis=_points_axis("points"),
        xaxis={"title": None},
        height=360,
    )
    return figure


# --- Campaigns --------------------------------------------------------------------------


def _lift_rows(result: CampaignResults) -> list[tuple[str, LiftEstimate]]:
    """The outcomes a campaign changed, as they read on the interval plot."""
    where = "at its partners" if result.campaign.merchant_ids else "anywhere"
    candidates = [
        (f"Visits {where} (CUPED)", result.visits.lift if result.visits else None),
        (f"Visits {where}, unadjusted", result.visits.unadjusted if result.visits else None),
        ("Spend per member", result.spend_minor),
        ("Points earned per member", result.points),
        ("Share of members active", result.active),
        ("Visits at other partners (spillover)", result.spillover_visits),
        ("Visits at every partner", result.network_visits),
    ]
    return [
        (label, estimate)
        for label, estimate in candidates
        if estimate is not None and estimate.relative_lift is not None
    ]


def has_lifts(result: CampaignResults) -> bool:
    return bool(_lift_rows(result))


def campaign_lifts(result: CampaignResults) -> go.Figure:
    rows = _lift_rows(result)
    labels = [label for label, _ in rows]
    lifts = [estimate.relative_lift for _, estimate in rows]
    hover = [
        f"{label}: {formats.percent(estimate.relative_lift, plus=True)} "
        f"{formats.interval(estimate.relative_ci_low, estimate.relative_ci_high)}, "
        f"p = {estimate.p_value:.3g}"
        for label, estimate in rows
    ]
    colours = [
        GREY if estimate.relative_ci_low <= 0 <= estimate.relative_ci_high else NAVY
        for _, estimate in rows
    ]
    figure = go.Figure(
        go.Scatter(
            x=lifts,
            y=labels,
            mode="markers",
            marker={"size": 11, "color": colours},
            error_x={
                "type": "data",
                "symmetric": False,
                "array": [
                    estimate.relative_ci_high - lift
                    for (_, estimate), lift in zip(rows, lifts, strict=True)
                ],
                "arrayminus": [
                    lift - estimate.relative_ci_low
                    for (_, estimate), lift in zip(rows, lifts, strict=True)
                ],
                "color": INK,
                "thickness": 1.5,
                "width": 6,
            },
            hovertext=hover,
            hoverinfo="text",
        )
    )
    figure.add_vline(x=0, line_color=GREY, line_dash="dot")
    figure.update_layout(
        title="Relative lift, treatment vs holdout, with its 95% confidence interval",
        xaxis={"title": "lift over the holdout", "tickformat": "+.0%", "zeroline": False},
        yaxis={"autorange": "reversed", "title": None},
        height=max(240, 56 * len(rows) + 110),
        showlegend=False,
    )
    return figure


# --- Settlement -------------------------------------------------------------------------


def _currency(statements: Sequence[StatementView]) -> str:
    currencies = {statement.currency for statement in statements}
    return currencies.pop() if len(currencies) == 1 else "mixed"


def net_positions(statements: Sequence[StatementView]) -> go.Figure:
    """Who pays whom: positive, the merchant pays HQ; negative, HQ pays the merchant."""
    ordered = sorted(statements, key=lambda statement: statement.net_minor)
    currency = _currency(ordered)
    figure = go.Figure(
        go.Bar(
            x=[_major_units(statement.net_minor, statement.currency) for statement in ordered],
            y=[statement.merchant_name for statement in ordered],
            orientation="h",
            marker_color=[
                MERCHANT_PAYS if statement.net_minor > 0 else HQ_PAYS for statement in ordered
            ],
            hovertext=[
                f"{statement.merchant_name}: "
                + (
                    f"pays HQ {formats.money(statement.net_minor, statement.currency)}"
                    if statement.net_minor > 0
                    else f"is paid {formats.money(-statement.net_minor, statement.currency)}"
                )
                for statement in ordered
            ],
            hoverinfo="text",
        )
    )
    figure.update_layout(
        title="Net position per merchant (right: the merchant pays HQ; left: HQ pays it)",
        xaxis=_money_axis("net", currency) if currency != "mixed" else {"title": "net"},
        yaxis={"title": None},
        height=max(260, 30 * len(ordered) + 120),
        showlegend=False,
    )
    return figure


def clearing_matrix(cells: Sequence[ClearingCell], names: dict, currency: str) -> go.Figure:
    """Points earned at one merchant (row) and redeemed at another (column)."""
    issuers = sorted(
        {cell.issuing_merchant_id for cell in cells}, key=lambda key: names.get(key, str(key))
    )
    redeemers = sorted(
        {cell.redeeming_merchant_id for cell in cells}, key=lambda key: names.get(key, str(key))
    )
    by_pair = {(cell.issuing_merchant_id, cell.redeeming_merchant_id): cell for cell in cells}
    points, hover = [], []
    for issuer in issuers:
        row_points, row_hover = [], []
        for redeemer in redeemers:
            cell = by_pair.get((issuer, redeemer))
            row_points.append(cell.points if cell else None)
            row_hover.append(
                f"earned at {names.get(issuer, issuer)}, redeemed at {names.get(redeemer, redeemer)}: "
                f"{formats.points(cell.points)}, {formats.money(cell.amount_minor, currency)}"
                if cell
                else "none"
            )
        points.append(row_points)
        hover.append(row_hover)
    figure = go.Figure(
        go.Heatmap(
            z=points,
            x=[names.get(key, str(key)) for key in redeemers],
            y=[names.get(key, str(key)) for key in issuers],
            text=hover,
            hoverinfo="text",
            colorscale=SEQUENTIAL,
            colorbar={"title": "points", "tickformat": ",d"},
            xgap=1,
            ygap=1,
        )
    )
    figure.update_layout(
        title="Clearing matrix: points earned at (rows), redeemed at (columns)",
        xaxis={"title": "redeemed at", "tickangle": -30},
        yaxis={"title": "earned at", "autorange": "reversed"},
        height=max(320, 34 * len(issuers) + 180),
    )
    return figure


def liability_roll_forward(report: LiabilityReport) -> go.Figure:
    """The roll-forward's months added up: opening, movements, closing (a waterfall)."""
    lines = report.roll_forward
    currency = report.currency
    steps = [
        ("Opening", lines[0].opening_minor, "absolute"),
        ("Issued", sum(line.issued_minor for line in lines), "relative"),
        ("Redeemed", -sum(line.redeemed_minor for line in lines), "relative"),
        ("Expired", -sum(line.expired_minor for line in lines), "relative"),
        ("Other", sum(line.other_minor for line in lines), "relative"),
        ("Change in estimate", sum(line.change_in_estimate_minor for line in lines), "relative"),
        ("Closing", lines[-1].closing_minor, "total"),
    ]
    figure = go.Figure(
        go.Waterfall(
            x=[label for label, _, _ in steps],
            y=[_major_units(amount, currency) for _, amount, _ in steps],
            measure=[measure for _, _, measure in steps],
            text=[
                formats.money(amount, currency, plus=measure == "relative")
                for _, amount, measure in steps
            ],
            textposition="outside",
            hoverinfo="x+text",
            increasing={"marker": {"color": RISE}},
            decreasing={"marker": {"color": FALL}},
            totals={"marker": {"color": TOTAL}},
            connector={"line": {"color": GREY, "dash": "dot"}},
        )
    )
    first, last = lines[0].month, lines[-1].month
    figure.update_layout(
        title=f"Points liability roll-forward, {first:%b %Y} to {last:%b %Y} (month to date)",
        yaxis=_money_axis("liability", currency),
        height=400,
        showlegend=False,
    )
    return figure
