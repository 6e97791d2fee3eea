"""Campaign effect statistics (shared/campaigns/effect.py) against values computed
independently here: by hand with the statistics module and math, and with scipy only for
the quantiles."""

from __future__ import annotations

import math
import statistics
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats.proportion import confint_proportions_2indep

from shared.campaigns.effect import (
    SRM_P_THRESHOLD,
    arm_summary,
    cuped_lift,
    incremental_revenue,
    proportion_lift,
    return_on_investment,
    sample_ratio_mismatch,
    spillover,
    welch_lift,
)

# Wikipedia, "Welch's t-test", example 1 (samples A1, A2): published t = -2.46, p = 0.021.
SAMPLE_A1 = [
    27.5,
    21.0,
    19.0,
    23.6,
    17.0,
    17.9,
    16.9,
    20.1,
    21.9,
    22.6,
    23.1,
    19.6,
    19.0,
    21.7,
    21.4,
]
SAMPLE_A2 = [
    27.1,
    22.0,
    20.8,
    23.4,
    23.4,
    23.5,
    25.8,
    22.0,
    24.8,
    20.2,
    21.9,
    22.1,
    22.9,
    20.5,
    24.4,
]


# --- arm_summary ------------------------------------------------------------------------


def test_arm_summary_matches_the_sample_statistics():
    summary = arm_summary([2, 4, 4, 4, 5, 5, 7, 9])
    assert summary.n == 8
    assert summary.mean == 5.0
    assert summary.variance == pytest.approx(32 / 7)  # sum of squares 32, ddof=1
    assert summary.standard_error == pytest.approx(math.sqrt(32 / 7 / 8))


@pytest.mark.parametrize(
    ("values", "message"),
    [([], "empty"), ([1.0], "at least 2"), ([1.0, math.nan], "NaN"), ([[1, 2], [3, 4]], "one-dim")],
)
def test_arm_summary_rejects_unusable_input(values, message):
    with pytest.raises(ValueError, match=message):
        arm_summary(values)


# --- welch_lift -------------------------------------------------------------------------


def test_welch_lift_by_hand():
    treatment, holdout = SAMPLE_A1, SAMPLE_A2
    mean_t, mean_h = statistics.fmean(treatment), statistics.fmean(holdout)
    share_t = statistics.variance(treatment) / len(treatment)
    share_h = statistics.variance(holdout) / len(holdout)
    standard_error = math.sqrt(share_t + share_h)
    df = (share_t + share_h) ** 2 / (
        share_t**2 / (len(treatment) - 1) + share_h**2 / (len(holdout) - 1)
    )
    critical = stats.t.ppf(0.975, df)

    estimate = welch_lift(treatment, holdout)

    assert estimate.method == "welch"
    assert estimate.difference == pytest.approx(mean_t - mean_h)
    assert estimate.standard_error == pytest.approx(standard_error)
    assert estimate.degrees_of_freedom == pytest.approx(df)
    assert estimate.ci_low == pytest.approx(mean_t - mean_h - critical * standard_error)
    assert estimate.ci_high == pytest.approx(mean_t - mean_h + critical * standard_error)
    # The published figures, and scipy's own Welch test.
    assert estimate.difference / estimate.standard_error == pytest.approx(-2.46, abs=0.005)
    assert estimate.degrees_of_freedom == pytest.approx(25.0, abs=0.05)
    assert estimate.p_value == pytest.approx(0.021, abs=0.0005)
    reference = stats.ttest_ind(treatment, holdout, equal_var=False)
    assert estimate.p_value == pytest.approx(reference.pvalue, rel=1e-12)
    assert estimate.difference / estimate.standard_error == pytest.approx(reference.statistic)


