"""Campaign results on a seeded network: the arms and outcomes the endpoint compares are
the ones in the tables, and the statistics come out for every seeded campaign."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text

from seed import bulk
from seed.config import SeedConfig
from shared import api_keys
from shared.access import SYSTEM, Role
from shared.database.urls import libpq_conninfo
from tests.integration.conftest import bearer, client_for

SEEDED = SeedConfig(members=600, months=10, merchants=8, seed=5,
                    end=datetime(2026, 6, 1, tzinfo=UTC), incidents=False)  # fmt: skip


async def test_results_compare_the_recorded_arms_over_the_window(
    database_url, async_engine, test_settings, clean_database
):
    from api.app import create_app

    bulk.run(SEEDED, test_settings.program, test_settings.card_prefix, libpq_conninfo(database_url),
             show_progress=False)  # fmt: skip
    with clean_database.connect() as connection:
        campaigns = connection.execute(
            text(
                "SELECT campaign_id, owner_merchant_id, starts_at, ends_at, merchant_ids"
                " FROM campaigns ORDER BY starts_at"
            )  # fmt: skip
        ).all()
        other_merchant = connection.execute(
            text("SELECT merchant_id FROM merchants WHERE industry = 'grocery' LIMIT 1")
        ).scalar_one()
    async with async_engine.begin() as connection:
        analyst = await api_keys.issue_key(connection, SYSTEM, role=Role.HQ_ANALYST, label="t")
        owner = next(c.owner_merchant_id for c in campaigns if c.owner_merchant_id)
        owner_key = await api_keys.issue_key(
            connection, SYSTEM, role=Role.MERCHANT, label="t", merchant_id=owner
        )
        other_key = await api_keys.issue_key(
            connection, SYSTEM, role=Role.MERCHANT, label="t", merchant_id=other_merchant
        )
    async with client_for(create_app(test_settings, engine=async_engine)) as client:
        for campaign in campaigns:
            response = await client.get(
                f"/v1/campaigns/{campaign.campaign_id}/results", headers=bearer(analyst.secret)
            )
            assert response.status_code == 200, response.text
            found = response.json()
            with clean_database.connect() as connection:
                arms = dict(connection.execute(
                    text("SELECT arm, count(*) FROM campaign_assignments"
                         " WHERE campaign_id = :c GROUP BY arm"),
                    {"c": campaign.campaign_id},
                ).all())  # fmt: skip
                visits = connection.execute(
                    text("SELECT count(*) FROM ledger_transactions t JOIN campaign_assignments a"
                         " USING (member_id) WHERE a.campaign_id = :c AND a.arm = 'treatment'"
                         " AND t.kind = 'earn' AND t.occurred_at >= :start AND t.occurred_at < :end"
                         " AND (cardinality(CAST(:m AS uuid[])) = 0"
                         "      OR t.merchant_id = ANY(CAST(:m AS uuid[])))"),
                    {"c": campaign.campaign_id, "start": campaign.starts_at,
                     "end": campaign.ends_at, "m": list(campaign.merchant_ids)},
                ).scalar_one()  # fmt: skip
                bonus = connection.execute(
                    text("SELECT coalesce(sum(original), 0) FROM lots WHERE campaign_id = :c"),
                    {"c": campaign.campaign_id},
                ).scalar_one()
            assert (found["treatmentMembers"], found["holdoutMembers"]) == (
                arms.get("treatment", 0), arms.get("holdout", 0),
            )  # fmt: skip
            unadjusted = found["visits"]["unadjusted"]
            assert unadjusted["treatment"]["n"] == arms["treatment"]
            assert abs(unadjusted["treatment"]["mean"] * arms["treatment"] - visits) < 1e-6
            assert found["bonusPoints"] == bonus > 0
            assert found["bonusCostMinor"] == bonus  # 1 point = 1 cent
            assert found["sampleRatio"]["mismatch"] is False
            assert (found["spilloverVisits"] is None) == (not campaign.merchant_ids)
            assert (found["networkVisits"] is None) == (not campaign.merchant_ids)
            for outcome in ("spendMinor", "points", "active"):
                low, high = found[outcome]["ciLow"], found[outcome]["ciHigh"]
                assert low <= found[outcome]["difference"] <= high
        merchant_campaign = next(c for c in campaigns if c.owner_merchant_id)
        path = f"/v1/campaigns/{merchant_campaign.campaign_id}/results"
        assert (await client.get(path, headers=bearer(owner_key.secret))).status_code == 200
        assert (await client.get(path, headers=bearer(other_key.secret))).status_code == 404


async def test_stored_snapshots_give_back_the_live_results(
    database_url, async_engine, test_settings, clean_database
):
    """`jobs campaigns` stores every started campaign's results; decoded, they equal the
    live computation; a second run within the hour recomputes nothing."""
    from shared.campaigns import results, snapshots
    from shared.snapshots import encode

    bulk.run(SEEDED, test_settings.program, test_settings.card_prefix, libpq_conninfo(database_url),
             show_progress=False)  # fmt: skip
    rules = test_settings.program
    with clean_database.connect() as connection:
        before = connection.scalar(text("SELECT now()"))
    stored = await snapshots.refresh_snapshots(async_engine, rules)
    with clean_database.connect() as connection:
        started = connection.execute(
            text("SELECT campaign_id FROM campaigns WHERE starts_at <= now() ORDER BY starts_at")
        ).scalars()
        assert stored == list(started) and len(stored) == 3
        snapshot = {
            campaign_id: snapshots.latest(connection, campaign_id) for campaign_id in stored
        }
    for campaign_id in stored:
        async with async_engine.connect() as connection:
            live = await results.campaign_results(connection, SYSTEM, campaign_id, rules)
        kept, computed_at = snapshot[campaign_id]
        # Rows come back in no set order, so sums may differ in the last bits of a float.
        assert _rounded(encode(kept)) == _rounded(encode(live))
        assert kept.campaign == live.campaign and kept.bonus_points == live.bonus_points
        assert computed_at >= before  # computed by this run
    assert await snapshots.refresh_snapshots(async_engine, rules) == []


def _rounded(value):
    if isinstance(value, float):
        return float(f"{value:.10g}")
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_rounded(item) for item in value]
    return value
