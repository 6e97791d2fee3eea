"""BG/NBD (shared/analytics/bgnbd.py) against the published CDNOW fit and hand-computed
values.

CDNOW: 2,357 customers' first 39 weeks (x, t_x, T in weeks). Fader, Hardie & Lee (2005)
report r = 0.243, alpha = 4.414, a = 0.793, b = 2.426 with log-likelihood -9582.4, and
for their example customer (x = 2, t_x = 30.43, T = 38.86) 1.226 expected purchases in
the next 39 weeks. The standard errors are the ones the lifetimes package prints for the
same data (0.012557, 0.378221, 0.185719, 0.705345).
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.special import hyp2f1

from shared.analytics.bgnbd import (
    BgNbdParameters,
    Histories,
    expected_active_members,
    expected_purchases,
    fit_bgnbd,
    group_identical,
    histories_from_purchases,
    log_likelihood,
    probability_alive,
)

PUBLISHED = BgNbdParameters(r=0.243, alpha=4.414, a=0.793, b=2.426)
PUBLISHED_LOG_LIKELIHOOD = -9582.4
LIFETIMES_STANDARD_ERRORS = BgNbdParameters(r=0.012557, alpha=0.378221, a=0.185719, b=0.705345)


def cdnow_summary() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # The lifetimes wheel is a dev dependency only for this file; it is located, never
    # imported (its import needs pkg_resources and an older pandas).
    spec = importlib.util.find_spec("lifetimes")
    assert spec is not None and spec.submodule_search_locations
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "cdnow_customers_summary.csv"
    table = np.loadtxt(path, delimiter=",", skiprows=1)  # ID, frequency, recency, T
    return table[:, 1], table[:, 2], table[:, 3]


@pytest.fixture(scope="module")
def cdnow_fit():
    return fit_bgnbd(*cdnow_summary())


def test_cdnow_data_are_the_published_sample():
    x, t_x, age = cdnow_summary()
    assert len(x) == 2357
    assert int(x.sum()) == 2457  # repeat purchases in the 39-week calibration period
    assert int((x == 0).sum()) == 1411  # customers with none
    assert (x[0], t_x[0], age[0]) == (2, 30.43, 38.86)


def test_cdnow_fit_reproduces_the_published_estimates(cdnow_fit):
    fitted = cdnow_fit.parameters
    assert cdnow_fit.converged
    assert cdnow_fit.members == 2357
    for name in ("r", "alpha", "a", "b"):
        assert getattr(fitted, name) == pytest.approx(getattr(PUBLISHED, name), rel=0.01)
    assert cdnow_fit.log_likelihood == pytest.approx(PUBLISHED_LOG_LIKELIHOOD, abs=0.1)


def test_cdnow_standard_errors_match_lifetimes(cdnow_fit):
    errors = cdnow_fit.standard_errors
    assert errors is not None
    for name in ("r", "alpha", "a", "b"):
        assert getattr(errors, name) == pytest.approx(
            getattr(LIFETIMES_STANDARD_ERRORS, name), rel=0.01
        )


def test_grouping_identical_rows_changes_nothing_but_the_work(cdnow_fit):
    x, t_x, age = cdnow_summary()
    grouped = group_identical(Histories(x, t_x, age, np.ones_like(x)))
    assert len(grouped.frequency) < len(x) / 2
    assert grouped.members.sum() == len(x)
    fit = fit_bgnbd(grouped.frequency, grouped.recency, grouped.age, weights=grouped.members)
    assert fit.log_likelihood == pytest.approx(cdnow_fit.log_likelihood, abs=1e-6)
    assert fit.members == 2357
    for name in ("r", "alpha", "a", "b"):
        assert getattr(fit.parameters, name) == pytest.approx(
            getattr(cdnow_fit.parameters, name), rel=1e-4
        )


def test_the_papers_example_customer_expects_1_226_purchases_in_39_weeks(cdnow_fit):
    expected = expected_purchases(cdnow_fit.parameters, 39.0, [2], [30.43], [38.86])
    assert expected[0] == pytest.approx(1.226, abs=0.001)


def test_log_likelihood_matches_the_closed_form_by_hand():
    """x = 0: L = (alpha / (alpha + T))^r. x > 0: FHL eq. 6 written out with math."""
    r, alpha, a, b = 0.243, 4.414, 0.793, 2.426
    values = log_likelihood(PUBLISHED, [0, 2], [0.0, 30.43], [38.86, 38.86])
    assert values[0] == pytest.approx(r * math.log(alpha / (alpha + 38.86)), rel=1e-12)

    def beta(p, q):
        return math.gamma(p) * math.gamma(q) / math.gamma(p + q)

    x, t_x, age = 2, 30.43, 38.86
    common = math.gamma(r + x) * alpha**r / math.gamma(r)
    alive = beta(a, b + x) / beta(a, b) * common / (alpha + age) ** (r + x)
    dropped = beta(a + 1, b + x - 1) / beta(a, b) * common / (alpha + t_x) ** (r + x)
    assert values[1] == pytest.approx(math.log(alive + dropped), rel=1e-12)


def test_probability_alive_by_hand():
    """P(alive) = 1 / (1 + a / (b + x - 1) * ((alpha + T) / (alpha + t_x))^(r + x)).
    Example customer: 0.793 / 3.426 * (43.274 / 34.844)^2.243 = 0.23147 * 1.62578 = 0.37631,
    so P = 1 / 1.37631 = 0.72658. With no repeat purchase P = 1 whatever T is."""
    alive = probability_alive(PUBLISHED, [2, 0, 0], [30.43, 0.0, 0.0], [38.86, 38.86, 500.0])
    assert alive[0] == pytest.approx(0.72658, abs=1e-5)
    assert alive[1:].tolist() == [1.0, 1.0]


def test_a_long_silence_lowers_probability_alive_and_expected_purchases():
    recent, quiet = probability_alive(PUBLISHED, [5, 5], [38.0, 10.0], [38.86, 38.86])
    assert 0 < quiet < recent < 1
    busy, idle = expected_purchases(PUBLISHED, 10.0, [5, 5], [38.0, 10.0], [38.86, 38.86])
    assert 0 < idle < busy


def test_heavy_buyers_stay_finite():
    # Gamma(r + 400) and ((alpha + T) / (alpha + t_x))^(r + 400) overflow a float; the
    # model works in logs. A member buying ~10 times a week and silent for 43 weeks is
    # surely gone; one silent for the last hour is surely alive.
    x, t_x, age = [400, 400], [1.0, 38.85], [44.0, 38.86]
    with pytest.raises(OverflowError):
        math.gamma(400.243)
    assert np.isfinite(log_likelihood(PUBLISHED, x, t_x, age)).all()
    gone, alive = probability_alive(PUBLISHED, x, t_x, age)
    assert gone < 1e-100
    assert alive > 0.99


def test_expected_purchases_follow_equation_10_and_stay_finite_for_heavy_buyers():
    """The code uses Euler's transformation of eq. 10's 2F1; here is eq. 10 as printed,
    which is fine for moderate x and nan for x in the hundreds."""
    r, alpha, a, b = PUBLISHED.r, PUBLISHED.alpha, PUBLISHED.a, PUBLISHED.b
    x, t_x, age, horizon = np.array([0, 1, 10, 50]), np.array([0.0, 5, 30, 38]), 38.86, 52.0
    staying = (alpha + age) / (alpha + age + horizon)
    printed = (
        (a + b + x - 1)
        / (a - 1)
        * (1 - staying ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1, 1 - staying))
    )
    printed *= probability_alive(PUBLISHED, x, t_x, np.full(4, age))
    computed = expected_purchases(PUBLISHED, horizon, x, t_x, np.full(4, age))
    assert computed == pytest.approx(printed, rel=1e-9)
    # Daily buyers for a year, last seen yesterday: finite, and more purchases expected
    # from the heavier one.
    heavy = expected_purchases(PUBLISHED, 520.0, [300, 1000], [52.0, 52.0], [52.1, 52.1])
    assert np.isfinite(heavy).all()
    assert 0 < heavy[0] < heavy[1]


def test_expected_active_members_is_the_weighted_sum_of_probability_alive():
    x, t_x, age = np.array([2, 0, 7]), np.array([30.43, 0.0, 12.0]), np.array([38.86] * 3)
    alive = probability_alive(PUBLISHED, x, t_x, age)
    assert expected_active_members(PUBLISHED, x, t_x, age) == pytest.approx(alive.sum())
    weighted = expected_active_members(PUBLISHED, x, t_x, age, weights=[3, 1, 2])
    assert weighted == pytest.approx(3 * alive[0] + 1 + 2 * alive[2])


def test_conditional_expectation_is_undefined_at_a_equal_to_one():
    with pytest.raises(ValueError, match="a = 1"):
        expected_purchases(BgNbdParameters(1.0, 1.0, 1.0, 2.0), 10.0, [1], [1.0], [2.0])


@pytest.mark.parametrize(
    ("frequency", "recency", "age"),
    [([-1], [0.0], [1.0]), ([1.5], [0.5], [1.0]), ([1], [2.0], [1.0]), ([1, 2], [0.5], [1.0])],
)
def test_impossible_histories_are_refused(frequency, recency, age):
    with pytest.raises(ValueError):
        fit_bgnbd(frequency, recency, age)


DAY = 86_400


def test_histories_from_purchases_by_hand():
    """A: first purchase at day 0, last at day 14, 4 purchases (two on one day), observed
    until day 31: x = 3, t_x = 14 / 7 = 2 weeks, T = 31 / 7 weeks. B: one purchase at day
    30.5: x = 0, t_x = 0, T = 0.5 / 7 weeks."""
    histories = histories_from_purchases([0, 30.5 * DAY], [14 * DAY, 30.5 * DAY], [4, 1], 31 * DAY)
    assert histories.frequency.tolist() == [3, 0]
    assert histories.recency.tolist() == [2.0, 0.0]
    assert histories.age.tolist() == pytest.approx([31 / 7, 0.5 / 7])
    assert histories.members.tolist() == [1, 1]
    in_days = histories_from_purchases([0], [14 * DAY], [3], 31 * DAY, seconds_per_unit=DAY)
    assert (in_days.recency[0], in_days.age[0]) == (14.0, 31.0)


@pytest.mark.parametrize(
    ("first", "last", "purchases"),
    [
        (10 * DAY, 5 * DAY, 2),  # last before first
        (1 * DAY, 40 * DAY, 2),  # last purchase after the end of observation
        (1 * DAY, 3 * DAY, 1),  # two different times but one purchase
        (1 * DAY, 3 * DAY, 0),  # no purchase at all
    ],
)
def test_inconsistent_purchase_summaries_are_refused(first, last, purchases):
    with pytest.raises(ValueError):
        histories_from_purchases([first], [last], [purchases], 31 * DAY)


def test_grouping_adds_up_members_of_identical_histories():
    histories = Histories(
        frequency=np.array([1, 0, 1, 1]),
        recency=np.array([2.0, 0.0, 2.0, 3.0]),
        age=np.array([5.0, 5.0, 5.0, 5.0]),
        members=np.array([1, 4, 2, 1]),
    )
    grouped = group_identical(histories)
    rows = sorted(
        zip(grouped.frequency, grouped.recency, grouped.age, grouped.members, strict=True)
    )
    assert rows == [(0, 0.0, 5.0, 4), (1, 2.0, 5.0, 3), (1, 3.0, 5.0, 1)]
