"""The HQ landing page, rendered by Streamlit's own test harness on the test database."""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from seed.demo import create_demo_network
from shared.settings import get_settings

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"


@pytest.fixture
def dashboard_database(database_url, clean_database, monkeypatch, test_settings):
    monkeypatch.setenv("DATABASE_URL", database_url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    get_settings.cache_clear()
    st.cache_resource.clear()


async def _seed(database_url, settings, members_count):
    from sqlalchemy.ext.asyncio import create_async_engine

    from shared.database.bootstrap import async_url

    engine = create_async_engine(async_url(database_url))
    async with engine.begin() as connection:
        await create_demo_network(connection, settings, members_count=members_count)
    await engine.dispose()


def _metrics(app: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in app.metric}


def test_overview_shows_the_network_in_numbers(dashboard_database, database_url, test_settings):
    import asyncio

    asyncio.run(_seed(database_url, test_settings, members_count=12))
    app = AppTest.from_file(str(DASHBOARD), default_timeout=60).run()
    assert not app.exception
    metrics = _metrics(app)
    assert metrics["Active partners"] == "6"
    assert metrics["Open stores"] == "8"
    # Demo members are enrolled with behaviour points unless a random phone collided.
    assert 1 <= int(metrics["Active members"]) <= 12
    assert metrics["Enrolled, last 30 days"] == metrics["Active members"]
    assert metrics["Points outstanding"] == "0 pts"  # the demo enrols without program rules
    assert len(app.get("plotly_chart")) == 1


def test_overview_on_an_empty_network_says_what_to_do(dashboard_database):
    app = AppTest.from_file(str(DASHBOARD), default_timeout=60).run()
    assert not app.exception
    assert _metrics(app)["Active partners"] == "0"
    assert "No partners yet" in app.info[0].value
