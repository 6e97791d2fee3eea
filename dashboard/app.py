"""HQ dashboard entrypoint: sign-in, then the sidebar (filters, account) and the pages.
Each page reads like a description of its screen."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

# Streamlit runs this file as a script: make the project's packages importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashboard import auth, data, filters, ui  # noqa: E402

st.set_page_config(page_title="Coalition HQ", page_icon=":material/hub:", layout="wide")

user = auth.current_user()
if user is None:
    st.navigation([st.Page(auth.sign_in_screen, title="Sign in", icon=":material/login:")]).run()
    st.stop()

filters.sidebar_filters()
auth.account_in_sidebar(user)
firing = data.firing_alert_count()
ui.alert_badge(firing)
st.navigation(
    {
        "Network": [
            st.Page(
                "app_pages/overview.py", title="Overview", icon=":material/dashboard:", default=True
            ),
            st.Page(
                "app_pages/alerts.py",
                title=f"Alerts ({firing} firing)" if firing else "Alerts",
                icon=":material/notifications_active:" if firing else ":material/notifications:",
            ),
        ],
        "Members": [
            st.Page("app_pages/retention.py", title="Retention", icon=":material/grid_on:"),
            st.Page("app_pages/churn.py", title="Churn", icon=":material/trending_down:"),
            st.Page("app_pages/activity.py", title="Activity", icon=":material/shopping_cart:"),
        ],
        "Points and money": [
            st.Page("app_pages/redemption.py", title="Redemption", icon=":material/redeem:"),
            st.Page(
                "app_pages/settlement.py",
                title="Merchants & settlement",
                icon=":material/account_balance:",
            ),
        ],
        "Marketing": [
            st.Page("app_pages/campaigns.py", title="Campaigns", icon=":material/campaign:"),
        ],
    }
).run()
