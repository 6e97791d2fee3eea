"""Overview: the network's headline month against the month before, points day by day,
and the alerts."""

import streamlit as st

from dashboard import charts, data, periods, ui, views
from dashboard import formats as fmt
from dashboard.filters import current_filters

filters = current_filters()
network = data.network_headline()
ui.page_title(
    "Network overview",
    f"{fmt.count(network.active_merchants, 'active partners')} · "
    f"{fmt.count(network.open_stores, 'open stores')} · "
    f"{fmt.count(network.active_members, 'members')}. "
    f"Selected dates: {fmt.day_range(filters.first_day, filters.last_day)}.",
)

as_of = data.data_as_of()
if network.active_merchants + network.suspended_merchants == 0:
    ui.empty_state(
        "No partners yet. Create one through the API (`POST /v1/merchants`) "
        "or run `coalition seed --profile demo`."
    )
elif as_of is None:
    ui.empty_state(views.NO_ROLLUPS)
else:
    months = data.activity_series(filters, "month", as_of)
    headline = periods.headline(months, filters, "month")
    if headline is None:
        ui.empty_state(views.NOTHING_SELECTED.format(what="member was active"))
    else:
        current, previous = headline
        ui.figure_tiles(views.overview_tiles(current, previous, data.outstanding_points(filters)))
        ui.caption(views.headline_caption(current, "month"))
    days = [day for day in data.activity_series(filters, "day", as_of)
            if filters.first_day <= day.period_start <= filters.last_day]  # fmt: skip
    if any(day.points_earned_net or day.points_redeemed_net for day in days):
        ui.chart(
            charts.daily_points(days),
            how="From the analytics rollups, by the local day of the transaction, at the "
            "selected partners, for members of the selected tiers. Earned: points of "
            "purchases (base, tier and campaign bonuses) less refund clawbacks. Redeemed: "
            "redemptions and captured holds, less reversals. Behaviour points, adjustments "
            "and expiry are in the liability roll-forward (Redemption page).",
        )
    else:
        ui.empty_state(
            "No points were earned or redeemed on these days for this selection. "
            "Widen the dates, or clear the merchant and tier filters."
        )

ui.section("Alerts")
alerts = data.active_alerts()
if data.alert_rule_count() == 0:
    ui.empty_state(
        "No alert rule is enabled, so nothing can fire. Install the defaults with "
        "`coalition alerts install-defaults`, or write rules on the Alerts page."
    )
elif not alerts:
    st.success("Every alert rule is normal.", icon=":material/check_circle:")
else:
    ui.table(
        views.alert_rows(alerts),
        how="Alert rules evaluated by `coalition jobs alerts` (every few minutes in the "
        "worker). Firing: the rule breached its threshold for its pending evaluations. "
        "The Alerts page has the history, the rules and their backtests.",
    )