def test_welch_relative_lift_uses_the_delta_method():
    estimate = welch_lift(SAMPLE_A1, SAMPLE_A2, confidence=0.9)
    mean_t, mean_h = statistics.fmean(SAMPLE_A1), statistics.fmean(SAMPLE_A2)
    se_t = math.sqrt(statistics.variance(SAMPLE_A1) / 15)
    se_h = math.sqrt(statistics.variance(SAMPLE_A2) / 15)
    relative_se = math.sqrt(se_t**2 / mean_h**2 + mean_t**2 * se_h**2 / mean_h**4)
    critical = stats.t.ppf(0.95, estimate.degrees_of_freedom)
    assert estimate.relative_lift == pytest.approx(mean_t / mean_h - 1)
    assert estimate.relative_ci_low == pytest.approx(mean_t / mean_h - 1 - critical * relative_se)
    assert estimate.relative_ci_high == pytest.approx(mean_t / mean_h - 1 + critical * relative_se)


def test_welch_relative_lift_is_none_when_the_holdout_mean_is_zero():
    estimate = welch_lift([1.0, 2.0, 3.0], [-1.0, 0.0, 1.0])
    assert estimate.relative_lift is None
    assert estimate.relative_ci_low is None and estimate.relative_ci_high is None


def test_welch_with_both_arms_constant_is_exact():
    same = welch_lift([3, 3, 3], [3, 3])
    assert (same.difference, same.ci_low, same.ci_high, same.p_value) == (0, 0, 0, 1.0)
    differ = welch_lift([4, 4, 4], [2, 2])
    assert (differ.difference, differ.ci_low, differ.ci_high, differ.p_value) == (2, 2, 2, 0.0)
    assert differ.relative_lift == 1.0
    assert math.isnan(differ.degrees_of_freedom)


def test_welch_with_one_constant_arm_has_that_arms_df():
    estimate = welch_lift([1.0, 2.0, 4.0, 7.0], [0.0, 0.0, 0.0])
    assert estimate.degrees_of_freedom == pytest.approx(3.0)
    assert estimate.p_value == pytest.approx(
        stats.ttest_ind([1.0, 2.0, 4.0, 7.0], [0.0, 0.0, 0.0], equal_var=False).pvalue
    )


@pytest.mark.parametrize("confidence", [0.0, 1.0, -0.5, 1.5, math.nan])
def test_confidence_must_be_inside_zero_one(confidence):
    with pytest.raises(ValueError, match="confidence"):
        welch_lift([1, 2], [1, 2], confidence=confidence)
    with pytest.raises(ValueError, match="confidence"):
        proportion_lift(1, 2, 1, 2, confidence=confidence)


def test_welch_rejects_small_arms():
    with pytest.raises(ValueError, match="treatment is empty"):
        welch_lift([], [1, 2])
    with pytest.raises(ValueError, match="holdout has 1 value"):
        welch_lift([1, 2], [1])


def test_spillover_is_welch_on_the_other_partners():
    assert spillover(SAMPLE_A1, SAMPLE_A2) == welch_lift(SAMPLE_A1, SAMPLE_A2)


finite_values = st.lists(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False),
    min_size=2,
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(finite_values, finite_values, st.floats(min_value=0.5, max_value=0.999))
# A holdout mean so close to 0 that the ratio of means overflowed (found by Hypothesis).
@example(treatment=[0.0, 2.0], holdout=[0.0, 1.1125369292536007e-308], confidence=0.5)
def test_welch_interval_contains_the_estimate_and_swapping_arms_negates_it(
    treatment, holdout, confidence
):
    estimate = welch_lift(treatment, holdout, confidence=confidence)
    assert estimate.ci_low <= estimate.difference <= estimate.ci_high
    if estimate.relative_lift is not None:
        assert estimate.relative_ci_low <= estimate.relative_lift <= estimate.relative_ci_high
    swapped = welch_lift(holdout, treatment, confidence=confidence)
    scale = 1e-9 * (1 + max(map(abs, treatment + holdout)))
    assert swapped.difference == pytest.approx(-estimate.difference, abs=scale)
    assert swapped.ci_low == pytest.approx(-estimate.ci_high, abs=scale)
    assert swapped.p_value == pytest.approx(estimate.p_value, abs=1e-9)


