"""Every page of the dashboard renders on a seeded network, with its key elements; the
campaign page's admin control; the settlement page's filters; empty states. (The analytics
pages' own controls and figures: test_analytics_pages.py.)"""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, select

from shared import hq_users
from shared.tables import audit_log, campaigns, merchants
from tests.dashboard.conftest import metrics, sign_up, texts
from tests.dashboard.seeded_network import ADMIN, ANALYST, DRAFT_CAMPAIGN

# page module: (title, tiles, Plotly charts) on the seeded network
PAGES = {
    "overview": (
        "Network overview",
        ["Active members", "Purchases", "Points earned", "Points redeemed", "Outstanding points"],
        1,
    ),
    "alerts": ("Alerts", ["Firing", "Pending or recovering", "No data", "Rules enabled"], 0),
    "retention": (
        "Retention", ["Members in these cohorts", "Month-1 retention", "Month-3 retention"], 1,
    ),
    "churn": (
        "Churn",
        ["Churn rate", "Lapsed members", "Reactivated", "Expected active base", "Likely gone",
         "Model fitted"],
        4,
    ),
    "activity": (
        "Activity",
        ["Active members", "Transactions per active member", "Cross-merchant penetration"],
        5,
    ),
    "redemption": (
        "Redemption",
        ["Burn/earn ratio", "Redeemer penetration", "To first redemption", "Breakage rate",
         "Outstanding points", "Gross value", "Expected breakage", "Liability"],
        5,
    ),
    "settlement": (
        "Merchants & settlement",
        ["Issuance fees", "Redemption payments", "Spread", "Net cash", "Breakage revenue",
         "Outstanding points", "Gross value", "Expected breakage", "Liability"],
        3,
    ),
    "campaigns": (
        "Campaigns",
        ["Visit lift", "Spend lift", "Points lift", "Active-share lift", "Bonus cost",
         "Incremental revenue", "Return on investment"],
        1,
    ),
}  # fmt: skip


@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_renders_with_its_key_elements(seeded_dashboard, page):
    title, tiles, charts = PAGES[page]
    app = seeded_dashboard(ADMIN[0], page=page)
    assert not app.exception, app.exception
    assert app.title[0].value == title
    assert list(metrics(app)) == tiles
    assert all(value and value != "n/a" for value in metrics(app).values())
    assert len(app.get("plotly_chart")) == charts
    assert texts(app).count("How is this computed?") >= charts
    # The global filters are in the sidebar of every page.
    assert [box.label for box in app.sidebar.multiselect] == ["Merchants", "Tiers"]
    assert app.sidebar.date_input[0].label == "Dates"


def _choose_campaign(app, url, name: str):
    engine = create_engine(url)
    with engine.connect() as connection:
        campaign_id = connection.scalar(
            select(campaigns.c.campaign_id).where(campaigns.c.name == name)
        )
    engine.dispose()
    return app.selectbox(key="campaign").select(campaign_id).run()


def test_another_campaign_shows_its_own_results(seeded_dashboard, seeded_url):
    app = seeded_dashboard(ANALYST[0], page="campaigns")
    default = app.subheader[0].value
    assert default == "Autumn boost"  # the newest campaign with results
    app = _choose_campaign(app, seeded_url, "Coffee bonus weeks")
    assert not app.exception
    assert app.subheader[0].value == "Coffee bonus weeks"
    assert len(app.get("plotly_chart")) == 1


def test_only_admins_see_the_control_that_cancels_a_campaign(seeded_dashboard, seeded_url):
    analyst = _choose_campaign(
        seeded_dashboard(ANALYST[0], page="campaigns"), seeded_url, DRAFT_CAMPAIGN
    )
    assert not analyst.exception
    assert "No results yet" in texts(analyst)
    assert "Only HQ admins can cancel campaigns" in texts(analyst)
    assert not [button for button in analyst.button if button.label.startswith("Cancel")]

    admin = _choose_campaign(
        seeded_dashboard(ADMIN[0], page="campaigns"), seeded_url, DRAFT_CAMPAIGN
    )
    assert "Only HQ admins" not in texts(admin)
    [cancel] = [button for button in admin.button if button.label.startswith("Cancel")]
    assert cancel.disabled  # until the consequence is acknowledged


def test_an_admin_cancels_a_campaign_and_the_audit_names_them(seeded_dashboard, seeded_url):
    app = _choose_campaign(seeded_dashboard(ADMIN[0], page="campaigns"), seeded_url, DRAFT_CAMPAIGN)
    [acknowledge] = [box for box in app.checkbox if box.label.startswith("I understand")]
    acknowledge.check().run()
    [cancel] = [button for button in app.button if button.label.startswith("Cancel")]
    cancel.click().run()
    assert not app.exception
    assert any("cancelled" in option for option in app.selectbox(key="campaign").options)
    engine = create_engine(seeded_url)
    with engine.connect() as connection:
        campaign_id, status = connection.execute(
            select(campaigns.c.campaign_id, campaigns.c.status).where(
                campaigns.c.name == DRAFT_CAMPAIGN
            )
        ).one()
        details = connection.scalar(
            select(audit_log.c.details).where(
                audit_log.c.action == "campaign.cancelled",
                audit_log.c.subject_id == str(campaign_id),
            )
        )
        admin = hq_users.get_user(connection, ADMIN[0])
    engine.dispose()
    assert status == "cancelled"
    assert details["hqUserId"] == str(admin.user_id)


def test_the_merchants_filter_narrows_the_statements(seeded_dashboard, seeded_url):
    app = seeded_dashboard(ANALYST[0], page="settlement")
    everyone = list(app.dataframe[0].value["Merchant"])
    engine = create_engine(seeded_url)
    with engine.connect() as connection:
        merchant_id = connection.scalar(
            select(merchants.c.merchant_id).where(merchants.c.name == everyone[0])
        )
    engine.dispose()
    app.sidebar.multiselect(key="filter_merchants").select(merchant_id).run()
    assert not app.exception
    assert list(app.dataframe[0].value["Merchant"]) == [everyone[0]]
    assert len(everyone) > 1


def test_dates_without_a_closed_period_say_so(seeded_dashboard):
    from datetime import date

    app = seeded_dashboard(ANALYST[0], page="settlement")
    app.sidebar.date_input(key="filter_dates").set_value((date(2020, 1, 1), date(2020, 1, 31)))
    app.run()
    assert not app.exception
    assert "No closed period overlaps the selected dates" in texts(app)
    # The liability is still there, as it stood at the end of those dates: nothing yet.
    assert "No points have been issued yet" in texts(app)


@pytest.mark.parametrize(
    ("page", "says"),
    [
        ("overview", "No partners yet"),
        ("campaigns", "No campaign concerns the selected merchants and tiers"),
        ("settlement", "No settlement period has closed yet"),
        *(
            (page, "The analytics rollups have not been built yet")
            for page in ("retention", "churn", "activity", "redemption")
        ),
    ],
)
def test_an_empty_network_says_what_would_fill_each_page(empty_dashboard, database_url, page, says):
    app = empty_dashboard(sign_up(database_url), page=page)
    assert not app.exception, app.exception
    assert says in texts(app)
    assert not app.get("plotly_chart")
