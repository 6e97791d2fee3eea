"""The pure award rules: who a campaign targets at a purchase and the bonus it gives."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from shared.campaigns.budget import SHARES, allotments, home_share
from shared.campaigns.rules import (
    History,
    Offer,
    PastEarn,
    Purchase,
    bonus,
    eligible,
    multiplier_bonus,
    targets,
    within_member_cap,
)

START = datetime(2026, 3, 1, tzinfo=UTC)
SHOP, OTHER, THIRD = (uuid.UUID(int=n) for n in (1, 2, 3))
MEMBER = uuid.UUID("00000000-0000-4000-8000-00000000abcd")


def offer(**changes) -> Offer:
    return replace(
        Offer(
            campaign_id=uuid.UUID(int=99),
            name="Test",
            owner_merchant_id=None,
            kind="multiplier",
            starts_at=START,
            ends_at=START + timedelta(days=14),
            terms={"multiplier": "2"},
            merchant_ids=frozenset(),
            tiers=frozenset(),
            holdout_bps=0,
            salt="salt",
            audience="triggered",
            per_member_cap_points=None,
            budget_points=None,
        ),
        **changes,
    )


def purchase(**changes) -> Purchase:
    return replace(
        Purchase(
            member_id=MEMBER,
            tier="basic",
            enrolled_at=START - timedelta(days=400),
            merchant_id=SHOP,
            occurred_at=START + timedelta(days=1),
            base_points=45,
            eligible_minor=3000,
        ),
        **changes,
    )


def test_multiplier_bonus_is_the_floor_of_the_extra_share():
    assert multiplier_bonus(45, "2") == 45
    assert multiplier_bonus(45, "1.5") == 22  # 22.5 rounded down
    assert multiplier_bonus(7, "1.25") == 1  # 1.75
    assert multiplier_bonus(0, "3") == 0


def test_targets_needs_the_window_the_partner_the_tier_and_the_audience():
    assert targets(offer(), purchase(), 0)
    assert not targets(offer(), purchase(occurred_at=START - timedelta(seconds=1)), 0)
    assert not targets(offer(), purchase(occurred_at=START + timedelta(days=14)), 0)  # end open
    assert not targets(offer(merchant_ids=frozenset({OTHER})), purchase(), 0)
    assert targets(offer(merchant_ids=frozenset({SHOP, OTHER})), purchase(), 0)
    assert not targets(offer(tiers=frozenset({"gold"})), purchase(), 0)
    assert targets(offer(tiers=frozenset({"gold"})), purchase(tier="gold"), 0)
    listed = offer(audience="enrolled_before_start")
    assert targets(listed, purchase(), 0)
    assert not targets(listed, purchase(enrolled_at=START), 0)
    assert not targets(offer(), purchase(), 10_000)  # everyone in the global holdout


def test_fixed_bonus_needs_the_minimum_spend_on_each_purchase():
    fixed = offer(kind="fixed_bonus", terms={"bonusPoints": 50, "minSpendMinor": 3000})
    assert bonus(fixed, purchase(), History()) == 50
    assert bonus(fixed, purchase(eligible_minor=2999), History()) == 0
    # Not once-only: a second qualifying purchase earns it again.
    assert bonus(fixed, purchase(), History(awarded={fixed.campaign_id: 50})) == 50


def test_spend_threshold_counts_spend_in_the_window_at_its_partners_once():
    threshold = offer(
        kind="spend_threshold",
        terms={"thresholdMinor": 10_000, "bonusPoints": 500},
        merchant_ids=frozenset({SHOP}),
    )
    earlier = (
        PastEarn(SHOP, START + timedelta(hours=1), 4000),
        PastEarn(SHOP, START - timedelta(days=1), 9000),  # before the window
        PastEarn(OTHER, START + timedelta(hours=2), 9000),  # another partner
        PastEarn(SHOP, START + timedelta(hours=3), 3000),
    )
    history = History(earns=earlier)
    assert bonus(threshold, purchase(eligible_minor=2999), history) == 0  # 9,999
    assert bonus(threshold, purchase(eligible_minor=3000), history) == 500  # 10,000
    done = History(earns=earlier, awarded={threshold.campaign_id: 500})
    assert bonus(threshold, purchase(), done) == 0


def test_cross_merchant_counts_distinct_partners_including_this_one():
    cross = offer(kind="cross_merchant", terms={"distinctPartners": 3, "bonusPoints": 300})
    two = History(
        earns=(
            PastEarn(SHOP, START + timedelta(hours=1), 100),
            PastEarn(OTHER, START + timedelta(hours=2), 100),
        )
    )
    assert bonus(cross, purchase(merchant_id=SHOP), two) == 0
    assert bonus(cross, purchase(merchant_id=THIRD), two) == 300


def test_win_back_rewards_a_return_after_the_lapse():
    win_back = offer(kind="win_back", terms={"lapsedDays": 60, "bonusPoints": 200})
    now = purchase().occurred_at
    lapsed = History(last_earn_at=now - timedelta(days=60, seconds=1))
    recent = History(last_earn_at=now - timedelta(days=60))
    assert bonus(win_back, purchase(), lapsed) == 200
    assert bonus(win_back, purchase(), recent) == 0
    assert eligible(win_back, purchase(), lapsed, 0)
    assert not eligible(win_back, purchase(), recent, 0)  # not lapsed: no arm recorded
    never_bought = purchase(enrolled_at=now - timedelta(days=10))
    assert bonus(win_back, never_bought, History()) == 0  # enrolment counts as activity
    tripled = offer(kind="win_back", terms={"lapsedDays": 60, "multiplier": "3"})
    assert bonus(tripled, purchase(), lapsed) == 90


def test_per_member_cap_counts_what_was_already_given():
    capped = offer(per_member_cap_points=100)
    assert within_member_cap(45, capped, History()) == 45
    assert within_member_cap(45, capped, History(awarded={capped.campaign_id: 70})) == 30
    assert within_member_cap(45, capped, History(awarded={capped.campaign_id: 100})) == 0
    assert within_member_cap(45, offer(), History(awarded={capped.campaign_id: 10**6})) == 45


@given(st.integers(min_value=0, max_value=10**15))
def test_budget_allotments_add_up_and_differ_by_at_most_one(budget):
    parts = allotments(budget)
    assert len(parts) == SHARES and sum(parts) == budget
    assert max(parts) - min(parts) <= 1


@given(st.uuids())
def test_home_share_is_a_valid_share(member_id):
    assert 0 <= home_share(member_id) < SHARES
