"""HQ dashboard entrypoint: the page list. Each page reads like a description of its screen."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

# Streamlit runs this file as a script: make the project's packages importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

st.set_page_config(page_title="Coalition HQ", page_icon=":material/hub:", layout="wide")

navigation = st.navigation(
    [
        st.Page(
            "app_pages/overview.py", title="Overview", icon=":material/dashboard:", default=True
        ),
        st.Page("app_pages/alerts.py", title="Alerts", icon=":material/notifications:"),
    ]
)
navigation.run()
