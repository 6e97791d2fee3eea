"""Churn: members' lifecycle states, who lapses, RFM segments, and who is likely to have
left already (the BG/NBD model) with the list to win back."""

import streamlit as st

from dashboard import charts, data, periods, ui, views
from dashboard import formats as fmt
from dashboard.filters import current_filters
from shared.analytics.churn_model import SCORED_BALANCES
from shared.settings import get_settings

filters = current_filters()
ui.page_title(
    "Churn",
    "A member lapses after a number of days without a purchase or redemption. Lifecycle "
    "states and churn cover the whole network (every partner, every tier), per complete "
    "week or month in the selected dates, and at least the last 26 weeks or 13 months.",
)
as_of = data.data_as_of()
if as_of is None:
    ui.empty_state(views.NO_ROLLUPS)
    st.stop()

default_days, gaps = data.lapse_threshold(as_of)
threshold, periods_column = ui.columns(2)
with threshold:
    lapse_days = ui.number(
        "Lapse threshold (days without activity)",
        value=default_days,
        minimum=1,
        maximum=730,
        key="lapse_days",
        help=f"Default: {fmt.days(default_days)}, the 90th percentile of {fmt.count(gaps)} "
        "gaps between consecutive active days of the same member (90 days with fewer than "
        "100 gaps): a member silent for longer has waited longer than 9 returns in 10.",
    )
with periods_column:
    grain = ui.choose_one(
        "Periods",
        {grain: periods.GRAIN_NAMES[grain] for grain in ("month", "week")},
        key="churn_grain",
    )

states = data.lifecycle_states(filters, grain, lapse_days, as_of)
if not any(period.members for period in states):
    ui.empty_state(
        f"No member had enrolled by the end of a complete {grain} in these dates. Widen the dates."
    )
else:
    ui.figure_tiles(views.churn_tiles(states[-1], states[-2] if len(states) > 1 else None, grain))
    ui.caption(views.headline_caption(states[-1], grain))
    ui.chart(
        charts.lifecycle_states(states, grain),
        how=f"Every member enrolled by the {grain}'s end, in one state: new (enrolled in the "
        f"{grain}), active (active in it), reactivated (active in it after a lapse: more than "
        f"{lapse_days} days since the previous activity), at risk (inactive in it, not yet "
        f"lapsed), lapsed (no activity for {lapse_days} days or more at its end).",
    )
    ui.chart(
        charts.churn_rate(states, grain),
        how=f"Members lapsed at the {grain}'s end who were not lapsed at its start ÷ members "
        f"enrolled before it and not lapsed at its start. A member who lapses and comes back "
        f"within the {grain} is reactivated, not churned.",
    )

ui.section("RFM segments")
segments = data.rfm_segments(filters, as_of)
if sum(segments.values()):
    ui.chart(
        charts.rfm_segments(segments),
        how="Every member with a purchase to date, acquired by the selected merchants, of "
        "the selected tiers. Recency (days since the last purchase), frequency (days with a "
        "purchase) and spend are scored 1-5 by quintile; recency and frequency name the "
        "segment (docs/metrics.md).",
    )
else:
    ui.empty_state(views.NOTHING_SELECTED.format(what="member has purchased"))

ui.section("Who is still a customer: the churn model")
fit = data.churn_model_fit()
if fit is None:
    ui.empty_state(
        "The churn model has not been fitted yet: run `coalition jobs models` (the worker "
        "fits it once a day, and `coalition up` at start)."
    )
    st.stop()

ui.figure_tiles(views.model_tiles(fit))
ui.chart(
    charts.p_alive_distribution(fit.p_alive_bins, fit.p_alive_counts),
    how="BG/NBD (Fader, Hardie & Lee 2005) fitted to every member's purchases: while alive a "
    "member buys at a steady personal rate, and after each repeat purchase may leave for "
    "good. P(alive) is the probability that the member has not left, given how often they "
    "bought and how long they have been silent. Every member with a purchase, whatever the "
    "filters (docs/metrics.md).",
)

ui.section("At-risk members to win back")
balance_column, p_alive_column = ui.columns(2)
with balance_column:
    min_balance = ui.number(
        "Balance of at least (points)",
        value=data.high_balance(),
        minimum=0,
        maximum=100_000_000,
        key="at_risk_balance",
        help="Members with points to spend are worth a win-back offer. Default: the "
        "balance the top 1% of members hold at least.",
    )
with p_alive_column:
    max_p_alive = ui.share(
        "P(alive) at most",
        value=views.LIKELY_GONE,
        key="at_risk_p_alive",
        help="The model's probability that the member is still a customer.",
    )
at_risk, csv = data.at_risk_members(fit, filters, min_balance, max_p_alive)
if at_risk:
    shown = at_risk[: views.AT_RISK_SHOWN]
    ui.table(
        views.at_risk_rows(shown, get_settings().program.currency),
        how=f"Members acquired by the selected merchants and of the selected tiers, holding "
        f"at least {fmt.points(min_balance)} with P(alive) at most "
        f"{fmt.percent(max_p_alive, decimals=0)} at {fmt.day(fit.as_of)}, highest balance "
        f"first (among the {fmt.count(SCORED_BALANCES)} highest balances)."
        + views.shown_of(len(shown), len(at_risk)),
    )
    ui.download(
        f"Download {fmt.count(len(at_risk), 'members')} (CSV)",
        csv,
        f"at-risk-members-{fit.as_of}.csv",
        help="One row per member with their P(alive): the member ids are ready for a win-back "
        "campaign's target list.",
    )
else:
    ui.empty_state(
        "No member holds that balance with a P(alive) that low. Lower the balance or raise "
        "the ceiling."
    )
