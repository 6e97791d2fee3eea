"""Activity: how many members are active per day, week or month, how much they do, how
many days they come, and which partners they use together."""

import streamlit as st

from dashboard import charts, data, periods, ui, views
from dashboard.filters import current_filters

filters = current_filters()
ui.page_title(
    "Activity",
    "Active members (a purchase or a redemption) at the selected partners, for members of "
    "the selected tiers. Charts cover the selected dates, and at least the last 30 days, "
    "26 weeks or 13 months.",
)
as_of = data.data_as_of()
if as_of is None:
    ui.empty_state(views.NO_ROLLUPS)
    st.stop()

grain = ui.choose_one("Periods", periods.GRAIN_NAMES, default="month", key="grain")
series = data.activity_series(filters, grain, as_of)
headline = periods.headline(series, filters, grain)
if headline is None:
    ui.empty_state(views.NOTHING_SELECTED.format(what="member was active"))
    st.stop()

current, previous = headline
ui.figure_tiles(views.activity_tiles(current, previous))
ui.caption(views.headline_caption(current, grain))
ui.chart(
    charts.active_members(series, grain),
    how="Distinct members with at least one purchase or redemption in the period, at the "
    "selected partners (a member counts once however many partners it used), for members "
    "of the selected tiers (the tier they hold today). Days in the programme's time zone; "
    "weeks start on Monday. From the analytics rollups, refreshed every few minutes.",
)
left, right = ui.columns(2)
with left:
    ui.chart(
        charts.transactions_per_member(series, grain),
        how="(Purchases + redemptions) ÷ active members, in the period and scope above. "
        "Refunds and reversals do not count as transactions.",
    )
with right:
    ui.chart(
        charts.cross_merchant_penetration(series, grain),
        how="Active members with activity at 2 or more partners in the period ÷ active "
        "members. With a merchant filter, 2 or more of the selected partners.",
    )

# A day has one active day: with daily periods, visits and pairs are per week.
detail, focus = grain, current.period_start
if grain == "day":
    detail = "week"
    focus = periods.headline(data.activity_series(filters, detail, as_of), filters, detail)[0]
    focus = focus.period_start
ui.section(f"Visits and partners, {periods.label(focus, detail)}")
histograms = data.active_days(filters, detail, focus, as_of)
if histograms:
    now = histograms[-1]
    before = histograms[0] if len(histograms) > 1 else None
    ui.chart(
        charts.active_days(now, before, detail),
        how=f"For this {detail} and the one before: active members by the number of "
        "distinct days on which they purchased or redeemed, as a share of the period's "
        "active members (at the selected partners, for the selected tiers).",
    )
pairs = data.pair_affinity(detail, focus, filters.merchant_ids)
names = data.merchant_names()
if pairs:
    ui.chart(
        charts.pair_affinity(pairs, names),
        how=f"For each pair of partners, in this {detail}: lift = P(A and B) ÷ "
        "(P(A) × P(B)) = members active at both × active members ÷ (members at A × members "
        "at B). Above 1, members use the two together more often than chance. Every tier "
        "(the pairs are not kept by tier); with a merchant filter, the pairs involving a "
        "selected partner.",
    )
    with ui.details("Every pair, highest lift first"):
        ui.table(views.pair_rows(pairs, names))
else:
    ui.empty_state(
        f"No member used two partners in the {detail} for this selection: there is no pair "
        "to compare."
    )
