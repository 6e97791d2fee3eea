"""The global filters in the sidebar: dates, merchants, tiers.

app.py shows them on every page (widgets of the entrypoint keep their values from page
to page); pages read them with `current_filters()` and pass them to the queries as one
frozen dataclass (shared/analytics/filters.py), which is also the cache key.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import streamlit as st

from dashboard import data
from shared.analytics.filters import Filters
from shared.settings import get_settings

DEFAULT_DAYS = 30
_CURRENT = "filters"


def sidebar_filters() -> Filters:
    program = get_settings().program
    today = datetime.now(ZoneInfo(program.time_zone)).date()
    default = (today - timedelta(days=DEFAULT_DAYS - 1), today)
    merchant_names = {option.merchant_id: option.name for option in data.merchant_options()}
    with st.sidebar:
        st.subheader("Filters")
        chosen = st.date_input(
            "Dates",
            value=default,
            max_value=today,
            format="YYYY-MM-DD",
            key="filter_dates",
            help=f"Calendar days in the programme's time zone ({program.time_zone}).",
        )
        merchants = st.multiselect(
            "Merchants",
            options=list(merchant_names),
            format_func=merchant_names.get,
            placeholder="All merchants",
            key="filter_merchants",
        )
        tiers = st.multiselect(
            "Tiers",
            options=program.tier_names,
            format_func=str.title,
            placeholder="All tiers",
            key="filter_tiers",
            help="Members by the tier they hold today.",
        )
    # While a range is being picked, the widget holds its first day only.
    first, last = (chosen[0], chosen[-1]) if chosen else default
    filters = Filters(
        first_day=first,
        last_day=last,
        time_zone=program.time_zone,
        merchant_ids=tuple(sorted(merchants, key=str)),
        tiers=tuple(tiers),
    )
    st.session_state[_CURRENT] = filters
    return filters


def current_filters() -> Filters:
    return st.session_state[_CURRENT]
