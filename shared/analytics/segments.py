"""Member segments: RFM scores and names, and the lapse threshold that calls a member
lapsed. Arrays in, values out; the queries that collect the inputs live elsewhere.

RFM (definitions in docs/metrics.md):
- scores 1-5, 5 the best: recent (few days since the last purchase), frequent, big
  spenders. A member's score is the quintile of their mid-rank percentile,
  1 + floor(5 * (rank - 0.5) / n) with tied values sharing their average rank, so equal
  inputs always get equal scores, the result does not depend on input order, and a column
  where everyone ties scores 3 for everyone;
- the segment name comes from the recency and frequency scores on the common 5 x 5 grid
  (below). Monetary is scored but does not name the segment: spend follows frequency
  closely, and a two-dimensional grid stays readable on a chart.

Lapse threshold: see `lapse_threshold_days`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import rankdata

SCORES = 5


class RfmSegment(StrEnum):
    CHAMPIONS = "Champions"
    LOYAL = "Loyal"
    POTENTIAL_LOYALISTS = "Potential loyalists"
    NEW = "New"
    PROMISING = "Promising"
    NEED_ATTENTION = "Need attention"
    ABOUT_TO_SLEEP = "About to sleep"
    AT_RISK = "At risk"
    CANT_LOSE_THEM = "Can't lose them"
    HIBERNATING = "Hibernating"
    LOST = "Lost"


_S = RfmSegment
# Rows: recency score 1..5; columns: frequency score 1..5. The widely used R x F grid,
# with its bottom-left cell (long gone, bought rarely) split off as Lost.
SEGMENT_GRID: tuple[tuple[RfmSegment, ...], ...] = (
    (_S.LOST, _S.HIBERNATING, _S.AT_RISK, _S.AT_RISK, _S.CANT_LOSE_THEM),
    (_S.HIBERNATING, _S.HIBERNATING, _S.AT_RISK, _S.AT_RISK, _S.CANT_LOSE_THEM),
    (_S.ABOUT_TO_SLEEP, _S.ABOUT_TO_SLEEP, _S.NEED_ATTENTION, _S.LOYAL, _S.LOYAL),
    (_S.PROMISING, _S.POTENTIAL_LOYALISTS, _S.POTENTIAL_LOYALISTS, _S.LOYAL, _S.LOYAL),
    (_S.NEW, _S.POTENTIAL_LOYALISTS, _S.POTENTIAL_LOYALISTS, _S.CHAMPIONS, _S.CHAMPIONS),
)
_GRID = np.array(SEGMENT_GRID, dtype=object)


@dataclass(frozen=True, slots=True)
class RfmScores:
    recency: np.ndarray  # 1..5 per member, 5: bought most recently
    frequency: np.ndarray  # 1..5, 5: most purchases
    monetary: np.ndarray  # 1..5, 5: most spend
    segment: np.ndarray  # RfmSegment per member (object array)


def quintile_scores(values: ArrayLike, *, higher_is_better: bool = True) -> np.ndarray:
    """Scores 1..5 from mid-rank percentiles; ties share a score (see the module doc)."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or np.any(np.isnan(array)):
        raise ValueError("one number per member, no NaN")
    if len(array) == 0:
        return np.empty(0, dtype=np.int8)
    ranks = rankdata(array if higher_is_better else -array, method="average")
    percentile = (ranks - 0.5) / len(array)
    return (1 + np.floor(SCORES * percentile)).astype(np.int8)


def rfm_scores(
    days_since_last_purchase: ArrayLike, purchases: ArrayLike, spend_minor: ArrayLike
) -> RfmScores:
    """Per member: days since the last purchase (as of one date), number of purchases
    (distinct purchase days, as in the BG/NBD inputs) and spend in minor units, over the
    same window."""
    recency = quintile_scores(days_since_last_purchase, higher_is_better=False)
    frequency = quintile_scores(purchases)
    monetary = quintile_scores(spend_minor)
    if not len(recency) == len(frequency) == len(monetary):
        raise ValueError("recency, frequency and spend must have one value per member")
    return RfmScores(
        recency=recency,
        frequency=frequency,
        monetary=monetary,
        segment=_GRID[recency.astype(np.intp) - 1, frequency.astype(np.intp) - 1],
    )


