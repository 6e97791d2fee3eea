"""Overview: the period's headline figures against the period before it, day by day, and
the alerts."""

import streamlit as st

from dashboard import charts, data, ui, views
from dashboard import formats as fmt
from dashboard.filters import current_filters

filters = current_filters()
network = data.network_headline()
ui.page_title(
    "Network overview",
    f"{fmt.count(network.active_merchants, 'active partners')} · "
    f"{fmt.count(network.open_stores, 'open stores')} · "
    f"{fmt.count(network.active_members, 'members')}. "
    f"{fmt.day_range(filters.first_day, filters.last_day)}, compared with the "
    f"{filters.days} days before.",
)

if network.active_merchants + network.suspended_merchants == 0:
    ui.empty_state(
        "No partners yet. Create one through the API (`POST /v1/merchants`) "
        "or run `coalition seed --profile demo`."
    )
else:
    period = data.period_comparison(filters)
    now, before = period.current, period.previous
    ui.comparison_tiles(
        [
            ui.Comparison(
                "Active members",
                now.active_members,
                before.active_members,
                help="Members with at least one purchase or redemption in the period.",
            ),
            ui.Comparison("Purchases", now.purchases, before.purchases),
            ui.Comparison("Points issued", now.points_issued, before.points_issued, fmt.points),
            ui.Comparison(
                "Points redeemed", now.points_redeemed, before.points_redeemed, fmt.points
            ),
            ui.Comparison(
                "Outstanding points",
                now.outstanding_points,
                before.outstanding_points,
                fmt.points,
                help="Member balances at the end of the period: the liability before "
                "breakage. Every merchant: points belong to members, not to merchants.",
                rise_is_good=False,
            ),
        ]
    )
    days = data.daily_activity(filters)
    if any(day.points_issued or day.points_redeemed for day in days):
        ui.chart(
            charts.daily_points(days),
            how="Ledger transactions by the day they were posted (programme time zone), at "
            "the selected merchants, for members of the selected tiers. Issued: purchases, "
            "behaviour points and refund clawbacks (negative). Redeemed: redemptions and "
            "captured holds, less reversals.",
        )
    else:
        ui.empty_state(
            "No points were issued or redeemed on these days for this selection. "
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
