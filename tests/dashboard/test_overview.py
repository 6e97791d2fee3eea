"""The Overview page against the ledger: its tiles say what the transactions say for the
headline month (the latest complete month of the selected dates) and the month before,
under the merchant and tier filters; the points chart and its empty state."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from dateutil.relativedelta import relativedelta
from sqlalchemy import create_engine, text

from dashboard import formats
from tests.dashboard.conftest import metrics, texts
from tests.dashboard.seeded_network import ANALYST

# The same figures, written independently of the rollups: straight from the ledger, by
# the day the transaction happened (the test programme's time zone is UTC).
_LEDGER = """
SELECT count(DISTINCT t.member_id) FILTER (WHERE t.kind IN ('earn', 'redeem', 'capture')),
       count(*) FILTER (WHERE t.kind = 'earn'),
       coalesce(sum(t.points) FILTER (WHERE t.kind IN ('earn', 'refund')), 0),
       coalesce(-sum(t.points) FILTER (WHERE t.kind IN ('redeem', 'capture', 'reversal')), 0)
FROM ledger_transactions t JOIN members m USING (member_id)
WHERE t.occurred_at >= :start AND t.occurred_at < :end
  AND (CAST(:merchant AS uuid) IS NULL OR t.merchant_id = :merchant)
  AND (CAST(:tier AS text) IS NULL OR m.tier = :tier)
"""
UNITS = {
    "Active members": formats.count,
    "Purchases": formats.count,
    "Points earned": formats.points,
    "Points redeemed": formats.points,
}


def _month(url, first: date, merchant=None, tier=None) -> dict[str, int]:
    start = datetime.combine(first, datetime.min.time(), UTC)
    engine = create_engine(url)
    with engine.connect() as connection:
        row = connection.execute(
            text(_LEDGER),
            {"start": start, "end": start + relativedelta(months=1), "merchant": merchant,
             "tier": tier},
        ).one()  # fmt: skip
    engine.dispose()
    return {label: int(value) for label, value in zip(UNITS, row, strict=True)}


def _outstanding(url, tier=None) -> int:
    engine = create_engine(url)
    with engine.connect() as connection:
        points = connection.scalar(
            text(
                "SELECT coalesce(sum(points), 0) FROM ledger_transactions t"
                " JOIN members m USING (member_id)"
                " WHERE CAST(:tier AS text) IS NULL OR m.tier = :tier"
            ),
            {"tier": tier},
        )
    engine.dispose()
    return int(points)


def _headline_months() -> tuple[date, date]:
    """The default dates are the last 30 days, the rollups hold everything before today:
    the headline is the latest month that ended by today, or the current one when the 30
    days lie inside it."""
    today = datetime.now(UTC).date()
    this_month = today.replace(day=1)
    headline = (
        this_month
        if today - timedelta(days=29) >= this_month
        else (this_month - relativedelta(months=1))
    )
    return headline, headline - relativedelta(months=1)


def _expected_tiles(url, merchant=None, tier=None) -> tuple[dict, dict, dict[str, str]]:
    headline, before = _headline_months()
    now, then = _month(url, headline, merchant, tier), _month(url, before, merchant, tier)
    tiles = {label: UNITS[label](value, compact=True) for label, value in now.items()}
    tiles["Outstanding points"] = formats.points(_outstanding(url, tier), compact=True)
    return now, then, tiles


def test_the_tiles_say_what_the_ledger_says_for_the_headline_month(seeded_dashboard, seeded_url):
    app = seeded_dashboard(ANALYST[0])
    assert not app.exception
    now, then, tiles = _expected_tiles(seeded_url)
    assert now["Purchases"] > 0 and then["Purchases"] > 0
    assert metrics(app) == tiles
    for tile in app.metric:
        if tile.label in UNITS:
            unit = UNITS[tile.label]
            assert tile.delta == formats.delta(now[tile.label], then[tile.label], unit)
            assert f"the one before: {unit(then[tile.label])}." in tile.help
    assert len(app.get("plotly_chart")) == 1


def test_the_merchant_and_tier_filters_narrow_the_tiles(seeded_dashboard, seeded_url):
    engine = create_engine(seeded_url)
    with engine.connect() as connection:
        merchant_id = connection.scalar(
            text(
                "SELECT merchant_id FROM ledger_transactions WHERE kind = 'earn'"
                " GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
            )
        )
    engine.dispose()
    app = seeded_dashboard(ANALYST[0])
    app.sidebar.multiselect(key="filter_merchants").select(merchant_id).run()
    assert not app.exception
    # Outstanding points belong to members: the merchant filter leaves them alone.
    assert metrics(app) == _expected_tiles(seeded_url, merchant=merchant_id)[2]

    app.sidebar.multiselect(key="filter_tiers").select("basic").run()
    assert not app.exception
    assert metrics(app) == _expected_tiles(seeded_url, merchant=merchant_id, tier="basic")[2]


def test_dates_without_activity_show_empty_states_instead_of_figures(seeded_dashboard):
    app = seeded_dashboard(ANALYST[0])
    app.sidebar.date_input(key="filter_dates").set_value((date(2020, 1, 1), date(2020, 1, 31)))
    app.run()
    assert not app.exception
    assert "Selected dates: 1 Jan - 31 Jan 2020." in texts(app)
    assert "No points were earned or redeemed on these days" in texts(app)
    assert not app.get("plotly_chart")
    assert not app.metric
