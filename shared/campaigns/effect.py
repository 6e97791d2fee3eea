"""Campaign effect: what did a campaign cause? Pure functions over per-member outcomes.

Every campaign has a randomised holdout (shared/campaigns/assignment.py), so the causal
effect of the offer on an outcome is estimated by comparing the treatment arm with the
holdout arm. The functions here take per-member outcomes (plain sequences or numpy
arrays, one value per targeted member, zeros included) and return frozen dataclasses; the
queries that collect the outcomes live elsewhere.

Conventions (copied into docs/campaigns.md):

- Difference = treatment - holdout, so a positive difference means the campaign raised
  the outcome. Relative lift = difference / holdout mean (0.10 means +10%); it is None
  when the holdout mean is 0.
- Continuous outcomes (spend, visits, points per member): Welch's unequal-variance
  t-test. The Welch-Satterthwaite degrees of freedom give the t quantile of the interval;
  the p-value is two-sided and equals scipy.stats.ttest_ind(equal_var=False).
- Binary outcomes (active yes/no): the difference of proportions with a Wald interval
  (unpooled standard error) and a two-sided two-proportion z-test (pooled standard error,
  statsmodels). The arm "variance" is the Bernoulli plug-in p(1 - p) that the Wald
  interval uses, not the ddof=1 sample variance.
- Relative lift interval: delta method for the ratio of two independent means,
  Var(mt/mh) ~ se_t^2 / mh^2 + mt^2 se_h^2 / mh^4, with the same critical value as the
  difference (t with the Welch df for continuous outcomes, z for proportions), so the two
  intervals are equally wide in confidence terms. It is symmetric and can be poor when the
  holdout mean is small relative to its standard error; treat it as approximate there.
- CUPED (Deng, Xu, Kohavi & Walker 2013): theta = cov(pre, post) / var(pre) over both
  arms together, adjusted outcome y - theta (x - mean(x)), then Welch on the adjusted
  outcomes. theta is treated as known (its estimation error is of lower order), as in
  the paper. Because the pre-period covariate is independent of the arm, the adjustment
  keeps the estimate unbiased and shrinks its variance by about corr(pre, post)^2.
- Sample ratio mismatch: chi-square goodness of fit of the arm counts against the
  configured split, flagged when p < 0.001. The threshold is strict on purpose: the check
  runs on every campaign, often repeatedly, and a real assignment bug gives p-values many
  orders of magnitude smaller, while 0.05 would raise a false alarm on one campaign in 20.
- Money is integer minor units. A monetary result computed from floating statistics is
  rounded once, at the end, half away from zero (the float is read as its shortest
  decimal representation, then multiplied exactly as Decimal). Ratios (ROI) are Decimal
  quantized to 4 decimal places, half away from zero.
- Degenerate data: if both arms are constant, the standard error is 0, the interval
  collapses to the difference, and the p-value is 1 when the difference is 0 and 0
  otherwise; the degrees of freedom are then NaN (the Welch formula is 0/0).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Literal

import numpy as np
from scipy import stats
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from shared.settlement.rules import round_minor

SRM_P_THRESHOLD = 0.001
RATIO_DECIMALS = 4

Values = Sequence[float] | np.ndarray


@dataclass(frozen=True, slots=True)
class ArmSummary:
    n: int
    mean: float
    variance: float  # ddof=1 for continuous outcomes; p(1 - p) for proportions
    standard_error: float  # of the mean


@dataclass(frozen=True, slots=True)
class LiftEstimate:
    method: Literal["welch", "two_proportion_z"]
    confidence: float
    treatment: ArmSummary
    holdout: ArmSummary
    difference: float  # treatment mean - holdout mean
    standard_error: float  # of the difference (unpooled)
    ci_low: float
    ci_high: float
    p_value: float  # two-sided, of "no difference"
    degrees_of_freedom: float | None  # Welch-Satterthwaite; None for the z-test
    relative_lift: float | None  # difference / holdout mean; None when that mean is 0 (or ~0)
    relative_ci_low: float | None
    relative_ci_high: float | None


@dataclass(frozen=True, slots=True)
class CupedEstimate:
    lift: LiftEstimate  # Welch on the CUPED-adjusted outcomes: the estimate to report
    unadjusted: LiftEstimate  # Welch on the raw post-period outcomes, for comparison
    theta: float
    pre_post_correlation: float
    variance_reduction: float  # 1 - var(adjusted) / var(post), both arms together


@dataclass(frozen=True, slots=True)
class SrmCheck:
    treatment_n: int
    holdout_n: int
    expected_holdout_share: float
    observed_holdout_share: float
    chi_square: float
    p_value: float
    threshold: float
    mismatch: bool  # p_value < threshold: the arms are not the split that was configured


@dataclass(frozen=True, slots=True)
class IncrementalRevenue:
    treated_members: int
    amount_minor: int  # mean lift per treated member x treated members
    ci_low_minor: int
    ci_high_minor: int
    confidence: float


@dataclass(frozen=True, slots=True)
class Roi:
    incremental_revenue_minor: int
    cost_minor: int
    net_return_minor: int  # incremental revenue - cost
    roi: Decimal  # net return / cost: 0.5 means each unit spent returned 1.5
    revenue_per_cost: Decimal  # incremental revenue / cost (ROAS)


# --- input checks -----------------------------------------------------------------------


def _as_values(values: Values, name: str, *, minimum: int) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a one-dimensional sequence of numbers")
    if array.size == 0:
        raise ValueError(f"{name} is empty: an arm needs at least {minimum} members")
    if array.size < minimum:
        raise ValueError(
            f"{name} has {array.size} value(s): at least {minimum} are needed for a variance"
        )
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def _check_confidence(confidence: float) -> float:
    confidence = float(confidence)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence}")
    return confidence


def _integer(value: int, name: str, kind: str) -> int:
    """An int (numpy integers too), not a bool or a float that happens to be whole."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be {kind}, got a bool")
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be {kind}, got {value!r}") from None


