"""Churn: members' lifecycle states, who lapses, RFM segments, and who is likely to have
left already (the BG/NBD model) with the list to win back."""

import streamlit as st

from dashboard import charts, data, ui, views
from dashboard import formats as fmt
from dashboard.filters import current_filters

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
    grain = ui.choose_one("Periods", {"month": "Monthly", "week": "Weekly"}, key="churn_grain")

states = data.lifecycle_states(filters, grain, lapse_days, as_of)
if not states:
    ui.empty_state(
        f"No {grain} has ended in these dates since the first member enrolled. Widen the dates."
    )
else:
    ui.figure_tiles(views.churn_tiles(states[-1], states[-2] if len(states) > 1 else None, grain))
    ui.caption(views.headline_caption(states[-1], grain))
    ui.chart(
        charts.lifecycle_states(states, grain, lapse_days),
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
        "segment (docs/metrics-models.md).",
    )
else:
    ui.empty_state(views.NOTHING_SELECTED.format(what="member has purchased"))
