"""Redemption: how much of what is earned is burnt and by whom, how long members take to
redeem, where points earned at one partner are spent, what expires, and the liability."""

import streamlit as st

from dashboard import charts, data, periods, sections, ui, views
from dashboard.filters import current_filters

filters = current_filters()
ui.page_title(
    "Redemption",
    "Points earned and redeemed at the selected partners, by members of the selected tiers. "
    "Trends cover the selected dates, and at least the last 26 weeks or 13 months.",
)
as_of = data.data_as_of()
if as_of is None:
    ui.empty_state(views.NO_ROLLUPS)
    st.stop()

grain = ui.choose_one(
    "Periods",
    {grain: periods.GRAIN_NAMES[grain] for grain in ("month", "week")},
    key="redemption_grain",
)
series = data.activity_series(filters, grain, as_of)
headline = periods.headline(series, filters, grain)
if headline is None:
    ui.empty_state(views.NOTHING_SELECTED.format(what="point was earned or redeemed"))
else:
    current, previous = headline
    expiry = data.breakage(filters, grain, as_of)
    curve = data.time_to_first_redemption(filters, as_of)
    ui.figure_tiles(
        views.redemption_tiles(
            current, previous, *periods.same_periods(expiry, current.period_start, grain), curve
        )
    )
    ui.caption(views.headline_caption(current, grain))
    ui.chart(
        charts.burn_and_penetration(series, grain),
        how="Burn/earn: points redeemed (less reversals) ÷ points earned by purchases (less "
        "refund clawbacks) at the selected partners in the period. Redeemer penetration: "
        "members who redeemed ÷ active members (a purchase or a redemption).",
    )
    if len(curve.times):
        ui.chart(
            charts.time_to_first_redemption(curve),
            how="Kaplan-Meier, over the members enrolled in the last 13 months (or the "
            "dates), acquired by the selected merchants, of the selected tiers: days from "
            "enrolment to the first redemption; members who have not redeemed count until "
            "the end of the dates (censored), so recent members do not drag the curve down. "
            "Band: pointwise 95% interval (Greenwood, log-log).",
        )
    else:
        ui.empty_state("None of these members has redeemed yet: there is no curve to draw.")
    if any(period.expired_points or period.redeemed_points for period in expiry):
        ui.chart(
            charts.breakage(expiry, grain),
            how="Points taken from members' lots in the period, by redemption (net of "
            "reversals) or by expiry. Breakage rate = expired ÷ (expired + redeemed). With a "
            "merchant filter, the points those partners issued. Every tier.",
        )

ui.section("Where points go")
flows = data.point_flows(filters)
if flows:
    ui.chart(
        charts.point_flows(flows, data.merchant_names()),
        how="Points redeemed in the selected dates (net of reversals), by the partner that "
        "issued the lots they came from (left; Network (HQ): behaviour points and "
        "adjustments) and the partner where they were redeemed (right). With a merchant "
        "filter, the flows where a selected partner issued or redeemed. Every tier.",
    )
else:
    ui.empty_state(views.NOTHING_SELECTED.format(what="point was redeemed"))

sections.points_liability(
    filters,
    how="As on the Merchants & settlement page: opening + issued - redeemed - expired + "
    "other + change in the breakage estimate = closing, month by month at the value per "
    "point in force. The network's, whatever the filters (docs/settlement.md).",
)
