"""The BG/NBD model of repeat buying (Fader, Hardie & Lee 2005, "'Counting your customers'
the easy way: an alternative to the Pareto/NBD model", Marketing Science 24(2)).

The story, per member, from their first purchase on:
- while alive, purchases arrive as a Poisson process at a personal rate lambda, and
  lambda ~ Gamma(shape r, rate alpha) across members;
- right after each REPEAT purchase the member drops out for good with a personal
  probability p, and p ~ Beta(a, b) across members. (The first purchase carries no
  dropout chance: that is what distinguishes BG/NBD from its MBG/NBD variant.)

A member's history is summarised by three numbers, all in one time unit (weeks here,
unless a caller says otherwise):
- x, `frequency`: the number of repeat purchases (purchases after the first);
- t_x, `recency`: the time of the last purchase, counted from the first (0 when x = 0);
- T, `age`: the time from the first purchase to the end of observation.

alpha is in that time unit (r / alpha is the mean purchase rate per unit); r, a and b
have no unit. Definitions and conventions: docs/metrics.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import minimize
from scipy.special import betaln, expit, gammaln, hyp2f1
from statsmodels.tools.numdiff import approx_hess3

SECONDS_PER_WEEK = 7 * 86_400


@dataclass(frozen=True, slots=True)
class BgNbdParameters:
    r: float  # shape of the purchase-rate distribution
    alpha: float  # its rate, in the histories' time unit
    a: float  # dropout probability ~ Beta(a, b)
    b: float


@dataclass(frozen=True, slots=True)
class BgNbdFit:
    parameters: BgNbdParameters
    # From the inverse Hessian of the log-likelihood at the optimum; None when it is not
    # positive definite there (a boundary or flat optimum: the errors would be meaningless).
    standard_errors: BgNbdParameters | None
    log_likelihood: float  # summed over members (weights included)
    converged: bool
    members: float  # total weight: the number of members behind the fit


@dataclass(frozen=True, slots=True)
class Histories:
    """(x, t_x, T) per member, or per group of identical members when `members` > 1."""

    frequency: np.ndarray  # x, repeat purchases
    recency: np.ndarray  # t_x
    age: np.ndarray  # T
    members: np.ndarray  # how many members share the row (the fit's weights)


def histories_from_purchases(
    first_purchase_at: ArrayLike,
    last_purchase_at: ArrayLike,
    purchases: ArrayLike,
    as_of: ArrayLike,
    *,
    seconds_per_unit: float = SECONDS_PER_WEEK,
) -> Histories:
    """(x, t_x, T) from what one aggregate query gives per member: the first and the last
    purchase time and the number of purchases (epoch seconds), and the end of observation.

    Every purchase (earn transaction) counts, same-day ones included: the model's events
    are purchases, each followed by a chance to drop out, and that is also how the seed
    simulates members, so a fit on seed data recovers its truth (docs/metrics.md).
    Times are exact, so members rarely share a history: fit a sample of them
    (`fit_bgnbd` on a few hundred thousand members is seconds) and score everyone."""
    first = np.asarray(first_purchase_at, dtype=np.float64)
    last = np.asarray(last_purchase_at, dtype=np.float64)
    count = np.asarray(purchases, dtype=np.int64)
    if not first.shape == last.shape == count.shape:
        raise ValueError("first, last and purchases must have one value per member")
    span = last - first
    observed = np.asarray(as_of, dtype=np.float64) - first
    if np.any(span < 0) or np.any(observed < span):
        raise ValueError("need first <= last <= as_of for every member")
    if np.any(count < 1) or np.any((span > 0) & (count < 2)):
        raise ValueError("purchases does not fit between the first and the last purchase")
    return Histories(
        frequency=count - 1,
        recency=span / seconds_per_unit,
        age=np.broadcast_to(observed, count.shape) / seconds_per_unit,
        members=np.ones(count.shape, dtype=np.int64),
    )


def group_identical(histories: Histories) -> Histories:
    """Members with the same (x, t_x, T) collapsed into one weighted row; the fit's cost
    is proportional to the rows. Histories with exact times rarely repeat; grouping pays
    off on coarse data (CDNOW's 2,357 customers are 1,016 distinct rows)."""
    rows = np.column_stack([histories.frequency, histories.recency, histories.age])
    unique, inverse = np.unique(rows, axis=0, return_inverse=True)
    members = np.bincount(inverse.ravel(), weights=histories.members, minlength=len(unique))
    return Histories(
        frequency=unique[:, 0],
        recency=unique[:, 1],
        age=unique[:, 2],
        members=members,
    )


def log_likelihood(
    parameters: BgNbdParameters, frequency: ArrayLike, recency: ArrayLike, age: ArrayLike
) -> np.ndarray:
    """Each member's log-likelihood (FHL 2005, eq. 6), in log space throughout: the
    gamma and beta functions overflow long before the data get large."""
    r, alpha, a, b = parameters.r, parameters.alpha, parameters.a, parameters.b
    x, t_x, age = _arrays(frequency, recency, age)
    shared = gammaln(r + x) - gammaln(r) + r * math.log(alpha)
    still_alive = betaln(a, b + x) - betaln(a, b) - (r + x) * np.log(alpha + age)
    # Dropped out right after the last purchase: only possible after a repeat purchase.
    # (x = 0 rows get a harmless placeholder so betaln never sees b - 1 <= 0.)
    repeat = x > 0
    dropped_out = (
        betaln(a + 1, b + np.where(repeat, x, 1) - 1) - betaln(a, b) - (r + x) * np.log(alpha + t_x)
    )
    return shared + np.where(repeat, np.logaddexp(still_alive, dropped_out), still_alive)


def fit_bgnbd(
    frequency: ArrayLike,
    recency: ArrayLike,
    age: ArrayLike,
    weights: ArrayLike | None = None,
) -> BgNbdFit:
    """Maximum-likelihood (r, alpha, a, b). `weights` counts members per row (see
    `group_identical`); the optimiser works on log-parameters so they stay positive."""
    x, t_x, age = _arrays(frequency, recency, age)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != x.shape or np.any(w < 0) or not w.sum() > 0:
        raise ValueError("weights must be non-negative, one per row, and not all zero")
    total = float(w.sum())

    def parameters_at(log_parameters: np.ndarray) -> BgNbdParameters:
        return BgNbdParameters(*(float(value) for value in np.exp(log_parameters)))

    def total_log_likelihood(log_parameters: np.ndarray) -> float:
        return float(w @ log_likelihood(parameters_at(log_parameters), x, t_x, age))

    def mean_negative(log_parameters: np.ndarray) -> float:
        # The mean, not the sum: the optimiser's tolerances then do not depend on the
        # number of members. Non-finite values (extreme trial steps) read as "very bad".
        value = -total_log_likelihood(log_parameters) / total
        return value if math.isfinite(value) else 1e300

    # Start from r = a = b = 1 and the alpha that matches the mean purchase rate: the
    # only scale in the problem is the time unit, which a fixed start would ignore.
    mean_rate = max(float(w @ x) / max(float(w @ age), 1e-12), 1e-6)
    start = np.log([1.0, 1.0 / mean_rate, 1.0, 1.0])
    # Bounds keep trial steps where the special functions are finite (1e-8 .. 1e8).
    bounds = [(-18.4, 18.4)] * 4
    result = minimize(
        mean_negative,
        start,
        method="L-BFGS-B",
        bounds=bounds,
        options={"ftol": 1e-14, "gtol": 1e-9, "maxiter": 2000},
    )
    estimate = parameters_at(result.x)
    return BgNbdFit(
        parameters=estimate,
        standard_errors=_standard_errors(total_log_likelihood, result.x),
        log_likelihood=total_log_likelihood(result.x),
        converged=bool(result.success),
        members=total,
    )


def _standard_errors(total_log_likelihood, log_parameters: np.ndarray) -> BgNbdParameters | None:
    # Observed information in log-parameters (better conditioned than the raw ones), then
    # the delta method back: se(theta) = theta * se(log theta).
    information = -approx_hess3(log_parameters, total_log_likelihood)
    try:
        np.linalg.cholesky(information)  # positive definite, or no errors at all
    except np.linalg.LinAlgError:
        return None
    log_variances = np.diag(np.linalg.inv(information))
    errors = np.exp(log_parameters) * np.sqrt(log_variances)
    return BgNbdParameters(*(float(value) for value in errors))


def probability_alive(
    parameters: BgNbdParameters, frequency: ArrayLike, recency: ArrayLike, age: ArrayLike
) -> np.ndarray:
    """P(the member has not dropped out by T | x, t_x, T) (FHL 2005, eq. 5 / the note
    "Computing P(alive) using the BG/NBD model"): 1 for x = 0, since dropout only
    follows a repeat purchase."""
    r, alpha, a, b = parameters.r, parameters.alpha, parameters.a, parameters.b
    x, t_x, age = _arrays(frequency, recency, age)
    repeat = x > 0
    # odds(dead) = a / (b + x - 1) * ((alpha + T) / (alpha + t_x))^(r + x), taken in logs
    # because the power overflows for heavy buyers who went quiet.
    log_odds_dead = (
        math.log(a)
        - np.log(b + np.where(repeat, x, 1) - 1)
        + (r + x) * (np.log(alpha + age) - np.log(alpha + t_x))
    )
    return np.where(repeat, expit(-log_odds_dead), 1.0)


def expected_purchases(
    parameters: BgNbdParameters,
    horizon: float,
    frequency: ArrayLike,
    recency: ArrayLike,
    age: ArrayLike,
) -> np.ndarray:
    """E[purchases in (T, T + horizon] | x, t_x, T] (FHL 2005, eq. 10), horizon in the
    histories' time unit. The formula divides by a - 1: undefined at exactly a = 1."""
    r, alpha, a, b = parameters.r, parameters.alpha, parameters.a, parameters.b
    if a == 1.0:
        raise ValueError("the BG/NBD conditional expectation is undefined at a = 1")
    x, _, age = _arrays(frequency, recency, age)
    # Eq. 10 has ((alpha+T)/(alpha+T+t))^(r+x) * 2F1(r+x, b+x; a+b+x-1; z): for frequent
    # buyers the power underflows while the series blows up (nan beyond x ~ 400). Euler's
    # transformation 2F1(A, B; C; z) = (1-z)^(C-A-B) 2F1(C-A, C-B; C; z) cancels the two,
    # leaving (1-z)^(a-1) * 2F1(a+b-1-r, a-1; a+b+x-1; z), whose series converges fast.
    staying = (alpha + age) / (alpha + age + horizon)  # 1 - z
    series = hyp2f1(a + b - 1 - r, a - 1, a + b + x - 1, 1 - staying)
    if_alive = (a + b + x - 1) / (a - 1) * (1 - staying ** (a - 1) * series)
    return if_alive * probability_alive(parameters, x, recency, age)


def expected_active_members(
    parameters: BgNbdParameters,
    frequency: ArrayLike,
    recency: ArrayLike,
    age: ArrayLike,
    weights: ArrayLike | None = None,
) -> float:
    """The expected number of members still alive: the sum of P(alive) (weighted)."""
    alive = probability_alive(parameters, frequency, recency, age)
    return float(alive.sum() if weights is None else np.asarray(weights, np.float64) @ alive)


def _arrays(frequency, recency, age) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, t_x, age = (np.asarray(values, dtype=np.float64) for values in (frequency, recency, age))
    if not x.shape == t_x.shape == age.shape:
        raise ValueError("frequency, recency and age must have one value per member")
    if np.any(x < 0) or np.any(x != np.floor(x)):
        raise ValueError("frequency must be a whole number of repeat purchases")
    if np.any(t_x < 0) or np.any(t_x > age):
        raise ValueError("need 0 <= recency <= age")
    return x, t_x, age
