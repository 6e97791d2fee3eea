"""The dashboard under Streamlit's test harness (AppTest), on the test database."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy import create_engine
from streamlit.testing.v1 import AppTest

from shared import hq_users
from shared.settings import get_settings
from tests.dashboard.seeded_network import seeded_network

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"

OpenDashboard = Callable[..., AppTest]


@pytest.fixture(autouse=True)
def keep_the_main_module():
    """AppTest runs the app as `__main__` and leaves it there; a process pool started
    later in this worker (the bulk seed spawns processes) would re-run the dashboard in
    every child while preparing it. Put the real main module back after each test."""
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main


@pytest.fixture(scope="session")
def seeded_url(database_url):
    """One seeded network for the whole session (the page tests only read it, bar one
    campaign cancelled by its own test)."""
    with seeded_network(database_url, "pages") as url:
        yield url


def _dashboard_on(url, monkeypatch) -> OpenDashboard:
    monkeypatch.setenv("DATABASE_URL", url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    # Cached figures and the cached engine belong to whichever database the last test used.
    st.cache_data.clear()
    st.cache_resource.clear()

    def open_dashboard(
        username: str | None = None, page: str | None = None, **session_state
    ) -> AppTest:
        """The app as `username` sees it (None: signed out), on `page` (a module of
        dashboard/app_pages; None: the default page)."""
        app = AppTest.from_file(str(DASHBOARD), default_timeout=60)
        if username is not None:
            engine = create_engine(url)
            with engine.connect() as connection:
                app.session_state["hq_user"] = hq_users.get_user(connection, username)
            engine.dispose()
        for key, value in session_state.items():
            app.session_state[key] = value
        app.run()
        if page is not None:
            app.switch_page(f"app_pages/{page}.py").run()
        return app

    return open_dashboard


@pytest.fixture
def seeded_dashboard(seeded_url, monkeypatch):
    yield _dashboard_on(seeded_url, monkeypatch)
    get_settings.cache_clear()
    st.cache_resource.clear()


@pytest.fixture
def empty_dashboard(database_url, clean_database, monkeypatch):
    """The worker's database, emptied after the test."""
    yield _dashboard_on(database_url, monkeypatch)
    get_settings.cache_clear()
    st.cache_resource.clear()


def metrics(app: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in app.metric}


def texts(app: AppTest) -> str:
    """Everything the page says in titles, captions, notes and alerts, as one string."""
    parts = [element.value for kind in ("title", "header", "subheader", "caption", "info",
             "warning", "error", "markdown") for element in app.get(kind)]  # fmt: skip
    return "\n".join(str(part) for part in parts)


def sign_up(url, username="ops") -> str:
    """An admin without a password (signed in through session state), for empty networks."""
    engine = create_engine(url)
    with engine.begin() as connection:
        hq_users.create_user(
            connection, username=username, display_name="Ops", role=hq_users.HqRole.ADMIN,
            password=None,
        )  # fmt: skip
    engine.dispose()
    return username