def _count(value: int, name: str) -> int:
    count = _integer(value, name, "an integer count")
    if count < 0:
        raise ValueError(f"{name} must not be negative, got {count}")
    return count


def _money(value: int, name: str) -> int:
    return _integer(value, name, "integer minor units")


# --- estimates --------------------------------------------------------------------------


def arm_summary(values: Values) -> ArmSummary:
    """n, mean, sample variance (ddof=1) and standard error of the mean of one arm."""
    array = _as_values(values, "values", minimum=2)
    variance = float(array.var(ddof=1))
    return ArmSummary(
        n=int(array.size),
        mean=float(array.mean()),
        variance=variance,
        standard_error=math.sqrt(variance / array.size),
    )


def _relative(
    treatment: ArmSummary, holdout: ArmSummary, critical: float
) -> tuple[float | None, float | None, float | None]:
    if holdout.mean == 0:
        return None, None, None
    ratio = treatment.mean / holdout.mean
    # Delta method for mt / mh with independent arms (see the module docstring).
    # Written as ratios rather than mh^4 so that tiny or huge means neither underflow nor
    # overflow before the quotient.
    standard_error = math.hypot(
        treatment.standard_error / holdout.mean,
        ratio * holdout.standard_error / holdout.mean,
    )
    relative = ratio - 1.0
    if not (math.isfinite(relative) and math.isfinite(standard_error)):
        return None, None, None  # a holdout mean so close to 0 that the ratio overflows
    return relative, relative - critical * standard_error, relative + critical * standard_error


def _exact_relative(difference: float, holdout_mean: float) -> float | None:
    """The relative lift of arms without variance; None as in _relative."""
    if holdout_mean == 0:
        return None
    relative = difference / holdout_mean
    return relative if math.isfinite(relative) else None


