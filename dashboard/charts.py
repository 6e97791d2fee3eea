"""Every figure of the dashboard, in one Plotly house style.

The `coalition` template is registered once, here, and made the default: fonts, colours,
grid, legend, hover labels and number separators. Figures take the shared/ dataclasses
as they come and format their own axes and hover texts with dashboard/formats.py, so a
number reads the same in a tile, a table and a chart. (ui.chart renders them with
`theme=None`: Streamlit's own theme would replace this template.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

import plotly.graph_objects as go
import plotly.io as pio

from dashboard import formats, periods
from dashboard.views import LIKELY_GONE
from shared.analytics.activity import ActiveDaysHistogram, ActivityPeriod, PairAffinity
from shared.analytics.lifecycle import LifecyclePeriod
from shared.analytics.query import Grain
from shared.analytics.redemption import BreakagePeriod, PointFlow
from shared.analytics.retention import RetentionMatrix
from shared.program import CURRENCY_EXPONENTS
from shared.settlement.liability import LiabilityReport
from shared.settlement.reads import ClearingCell, StatementView

if TYPE_CHECKING:  # scipy and statsmodels behind them load slowly: types only
    from shared.analytics.survival import SurvivalCurve
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


def daily_points(days: Sequence[ActivityPeriod]) -> go.Figure:
    dates = [day.period_start for day in days]
    figure = go.Figure(
        [
            go.Bar(
                name="earned",
                x=dates,
                y=[day.points_earned_net for day in days],
                marker_color=ISSUED,
                hovertemplate="%{x|%a %d %b}: %{y:,} pts earned<extra></extra>",
            ),
            go.Bar(
                name="redeemed",
                x=dates,
                y=[day.points_redeemed_net for day in days],
                marker_color=REDEEMED,
                hovertemplate="%{x|%a %d %b}: %{y:,} pts redeemed<extra></extra>",
            ),
        ]
    )
    figure.update_layout(
        title="Points earned and redeemed per day",
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


# --- Analytics: periods on the x axis -------------------------------------------------------

INCOMPLETE = "#b0b8bf"  # a period still running: greyed, its figure is partial
DIVERGING = [[0.0, "#f18f01"], [0.5, "#f7f7f7"], [1.0, NAVY]]
LIFT_RANGE = 3  # the affinity colours span 1/8x to 8x (log2 lift -3..3)
_TICKS = {"day": "%d %b", "week": "%d %b", "month": "%b %Y"}
_HOVER_DATE = {"day": "%a %d %b %Y", "week": "week of %d %b %Y", "month": "%B %Y"}


def _period_axis(grain: Grain) -> dict:
    return {"title": None, "tickformat": _TICKS[grain], "hoverformat": _HOVER_DATE[grain]}


def _period_text(start: date, complete: bool, grain: Grain) -> str:
    return periods.label(start, grain) + ("" if complete else " (so far)")


def _share_axis(title: str | None, **extra) -> dict:
    return {"title": title, "tickformat": ".0%", "rangemode": "tozero", **extra}


def _period_line(items: Sequence, value, text, *, name: str, color: str) -> list[go.Scatter]:
    """A line over the complete periods, and a dotted grey step to the running one."""
    complete = [item for item in items if item.complete]
    running = [item for item in items if not item.complete]
    traces = [
        go.Scatter(
            name=name,
            x=[item.period_start for item in complete],
            y=[value(item) for item in complete],
            mode="lines+markers",
            line={"color": color, "width": 2.5},
            marker={"size": 6},
            hovertext=[text(item) for item in complete],
            hoverinfo="text",
        )
    ]
    if running:
        tail = complete[-1:] + running
        traces.append(
            go.Scatter(
                name=f"{name} (so far)",
                x=[item.period_start for item in tail],
                y=[value(item) for item in tail],
                mode="lines+markers",
                line={"color": color, "width": 1.5, "dash": "dot"},
                marker={"size": 6, "color": "white", "line": {"color": color, "width": 1.5}},
                hovertext=[text(item) for item in tail],
                hoverinfo="text",
                showlegend=False,
            )
        )
    return traces


# --- Activity ---------------------------------------------------------------------------


def active_members(items: Sequence[ActivityPeriod], grain: Grain) -> go.Figure:
    name = periods.GRAIN_NAMES[grain]
    figure = go.Figure(
        go.Bar(
            x=[item.period_start for item in items],
            y=[item.active_members for item in items],
            marker_color=[NAVY if item.complete else INCOMPLETE for item in items],
            hovertext=[
                f"{_period_text(item.period_start, item.complete, grain)}: "
                f"{formats.count(item.active_members, 'active members')} "
                f"({formats.count(item.purchasers, 'purchased')}, "
                f"{formats.count(item.redeemers, 'redeemed')})"
                for item in items
            ],
            hoverinfo="text",
        )
    )
    figure.update_layout(
        title=f"{name} active members (grey: the {grain} still running)",
        xaxis=_period_axis(grain),
        yaxis={"title": "members", "tickformat": ",d"},
        height=340,
        showlegend=False,
        bargap=0.15,
    )
    return figure


def transactions_per_member(items: Sequence[ActivityPeriod], grain: Grain) -> go.Figure:
    shown = [item for item in items if item.transactions_per_active_member is not None]
    figure = go.Figure(
        _period_line(
            shown,
            lambda item: item.transactions_per_active_member,
            lambda item: (
                f"{_period_text(item.period_start, item.complete, grain)}: "
                f"{item.transactions_per_active_member:.2f} transactions per active member "
                f"({formats.count(item.purchases, 'purchases')}, "
                f"{formats.count(item.redemptions, 'redemptions')})"
            ),
            name="transactions per active member",
            color=BLUE,
        )
    )
    figure.update_layout(
        title=f"Transactions per active member, per {grain}",
        xaxis=_period_axis(grain),
        yaxis={"title": "per member", "tickformat": ".1f", "rangemode": "tozero"},
        height=320,
        showlegend=False,
    )
    return figure


def cross_merchant_penetration(items: Sequence[ActivityPeriod], grain: Grain) -> go.Figure:
    shown = [item for item in items if item.cross_merchant_penetration is not None]
    figure = go.Figure(
        _period_line(
            shown,
            lambda item: item.cross_merchant_penetration,
            lambda item: (
                f"{_period_text(item.period_start, item.complete, grain)}: "
                f"{formats.percent(item.cross_merchant_penetration)} of "
                f"{formats.count(item.active_members, 'active members')} used 2+ partners"
            ),
            name="cross-merchant penetration",
            color=GREEN,
        )
    )
    figure.update_layout(
        title=f"Active members using 2+ partners, per {grain}",
        xaxis=_period_axis(grain),
        yaxis=_share_axis("of active members"),
        height=320,
        showlegend=False,
    )
    return figure


def active_days(
    current: ActiveDaysHistogram, previous: ActiveDaysHistogram | None, grain: Grain
) -> go.Figure:
    def bars(histogram: ActiveDaysHistogram, color: str) -> go.Bar:
        total = sum(members for _, members in histogram.members_by_days)
        when = _period_text(histogram.period_start, histogram.complete, grain)
        return go.Bar(
            name=when,
            x=[days for days, _ in histogram.members_by_days],
            y=[members / total for _, members in histogram.members_by_days],
            marker_color=color,
            hovertext=[
                f"{when}: {formats.count(members, 'members')} active on {days} "
                f"day{'s' if days > 1 else ''} ({formats.percent(members / total)})"
                for days, members in histogram.members_by_days
            ],
            hoverinfo="text",
        )

    traces = [bars(previous, "#9fb7cc")] if previous else []
    figure = go.Figure([*traces, bars(current, NAVY)])
    figure.update_layout(
        title=f"Active days per active member in the {grain}",
        barmode="group",
        xaxis={"title": f"active days in the {grain}", "dtick": 1},
        yaxis=_share_axis("of active members"),
        height=340,
    )
    return figure


def pair_affinity(pairs: Sequence[PairAffinity], names: dict) -> go.Figure:
    """Lift between partners: how much more often than by chance members use both. The
    colour is log2(lift), so 2× and ½× are equally far from 1×."""
    merchants = sorted(
        {pair.merchant_a for pair in pairs} | {pair.merchant_b for pair in pairs},
        key=lambda merchant: names.get(merchant, str(merchant)),
    )
    index = {merchant: position for position, merchant in enumerate(merchants)}
    size = len(merchants)
    colour: list[list[float | None]] = [[None] * size for _ in merchants]
    label = [[""] * size for _ in merchants]
    hover = [[""] * size for _ in merchants]
    for pair in pairs:
        a, b = index[pair.merchant_a], index[pair.merchant_b]
        name_a, name_b = names.get(pair.merchant_a, "?"), names.get(pair.merchant_b, "?")
        text = (
            f"{name_a} & {name_b}: lift {pair.lift:.2f}×<br>"
            f"{formats.count(pair.both, 'members')} at both, of "
            f"{formats.count(pair.members_a)} at {name_a} and "
            f"{formats.count(pair.members_b)} at {name_b}<br>"
            f"support {formats.percent(pair.support)} of "
            f"{formats.count(pair.active_members, 'active members')}"
        )
        for row, column in ((a, b), (b, a)):
            colour[row][column] = math.log2(pair.lift) if pair.lift > 0 else -LIFT_RANGE
            label[row][column] = f"{pair.lift:.1f}"
            hover[row][column] = text
    labels = [names.get(merchant, str(merchant)) for merchant in merchants]
    ticks = list(range(-LIFT_RANGE, LIFT_RANGE + 1))
    figure = go.Figure(
        go.Heatmap(
            z=colour,
            x=labels,
            y=labels,
            text=label,
            customdata=hover,
            hovertemplate="%{customdata}<extra></extra>",
            texttemplate="%{text}" if size <= 14 else None,
            colorscale=DIVERGING,
            zmid=0,
            zmin=-LIFT_RANGE,
            zmax=LIFT_RANGE,
            colorbar={
                "title": "lift",
                "tickvals": ticks,
                "ticktext": [f"{2.0**tick:g}×" for tick in ticks],
            },
            xgap=1,
            ygap=1,
        )
    )
    figure.update_layout(
        title="Partner-pair affinity: lift (above 1×: used together more than by chance)",
        xaxis={"tickangle": -30, "showgrid": False},
        yaxis={"autorange": "reversed", "showgrid": False},
        height=max(360, 30 * size + 200),
    )
    return figure


# --- Retention --------------------------------------------------------------------------


def retention_heatmap(matrix: RetentionMatrix, *, unbounded: bool) -> go.Figure:
    grain = matrix.grain
    width = max((len(row.active) for row in matrix.rows), default=0)
    z, hover, labels = [], [], []
    for row in matrix.rows:
        shares = row.unbounded_retention if unbounded else row.retention
        counts = row.on_or_after if unbounded else row.active
        cohort = periods.label(row.cohort_start, grain).removeprefix("week of ")
        labels.append(f"{cohort} ({formats.count(row.members)})")
        z.append(list(shares))
        hover.append(
            [
                f"{cohort} cohort, {formats.count(row.members, 'members')}<br>"
                + (
                    f"{grain} {k}{' or later' if unbounded else ''}: "
                    f"{formats.count(count, 'active')} ({formats.percent(share)})"
                    if share is not None
                    else f"{grain} {k}: not over yet"
                )
                for k, (share, count) in enumerate(zip(shares, counts, strict=True))
            ]
        )
    figure = go.Figure(
        go.Heatmap(
            z=z,
            x=list(range(width)),
            y=labels,
            text=hover,
            hoverinfo="text",
            colorscale=SEQUENTIAL,
            zmin=0,
            zmax=1,
            colorbar={"title": "retained", "tickformat": ".0%"},
            texttemplate="%{z:.0%}" if width <= 16 else None,
            textfont={"size": 11},
            xgap=1,
            ygap=1,
        )
    )
    kind = "active in that period or later" if unbounded else "active in that period"
    figure.update_layout(
        title=f"Share of each enrolment {grain}'s members {kind}",
        xaxis={"title": f"{grain}s after enrolment", "dtick": 1, "side": "top", "showgrid": False},
        yaxis={"title": "cohort (members)", "autorange": "reversed", "showgrid": False},
        height=max(320, 24 * len(matrix.rows) + 190),
        margin={"t": 130},
    )
    return figure


# --- Churn ------------------------------------------------------------------------------

LIFECYCLE = (  # bottom to top of the stack
    ("active", "active", GREEN),
    ("reactivated", "reactivated", NAVY),
    ("new", "new", BLUE),
    ("at_risk", "at risk", ORANGE),
    ("lapsed", "lapsed", "#9aa3ab"),
)


def lifecycle_states(items: Sequence[LifecyclePeriod], grain: Grain) -> go.Figure:
    x = [item.period_start for item in items]
    figure = go.Figure(
        [
            go.Scatter(
                name=label,
                x=x,
                y=[getattr(item, field) for item in items],
                stackgroup="states",
                mode="lines",
                line={"color": color, "width": 0.5},
                fillcolor=color,
                hovertemplate=f"%{{y:,}} {label}<extra></extra>",
            )
            for field, label, color in LIFECYCLE
        ]
    )
    figure.update_layout(
        title=f"Members by lifecycle state, end of each {grain}",
        xaxis=_period_axis(grain),
        yaxis={"title": "members", "tickformat": ",d"},
        hovermode="x unified",
        height=380,
    )
    return figure


def churn_rate(items: Sequence[LifecyclePeriod], grain: Grain) -> go.Figure:
    shown = [item for item in items if item.churn_rate is not None]
    figure = go.Figure(
        go.Scatter(
            x=[item.period_start for item in shown],
            y=[item.churn_rate for item in shown],
            mode="lines+markers",
            line={"color": RED, "width": 2.5},
            hovertext=[
                f"{periods.label(item.period_start, grain)}: {formats.percent(item.churn_rate)} "
                f"({formats.count(item.newly_lapsed)} of "
                f"{formats.count(item.not_lapsed_at_start, 'members')} not lapsed at its start)"
                for item in shown
            ],
            hoverinfo="text",
        )
    )
    figure.update_layout(
        title=f"Churn rate per {grain}",
        xaxis=_period_axis(grain),
        yaxis=_share_axis("lapsed in the period"),
        height=320,
        showlegend=False,
    )
    return figure


SEGMENT_COLORS = {
    "Champions": GREEN,
    "Loyal": GREEN,
    "Potential loyalists": BLUE,
    "New": BLUE,
    "Promising": BLUE,
    "Need attention": ORANGE,
    "About to sleep": ORANGE,
    "At risk": RED,
    "Can't lose them": RED,
    "Hibernating": GREY,
    "Lost": GREY,
}


def rfm_segments(sizes: dict[str, int]) -> go.Figure:
    total = sum(sizes.values()) or 1
    names = list(sizes)
    figure = go.Figure(
        go.Bar(
            x=[sizes[name] for name in names],
            y=names,
            orientation="h",
            marker_color=[SEGMENT_COLORS.get(name, GREY) for name in names],
            text=[formats.percent(sizes[name] / total) for name in names],
            textposition="outside",
            cliponaxis=False,
            hovertext=[
                f"{name}: {formats.count(sizes[name], 'members')} "
                f"({formats.percent(sizes[name] / total)})"
                for name in names
            ],
            hoverinfo="text",
        )
    )
    figure.update_layout(
        title="Members with a purchase by RFM segment",
        xaxis={"title": "members", "tickformat": ",d"},
        yaxis={"autorange": "reversed", "title": None},
        height=400,
        showlegend=False,
        margin={"r": 64},
    )
    return figure


def p_alive_distribution(upper_edges: Sequence[float], counts: Sequence[int]) -> go.Figure:
    total = sum(counts) or 1
    lowers = [0.0, *upper_edges[:-1]]
    labels = [
        f"{formats.percent(low, decimals=0)}–{formats.percent(high, decimals=0)}"
        for low, high in zip(lowers, upper_edges, strict=True)
    ]
    colours = [
        RED if high <= LIKELY_GONE + 1e-9 else ORANGE if high <= 0.6 else GREEN
        for high in upper_edges
    ]
    figure = go.Figure(
        go.Bar(
            x=labels,
            y=list(counts),
            marker_color=colours,
            hovertext=[
                f"P(alive) {label}: {formats.count(count, 'members')} "
                f"({formats.percent(count / total)})"
                for label, count in zip(labels, counts, strict=True)
            ],
            hoverinfo="text",
        )
    )
    figure.update_layout(
        title="Members by modelled probability of still being a customer, P(alive)",
        xaxis={"title": "P(alive)", "type": "category"},
        yaxis={"title": "members", "tickformat": ",d"},
        height=340,
        showlegend=False,
    )
    return figure


# --- Redemption -------------------------------------------------------------------------


def burn_and_penetration(items: Sequence[ActivityPeriod], grain: Grain) -> go.Figure:
    burn = [item for item in items if item.burn_earn_ratio is not None]
    reach = [item for item in items if item.redeemer_penetration is not None]
    figure = go.Figure(
        [
            *_period_line(
                burn,
                lambda item: item.burn_earn_ratio,
                lambda item: (
                    f"{_period_text(item.period_start, item.complete, grain)}: "
                    f"burn/earn {formats.percent(item.burn_earn_ratio)} "
                    f"({formats.points(item.points_redeemed_net)} redeemed, "
                    f"{formats.points(item.points_earned_net)} earned)"
                ),
                name="burn/earn ratio",
                color=REDEEMED,
            ),
            *_period_line(
                reach,
                lambda item: item.redeemer_penetration,
                lambda item: (
                    f"{_period_text(item.period_start, item.complete, grain)}: "
                    f"{formats.percent(item.redeemer_penetration)} of active members redeemed "
                    f"({formats.count(item.redeemers)} of {formats.count(item.active_members)})"
                ),
                name="redeemer penetration",
                color=NAVY,
            ),
        ]
    )
    figure.update_layout(
        title=f"Burn/earn ratio and redeemer penetration, per {grain}",
        xaxis=_period_axis(grain),
        yaxis=_share_axis(None),
        height=360,
    )
    return figure


def time_to_first_redemption(curve: SurvivalCurve) -> go.Figure:
    """S(t): the share of members without a redemption t days after enrolling."""
    times = [0.0, *curve.times.tolist()]
    survival = [1.0, *curve.survival.tolist()]
    low = [1.0, *(curve.ci_low.tolist())]
    high = [1.0, *(curve.ci_high.tolist())]
    at_risk = [curve.members, *curve.at_risk.tolist()]
    hover = [
        f"day {time:,.0f}: {formats.percent(s)} not redeemed yet "
        f"(95% CI {formats.percent(lo)}–{formats.percent(hi)}), "
        f"{formats.count(int(n), 'members')} still observed"
        for time, s, lo, hi, n in zip(times, survival, low, high, at_risk, strict=True)
    ]
    band = {"shape": "hv", "width": 0, "color": "rgba(46,134,171,0.25)"}
    figure = go.Figure(
        [
            go.Scatter(
                x=times, y=high, mode="lines", line=band, hoverinfo="skip", showlegend=False
            ),
            go.Scatter(
                name="95% confidence interval",
                x=times,
                y=low,
                mode="lines",
                line=band,
                fill="tonexty",
                fillcolor="rgba(46,134,171,0.2)",
                hoverinfo="skip",
            ),
            go.Scatter(
                name="members who have not redeemed yet",
                x=times,
                y=survival,
                mode="lines",
                line={"shape": "hv", "color": NAVY, "width": 2.5},
                hovertext=hover,
                hoverinfo="text",
            ),
        ]
    )
    if curve.median is not None:
        figure.add_vline(
            x=curve.median,
            line_color=GREY,
            line_dash="dot",
            annotation_text=f"median: {curve.median:,.0f} days",
            annotation_position="top right",
        )
    figure.update_layout(
        title="Time to first redemption (Kaplan–Meier)",
        xaxis={"title": "days since enrolment", "rangemode": "tozero"},
        yaxis={"title": "not redeemed yet", "tickformat": ".0%", "range": [0, 1.02]},
        height=380,
    )
    return figure


SANKEY_NODES = 10  # per side: the biggest issuers and redeemers; the rest as "other partners"


def _biggest(totals: dict, keep: int) -> set:
    ranked = sorted(totals, key=lambda key: -totals[key])
    return set(ranked if len(ranked) <= keep + 1 else ranked[:keep])


def point_flows(flows: Sequence[PointFlow], names: dict) -> go.Figure:
    """Earned at (left) -> redeemed at (right), the biggest partners by name."""
    issued: dict = {}
    redeemed: dict = {}
    for flow in flows:
        issued[flow.issuing_merchant_id] = issued.get(flow.issuing_merchant_id, 0) + flow.points
        redeemed[flow.redeeming_merchant_id] = (
            redeemed.get(flow.redeeming_merchant_id, 0) + flow.points
        )
    keep_issuers = _biggest(issued, SANKEY_NODES) | {None}
    keep_redeemers = _biggest(redeemed, SANKEY_NODES)
    other = "other partners"
    links: dict[tuple[str, str], list] = {}
    for flow in flows:
        source = (
            names.get(flow.issuing_merchant_id, "?")
            if flow.issuing_merchant_id in keep_issuers
            else other
        )
        target = (
            names.get(flow.redeeming_merchant_id, "?")
            if flow.redeeming_merchant_id in keep_redeemers
            else other
        )
        same = flow.issuing_merchant_id == flow.redeeming_merchant_id
        entry = links.setdefault((source, target), [0, same])
        entry[0] += flow.points
        entry[1] = entry[1] and same
    sources = sorted({source for source, _ in links}, key=lambda n: (n == other, n))
    targets = sorted({target for _, target in links}, key=lambda n: (n == other, n))
    source_totals = {n: sum(v[0] for (s, _), v in links.items() if s == n) for n in sources}
    target_totals = {n: sum(v[0] for (_, t), v in links.items() if t == n) for n in targets}
    labels = [f"{n}  {formats.points(source_totals[n], compact=True)}" for n in sources] + [
        f"{n}  {formats.points(target_totals[n], compact=True)}" for n in targets
    ]
    hq = names.get(None)
    node_colors = [NAVY if n == hq else ISSUED for n in sources] + [REDEEMED for _ in targets]
    ordered = sorted(links.items(), key=lambda item: -item[1][0])
    figure = go.Figure(
        go.Sankey(
            arrangement="snap",
            node={
                "label": labels,
                "color": node_colors,
                "pad": 14,
                "thickness": 16,
                "line": {"width": 0},
                "hovertemplate": "%{label}<extra></extra>",
            },
            link={
                "source": [sources.index(source) for (source, _), _ in ordered],
                "target": [len(sources) + targets.index(target) for (_, target), _ in ordered],
                "value": [value for _, (value, _) in ordered],
                "color": [
                    "rgba(108,117,125,0.25)" if same else "rgba(46,134,171,0.35)"
                    for _, (_, same) in ordered
                ],
                "customdata": [
                    f"earned at {source}, redeemed at {target}: {formats.points(value)}"
                    for (source, target), (value, _) in ordered
                ],
                "hovertemplate": "%{customdata}<extra></extra>",
            },
        )
    )
    figure.update_layout(
        title="Points earned at (left) and redeemed at (right); grey: spent where earned",
        height=max(420, 34 * max(len(sources), len(targets)) + 120),
        font={"size": 12},
    )
    return figure


def breakage(items: Sequence[BreakagePeriod], grain: Grain) -> go.Figure:
    x = [item.period_start for item in items]
    rates = [
        f"{_period_text(item.period_start, item.complete, grain)}: breakage rate "
        f"{formats.percent(item.breakage_rate)} ({formats.points(item.expired_points)} expired, "
        f"{formats.points(item.redeemed_points)} redeemed)"
        for item in items
    ]
    figure = go.Figure(
        [
            go.Bar(
                name="redeemed",
                x=x,
                y=[item.redeemed_points for item in items],
                marker_color=[REDEEMED if item.complete else INCOMPLETE for item in items],
                hovertext=rates,
                hoverinfo="text",
            ),
            go.Bar(
                name="expired (breakage)",
                x=x,
                y=[item.expired_points for item in items],
                marker_color=[RED if item.complete else "#8a9299" for item in items],
                hovertext=rates,
                hoverinfo="text",
            ),
        ]
    )
    figure.update_layout(
        title=f"Points leaving members' lots per {grain}: redeemed or expired",
        barmode="stack",
        xaxis=_period_axis(grain),
        yaxis=_points_axis("points"),
        height=360,
    )
    return figure


# --- Alerts -----------------------------------------------------------------------------


def _state_spans(points: Sequence, states: set[str]) -> list[tuple[datetime, datetime]]:
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
            line={"color": NAVY, "width": 1.5},
            connectgaps=False,
            hovertemplate="%{x|%Y-%m-%d %H:%M}<br>%{y:.4g}<extra></extra>",
        )
    )
    figure.add_hline(y=threshold, line={"color": RED, "dash": "dash"}, annotation_text="threshold")
    if recovery_threshold is not None and recovery_threshold != threshold:
        figure.add_hline(
            y=recovery_threshold,
            line={"color": GREY, "dash": "dot"},
            annotation_text="recovers",
            annotation_position="bottom right",
        )
    for start, end in _state_spans(points, {"pending"}):
        figure.add_vrect(x0=start, x1=end, fillcolor=ORANGE, opacity=0.15, line_width=0)
    for start, end in _state_spans(points, {"firing", "recovering"}):
        figure.add_vrect(x0=start, x1=end, fillcolor=RED, opacity=0.2, line_width=0)
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
        ("critical", RED), ("warning", ORANGE), ("info", NAVY),
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
