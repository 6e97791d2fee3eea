"""The analytics pages (Retention, Churn, Activity, Redemption) on the seeded network: their
controls change what they show, their tiles agree with the raw ledger, and they say so when
the filters select nothing or the network is empty."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import create_engine, text

from dashboard import formats
from shared.analytics.refresh import refresh
from shared.analytics.segments import RfmSegment, lapse_threshold_days, rfm_scores
from shared.settings import get_settings
from tests.dashboard.conftest import metrics, sign_up, texts
from tests.dashboard.seeded_network import ANALYST


def _figures(app) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]


def _month(day: date, months_back: int = 0) -> date:
    """The first day of the month `months_back` months before the one `day` is in."""
    index = day.year * 12 + day.month - 1 - months_back
    return date(index // 12, index % 12 + 1, 1)


def _scalar(url, sql: str, **parameters):
    engine = create_engine(url)
    with engine.connect() as connection:
        result = connection.execute(text(sql), parameters).one()
    engine.dispose()
    return result


# Active days written from the ledger, independently of the rollups (the test programme's
# time zone is UTC): a purchase or a redemption, at a partner.
_ACTIVE = """
    SELECT member_id, merchant_id, (occurred_at AT TIME ZONE 'UTC')::date AS day
    FROM ledger_transactions WHERE kind IN ('earn', 'redeem', 'capture')
"""


def test_the_activity_tiles_say_what_the_ledger_says(seeded_dashboard, seeded_url):
    today = datetime.now(UTC).date()
    month, before = _month(today, 1), _month(today, 2)
    app = seeded_dashboard(ANALYST[0], page="activity")
    app.sidebar.date_input(key="filter_dates").set_value((month, _month(today) - timedelta(1)))
    app.run()
    assert not app.exception, app.exception

    def ledger(first: date, after: date):
        return _scalar(
            seeded_url,
            f"""WITH a AS ({_ACTIVE}), m AS (
                  SELECT member_id, count(DISTINCT merchant_id) AS partners FROM a
                  WHERE day >= :first AND day < :after GROUP BY member_id)
                SELECT count(*), count(*) FILTER (WHERE partners >= 2) FROM m""",
            first=first,
            after=after,
        )

    active, multi = ledger(month, _month(today))
    active_before, multi_before = ledger(before, month)
    assert active > 0 and active_before > 0
    tiles = {tile.label: tile for tile in app.metric}
    assert tiles["Active members"].value == formats.count(active, compact=True)
    assert tiles["Active members"].delta == formats.delta(active, active_before)
    assert tiles["Cross-merchant penetration"].value == formats.percent(multi / active)
    assert tiles["Cross-merchant penetration"].delta == formats.share_delta(
        multi / active, multi_before / active_before
    )
    assert f"Tiles: {month:%b %Y}, the latest complete month by the end of the dates" in texts(app)


def test_weekly_activity_compares_weeks(seeded_dashboard):
    app = seeded_dashboard(ANALYST[0], page="activity")
    app.segmented_control(key="grain").set_value("week").run()
    assert not app.exception, app.exception
    assert "the latest complete week by the end of the dates" in texts(app)
    [active_members, *_] = _figures(app)
    assert active_members["layout"]["title"]["text"].startswith("Weekly active members")
    assert len(active_members["data"][0]["x"]) >= 25  # 26 weeks, the running one may be empty


def test_month_1_retention_is_the_ledger_s(seeded_dashboard, seeded_url):
    """The latest cohort whose first month after enrolment is over: two months ago."""
    today = datetime.now(UTC).date()
    cohort, month_1, after = _month(today, 2), _month(today, 1), _month(today)
    members, retained = _scalar(
        seeded_url,
        f"""WITH a AS ({_ACTIVE}), e AS (
              SELECT m.member_id,
                     least((m.enrolled_at AT TIME ZONE 'UTC')::date, min(a.day)) AS day
              FROM members m LEFT JOIN a USING (member_id) GROUP BY m.member_id)
            SELECT count(*), count(*) FILTER (WHERE EXISTS (
                     SELECT 1 FROM a WHERE a.member_id = e.member_id
                     AND a.day >= :month_1 AND a.day < :after))
            FROM e WHERE e.day >= :cohort AND e.day < :month_1""",
        cohort=cohort,
        month_1=month_1,
        after=after,
    )
    app = seeded_dashboard(ANALYST[0], page="retention")
    assert not app.exception, app.exception
    tile = {tile.label: tile for tile in app.metric}["Month-1 retention"]
    assert tile.value == formats.percent(retained / members)
    assert tile.delta == f"cohort: {cohort:%b %Y}, {formats.count(members, 'members')}"


def test_retention_by_week_and_on_or_after(seeded_dashboard):
    app = seeded_dashboard(ANALYST[0], page="retention")
    [by_month] = _figures(app)
    assert by_month["layout"]["xaxis"]["title"]["text"] == "months after enrolment"

    app.segmented_control(key="cohort_grain").set_value("week").run()
    assert not app.exception, app.exception
    [by_week] = _figures(app)
    assert by_week["layout"]["xaxis"]["title"]["text"] == "weeks after enrolment"
    assert len(by_week["data"][0]["y"]) > len(by_month["data"][0]["y"])
    assert "Week-1 retention" in metrics(app)

    app.segmented_control(key="retention_kind").set_value(True).run()
    assert not app.exception, app.exception
    [later] = _figures(app)
    assert later["layout"]["title"]["text"].endswith("active in that period or later")
    cells = zip(by_week["data"][0]["z"], later["data"][0]["z"], strict=True)
    for in_period, or_later in cells:  # on or after k >= in k; the same cells blank
        for share, share_later in zip(in_period, or_later, strict=True):
            assert (share is None) == (share_later is None)
            assert share is None or share_later >= share


def test_retention_by_one_acquiring_merchant(seeded_dashboard, seeded_url):
    app = seeded_dashboard(ANALYST[0], page="retention")
    everyone = metrics(app)["Members in these cohorts"]
    [busiest] = _scalar(
        seeded_url,
        "SELECT acquiring_merchant_id FROM members GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
    )
    box = app.selectbox(key="acquiring_merchant")
    assert box.options[0] == "Any merchant"
    box.select(busiest).run()
    assert not app.exception, app.exception
    assert int(metrics(app)["Members in these cohorts"].replace(",", "")) < int(
        everyone.replace(",", "")
    )


def _gaps(url) -> list[int]:
    engine = create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                f"""WITH d AS (SELECT DISTINCT member_id, day FROM ({_ACTIVE}) a)
                SELECT day - lag(day) OVER (PARTITION BY member_id ORDER BY day) FROM d"""
            )
        ).scalars()
        gaps = [gap for gap in rows if gap is not None]
    engine.dispose()
    return gaps


def test_the_lapse_threshold_defaults_to_the_gaps_percentile(seeded_dashboard, seeded_url):
    app = seeded_dashboard(ANALYST[0], page="churn")
    default = app.number_input(key="lapse_days").value
    assert default == lapse_threshold_days(_gaps(seeded_url))
    lapsed = int(metrics(app)["Lapsed members"].replace(",", ""))

    app.number_input(key="lapse_days").set_value(default * 4).run()
    assert not app.exception, app.exception
    assert int(metrics(app)["Lapsed members"].replace(",", "")) < lapsed
    assert f"no activity for {default * 4} days or more" in texts(app)


def test_the_at_risk_list_downloads_as_csv(seeded_dashboard, seeded_url):
    app = seeded_dashboard(ANALYST[0], page="churn")
    [top_percent] = _scalar(
        seeded_url,
        "SELECT percentile_disc(0.99) WITHIN GROUP (ORDER BY balance) FROM member_balances",
    )
    assert app.number_input(key="at_risk_balance").value == top_percent

    app.number_input(key="at_risk_balance").set_value(100).run()
    assert not app.exception, app.exception
    [table] = app.dataframe
    [download] = app.get("download_button")
    listed = len(table.value)
    assert 0 < listed <= 500
    assert download.proto.label == f"Download {formats.count(listed, 'members')} (CSV)"
    assert all(float(p.rstrip("%")) <= 30 for p in table.value["P(alive)"])
    assert all(int(b.removesuffix(" pts").replace(",", "")) >= 100 for b in table.value["Balance"])

    app.slider(key="at_risk_p_alive").set_value(0.05).run()
    assert not app.exception, app.exception
    assert len(app.dataframe[0].value) < listed


def test_the_rfm_segments_are_the_members_scores(seeded_dashboard, seeded_url):
    """segments.rfm_scores over every member's purchases, read from the ledger."""
    today = datetime.now(UTC).date()
    engine = create_engine(seeded_url)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                """SELECT :today - max((occurred_at AT TIME ZONE 'UTC')::date),
                          count(DISTINCT (occurred_at AT TIME ZONE 'UTC')::date),
                          sum(amount_minor)
                   FROM ledger_transactions WHERE kind = 'earn' GROUP BY member_id"""
            ),
            {"today": today},
        ).all()
    engine.dispose()
    recency, frequency, spend = (list(column) for column in zip(*rows, strict=True))
    segments = rfm_scores(recency, frequency, spend).segment.tolist()
    expected = {segment.value: segments.count(segment) for segment in RfmSegment}

    app = seeded_dashboard(ANALYST[0], page="churn")
    bars = next(f for f in _figures(app) if f["layout"]["title"]["text"].startswith("Members with"))
    assert dict(zip(bars["data"][0]["y"], bars["data"][0]["x"], strict=True)) == expected