def _welch(treatment: ArmSummary, holdout: ArmSummary, confidence: float) -> LiftEstimate:
    share_t = treatment.variance / treatment.n
    share_h = holdout.variance / holdout.n
    difference = treatment.mean - holdout.mean
    standard_error = math.sqrt(share_t + share_h)
    if standard_error == 0.0:
        # Both arms constant: the difference is known exactly (module docstring).
        relative = _exact_relative(difference, holdout.mean)
        return LiftEstimate(
            method="welch",
            confidence=confidence,
            treatment=treatment,
            holdout=holdout,
            difference=difference,
            standard_error=0.0,
            ci_low=difference,
            ci_high=difference,
            p_value=1.0 if difference == 0 else 0.0,
            degrees_of_freedom=math.nan,
            relative_lift=relative,
            relative_ci_low=relative,
            relative_ci_high=relative,
        )
    # Welch-Satterthwaite, on shares scaled to at most 1 so that squares of tiny variances
    # do not underflow to 0/0; a zero-variance arm contributes 0 to both sums.
    largest = max(share_t, share_h)
    scaled_t, scaled_h = share_t / largest, share_h / largest
    degrees_of_freedom = (scaled_t + scaled_h) ** 2 / (
        scaled_t**2 / (treatment.n - 1) + scaled_h**2 / (holdout.n - 1)
    )
    critical = float(stats.t.ppf(0.5 + confidence / 2, degrees_of_freedom))
    t_statistic = difference / standard_error
    p_value = float(2 * stats.t.sf(abs(t_statistic), degrees_of_freedom))
    relative, relative_low, relative_high = _relative(treatment, holdout, critical)
    return LiftEstimate(
        method="welch",
        confidence=confidence,
        treatment=treatment,
        holdout=holdout,
        difference=difference,
        standard_error=standard_error,
        ci_low=difference - critical * standard_error,
        ci_high=difference + critical * standard_error,
        p_value=p_value,
        degrees_of_freedom=degrees_of_freedom,
        relative_lift=relative,
        relative_ci_low=relative_low,
        relative_ci_high=relative_high,
    )


def welch_lift(treatment: Values, holdout: Values, *, confidence: float = 0.95) -> LiftEstimate:
    """Lift of a continuous per-member outcome (spend, visits, points): Welch's t."""
    confidence = _check_confidence(confidence)
    treatment_arm = arm_summary(_as_values(treatment, "treatment", minimum=2))
    holdout_arm = arm_summary(_as_values(holdout, "holdout", minimum=2))
    return _welch(treatment_arm, holdout_arm, confidence)


def spillover(
    treatment_other: Values, holdout_other: Values, *, confidence: float = 0.95
) -> LiftEstimate:
    """Spillover of a merchant campaign: the lift in the outcome at the OTHER partners.

    Pass per-member outcomes (e.g. spend or visits) at every partner except the
    campaign's. A positive lift is a halo on the network; a negative one means the
    campaign diverted business from other partners rather than creating it. Same method
    and conventions as welch_lift, which it is."""
    return welch_lift(treatment_other, holdout_other, confidence=confidence)


