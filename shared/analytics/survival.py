"""Kaplan-Meier survival curves for "time until something first happens" (e.g. days from
enrolment to a member's first redemption), with right-censoring.

A member who has not redeemed yet is censored at their observed time (days enrolled by
the as-of date, or until they left): we know only that the event had not happened by
then. Dropping such members, or counting them as "never", would bias the curve; KM keeps
them in the risk set up to their censoring time. Censoring is assumed independent of the
event (members are not censored because they were about to redeem).

The estimate and its standard errors (Greenwood) come from statsmodels; the pointwise 95%
interval uses the log(-log) transform, which keeps the bounds inside [0, 1]. Definitions:
docs/metrics.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import norm
from statsmodels.duration.survfunc import SurvfuncRight

CONFIDENCE = 0.95


@dataclass(frozen=True, slots=True)
class SurvivalCurve:
    """S(t) = P(the event has not happened by t) just after each distinct event time.

    Between event times the curve is flat; before the first it is 1."""

    times: np.ndarray  # distinct event times, ascending, in the durations' unit (days)
    survival: np.ndarray  # S(t)
    ci_low: np.ndarray  # pointwise 95% interval; NaN where Greenwood's variance is undefined
    ci_high: np.ndarray
    at_risk: np.ndarray  # members still without the event and uncensored just before t
    events: np.ndarray  # events at t
    members: int
    median: float | None  # smallest t with S(t) <= 0.5; None if the curve stays above


def kaplan_meier(durations: ArrayLike, event_observed: ArrayLike) -> SurvivalCurve:
    """`durations`: per member, time to the event, or to censoring when `event_observed`
    is false (in days); `event_observed`: whether the event happened."""
    time = np.asarray(durations, dtype=np.float64)
    status = np.asarray(event_observed, dtype=bool)
    if time.ndim != 1 or time.shape != status.shape:
        raise ValueError("one duration and one event flag per member")
    if np.any(~np.isfinite(time)) or np.any(time < 0):
        raise ValueError("durations must be finite and non-negative")
    if not status.any():
        # No event yet (or no members): the curve is flat at 1 and has no step to report.
        empty = np.empty(0)
        return SurvivalCurve(empty, empty, empty, empty, empty, empty, len(time), None)
    fitted = SurvfuncRight(time, status.astype(np.float64))
    survival = fitted.surv_prob
    ci_low, ci_high = _log_minus_log_interval(survival, fitted.surv_prob_se)
    # statsmodels multiplies through exp(sum of logs), so an exact 1/2 can come out an ulp
    # above it; the slack keeps such a curve's median where the definition puts it.
    reaches_half = np.flatnonzero(survival <= 0.5 + 1e-12)
    return SurvivalCurve(
        times=fitted.surv_times,
        survival=survival,
        ci_low=ci_low,
        ci_high=ci_high,
        at_risk=fitted.n_risk.astype(np.int64),
        events=fitted.n_events.astype(np.int64),
        members=len(time),
        median=float(fitted.surv_times[reaches_half[0]]) if len(reaches_half) else None,
    )


def _log_minus_log_interval(survival: np.ndarray, standard_error: np.ndarray):
    # Var(log(-log S)) = Var(S) / (S log S)^2 (delta method); the bounds are
    # S^exp(+-z sigma). Where S reached 0 both bounds are 0.
    z = norm.ppf(0.5 + CONFIDENCE / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma = standard_error / np.abs(survival * np.log(survival))
        low = survival ** np.exp(z * sigma)
        high = survival ** np.exp(-z * sigma)
    dead = survival == 0
    return np.where(dead, 0.0, low), np.where(dead, 0.0, high)
