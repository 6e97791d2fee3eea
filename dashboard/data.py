"""The dashboard's database access: one cached sync engine, cached query results."""

from __future__ import annotations

import streamlit as st
from sqlalchemy import Engine, create_engine

from shared.database.bootstrap import database_url
from shared.settings import get_settings


@st.cache_resource
def engine() -> Engine:
    return create_engine(database_url(get_settings()), pool_pre_ping=True)
