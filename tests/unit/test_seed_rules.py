"""The seed replay's exact integer twins of the ledger's Decimal rules, and its calendar."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from seed.config import SeedConfig
from seed.live import basket_minor
from seed.network import build_calendar, moment, seconds
from seed.replay import (
    IdSource,
    base_points,
    bonus_points,
    split_points_and_cash,
    value_of_points,
)
from shared.ledger.rules import earn_breakdown, lot_expiry, points_and_cash, points_value_minor
from shared.program import ProgramRules, Tier

RULES = ProgramRules()


@given(
    amount=st.integers(1, 10**12),
    rate=st.decimals(min_value=0, max_value=1000, places=4),
    multiplier=st.decimals(min_value=1, max_value=5, places=2),
    exponent=st.sampled_from([0, 2, 3]),
)
def test_integer_points_equal_the_decimal_breakdown(amount, rate, multiplier, exponent):
    tier = Tier(name="t", threshold=0, multiplier=multiplier)
    expected = earn_breakdown(
        amount_minor=amount, currency_exponent=exponent, earn_rate=rate, tier=tier
    )
    base = base_points(amount, rate.as_integer_ratio(), 10**exponent)
    bonus = bonus_points(base, multiplier.as_integer_ratio())
    assert (base, bonus) == (expected.base_points, expected.tier_bonus_points)


@given(
    amount=st.integers(1, 10**9),
    value=st.decimals(min_value=Decimal("0.01"), max_value=100, places=4),
    available=st.integers(0, 10**9),
)
def test_integer_points_and_cash_equal_the_decimal_rule(amount, value, available):
    expected = points_and_cash(amount, value, available)
    split = split_points_and_cash(amount, value.as_integer_ratio(), available)
    assert split == (expected.points, expected.cash_minor)
    assert value_of_points(split[0], value.as_integer_ratio()) == points_value_minor(
        split[0], value
    )


def test_calendar_month_shifts_equal_the_rules_expiry_for_every_day():
    config = SeedConfig(months=26, end=datetime(2028, 3, 1, tzinfo=UTC))
    calendar = build_calendar(config, RULES)
    for day in range(calendar.days + 400):
        for hour in (0, 13):
            at = calendar.start + timedelta(days=day, hours=hour, minutes=7)
            assert moment(calendar.plus_months(seconds(at), 12)) == lot_expiry(at, RULES)


def test_seeded_ids_are_version_4_uuids_in_canonical_text():
    ids = IdSource(np.random.default_rng(1))
    drawn = [ids.next() for _ in range(5000)]
    assert len(set(drawn)) == len(drawn)
    for text in drawn[:500]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


@pytest.mark.parametrize(
    ("industry", "currency", "median_minor"),
    [
        ("grocery", "USD", 4_200),  # the catalogue's grocery basket, the bulk seed's too
        ("travel", "USD", 42_000),
        ("grocery", "JPY", 42 * 150),  # yen have no minor unit; a basket is ~150 times more
        ("a hand-made industry", "USD", 3_000),
    ],
)
def test_live_traffic_baskets_follow_the_catalogue(industry, currency, median_minor):
    rng = random.Random(7)
    baskets = sorted(basket_minor(rng, industry, currency) for _ in range(20_001))
    assert baskets[10_000] == pytest.approx(median_minor, rel=0.03)