DEFAULT_LAPSE_DAYS = 90
LAPSE_QUANTILE = 0.9
MINIMUM_GAPS = 100


def lapse_threshold_days(
    gaps_days: ArrayLike,
    *,
    counts: ArrayLike | None = None,
    quantile: float = LAPSE_QUANTILE,
    minimum_gaps: int = MINIMUM_GAPS,
    fallback_days: int = DEFAULT_LAPSE_DAYS,
) -> int:
    """Days without a purchase after which a member counts as lapsed.

    `gaps_days` pools every member's gaps between consecutive distinct purchase days.
    The threshold is their 90th percentile (the smallest observed gap that at least 90%
    of gaps do not exceed), rounded up to whole days: a member silent for longer has
    waited longer than 9 returns in 10. With fewer than `minimum_gaps` gaps (a new
    network) the percentile is mostly noise, so the fallback (90 days) applies.

    Known biases, both towards a shorter threshold: frequent buyers contribute more gaps,
    and gaps still open at the as-of date (or longer than the window) are not observed.

    `counts` gives how many gaps each value stands for (a histogram: a million members'
    gaps need not be expanded one by one).
    """
    gaps = np.asarray(gaps_days, dtype=np.float64)
    weights = np.ones_like(gaps) if counts is None else np.asarray(counts, dtype=np.float64)
    if gaps.ndim != 1 or np.any(~np.isfinite(gaps)) or np.any(gaps <= 0):
        raise ValueError("gaps must be positive numbers of days")
    if weights.shape != gaps.shape or np.any(weights < 0):
        raise ValueError("counts must be one non-negative number per gap")
    if not 0 < quantile < 1:
        raise ValueError("quantile must be between 0 and 1")
    if weights.sum() < minimum_gaps:
        return fallback_days
    return math.ceil(np.quantile(gaps, quantile, method="inverted_cdf", weights=weights))


def grouped_quintile_scores(
    values: ArrayLike, counts: ArrayLike, *, higher_is_better: bool = True
) -> np.ndarray:
    """`quintile_scores` for values held by `counts` members each: the score of each
    row, as `quintile_scores` gives it to every one of those members (ties share their
    average rank, so equal values always score alike). Numpy only: a few thousand rows
    stand for a million members."""
    array = np.asarray(values, dtype=np.float64)
    weights = np.asarray(counts, dtype=np.int64)
    if array.ndim != 1 or array.shape != weights.shape or np.any(weights < 0):
        raise ValueError("one value and one non-negative count per row")
    total = weights.sum()
    if total == 0:
        return np.zeros(len(array), dtype=np.int8)
    distinct, position = np.unique(array if higher_is_better else -array, return_inverse=True)
    held = np.bincount(position, weights=weights, minlength=len(distinct))
    below = np.cumsum(held) - held  # members with a lower value
    mid_rank = below + (held + 1) / 2  # the average of ranks below+1 .. below+held
    percentile = (mid_rank - 0.5) / total
    return (1 + np.floor(SCORES * percentile)).astype(np.int8)[position]


def segment_sizes(
    recency_days: ArrayLike, purchase_days: ArrayLike, members: ArrayLike
) -> dict[RfmSegment, int]:
    """Members per RFM segment from rows of (days since the last purchase, purchase days,
    members), in the grid's order (every segment, 0 when empty). The segment comes from
    the recency and frequency scores only, so spend is not needed."""
    counts = np.asarray(members, dtype=np.int64)
    recency = grouped_quintile_scores(recency_days, counts, higher_is_better=False)
    frequency = grouped_quintile_scores(purchase_days, counts)
    segment = _GRID[recency.astype(np.intp) - 1, frequency.astype(np.intp) - 1]
    sizes = dict.fromkeys(RfmSegment, 0)
    for name, count in zip(segment, counts, strict=True):
        sizes[name] += int(count)
    return sizes