def proportion_lift(
    treatment_successes: int,
    treatment_n: int,
    holdout_successes: int,
    holdout_n: int,
    *,
    confidence: float = 0.95,
) -> LiftEstimate:
    """Lift of a binary outcome: difference of proportions, Wald interval (unpooled),
    two-sided two-proportion z-test (pooled)."""
    confidence = _check_confidence(confidence)
    counts = {
        "treatment_successes": _count(treatment_successes, "treatment_successes"),
        "treatment_n": _count(treatment_n, "treatment_n"),
        "holdout_successes": _count(holdout_successes, "holdout_successes"),
        "holdout_n": _count(holdout_n, "holdout_n"),
    }
    for arm_name in ("treatment", "holdout"):
        n, successes = counts[f"{arm_name}_n"], counts[f"{arm_name}_successes"]
        if n == 0:
            raise ValueError(f"{arm_name}_n is 0: the {arm_name} arm is empty")
        if successes > n:
            raise ValueError(f"{arm_name}_successes ({successes}) exceeds {arm_name}_n ({n})")
    arms = []
    for arm_name in ("treatment", "holdout"):
        n, successes = counts[f"{arm_name}_n"], counts[f"{arm_name}_successes"]
        proportion = successes / n
        variance = proportion * (1 - proportion)
        arms.append(ArmSummary(n, proportion, variance, math.sqrt(variance / n)))
    treatment, holdout = arms
    difference = treatment.mean - holdout.mean
    standard_error = math.sqrt(treatment.standard_error**2 + holdout.standard_error**2)
    ci_low, ci_high = confint_proportions_2indep(
        counts["treatment_successes"],
        counts["treatment_n"],
        counts["holdout_successes"],
        counts["holdout_n"],
        method="wald",
        compare="diff",
        alpha=1 - confidence,
    )
    pooled = (counts["treatment_successes"] + counts["holdout_successes"]) / (
        counts["treatment_n"] + counts["holdout_n"]
    )
    if pooled in (0.0, 1.0):
        # Every member of both arms failed (or succeeded): no evidence of a difference,
        # and the z statistic is 0/0.
        p_value = 1.0
    else:
        _, p_value = proportions_ztest(
            [counts["treatment_successes"], counts["holdout_successes"]],
            [counts["treatment_n"], counts["holdout_n"]],
            alternative="two-sided",
        )
    critical = float(stats.norm.ppf(0.5 + confidence / 2))
    relative, relative_low, relative_high = _relative(treatment, holdout, critical)
    return LiftEstimate(
        method="two_proportion_z",
        confidence=confidence,
        treatment=treatment,
        holdout=holdout,
        difference=difference,
        standard_error=standard_error,
        ci_low=float(ci_low),
        ci_high=float(ci_high),
        p_value=float(p_value),
        degrees_of_freedom=None,
        relative_lift=relative,
        relative_ci_low=relative_low,
        relative_ci_high=relative_high,
    )


def cuped_lift(
    treatment_post: Values,
    treatment_pre: Values,
    holdout_post: Values,
    holdout_pre: Values,
    *,
    confidence: float = 0.95,
) -> CupedEstimate:
    """Lift of a continuous outcome with CUPED variance reduction (Deng et al. 2013),
    using each member's same outcome in a pre-campaign window as the covariate."""
    confidence = _check_confidence(confidence)
    t_post = _as_values(treatment_post, "treatment_post", minimum=2)
    t_pre = _as_values(treatment_pre, "treatment_pre", minimum=2)
    h_post = _as_values(holdout_post, "holdout_post", minimum=2)
    h_pre = _as_values(holdout_pre, "holdout_pre", minimum=2)
    if t_post.size != t_pre.size:
        raise ValueError(
            f"treatment_post and treatment_pre differ in length ({t_post.size} vs {t_pre.size}):"
            " they must hold the same members in the same order"
        )
    if h_post.size != h_pre.size:
        raise ValueError(
            f"holdout_post and holdout_pre differ in length ({h_post.size} vs {h_pre.size}):"
            " they must hold the same members in the same order"
        )
    post = np.concatenate([t_post, h_post])
    pre = np.concatenate([t_pre, h_pre])
    pre_variance = float(pre.var(ddof=1))
    post_variance = float(post.var(ddof=1))
    covariance = float(np.cov(pre, post, ddof=1)[0, 1])
    # A constant covariate carries no information: theta 0 leaves the outcome as it is.
    theta = covariance / pre_variance if pre_variance > 0 else 0.0
    correlation = (
        covariance / math.sqrt(pre_variance * post_variance)
        if pre_variance > 0 and post_variance > 0
        else 0.0
    )
    # Centre on the mean over both arms: the same shift for everyone, so the adjustment
    # changes no arm's expected mean (pre is independent of the arm).
    pre_mean = float(pre.mean())
    t_adjusted = t_post - theta * (t_pre - pre_mean)
    h_adjusted = h_post - theta * (h_pre - pre_mean)
    adjusted_variance = float(np.concatenate([t_adjusted, h_adjusted]).var(ddof=1))
    return CupedEstimate(
        lift=_welch(arm_summary(t_adjusted), arm_summary(h_adjusted), confidence),
        unadjusted=_welch(arm_summary(t_post), arm_summary(h_post), confidence),
        theta=theta,
        pre_post_correlation=correlation,
        variance_reduction=(1.0 - adjusted_variance / post_variance) if post_variance > 0 else 0.0,
    )


