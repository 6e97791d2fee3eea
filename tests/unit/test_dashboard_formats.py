"""How the dashboard writes numbers and what its filters mean (pure, no database)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from dashboard import formats
from shared.analytics.filters import Filters


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (formats.points(12345), "12,345 pts"),
        (formats.points(-5, plus=True), "-5 pts"),
        (formats.points(5, plus=True), "+5 pts"),
        (formats.points(9_999, compact=True), "9,999 pts"),
        (formats.points(23_223, compact=True), "23.2k pts"),
        (formats.points(144_054, compact=True), "144k pts"),
        (formats.points(999_950, compact=True), "1.00M pts"),
        (formats.points(1_234_567, compact=True), "1.23M pts"),
        (formats.count(-23_223, "members", compact=True), "-23.2k members"),
        (formats.money(123456, "USD"), "1,234.56 USD"),
        (formats.money(-1234, "JPY"), "-1,234 JPY"),
        (formats.money(5, "EUR"), "0.05 EUR"),
        (formats.money(1_234_567_89, "USD", compact=True), "1.23M USD"),
        (formats.money(999_999, "USD", compact=True), "9,999.99 USD"),
        (formats.percent(0.1234), "12.3%"),
        (formats.percent(Decimal("-0.5"), decimals=0, plus=True), "-50%"),
        (formats.percent(-0.00001, plus=True), "+0.0%"),  # no "-0.0%"
        (formats.percent(None), "n/a"),
        (formats.interval(0.012, 0.084), "(+1.2%, +8.4%)"),
        (formats.day_range(date(2026, 10, 1), date(2026, 10, 30)), "1 Oct - 30 Oct 2026"),
        (formats.day_range(date(2025, 12, 1), date(2026, 1, 3)), "1 Dec 2025 - 3 Jan 2026"),
    ],
)
def test_numbers_carry_their_unit(text, expected):
    assert text == expected


def test_a_delta_is_relative_unless_there_was_nothing_before():
    assert formats.delta(120, 100) == "+20.0%"
    assert formats.delta(80, 100) == "-20.0%"  # st.metric colours it red: ASCII hyphen
    assert formats.delta(5, 0, formats.points) == "+5 pts"


def test_filters_compare_with_the_same_number_of_days_just_before():
    filters = Filters(date(2026, 3, 1), date(2026, 3, 31), "Europe/Paris")
    previous = filters.previous()
    assert (previous.first_day, previous.last_day) == (date(2026, 1, 29), date(2026, 2, 28))
    assert previous.days == filters.days == 31
    # Local midnights: Paris is UTC+1 on 1 March and UTC+2 after 29 March.
    assert filters.starts_at.astimezone(UTC) == datetime(2026, 2, 28, 23, tzinfo=UTC)
    assert filters.ends_at.astimezone(UTC) == datetime(2026, 3, 31, 22, tzinfo=UTC)
    with pytest.raises(ValueError):
        Filters(date(2026, 3, 2), date(2026, 3, 1))


def test_empty_selections_cover_everything_and_network_wide_things_match_any_selection():
    shop, other = uuid.uuid4(), uuid.uuid4()
    everything = Filters(date(2026, 3, 1), date(2026, 3, 1))
    assert everything.covers_merchants([shop]) and everything.covers_tiers(["gold"])
    one_shop = Filters(date(2026, 3, 1), date(2026, 3, 1), merchant_ids=(shop,), tiers=("gold",))
    assert one_shop.covers_merchants([shop, other]) and not one_shop.covers_merchants([other])
    assert one_shop.covers_merchants([])  # a network-wide campaign concerns every merchant
    assert one_shop.covers_tiers([]) and not one_shop.covers_tiers(["basic"])
