"""The points liability's pure rules: the breakage estimate and the roll-forward, each
figure computed by hand in the test."""

from __future__ import annotations

import re
from datetime import date
from decimal import Context, Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.settlement.liability import (
    EXPIRED_KINDS,
    ISSUED_KINDS,
    OTHER_KINDS,
    REDEEMED_KINDS,
    CohortOutcome,
    MonthMovement,
    estimate_breakage,
    roll_forward,
    round_minor,
)
from shared.tables import ledger_transactions

JAN, FEB, MAR, APR = (date(2025, month, 1) for month in (1, 2, 3, 4))


def cohort(month, *, issued=0, redeemed=0, expired=0, outstanding=0, resolved=False):
    return CohortOutcome(month, issued, redeemed, expired, outstanding, resolved)


def estimate(cohorts, default_rate="0.20", full=1_000_000):
    return estimate_breakage(
        cohorts, default_rate=Decimal(default_rate), full_credibility_points=full
    )


# --- breakage estimate -----------------------------------------------------------------


def test_with_no_history_the_estimate_is_the_default():
    result = estimate([])
    assert (result.rate, result.credibility, result.observed_rate) == (Decimal("0.20"), 0, None)
    assert result.expected_breakage_points == 0
    assert "No cohort is resolved yet" in result.method


def test_until_a_cohort_is_resolved_the_default_applies_to_outstanding_points():
    # Expired points of an unresolved cohort are not evidence yet: its other lots may still
    # be redeemed.
    result = estimate(
        [
            cohort(JAN, issued=1_000, redeemed=300, expired=100, outstanding=600),
            cohort(FEB, issued=500, outstanding=500),
        ]
    )
    assert result.rate == Decimal("0.20")
    assert [c.expected_breakage_points for c in result.cohorts] == [120, 100]  # 600, 500 x 0.2
    assert result.expected_breakage_points == 220


def test_fully_credible_history_gives_the_points_weighted_observed_rate():
    # January: 300 of 1,000 points broke (30%); February: 10 of 100 (10%). Weighted by
    # points: 310 / 1,100, not the plain average of 20%.
    result = estimate(
        [
            cohort(JAN, issued=1_000, redeemed=700, expired=300, resolved=True),
            cohort(FEB, issued=100, redeemed=90, expired=10, resolved=True),
            cohort(MAR, issued=2_000, redeemed=500, outstanding=1_500),
        ],
        full=1_000,
    )
    assert result.resolved_points == 1_100
    assert result.resolved_breakage_points == 310
    assert result.credibility == 1
    assert result.observed_rate == result.rate == Decimal(310) / Decimal(1_100)
    march = result.cohorts[2]
    assert march.expected_breakage_points == 1_500 * (Decimal(310) / Decimal(1_100))
    assert [c.expected_breakage_points for c in result.cohorts[:2]] == [0, 0]


def test_partial_credibility_blends_the_observed_rate_with_the_default():
    # 240 of 700 resolved points broke: observed 12/35. z = 700 / 1,000 = 0.7.
    # rate = 0.7 x 12/35 + 0.3 x 0.2 = 0.24 + 0.06 = 0.30.
    result = estimate(
        [
            cohort(JAN, issued=300, redeemed=210, expired=90, resolved=True),
            cohort(FEB, issued=400, redeemed=250, expired=150, resolved=True),
            cohort(MAR, issued=880, redeemed=0, outstanding=880),
        ],
        full=1_000,
    )
    assert result.credibility == Decimal("0.7")
    assert result.observed_rate == Decimal(12) / Decimal(35)
    assert result.rate == Decimal("0.3")
    assert result.expected_breakage_points == 264  # 880 x 0.3
    assert "Observed = 240 / 700" in result.method and "rate = 0.3" in result.method


def test_credibility_is_capped_at_one():
    result = estimate([cohort(JAN, redeemed=1_500, expired=500, resolved=True)], full=1_000)
    assert (result.credibility, result.rate) == (1, Decimal("0.25"))


def test_a_resolved_cohorts_points_still_on_lots_count_as_breakage():
    # Every lot is past expiry but the expiry job has not posted the last 50 yet: they
    # break all the same (reads already show them expired).
    result = estimate(
        [
            cohort(JAN, issued=300, redeemed=210, expired=40, outstanding=50, resolved=True),
            cohort(FEB, issued=150, outstanding=150),
        ],
        full=300,
    )
    assert result.rate == Decimal("0.3")  # (40 + 50) / 300
    assert [(c.rate, c.expected_breakage_points) for c in result.cohorts] == [
        (1, 50),  # in full
        (Decimal("0.3"), 45),  # 150 x 0.3
    ]
    assert result.expected_breakage_points == 95


