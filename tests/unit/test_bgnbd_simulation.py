"""BG/NBD recovers the seed's true parameters (seed/config.py BgNbdTruth) from members
simulated by the model's own story, and its predictions match what happens next.

The first simulation here is independent numpy, the model's story exactly; the last test
fits the seed's own members (seed/behaviour.py), whose rates also follow a seasonal rhythm
on a daily grid.

Per member, exactly: first purchase uniform over a 52-week year, T = 52 - first;
lambda ~ Gamma(r, rate alpha), p ~ Beta(a, b); the number of repeat purchases after which
the member drops out J ~ Geometric(p) on 1, 2, ...; N ~ Poisson(lambda T) purchases would
happen if alive throughout, x = min(N, J); the x-th of N uniform arrival times in (0, T)
is T * Beta(x, N - x + 1).
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest

from seed.behaviour import draw_members, draw_purchases
from seed.config import BgNbdTruth, SeedConfig
from seed.network import build_network
from shared.analytics.bgnbd import (
    BgNbdParameters,
    expected_active_members,
    expected_purchases,
    fit_bgnbd,
    histories_from_purchases,
    probability_alive,
)
from shared.settings import get_settings

TRUTH = BgNbdParameters(**asdict(BgNbdTruth()))
MEMBERS = 20_000
WEEKS = 52.0
HORIZON = 26.0  # weeks after the as-of date, for the prediction check


def simulate(rng: np.random.Generator, members: int, truth: BgNbdParameters):
    first = rng.uniform(0.0, WEEKS, members)
    age = WEEKS - first
    rate = rng.gamma(truth.r, 1.0 / truth.alpha, members)
    dropout = rng.beta(truth.a, truth.b, members)
    budget = rng.geometric(dropout)  # repeat purchases until dropout
    arrivals = rng.poisson(rate * age)
    x = np.minimum(arrivals, budget)
    recency = np.where(x > 0, age * rng.beta(np.maximum(x, 1), arrivals - x + 1), 0.0)
    alive = arrivals < budget
    # What happens next: the geometric budget is memoryless, so a live member's remaining
    # budget is again Geometric(p).
    future = np.where(alive, np.minimum(rng.poisson(rate * HORIZON), rng.geometric(dropout)), 0)
    return x, recency, age, alive, future


@pytest.fixture(scope="module")
def simulated():
    return simulate(np.random.default_rng(20260101), MEMBERS, TRUTH)


def test_fit_recovers_the_seed_truth_within_four_standard_errors(simulated):
    """Four standard errors: with four parameters and an asymptotically normal estimator
    the chance that a correct fit fails is ~2.5e-4 (10 other seeds gave |z| < 1.8). The
    errors themselves must be small (under 5% of the value at 20,000 members), so a
    wide-but-useless fit cannot pass."""
    x, recency, age, _, _ = simulated
    fit = fit_bgnbd(x, recency, age)
    assert fit.converged
    assert fit.standard_errors is not None
    for name in ("r", "alpha", "a", "b"):
        true, estimate = getattr(TRUTH, name), getattr(fit.parameters, name)
        error = getattr(fit.standard_errors, name)
        assert error < 0.05 * true, name
        assert abs(estimate - true) < 4 * error, (name, estimate, error)


def test_expected_active_base_matches_the_members_really_alive(simulated):
    x, recency, age, alive, _ = simulated
    probabilities = probability_alive(TRUTH, x, recency, age)
    expected = expected_active_members(TRUTH, x, recency, age)
    # Given the histories, "alive" is a sum of independent Bernoulli(P(alive)) draws.
    spread = np.sqrt(np.sum(probabilities * (1 - probabilities)))
    assert abs(alive.sum() - expected) < 4 * spread
    # And the model is informative: the members really alive had higher P(alive).
    assert probabilities[alive].mean() > probabilities[~alive].mean() + 0.3


def test_conditional_expectation_predicts_the_next_half_year(simulated):
    x, recency, age, _, future = simulated
    predicted = expected_purchases(TRUTH, HORIZON, x, recency, age)
    # The members' futures are independent, so the error of a total is bounded by their
    # spread; checked for everyone, the members with no repeat purchase yet, and the rest.
    for group in (np.ones(MEMBERS, dtype=bool), x == 0, x > 0):
        spread = np.sqrt(group.sum()) * future[group].std()
        assert abs(future[group].sum() - predicted[group].sum()) < 4 * spread
        assert spread < 0.05 * future[group].sum()  # a tight check, not a wide one


def test_fit_on_the_seeds_own_members_recovers_its_truth():
    """20,000 seeded members over 14 months (no campaigns or incidents, which add visits or
    end members outside the model), summarised the way the analytics query does: first
    and last purchase time and the number of purchases per member, observed to the end.

    The seed is BG/NBD on a daily grid with a seasonal rhythm, so the fit is close but not
    exact: measured r 1.234 (+2.8%), alpha 1.923 (+6.8%), a 0.924 (+2.6%), b 5.72 (+4.0%).
    Repeat purchases start the day after enrolment, so the first part-day is observed
    without purchases, which lowers the fitted rate: measuring T from the next midnight
    brought alpha to +3.6% on 60,000 members with a flat rhythm. 10% is the tolerance."""
    from datetime import UTC, datetime

    settings = get_settings()
    config = SeedConfig(
        members=MEMBERS, months=14, merchants=10, seed=5, campaigns=(), incidents=False,
        end=datetime(2026, 6, 1, tzinfo=UTC),
    )  # fmt: skip
    network = build_network(config, settings.program, settings.card_prefix)
    members = draw_members(network, 0, 0, MEMBERS)
    purchases = draw_purchases(network, 0, members)
    first = np.full(MEMBERS, np.iinfo(np.int64).max)
    last = np.zeros(MEMBERS, dtype=np.int64)
    np.minimum.at(first, purchases.member, purchases.at_s)
    np.maximum.at(last, purchases.member, purchases.at_s)
    count = np.bincount(purchases.member, minlength=MEMBERS)
    histories = histories_from_purchases(first, last, count, network.calendar.end_s)
    fit = fit_bgnbd(histories.frequency, histories.recency, histories.age)
    assert fit.converged
    for name, truth in asdict(TRUTH).items():
        assert getattr(fit.parameters, name) == pytest.approx(truth, rel=0.10), name