# --- proportion_lift --------------------------------------------------------------------


def test_proportion_lift_textbook_example():
    # 60/200 vs 40/200: pooled p = 0.25, z = 0.1 / sqrt(0.25 * 0.75 * 2 / 200) = 2.3094,
    # p = 0.0209; Wald 95% interval 0.1 +/- 1.96 * sqrt(0.3 * 0.7 / 200 + 0.2 * 0.8 / 200)
    # = (0.0157, 0.1843).
    estimate = proportion_lift(60, 200, 40, 200)
    z = 0.1 / math.sqrt(0.25 * 0.75 * (1 / 200 + 1 / 200))
    assert z == pytest.approx(2.3094, abs=1e-4)
    assert estimate.p_value == pytest.approx(math.erfc(z / math.sqrt(2)))
    assert estimate.p_value == pytest.approx(0.0209, abs=1e-4)
    wald = math.sqrt(0.3 * 0.7 / 200 + 0.2 * 0.8 / 200)
    assert estimate.standard_error == pytest.approx(wald)
    assert estimate.ci_low == pytest.approx(0.1 - stats.norm.ppf(0.975) * wald)
    assert estimate.ci_high == pytest.approx(0.1 + stats.norm.ppf(0.975) * wald)
    assert (round(estimate.ci_low, 4), round(estimate.ci_high, 4)) == (0.0157, 0.1843)
    assert estimate.degrees_of_freedom is None
    assert estimate.treatment.mean == 0.3 and estimate.holdout.variance == pytest.approx(0.16)
    # Relative: 0.3 / 0.2 - 1 = 0.5, delta-method SE from the two Wald SEs.
    se_t, se_h = math.sqrt(0.21 / 200), math.sqrt(0.16 / 200)
    relative_se = math.sqrt(se_t**2 / 0.04 + 0.09 * se_h**2 / 0.0016)
    assert estimate.relative_lift == pytest.approx(0.5)
    assert estimate.relative_ci_high == pytest.approx(0.5 + stats.norm.ppf(0.975) * relative_se)


def test_proportion_lift_agrees_with_statsmodels_at_another_confidence():
    estimate = proportion_lift(130, 1000, 100, 1000, confidence=0.9)
    low, high = confint_proportions_2indep(130, 1000, 100, 1000, method="wald", alpha=0.1)
    assert (estimate.ci_low, estimate.ci_high) == pytest.approx((low, high))


def test_proportion_lift_with_no_successes_anywhere():
    estimate = proportion_lift(0, 50, 0, 60)
    assert (estimate.difference, estimate.p_value, estimate.relative_lift) == (0, 1.0, None)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((-1, 10, 1, 10), "treatment_successes must not be negative"),
        ((1, 10, 1, -10), "holdout_n must not be negative"),
        ((1, 0, 1, 10), "treatment arm is empty"),
        ((11, 10, 1, 10), "exceeds treatment_n"),
        ((1.5, 10, 1, 10), "integer"),
        ((True, 10, 1, 10), "integer"),
    ],
)
def test_proportion_lift_rejects_bad_counts(arguments, message):
    with pytest.raises(ValueError, match=message):
        proportion_lift(*arguments)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_proportion_interval_contains_the_estimate_and_swapping_arms_negates_it(data):
    treatment_n = data.draw(st.integers(1, 5000))
    holdout_n = data.draw(st.integers(1, 5000))
    treatment_successes = data.draw(st.integers(0, treatment_n))
    holdout_successes = data.draw(st.integers(0, holdout_n))
    estimate = proportion_lift(treatment_successes, treatment_n, holdout_successes, holdout_n)
    assert estimate.ci_low <= estimate.difference + 1e-12
    assert estimate.difference <= estimate.ci_high + 1e-12
    assert 0.0 <= estimate.p_value <= 1.0
    swapped = proportion_lift(holdout_successes, holdout_n, treatment_successes, treatment_n)
    assert swapped.difference == pytest.approx(-estimate.difference)
    assert swapped.p_value == pytest.approx(estimate.p_value)


