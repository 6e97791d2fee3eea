"""RFM scores and segments from grouped rows equal those of the members they stand for."""

from __future__ import annotations

import numpy as np
import pytest

from shared.analytics.segments import (
    RfmSegment,
    grouped_quintile_scores,
    quintile_scores,
    rfm_scores,
    segment_sizes,
)


@pytest.mark.parametrize("higher_is_better", [True, False])
@pytest.mark.parametrize("seed", range(5))
def test_grouped_scores_are_the_members_scores(seed, higher_is_better):
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 40, size=3_000)
    distinct, counts = np.unique(values, return_counts=True)
    grouped = grouped_quintile_scores(distinct, counts, higher_is_better=higher_is_better)
    expected = quintile_scores(values, higher_is_better=higher_is_better)
    by_value = dict(zip(distinct.tolist(), grouped.tolist(), strict=True))
    assert [by_value[value] for value in values.tolist()] == expected.tolist()


def test_rows_may_repeat_a_value_and_hold_no_member():
    scores = grouped_quintile_scores([5, 5, 1, 9], [2, 3, 0, 5])
    assert scores[0] == scores[1]
    assert grouped_quintile_scores([1, 2], [0, 0]).tolist() == [0, 0]
    assert grouped_quintile_scores([7], [4]).tolist() == [3]  # everyone ties: 3


def test_segment_sizes_count_the_members_of_each_segment():
    rng = np.random.default_rng(7)
    recency = rng.integers(0, 200, size=5_000)
    frequency = rng.geometric(0.3, size=5_000)
    spend = rng.integers(100, 10_000, size=5_000)
    per_member = rfm_scores(recency, frequency, spend).segment
    pairs, counts = np.unique(np.stack([recency, frequency]), axis=1, return_counts=True)
    sizes = segment_sizes(pairs[0], pairs[1], counts)
    assert list(sizes) == list(RfmSegment)
    assert sizes == {segment: int((per_member == segment).sum()) for segment in RfmSegment}