def test_the_blend_is_exact_to_the_28th_digit():
    # z = 3 / 9, observed = 1 / 3, default 0.5: 1/9 + 1/3 = 4/9.
    result = estimate(
        [cohort(JAN, redeemed=2, expired=1, resolved=True)], default_rate="0.5", full=9
    )
    assert result.rate == Decimal(4) / Decimal(9)  # 0.4444444444444444444444444444
    assert len(result.rate.as_tuple().digits) == 28


def test_cohort_other_is_what_left_neither_redeemed_nor_expired():
    # Issued 50 (100 less a 50-point refund of points already spent: debt), 100 redeemed.
    assert cohort(JAN, issued=50, redeemed=100).other == -50
    # A later cohort repaid that debt with 50 of its 130 points.
    assert cohort(MAR, issued=130, outstanding=80).other == 50


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"default_rate": Decimal("1.1"), "full_credibility_points": 1}, "between 0 and 1"),
        ({"default_rate": Decimal("-0.1"), "full_credibility_points": 1}, "between 0 and 1"),
        ({"default_rate": Decimal("0.2"), "full_credibility_points": 0}, "positive"),
    ],
)
def test_parameters_are_checked(arguments, message):
    with pytest.raises(ValueError, match=message):
        estimate_breakage([], **arguments)


def test_negative_outcomes_are_refused():
    with pytest.raises(ValueError, match="negative"):
        estimate([cohort(JAN, redeemed=-1, resolved=True)])


@given(
    st.lists(
        st.tuples(
            st.integers(0, 10**9), st.integers(0, 10**9), st.integers(0, 10**9), st.booleans()
        ),
        max_size=8,
    ),
    st.decimals(min_value=0, max_value=1, places=4),
    st.integers(1, 10**10),
)
def test_the_rate_lies_between_the_default_and_the_observed_rate(cohorts, default, full):
    result = estimate(
        [
            cohort(JAN, redeemed=r, expired=e, outstanding=o, resolved=done)
            for r, e, o, done in cohorts
        ],
        default_rate=str(default),
        full=full,
    )
    assert 0 <= result.rate <= 1
    if result.observed_rate is None:
        assert result.rate == default
    else:
        low, high = sorted([default, result.observed_rate])
        tolerance = Decimal("1e-27")  # the one division, to 28 significant digits
        assert low - tolerance <= result.rate <= high + tolerance


# --- roll-forward ----------------------------------------------------------------------


def movement(month, opening, issued=0, redeemed=0, expired=0, other=0):
    return MonthMovement(
        month,
        opening,
        issued,
        redeemed,
        expired,
        other,
        opening + issued - redeemed - expired + other,
    )


def figures(line):
    return (
        line.opening_minor,
        line.issued_minor,
        line.redeemed_minor,
        line.expired_minor,
        line.other_minor,
        line.change_in_estimate_minor,
        line.closing_minor,
    )


def test_a_textbook_roll_forward():
    # 1 point = 1 cent. January at a steady 20% estimate; February the estimate rises to
    # 25%; March it falls to 10% with an HQ credit of 50 points.
    months = [
        movement(JAN, 1_000, issued=500, redeemed=300, expired=100),  # closes at 1,100
        movement(FEB, 1_100, issued=200, redeemed=100),  # closes at 1,200
        movement(MAR, 1_200, redeemed=250, other=50),  # closes at 1,000
    ]
    rates = [Decimal("0.20"), Decimal("0.20"), Decimal("0.25"), Decimal("0.10")]
    lines = roll_forward(months, point_value_minor=Decimal(1), breakage_rates=rates)
    # January: everything at 80 cents per 100 points; no change in estimate.
    #   800 + 400 - 240 - 80 + 0 + 0 = 880 = 1,100 x 0.8
    # February: flows at 0.8; the closing book at 0.75: 1,200 x 0.75 = 900.
    #   880 + 160 - 80 = 960; change = 900 - 960 = -60 = 1,200 x (0.20 - 0.25)
    # March: flows at 0.75 (250 x 0.75 = 187.5 -> 188, 50 x 0.75 = 37.5 -> 38);
    #   closing 1,000 x 0.9 = 900; 900 - 188 + 38 = 750; change = +150
    #   (= 1,000 x (0.25 - 0.10), the two halves cancelling)
    assert [figures(line) for line in lines] == [
        (800, 400, 240, 80, 0, 0, 880),
        (880, 160, 80, 0, 0, -60, 900),
        (900, 0, 188, 0, 38, 150, 900),
    ]
    assert [(line.opening_rate, line.closing_rate) for line in lines] == list(
        zip(rates, rates[1:], strict=False)
    )
    assert [(line.opening_points, line.closing_points) for line in lines] == [
        (1_000, 1_100),
        (1_100, 1_200),
        (1_200, 1_000),
    ]


