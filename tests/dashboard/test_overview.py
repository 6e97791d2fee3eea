"""The Overview page against the ledger: its tiles say what the transactions say, for the
default dates and under the merchant, tier and date filters."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import create_engine, text

from dashboard import formats
from tests.dashboard.conftest import metrics, texts
from tests.dashboard.seeded_network import ANALYST

# The same figures, written independently of shared/analytics/overview.py.
_LEDGER = """
SELECT count(DISTINCT t.member_id) FILTER (WHERE t.kind IN ('earn', 'redeem', 'capture')),
       count(*) FILTER (WHERE t.kind = 'earn'),
       coalesce(sum(t.points) FILTER (WHERE t.kind IN ('earn', 'behaviour', 'refund')), 0),
       coalesce(-sum(t.points) FILTER (WHERE t.kind IN ('redeem', 'capture', 'reversal')), 0)
FROM ledger_transactions t JOIN members m USING (member_id)
WHERE t.posted_at >= :start AND t.posted_at < :end
  AND (CAST(:merchant AS uuid) IS NULL OR t.merchant_id = :merchant)
  AND (CAST(:tier AS text) IS NULL OR m.tier = :tier)
"""


UNITS = {
    "Active members": formats.count,
    "Purchases": formats.count,
    "Points issued": formats.points,
    "Points redeemed": formats.points,
    "Outstanding points": formats.points,
}


def _ledger(url, first: date, last: date, merchant=None, tier=None) -> dict[str, int]:
    start = datetime.combine(first, datetime.min.time(), UTC)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), UTC)
    engine = create_engine(url)
    with engine.connect() as connection:
        active, purchases, issued, redeemed = connection.execute(
            text(_LEDGER), {"start": start, "end": end, "merchant": merchant, "tier": tier}
        ).one()
        outstanding = connection.scalar(
            text(
                "SELECT coalesce(sum(points), 0) FROM ledger_transactions t"
                " JOIN members m USING (member_id) WHERE t.posted_at < :end"
                " AND (CAST(:tier AS text) IS NULL OR m.tier = :tier)"
            ),
            {"end": end, "tier": tier},
        )
    engine.dispose()
    values = (active, purchases, issued, redeemed, outstanding)
    return {label: int(value) for label, value in zip(UNITS, values, strict=True)}


def _tiles(figures: dict[str, int]) -> dict[str, str]:
    return {label: UNITS[label](value, compact=True) for label, value in figures.items()}


def _expected(url, first: date, last: date, merchant=None, tier=None) -> dict[str, str]:
    return _tiles(_ledger(url, first, last, merchant, tier))


def _default_days() -> tuple[date, date]:
    today = datetime.now(UTC).date()  # the test programme's time zone is UTC
    return today - timedelta(days=29), today


def test_the_tiles_say_what_the_ledger_says_for_the_last_30_days(seeded_dashboard, seeded_url):
    app = seeded_dashboard(ANALYST[0])
    first, last = _default_days()
    now = _ledger(seeded_url, first, last)
    before = _ledger(seeded_url, first - timedelta(days=30), first - timedelta(days=1))
    assert now["Purchases"] > 0 and before["Purchases"] > 0
    assert metrics(app) == _tiles(now)
    for tile in app.metric:
        unit = UNITS[tile.label]
        assert tile.delta == formats.delta(now[tile.label], before[tile.label], unit)
        assert f"Previous period: {unit(before[tile.label])}." in tile.help


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
    first, last = _default_days()
    app = seeded_dashboard(ANALYST[0])
    app.sidebar.multiselect(key="filter_merchants").select(merchant_id).run()
    assert not app.exception
    expected = _expected(seeded_url, first, last, merchant=merchant_id)
    # Outstanding points belong to members: the merchant filter leaves them alone.
    expected["Outstanding points"] = _expected(seeded_url, first, last)["Outstanding points"]
    assert metrics(app) == expected

    app.sidebar.multiselect(key="filter_tiers").select("basic").run()
    assert not app.exception
    expected = _expected(seeded_url, first, last, merchant=merchant_id, tier="basic")
    expected["Outstanding points"] = _expected(seeded_url, first, last, tier="basic")[
        "Outstanding points"
    ]
    assert metrics(app) == expected


def test_days_without_activity_show_an_empty_state_instead_of_a_chart(seeded_dashboard):
    app = seeded_dashboard(ANALYST[0])
    app.sidebar.date_input(key="filter_dates").set_value((date(2020, 1, 1), date(2020, 1, 31)))
    app.run()
    assert not app.exception
    assert metrics(app)["Purchases"] == "0"
    assert "No points were issued or redeemed on these days" in texts(app)
    assert not app.get("plotly_chart")
    assert "1 Jan - 31 Jan 2020, compared with the 31 days before" in texts(app)