# --- cuped_lift -------------------------------------------------------------------------


def test_cuped_recovers_a_known_theta_exactly():
    # post = 3 + 2 pre (+ 1 when treated) + noise orthogonal to pre, with the same pre
    # values in both arms: the pooled cov / var is exactly 2 and the noise is all that
    # remains after adjustment.
    pre = np.array([1.0, 2.0, 3.0, 4.0])
    noise = np.array([1.0, -1.0, -1.0, 1.0])  # mean 0, orthogonal to pre - mean(pre)
    holdout_post = 3 + 2 * pre + noise
    treatment_post = 3 + 2 * pre + 1 - noise
    estimate = cuped_lift(treatment_post, pre, holdout_post, pre)
    assert estimate.theta == pytest.approx(2.0)
    assert estimate.lift.difference == pytest.approx(1.0)
    # Adjusted outcomes: the arm constant plus the noise; each arm's variance is var(noise).
    assert estimate.lift.treatment.variance == pytest.approx(statistics.variance(noise))
    assert estimate.unadjusted.difference == pytest.approx(1.0)
    post = np.concatenate([treatment_post, holdout_post])
    adjusted = np.concatenate([4 - noise, 3 + noise])
    assert estimate.variance_reduction == pytest.approx(1 - adjusted.var(ddof=1) / post.var(ddof=1))
    assert estimate.lift.standard_error < estimate.unadjusted.standard_error


def test_cuped_with_a_constant_pre_period_is_plain_welch():
    estimate = cuped_lift(SAMPLE_A1, [5.0] * 15, SAMPLE_A2, [5.0] * 15)
    assert estimate.theta == 0.0
    assert estimate.lift == welch_lift(SAMPLE_A1, SAMPLE_A2)


def test_cuped_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="treatment_post and treatment_pre differ"):
        cuped_lift([1, 2, 3], [1, 2], [1, 2], [1, 2])
    with pytest.raises(ValueError, match="holdout_post and holdout_pre differ"):
        cuped_lift([1, 2], [1, 2], [1, 2], [1, 2, 3])


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(-100, 100), min_size=3, max_size=30),
    st.lists(st.floats(-100, 100), min_size=3, max_size=30),
    st.integers(0, 2**32 - 1),
)
def test_cuped_with_an_uncorrelated_pre_period_has_theta_zero(treatment_post, holdout_post, seed):
    # Build a pre-period exactly orthogonal to the (centred) post-period over both arms.
    post = np.array(treatment_post + holdout_post)
    centred_post = post - post.mean()
    assume(centred_post @ centred_post > 1e-6)
    raw = np.random.default_rng(seed).normal(size=post.size)
    raw -= raw.mean()
    pre = raw - (raw @ centred_post) / (centred_post @ centred_post) * centred_post
    assume(pre @ pre > 1e-6)
    split = len(treatment_post)
    estimate = cuped_lift(treatment_post, pre[:split], holdout_post, pre[split:])
    assert estimate.theta == pytest.approx(0.0, abs=1e-9)
    assert estimate.lift.difference == pytest.approx(estimate.unadjusted.difference, abs=1e-6)


# --- sample_ratio_mismatch --------------------------------------------------------------


def test_srm_5000_vs_5400_at_an_even_split():
    # chi2 = 2 * 200^2 / 5200 = 15.385 on 1 df; p = erfc(sqrt(chi2 / 2)) = 8.77e-5.
    check = sample_ratio_mismatch(5000, 5400, 0.5)
    chi_square = 2 * 200**2 / 5200
    assert check.chi_square == pytest.approx(chi_square)
    assert check.p_value == pytest.approx(math.erfc(math.sqrt(chi_square / 2)))
    assert check.p_value == pytest.approx(8.77e-5, rel=1e-3)
    assert check.mismatch and check.threshold == SRM_P_THRESHOLD == 0.001
    assert check.observed_holdout_share == pytest.approx(5400 / 10400)