@pytest.mark.parametrize(
    ("page", "says"),
    [
        ("activity", "No member was active in these dates for this selection"),
        ("retention", "No member enrolled in these dates for this selection"),
        ("churn", "No member had enrolled by the end of a complete month in these dates"),
        ("redemption", "No point was earned or redeemed in these dates for this selection"),
    ],
)
def test_dates_before_the_network_say_so(seeded_dashboard, page, says):
    app = seeded_dashboard(ANALYST[0], page=page)
    app.sidebar.date_input(key="filter_dates").set_value((date(2020, 1, 1), date(2020, 1, 31)))
    app.run()
    assert not app.exception, app.exception
    assert says in texts(app)
    if page != "churn":  # RFM and the model are today's, whatever the dates
        assert not app.get("plotly_chart")


@pytest.mark.parametrize(
    ("page", "says"),
    [
        ("activity", "No member was active"),
        ("retention", "No member enrolled"),
        ("churn", "The churn model has not been fitted yet: run `coalition jobs models`"),
        ("redemption", "No point was earned or redeemed"),
    ],
)
def test_a_network_without_members_says_what_would_fill_each_page(
    empty_dashboard, database_url, page, says
):
    engine = create_engine(database_url)
    refresh(engine, get_settings().program, full=True)  # rollups of nothing
    engine.dispose()
    app = empty_dashboard(sign_up(database_url), page=page)
    assert not app.exception, app.exception
    assert says in texts(app)
    assert not app.get("plotly_chart")
