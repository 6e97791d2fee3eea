"""Settlement's pure rules: rounding, signs, periods."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.settlement.periods import label, next_period_start, period_start
from shared.settlement.rules import (
    MerchantActivity,
    money_minor,
    net_minor,
    posting_line,
    statement_lines,
)


def test_money_rounds_half_away_from_zero_once():
    assert money_minor(50, Decimal("0.0055"), 2) == 28  # 27.5 cents
    assert money_minor(-50, Decimal("0.0055"), 2) == -28
    assert money_minor(49, Decimal("0.0055"), 2) == 27  # 26.95
    assert money_minor(1, Decimal("0.004999"), 2) == 0
    assert money_minor(3, Decimal("0.333333"), 0) == 1  # a zero-decimal currency (JPY)


def test_a_postings_sign_says_which_statement_line_it_is():
    # The points come signed as statement_lines counts them: corrections lower their line.
    assert posting_line("issued", -120) == ("points_issued", 120)  # an earn debits the funder
    assert posting_line("issued", 30) == ("refund_clawbacks", -30)  # a refund credits it back
    assert posting_line("redeemed", 70) == ("points_redeemed", 70)
    assert posting_line("redeemed", -5) == ("redemption_reversals", -5)


@pytest.mark.parametrize("account", ["member", "breakage", "adjustment", "transfer_clearing"])
def test_other_accounts_are_not_on_a_statement(account):
    with pytest.raises(ValueError, match=account):
        posting_line(account, -10)


def test_statement_lines_carry_the_signs_of_who_pays_whom():
    lines = statement_lines(
        MerchantActivity(issued=140, campaign=40, clawed_back=10, redeemed=70, reversed=5,
                         expired_funded=20),
        issuance_price=Decimal("0.01"), redemption_rate=Decimal("0.008"),
        breakage_share_percent=Decimal("25"), exponent=2,
    )  # fmt: skip
    assert [(line.line, line.points, line.amount_minor) for line in lines] == [
        ("points_issued", 100, 100),
        ("campaign_points", 40, 40),
        ("refund_clawbacks", -10, -10),
        ("points_redeemed", 70, -56),
        ("redemption_reversals", -5, 4),
        ("breakage_share", 20, -5),
    ]
    assert net_minor(lines) == 73


def test_a_quiet_merchant_has_no_lines_and_no_share_without_a_policy():
    assert statement_lines(
        MerchantActivity(expired_funded=500), issuance_price=Decimal("0.01"),
        redemption_rate=Decimal("0.008"), breakage_share_percent=Decimal("0"), exponent=2,
    ) == []  # fmt: skip


@given(
    st.integers(0, 10**9), st.integers(0, 10**9), st.integers(0, 10**9),
    st.decimals(min_value=0, max_value=1, places=6),
    st.decimals(min_value=0, max_value=1, places=6),
)  # fmt: skip
def test_each_line_rounds_once_and_the_net_adds_the_rounded_lines(
    issued, redeemed, clawed, price, rate
):
    lines = statement_lines(
        MerchantActivity(issued=issued, clawed_back=clawed, redeemed=redeemed),
        issuance_price=price, redemption_rate=rate, breakage_share_percent=Decimal("0"),
        exponent=2,
    )  # fmt: skip
    exact = [Decimal(line.points) * line.rate * 100 for line in lines]
    for line, value in zip(lines, exact, strict=True):
        assert abs(value - line.amount_minor) <= Decimal("0.5")


def test_the_net_adds_the_rounded_lines_and_is_never_rounded_again():
    """1 point issued at $0.005 is 0.5 cent, rounded to 1; 1 point redeemed at $0.002 is
    -0.2 cent, rounded to 0. The net is their sum, 1 cent, where rounding the exact total
    (0.3 cent) would give 0."""
    lines = statement_lines(
        MerchantActivity(issued=1, redeemed=1), issuance_price=Decimal("0.005"),
        redemption_rate=Decimal("0.002"), breakage_share_percent=Decimal("0"), exponent=2,
    )  # fmt: skip
    assert [(line.line, line.amount_minor) for line in lines] == [
        ("points_issued", 1),
        ("points_redeemed", 0),
    ]
    assert net_minor(lines) == 1


def test_periods_follow_the_programme_time_zone_across_daylight_saving():
    moment = datetime(2026, 3, 29, 12, tzinfo=UTC)  # the day Paris moves to summer time
    start = period_start(moment, "daily", "Europe/Paris")
    assert start == datetime(2026, 3, 28, 23, tzinfo=UTC)
    assert next_period_start(start, "daily", "Europe/Paris") == datetime(
        2026, 3, 29, 22, tzinfo=UTC
    )
    week = period_start(moment, "weekly", "Europe/Paris")
    assert (week, label(week, "weekly", "Europe/Paris")) == (
        datetime(2026, 3, 22, 23, tzinfo=UTC), "2026-W13",
    )  # fmt: skip
    month = period_start(moment, "monthly", "America/New_York")
    assert month == datetime(2026, 3, 1, 5, tzinfo=UTC)
    assert next_period_start(month, "monthly", "America/New_York") == datetime(
        2026, 4, 1, 4, tzinfo=UTC
    )
    assert label(month, "monthly", "America/New_York") == "2026-03"


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1),
                    timezones=st.just(UTC)),
       st.sampled_from(["daily", "weekly", "monthly"]),
       st.sampled_from(["UTC", "Europe/Paris", "America/New_York", "Asia/Shanghai"]))  # fmt: skip
def test_every_moment_is_in_exactly_one_period(moment, length, zone):
    start = period_start(moment, length, zone)
    end = next_period_start(start, length, zone)
    assert start <= moment < end
    assert period_start(end, length, zone) == end
