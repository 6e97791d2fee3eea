"""Kaplan-Meier (shared/analytics/survival.py) against the textbook example worked by hand.

The 6-MP arm of the Freireich et al. (1963) leukaemia trial, weeks of remission for 21
patients, + marking a censored time (Kleinbaum & Klein, Survival Analysis, ch. 2):
6 6 6 6+ 7 9+ 10 10+ 11+ 13 16 17+ 19+ 20+ 22 23 25+ 32+ 32+ 34+ 35+

By hand, S(t) = product over event times u <= t of (1 - d_u / n_u):
  t   n  d  S
  6  21  3  18/21                  = 0.857143
  7  17  1  0.857143 * 16/17       = 0.806723   (6+ left the risk set after 6)
 10  15  1  0.806723 * 14/15       = 0.752941   (9+ left)
 13  12  1  0.752941 * 11/12       = 0.690196   (10+ and 11+ left)
 16  11  1  0.690196 * 10/11       = 0.627451
 22   7  1  0.627451 * 6/7         = 0.537815   (17+, 19+, 20+ left)
 23   6  1  0.537815 * 5/6         = 0.448179
Median: the first S <= 0.5, at 23 weeks.

95% interval at t = 6, log(-log) transform with Greenwood's variance:
  Var(S) = S^2 * d / (n (n - d)) = 0.857143^2 * 3 / (21 * 18) = 0.0058309, se = 0.076360
  sigma = se / |S ln S| = 0.076360 / (0.857143 * 0.154151) = 0.57793
  bounds = S^exp(+-1.95996 * 0.57793) = 0.857143^3.10405 and 0.857143^0.32216
         = 0.61972 and 0.95155
At t = 7: Greenwood sum 3/(21*18) + 1/(17*16) = 0.0116130, se = 0.806723 * 0.107764
  = 0.086936, sigma = 0.086936 / (0.806723 * 0.214760) = 0.50180,
  bounds = 0.806723^2.67380 and 0.806723^0.37400 = 0.56315 and 0.92282.
"""

from __future__ import annotations

import numpy as np
import pytest

from shared.analytics.survival import kaplan_meier

WEEKS = [6, 6, 6, 6, 7, 9, 10, 10, 11, 13, 16, 17, 19, 20, 22, 23, 25, 32, 32, 34, 35]
RELAPSED = [1, 1, 1, 0, 1, 0, 1, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]


def test_six_mp_curve_matches_the_hand_computation():
    curve = kaplan_meier(WEEKS, RELAPSED)
    assert curve.times.tolist() == [6, 7, 10, 13, 16, 22, 23]
    assert curve.at_risk.tolist() == [21, 17, 15, 12, 11, 7, 6]
    assert curve.events.tolist() == [3, 1, 1, 1, 1, 1, 1]
    assert curve.survival == pytest.approx(
        [0.857143, 0.806723, 0.752941, 0.690196, 0.627451, 0.537815, 0.448179], abs=1e-6
    )
    assert curve.members == 21
    assert curve.median == 23.0


def test_six_mp_interval_matches_the_hand_computation():
    curve = kaplan_meier(WEEKS, RELAPSED)
    assert curve.ci_low[:2] == pytest.approx([0.61972, 0.56315], abs=2e-5)
    assert curve.ci_high[:2] == pytest.approx([0.95155, 0.92282], abs=2e-5)
    assert np.all((curve.ci_low < curve.survival) & (curve.survival < curve.ci_high))


def test_order_of_members_does_not_matter():
    order = np.random.default_rng(3).permutation(len(WEEKS))
    shuffled = kaplan_meier(np.array(WEEKS)[order], np.array(RELAPSED)[order])
    assert shuffled.survival == pytest.approx(kaplan_meier(WEEKS, RELAPSED).survival)


def test_median_is_the_first_time_the_curve_reaches_one_half():
    """Four events at days 1..4: S = 3/4, 1/2, 1/4, 0. The median is 2, where S first
    reaches 1/2 (statsmodels' own quantile() uses S < 1/2 and would say 3). After the
    last member's event S = 0 and its interval collapses to 0."""
    curve = kaplan_meier([1, 2, 3, 4], [True, True, True, True])
    assert curve.survival == pytest.approx([0.75, 0.5, 0.25, 0.0], abs=1e-15)
    assert curve.median == 2.0
    assert (curve.ci_low[-1], curve.ci_high[-1]) == (0.0, 0.0)


def test_a_curve_that_stays_above_one_half_has_no_median():
    curve = kaplan_meier([3, 5, 8, 9], [True, False, False, False])
    assert curve.survival.tolist() == [0.75]
    assert curve.median is None


def test_no_event_yet_gives_an_empty_curve():
    curve = kaplan_meier([10, 20, 30], [False, False, False])
    assert curve.times.size == 0 and curve.survival.size == 0
    assert curve.members == 3
    assert curve.median is None


def test_no_members_gives_an_empty_curve():
    curve = kaplan_meier([], [])
    assert curve.times.size == 0
    assert curve.members == 0
    assert curve.median is None


@pytest.mark.parametrize(
    ("durations", "events"), [([1, -2], [1, 1]), ([1, np.nan], [1, 0]), ([1, 2], [1])]
)
def test_bad_input_is_refused(durations, events):
    with pytest.raises(ValueError):
        kaplan_meier(durations, events)
