"""The Alerts page, rendered by Streamlit's test harness inside the app's navigation."""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy import create_engine, select
from streamlit.testing.v1 import AppTest

from shared import hq_users
from shared.access import SYSTEM
from shared.alerts import definitions
from shared.alerts.evaluation import evaluate_all
from shared.alerts.rules import Comparator, NoDataPolicy, Severity
from shared.settings import get_settings
from shared.tables import alert_rules
from tests.integration.alerts_support import DAY, HOUR, T0, Ledger

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
FEED_RULE = dict(
    name="Feed silent", description="A partner stopped sending.", metric="purchases",
    scope="merchant", comparator=Comparator.LT, threshold=0.2, recovery_threshold=0.5,
    window=DAY, evaluate_every=HOUR, baseline_offset=7 * DAY, min_baseline=5,
    pending_evaluations=2, recovery_evaluations=1, severity=Severity.CRITICAL,
    no_data=NoDataPolicy.KEEP, owner="HQ partner integrations", enabled=True,
)  # fmt: skip


@pytest.fixture
def dashboard_database(database_url, clean_database, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database_url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    st.cache_data.clear()
    st.cache_resource.clear()
    yield clean_database
    get_settings.cache_clear()
    st.cache_resource.clear()


def alerts_page(role: str = "admin") -> AppTest:
    """The Alerts page as a signed-in HQ user of this role."""
    with create_engine(get_settings().database_url).begin() as connection:
        username = f"alerts-{role}"
        if username not in {user.username for user in hq_users.list_users(connection)}:
            hq_users.create_user(
                connection,
                username=username,
                display_name=f"Alerts {role}",
                role=role,
                password="a password long enough",
            )
        user = hq_users.get_user(connection, username)
    app = AppTest.from_file(str(DASHBOARD), default_timeout=60)
    app.session_state["hq_user"] = user
    app.run()
    app.switch_page("app_pages/alerts.py").run()
    assert not app.exception, app.exception
    return app


def threshold(app: AppTest):
    return next(box for box in app.number_input if box.label == "Threshold")


def _metrics(app: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in app.metric}


def test_a_firing_alert_its_history_and_the_rule_backtest(dashboard_database):
    ledger = Ledger(dashboard_database)
    busy, quiet = ledger.merchant("Busy"), ledger.merchant("Quiet")
    member = ledger.member(busy)
    ledger.bulk([
        dict(member_id=member, merchant_id=shop, kind="earn", at=T0 - 30 * DAY + i * 2 * HOUR, points=10)
        for shop in (busy, quiet) for i in range(30 * 12)
        if shop == busy or i < 26 * 12
    ])  # fmt: skip
    with dashboard_database.begin() as connection:
        definitions.create_rule(connection, SYSTEM, **FEED_RULE)
    for hour in range(3):
        evaluate_all(dashboard_database, at=T0 + hour * HOUR)

    app = alerts_page()
    assert _metrics(app)["Firing"] == "1"
    now = app.dataframe[0].value
    assert list(now["For"]) == ["Quiet"] and list(now["State"]) == ["🔴 firing"]
    history = app.dataframe[1].value
    assert list(history["change"]) == ["pending → firing", "normal → pending"]

    rule_picker = next(box for box in app.selectbox if box.label == "Rule")
    rule_picker.set_value("Feed silent").run()
    next(slider for slider in app.slider if slider.label.startswith("Backtest")).set_value(
        400
    ).run()
    assert not app.exception, app.exception
    assert len(app.get("plotly_chart")) == 2  # notifications per day, the backtest
    # Quiet, and Busy a day after the data end (its sales stop at T0 too)
    assert any("2 firing(s) in 400 days" in caption.value for caption in app.caption)
    shown = next(box for box in app.selectbox if box.label == "Show")
    assert shown.value == "Quiet"  # the scope that fired is shown first


def test_the_editor_creates_a_rule_and_explains_a_refusal(dashboard_database):
    Ledger(dashboard_database).merchant("North")
    app = alerts_page()
    assert "No alert rules yet" in app.info[0].value
    fields = {box.label: box for box in app.text_input}
    fields["Name"].set_value("Redemptions up")
    fields["Owner"].set_value("HQ finance")
    fields["Recovery threshold (blank: the threshold)"].set_value("5")
    next(box for box in app.selectbox if box.label == "Metric").set_value("redemptions")
    next(box for box in app.selectbox if box.label == "Breaches when value is").set_value("lt")
    threshold(app).set_value(2.0)  # 'lt' 2 recovering at 5: hysteresis on the right side
    app.button[0].click().run()  # the form's submit button
    assert not app.exception, app.exception
    with dashboard_database.connect() as connection:
        stored = connection.execute(select(alert_rules)).one()
    assert (stored.name, stored.metric, stored.comparator, stored.threshold, stored.recovery_threshold) == (
        "Redemptions up", "redemptions", "lt", 2.0, 5.0,
    )  # fmt: skip

    app = alerts_page()  # a second rule with a recovery threshold on the wrong side
    fields = {box.label: box for box in app.text_input}
    fields["Name"].set_value("Broken")
    fields["Owner"].set_value("ops")
    fields["Recovery threshold (blank: the threshold)"].set_value("1")
    next(box for box in app.selectbox if box.label == "Breaches when value is").set_value("lt")
    threshold(app).set_value(2.0)
    app.button[0].click().run()
    assert "recoveryThreshold must be at or above" in app.error[0].value
    with dashboard_database.connect() as connection:
        assert (
            connection.scalar(select(alert_rules.c.name).where(alert_rules.c.name == "Broken"))
            is None
        )


def test_an_analyst_sees_the_alerts_but_not_the_rule_editor(dashboard_database):
    analyst = alerts_page("analyst")
    assert [box.label for box in analyst.text_input if box.label == "Name"] == []
    assert "Only HQ admins can create, change or delete alert rules." in [
        caption.value.split("** ")[-1].replace(":material/lock: ", "")
        for caption in analyst.caption
    ]
    admin = alerts_page("admin")
    assert [box.label for box in admin.text_input if box.label == "Name"] == ["Name"]
