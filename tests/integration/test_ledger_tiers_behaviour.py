"""Tiers (upgrade at once, HQ-funded bonus, requalification) and behaviour points
(enrolment, profile completion, referral), with exact numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from dateutil.relativedelta import relativedelta

from shared.ledger.tiers import requalify_due
from shared.program import Tier
from tests.integration.ledger_support import (
    assert_problem,
    balance,
    earned,
    enrol,
    execute,
    lots,
    refund,
    rows,
    scalar,
    stored,
)

TIERS = (
    Tier(name="basic", threshold=0, multiplier=Decimal("1")),
    Tier(name="silver", threshold=100, multiplier=Decimal("1.5")),
    Tier(name="gold", threshold=1_000, multiplier=Decimal("2")),
)
PHONE = "+14155552671"


pytestmark = pytest.mark.usefixtures("ledger_stays_consistent")


@pytest.fixture
async def tiered(client_with_rules):
    """Small tiers and no behaviour bonuses, so that tier numbers stay exact."""
    async with client_with_rules(
        tiers=TIERS, enrolment_bonus_points=0, profile_completion_bonus_points=0
    ) as test_client:
        yield test_client


@pytest.fixture
def tier_rules(test_settings):
    return test_settings.program.model_copy(update={"tiers": TIERS})


def about(value: str | None, expected: datetime, slack: timedelta = timedelta(minutes=1)) -> bool:
    assert value is not None
    return abs(datetime.fromisoformat(value) - expected) < slack


def postings_of(sync_engine, transaction_id: str) -> set[tuple[str, str | None, int]]:
    return {
        (row.account, None if row.merchant_id is None else str(row.merchant_id), row.amount)
        for row in rows(
            sync_engine,
            "SELECT account, merchant_id, amount FROM postings WHERE transaction_id = :t",
            t=transaction_id,
        )
    }


async def progress(client, headers, member_id: str) -> dict:
    response = await client.get(f"/v1/members/{member_id}/tier-progress", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


# --- tiers -----------------------------------------------------------------------------


async def test_upgrade_at_once_then_hq_funded_tier_bonus(tiered, shop, sync_engine):
    member = await enrol(tiered, shop)
    first = await earned(tiered, shop, member, 15_000)  # 150 base points: silver needs 100
    # The earn that crosses the threshold is still priced at the old tier...
    assert (first["points"], first["breakdown"]["tierBonusPoints"], first["tier"]) == (
        150,
        0,
        "silver",
    )
    now = datetime.now(UTC)
    report = await progress(tiered, shop.headers, member)
    assert report == {
        **report,
        "tier": "silver",
        "multiplier": "1.5",
        "qualifyingPoints": 150,
        "nextTier": "gold",
        "nextTierThreshold": 1_000,
        "pointsToNextTier": 850,  # 1000 - 150
        "keepsTierAtRenewal": True,
    }
    assert about(report["validUntil"], now + relativedelta(months=12))
    assert about(report["windowStart"], now - relativedelta(months=12))

    # ...and the next one gets the silver bonus, funded by HQ.
    second = await earned(tiered, shop, member, 10_001)
    # base floor(100.01 x 1) = 100; bonus floor(100 x (1.5 - 1)) = 50
    assert (second["points"], second["breakdown"]["basePoints"]) == (150, 100)
    assert second["breakdown"]["tierBonusPoints"] == 50
    assert second["breakdown"]["tier"] == "silver"
    assert sorted(
        (lot["source"], lot["points"], lot["funderMerchantId"]) for lot in second["lots"]
    ) == [
        ("base", 100, shop.merchant_id),
        ("tier_bonus", 50, None),
    ]
    assert postings_of(sync_engine, second["transactionId"]) == {
        ("member", None, 150),
        ("issued", shop.merchant_id, -100),
        ("issued", None, -50),
    }
    assert second["balance"] == 300  # 150 + 150
    # Bonus points do not qualify: 150 + 100.
    assert (await progress(tiered, shop.headers, member))["qualifyingPoints"] == 250

    odd = await earned(tiered, shop, member, 3_333)  # base 33; bonus floor(33 x 0.5) = 16
    assert (odd["breakdown"]["basePoints"], odd["breakdown"]["tierBonusPoints"]) == (33, 16)

    to_gold = await earned(tiered, shop, member, 71_700)  # base 717; bonus floor(358.5) = 358
    assert (to_gold["points"], to_gold["tier"]) == (1_075, "gold")  # 250 + 33 + 717 = 1000
    at_gold = await earned(tiered, shop, member, 1_000)  # base 10; bonus floor(10 x 1) = 10
    assert (at_gold["points"], at_gold["breakdown"]["tierMultiplier"]) == (20, "2")
    report = await progress(tiered, shop.headers, member)
    assert (report["tier"], report["qualifyingPoints"]) == ("gold", 1_010)
    assert (report["nextTier"], report["nextTierThreshold"], report["pointsToNextTier"]) == (
        None,
        None,
        None,
    )
    # 150 + 150 + 49 + 1075 + 20
    assert stored(sync_engine, member) == (1_444, 0)
    assert (await balance(tiered, shop.headers, member))["tier"] == "gold"


async def test_refunds_reduce_qualifying_points_but_not_the_tier_at_once(tiered, shop):
    member = await enrol(tiered, shop)
    purchase = await earned(tiered, shop, member, 15_000)  # 150: silver
    assert (await refund(tiered, shop, purchase["transactionId"], 10_000)).status_code == 201
    report = await progress(tiered, shop.headers, member)
    # 150 - floor(150 x 10000 / 15000) = 150 - 100 = 50 qualifying points
    assert (report["tier"], report["qualifyingPoints"], report["keepsTierAtRenewal"]) == (
        "silver",
        50,
        False,
    )
    assert report["pointsToNextTier"] == 950  # 1000 - 50


async def test_requalification_keeps_or_drops_one_level(
    tiered, shop, sync_engine, async_engine, tier_rules
):
    # gold, no qualifying points left: drops to silver, not to basic
    lapsed_gold = await enrol(tiered, shop)
    await earned(tiered, shop, lapsed_gold, 100_000)  # 1000 base: basic -> gold at once
    # gold, still 500 qualifying points (silver level): drops one level to silver
    slipping_gold = await enrol(tiered, shop)
    await earned(tiered, shop, slipping_gold, 100_000)
    # silver, still qualified: keeps silver for a new period
    steady_silver = await enrol(tiered, shop)
    await earned(tiered, shop, steady_silver, 15_000)
    # silver, nothing in the window: basic (which never lapses)
    lapsed_silver = await enrol(tiered, shop)
    await earned(tiered, shop, lapsed_silver, 15_000)
    # silver, period not over yet: untouched
    current_silver = await enrol(tiered, shop)
    await earned(tiered, shop, current_silver, 15_000)

    execute(
        sync_engine,
        "UPDATE lots SET earned_at = now() - interval '13 months' WHERE member_id IN (:a, :b)",
        a=lapsed_gold,
        b=lapsed_silver,
    )
    # 1000 - floor(1000 x 50000 / 100000) = 500 qualifying points left
    refunded = rows(
        sync_engine,
        "SELECT transaction_id FROM ledger_transactions WHERE member_id = :m",
        m=slipping_gold,
    )[0][0]
    assert (await refund(tiered, shop, str(refunded), 50_000)).status_code == 201
    due = (lapsed_gold, slipping_gold, steady_silver, lapsed_silver)
    for member in due:
        execute(
            sync_engine,
            "UPDATE members SET tier_valid_until = now() - interval '1 day' WHERE member_id = :m",
            m=member,
        )

    assert await requalify_due(async_engine, tier_rules) == 4
    tiers = {
        str(row.member_id): (row.tier, row.tier_valid_until)
        for row in rows(sync_engine, "SELECT member_id, tier, tier_valid_until FROM members")
    }
    renewed = datetime.now(UTC) + relativedelta(months=12)
    assert tiers[lapsed_gold][0] == "silver"
    assert tiers[slipping_gold][0] == "silver"
    assert tiers[steady_silver][0] == "silver"
    for member in (lapsed_gold, slipping_gold, steady_silver):
        assert abs(tiers[member][1] - renewed) < timedelta(minutes=1)
    assert tiers[lapsed_silver] == ("basic", None)
    assert tiers[current_silver][0] == "silver"
    # Idempotent: every period is current again.
    assert await requalify_due(async_engine, tier_rules) == 0


# --- behaviour points (default rules: 100 enrolment, 50 profile, 200 referral, 10%) ------


async def test_enrolment_bonus_is_an_hq_funded_lot(client, shop, sync_engine):
    member = await enrol(client, shop)
    assert stored(sync_engine, member) == (100, 0)
    (lot,) = await lots(client, shop.headers, member)
    assert (lot["source"], lot["original"], lot["funderMerchantId"]) == ("behaviour", 100, None)
    assert lot["issuingMerchantId"] == shop.merchant_id
    (award,) = rows(
        sync_engine,
        "SELECT transaction_id, kind, reason, points FROM ledger_transactions WHERE member_id = :m",
        m=member,
    )
    assert (award.kind, award.reason, award.points) == ("behaviour", "enrolment", 100)
    assert postings_of(sync_engine, award.transaction_id) == {
        ("member", None, 100),
        ("issued", None, -100),
    }


async def test_profile_completion_pays_once(client, shop, sync_engine):
    member = await enrol(
        client,
        shop,
        identifiers=[{"kind": "email", "value": "ada@example.com"}],
        profile={"givenName": "Ada", "familyName": "Lovelace", "birthDate": "1990-12-10"},
    )
    assert stored(sync_engine, member) == (150, 0)  # 100 enrolment + 50 profile completion
    reasons = rows(
        sync_engine,
        "SELECT reason, points FROM ledger_transactions WHERE member_id = :m ORDER BY points",
        m=member,
    )
    assert [tuple(row) for row in reasons] == [("profile_completion", 50), ("enrolment", 100)]

    attached = await client.post(
        f"/v1/members/{member}/identifiers",
        json={"kind": "email", "value": "ada.l@example.com"},
        headers=shop.headers,
    )
    assert attached.status_code == 201, attached.text
    assert stored(sync_engine, member) == (150, 0)
    assert (await balance(client, shop.headers, member))["total"] == 150


async def test_an_incomplete_profile_gets_only_the_enrolment_bonus(client, shop, sync_engine):
    no_contact = await enrol(
        client,
        shop,
        profile={"givenName": "Ada", "familyName": "Lovelace", "birthDate": "1990-12-10"},
    )
    no_birth_date = await enrol(
        client,
        shop,
        identifiers=[{"kind": "phone", "value": PHONE}],
        profile={"givenName": "Ada", "familyName": "Lovelace"},
    )
    assert stored(sync_engine, no_contact) == (100, 0)  # a card is not a phone or an e-mail
    assert stored(sync_engine, no_birth_date) == (100, 0)


async def test_referral_bonus_and_share_of_the_referees_base_points(client, shop, sync_engine):
    referrer = await enrol(client, shop, identifiers=[{"kind": "phone", "value": PHONE}])
    referee = await enrol(client, shop, referredBy={"kind": "phone", "value": PHONE})
    assert stored(sync_engine, referrer) == (300, 0)  # 100 enrolment + 200 referral
    assert stored(sync_engine, referee) == (100, 0)

    purchase = await earned(client, shop, referee, 12_345)  # base floor(123.45) = 123
    assert purchase["balance"] == 223  # 100 + 123
    # floor(123 x 10 / 100) = floor(12.3) = 12 to the referrer, funded by HQ
    assert stored(sync_engine, referrer) == (312, 0)
    (share,) = rows(
        sync_engine,
        "SELECT transaction_id, kind, points, merchant_id, details FROM ledger_transactions "
        "WHERE member_id = :m AND reason = 'referral_share'",
        m=referrer,
    )
    assert (share.kind, share.points, str(share.merchant_id)) == ("behaviour", 12, shop.merchant_id)
    assert share.details["earnTransactionId"] == purchase["transactionId"]
    assert share.details["refereeMemberId"] == referee
    assert postings_of(sync_engine, share.transaction_id) == {
        ("member", None, 12),
        ("issued", None, -12),
    }

    await earned(client, shop, referee, 900)  # base 9: floor(0.9) = 0, nothing to share
    assert stored(sync_engine, referrer) == (312, 0)

    execute(
        sync_engine,
        "UPDATE members SET enrolled_at = now() - interval '91 days' WHERE member_id = :m",
        m=referee,
    )
    await earned(client, shop, referee, 100_000)  # outside the 90-day window: no share
    assert stored(sync_engine, referrer) == (312, 0)
    assert (
        scalar(
            sync_engine,
            "SELECT count(*) FROM ledger_transactions WHERE reason = 'referral_share'",
        )
        == 1
    )


async def test_unknown_referrer_is_refused_and_nothing_is_awarded(client, shop, sync_engine):
    response = await client.post(
        "/v1/members", json={"referredBy": {"kind": "phone", "value": PHONE}}, headers=shop.headers
    )
    assert_problem(response, 404, "not-found")
    assert scalar(sync_engine, "SELECT count(*) FROM ledger_transactions") == 0
    assert scalar(sync_engine, "SELECT count(*) FROM members") == 0