def test_rounding_is_half_away_from_zero_once_per_figure():
    assert [round_minor(Decimal(x)) for x in ("2.5", "-2.5", "2.4999", "-0.5", "0.5")] == [
        3,
        -3,
        2,
        -1,
        1,
    ]
    # Half a cent per point: 3 points issued = 1.5 -> 2; an HQ debit of 3 = -1.5 -> -2.
    (line,) = roll_forward(
        [movement(JAN, 0, issued=3, other=-3)],
        point_value_minor=Decimal("0.5"),
        breakage_rates=[Decimal(0), Decimal(0)],
    )
    assert figures(line) == (0, 2, 0, 0, -2, 0, 0)


def test_a_rate_with_28_digits_still_lands_on_the_right_cent():
    # 1 - 1/3 carried to 28 digits is 0.6666666666666666666666666667; x 3 = 2.0000...0001.
    third = Decimal(1) / Decimal(3)
    (line,) = roll_forward(
        [movement(JAN, 3)], point_value_minor=Decimal(1), breakage_rates=[third, third]
    )
    assert (line.opening_minor, line.closing_minor, line.change_in_estimate_minor) == (2, 2, 0)


def test_points_that_do_not_add_up_are_refused():
    broken = MonthMovement(JAN, 100, 10, 0, 0, 0, 111)
    with pytest.raises(ValueError, match="do not add up"):
        roll_forward([broken], point_value_minor=Decimal(1), breakage_rates=[Decimal(0)] * 2)


def test_months_follow_on_from_each_other():
    gap = [movement(JAN, 100), movement(MAR, 100)]
    with pytest.raises(ValueError, match="does not follow"):
        roll_forward(gap, point_value_minor=Decimal(1), breakage_rates=[Decimal(0)] * 3)
    jump = [movement(JAN, 100), movement(FEB, 90)]
    with pytest.raises(ValueError, match="does not follow"):
        roll_forward(jump, point_value_minor=Decimal(1), breakage_rates=[Decimal(0)] * 3)


def test_one_rate_per_month_end_plus_the_start():
    with pytest.raises(ValueError, match="one breakage rate"):
        roll_forward([movement(JAN, 1)], point_value_minor=Decimal(1), breakage_rates=[0])
    with pytest.raises(ValueError, match="between 0 and 1"):
        roll_forward(
            [movement(JAN, 1)],
            point_value_minor=Decimal(1),
            breakage_rates=[Decimal(0), Decimal("1.5")],
        )


def test_every_transaction_kind_has_a_roll_forward_line():
    (constraint,) = [c for c in ledger_transactions.constraints if str(c.name).endswith("_kind")]
    kinds = set(re.findall(r"'(\w+)'", str(constraint.sqltext)))
    lines = ISSUED_KINDS + REDEEMED_KINDS + EXPIRED_KINDS + OTHER_KINDS
    assert sorted(lines) == sorted(kinds)  # each kind once, none missing


points = st.integers(-(10**12), 10**12)
rates = st.one_of(
    st.decimals(min_value=0, max_value=1, places=6),
    # Ratios carried to 28 digits, as the estimate produces them.
    st.tuples(st.integers(0, 10**9), st.integers(1, 10**9)).map(
        lambda pair: Decimal(min(pair)) / Decimal(max(pair))
    ),
)


@st.composite
def histories(draw):
    count = draw(st.integers(1, 13))
    opening = draw(st.integers(0, 10**12))
    months, month = [], JAN
    for _ in range(count):
        months.append(
            movement(month, opening, draw(points), draw(points), draw(points), draw(points))
        )
        opening = months[-1].closing
        month = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return months, draw(st.lists(rates, min_size=count + 1, max_size=count + 1))


@given(
    histories(),
    st.one_of(
        st.just(Decimal(1)),
        st.decimals(min_value=Decimal("0.0001"), max_value=Decimal(1000), places=4),
    ),
)
def test_the_roll_forward_identity_holds_to_the_minor_unit(history, point_value):
    months, breakage_rates = history
    lines = roll_forward(months, point_value_minor=point_value, breakage_rates=breakage_rates)
    for index, line in enumerate(lines):
        assert all(isinstance(figure, int) for figure in figures(line))
        assert (
            line.opening_minor
            + line.issued_minor
            - line.redeemed_minor
            - line.expired_minor
            + line.other_minor
            + line.change_in_estimate_minor
            == line.closing_minor
        )
        if index:
            assert line.opening_minor == lines[index - 1].closing_minor
        # The expectations in exact arithmetic too: in the default 28-digit context a
        # product of a 13-digit balance and a 28-digit rate can round onto a half cent.
        with localcontext(Context(prec=200)):
            assert line.closing_minor == round_minor(
                line.closing_points * point_value * (1 - line.closing_rate)
            )
            # The change is the book re-measured at the new estimate, plus at most half a
            # minor unit of rounding from each of the six figures it joins.
            remeasured = line.closing_points * point_value * (line.opening_rate - line.closing_rate)
            assert abs(line.change_in_estimate_minor - remeasured) <= 3