def sample_ratio_mismatch(
    treatment_n: int, holdout_n: int, expected_holdout_share: float
) -> SrmCheck:
    """Do the arm sizes match the configured split? (e.g. holdout_bps / 10_000)."""
    treatment_n = _count(treatment_n, "treatment_n")
    holdout_n = _count(holdout_n, "holdout_n")
    share = float(expected_holdout_share)
    if not 0.0 < share < 1.0:
        raise ValueError(f"expected_holdout_share must be strictly between 0 and 1, got {share}")
    total = treatment_n + holdout_n
    if total == 0:
        raise ValueError("both arms are empty: nothing to check")
    chi_square, p_value = stats.chisquare(
        [treatment_n, holdout_n], f_exp=[total * (1 - share), total * share]
    )
    return SrmCheck(
        treatment_n=treatment_n,
        holdout_n=holdout_n,
        expected_holdout_share=share,
        observed_holdout_share=holdout_n / total,
        chi_square=float(chi_square),
        p_value=float(p_value),
        threshold=SRM_P_THRESHOLD,
        mismatch=bool(p_value < SRM_P_THRESHOLD),
    )


# --- money ------------------------------------------------------------------------------


def incremental_revenue(lift: LiftEstimate, treated_members: int) -> IncrementalRevenue:
    """Total incremental revenue: mean lift per treated member x treated members, with the
    interval scaled the same way. `lift` must be a lift of spend per member in minor units
    (welch_lift or cuped_lift(...).lift); `treated_members` is everyone the campaign
    treated, which may exceed the analysed sample."""
    treated_members = _count(treated_members, "treated_members")
    if lift.method != "welch":
        raise ValueError("incremental revenue needs a lift of spend per member (a Welch lift)")
    members = Decimal(treated_members)

    def total(per_member: float) -> int:
        # repr: the shortest decimal that reads back as the float, so 12.5 is 12.5 exactly;
        # the wide context keeps the product exact, so rounding happens once.
        with localcontext(prec=200):
            return round_minor(Decimal(repr(per_member)) * members)

    return IncrementalRevenue(
        treated_members=treated_members,
        amount_minor=total(lift.difference),
        ci_low_minor=total(lift.ci_low),
        ci_high_minor=total(lift.ci_high),
        confidence=lift.confidence,
    )


def return_on_investment(incremental_revenue_minor: int, bonus_cost_minor: int) -> Roi:
    """ROI of a campaign: (incremental revenue - cost) / cost, both in minor units of the
    same currency. Revenue may be negative (the campaign lost business); cost must be
    positive (ROI is undefined for a free campaign). Apply it to the interval bounds of
    incremental_revenue for an ROI interval (cost is known, so the map is monotone)."""
    revenue = _money(incremental_revenue_minor, "incremental_revenue_minor")
    cost = _money(bonus_cost_minor, "bonus_cost_minor")
    if cost <= 0:
        raise ValueError(f"bonus_cost_minor must be positive, got {cost}")
    net = revenue - cost
    return Roi(
        incremental_revenue_minor=revenue,
        cost_minor=cost,
        net_return_minor=net,
        roi=_ratio(net, cost),
        revenue_per_cost=_ratio(revenue, cost),
    )


def _ratio(numerator: int, denominator: int) -> Decimal:
    """numerator / denominator to RATIO_DECIMALS places, half away from zero, in exact
    integer arithmetic (a Decimal division would round to the context precision first)."""
    quotient, remainder = divmod(abs(numerator) * 10**RATIO_DECIMALS, denominator)
    if 2 * remainder >= denominator:
        quotient += 1
    sign = -1 if numerator < 0 else 1
    return Decimal(sign * quotient).scaleb(-RATIO_DECIMALS)
