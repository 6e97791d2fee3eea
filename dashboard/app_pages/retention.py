"""Retention: of the members who enrolled in each week or month, how many stay active."""

import streamlit as st

from dashboard import charts, data, ui, views
from dashboard.filters import current_filters

filters = current_filters()
ui.page_title(
    "Retention",
    "Enrolment cohorts and the share of their members active in each later period. Cohorts "
    "enrolled in the selected dates, and at least in the last 26 weeks or 13 months; by "
    "acquiring merchant (the merchants filter). Not by tier: cohorts are kept per acquiring "
    "merchant only.",
)
as_of = data.data_as_of()
if as_of is None:
    ui.empty_state(views.NO_ROLLUPS)
    st.stop()

cohorts, kind, acquired = ui.columns(3)
with cohorts:
    grain = ui.choose_one(
        "Cohorts by", {"month": "Enrolment month", "week": "Enrolment week"}, key="cohort_grain"
    )
with kind:
    unbounded = ui.choose_one(
        "Retention",
        {False: "In that period", True: "In that period or later"},
        key="retention_kind",
        help="In that period (N-period retention): active in the k-th period after "
        "enrolment. Or later (unbounded, 'on or after'): active then or in any later period.",
    )
with acquired:
    names = data.merchant_names()
    acquiring = ui.choose(
        "Acquired by",
        {"any": "Any merchant selected" if filters.merchant_ids else "Any merchant"}
        | {merchant: names[merchant] for merchant in filters.merchant_ids or names if merchant},
        key="acquiring_merchant",
    )

matrix = data.retention_matrix(filters, grain, None if acquiring == "any" else acquiring, as_of)
if not matrix.rows:
    ui.empty_state(views.NOTHING_SELECTED.format(what="member enrolled"))
    st.stop()

ui.figure_tiles(views.retention_tiles(matrix, unbounded=unbounded))
ui.chart(
    charts.retention_heatmap(matrix, unbounded=unbounded),
    how=f"Row: the members who enrolled in a {grain} (their first active day if a till dated "
    f"a purchase earlier), with their number. Column k: the share of them with a purchase or "
    f"redemption at any partner in the k-th {grain} after it"
    + (" or any later one" if unbounded else "")
    + f" (0: the enrolment {grain} itself). Cells whose {grain} has not ended are blank.",
)
