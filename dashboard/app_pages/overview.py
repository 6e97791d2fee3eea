"""Overview: headline tiles for the network and where members were acquired."""

import streamlit as st

from dashboard import charts
from dashboard.data import engine
from shared.network_summary import enrolments_by_merchant, network_summary


@st.cache_data(ttl=60)
def load_overview():
    with engine().connect() as connection:
        return network_summary(connection), enrolments_by_merchant(connection)


st.title("Coalition network")
summary, acquisition = load_overview()

merchants_tile, stores_tile, members_tile, new_members_tile, points_tile = st.columns(5)
merchants_tile.metric(
    "Active partners",
    f"{summary.active_merchants:,}",
    help=f"{summary.suspended_merchants} suspended",
)
stores_tile.metric("Open stores", f"{summary.open_stores:,}")
members_tile.metric("Active members", f"{summary.active_members:,}")
new_members_tile.metric("Enrolled, last 30 days", f"{summary.members_enrolled_last_30_days:,}")
points_tile.metric(
    "Points outstanding",
    f"{summary.points_outstanding:,} pts",
    help="Sum of member balances: the points liability before breakage.",
)

if acquisition:
    st.plotly_chart(charts.enrolments_by_merchant(acquisition), use_container_width=True)
    st.caption(
        "Members counted by the partner where they enrolled (acquiring merchant), all statuses."
    )
else:
    st.info(
        "No partners yet. Create one through the API (`POST /v1/merchants`) or run `coalition seed --profile demo`."
    )