def test_srm_accepts_a_split_that_matches():
    check = sample_ratio_mismatch(9030, 970, 0.1)  # 10% holdout, 30 over: p ~ 0.32
    assert not check.mismatch
    assert check.p_value == pytest.approx(math.erfc(math.sqrt((30**2 / 9000 + 30**2 / 1000) / 2)))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((0, 0, 0.5), "both arms are empty"),
        ((10, 10, 0.0), "expected_holdout_share"),
        ((10, 10, 1.0), "expected_holdout_share"),
        ((-1, 10, 0.5), "treatment_n must not be negative"),
    ],
)
def test_srm_rejects_bad_input(arguments, message):
    with pytest.raises(ValueError, match=message):
        sample_ratio_mismatch(*arguments)


# --- money ------------------------------------------------------------------------------


def test_return_on_investment_arithmetic():
    roi = return_on_investment(150_000, 40_000)
    assert roi.net_return_minor == 110_000
    assert roi.roi == Decimal("2.7500")
    assert roi.revenue_per_cost == Decimal("3.7500")
    losing = return_on_investment(-10_000, 30_000)
    assert losing.net_return_minor == -40_000
    assert losing.roi == Decimal("-1.3333")
    assert losing.revenue_per_cost == Decimal("-0.3333")


def test_return_on_investment_rounds_half_away_from_zero():
    # 1 / 20_000 = 0.00005 exactly: half, rounded away from zero on both sides.
    assert return_on_investment(20_001, 20_000).roi == Decimal("0.0001")
    assert return_on_investment(19_999, 20_000).roi == Decimal("-0.0001")
    assert return_on_investment(2, 3).roi == Decimal("-0.3333")
    assert return_on_investment(5, 3).roi == Decimal("0.6667")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((100, 0), "positive"),
        ((100, -5), "positive"),
        ((100.0, 5), "integer"),
        ((1, 2.5), "integer"),
    ],
)
def test_return_on_investment_rejects_bad_money(arguments, message):
    with pytest.raises(ValueError, match=message):
        return_on_investment(*arguments)


def test_incremental_revenue_scales_the_lift_and_rounds_once():
    # Mean spend lift 0.25 minor units per member (holdout constant at 100).
    estimate = welch_lift([100.0, 100.5, 100.0, 100.5], [100.0, 100.0, 100.0, 100.0])
    assert estimate.difference == 0.25
    total = incremental_revenue(estimate, 2)
    assert total.amount_minor == 1  # 0.5: half away from zero
    assert total.treated_members == 2 and total.confidence == 0.95
    swapped = welch_lift([100.0, 100.0, 100.0, 100.0], [100.0, 100.5, 100.0, 100.5])
    assert incremental_revenue(swapped, 2).amount_minor == -1  # -0.5: away from zero
    # The bounds are the per-member interval times the members, each rounded once.
    big = incremental_revenue(estimate, 1_000_003)
    assert big.amount_minor == 250_001  # 250000.75
    assert big.ci_low_minor == round(estimate.ci_low * 1_000_003)
    assert big.ci_high_minor == round(estimate.ci_high * 1_000_003)
    assert big.ci_low_minor <= big.amount_minor <= big.ci_high_minor


def test_incremental_revenue_needs_a_spend_lift_and_a_count():
    with pytest.raises(ValueError, match="Welch"):
        incremental_revenue(proportion_lift(1, 10, 1, 10), 10)
    with pytest.raises(ValueError, match="treated_members must not be negative"):
        incremental_revenue(welch_lift([1, 2], [1, 2]), -1)


def test_a_holdout_mean_indistinguishable_from_zero_has_no_relative_lift():
    estimate = welch_lift([0.0, 2.0], [0.0, 1.1125369292536007e-308])
    assert estimate.difference == pytest.approx(1.0)
    assert (estimate.relative_lift, estimate.relative_ci_low, estimate.relative_ci_high) == (
        None,
        None,
        None,
    )
