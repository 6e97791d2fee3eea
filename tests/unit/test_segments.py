"""RFM scores and segments, and the lapse threshold (shared/analytics/segments.py), on
arrays small enough to work by hand."""

from __future__ import annotations

import numpy as np
import pytest

from shared.analytics.segments import (
    DEFAULT_LAPSE_DAYS,
    SEGMENT_GRID,
    RfmSegment,
    lapse_threshold_days,
    quintile_scores,
    rfm_scores,
)


def test_ten_distinct_values_fall_two_to_a_quintile():
    """Mid-rank percentiles (rank - 0.5) / 10 = 0.05, 0.15, ..., 0.95; times 5, floored,
    plus 1: 1 1 2 2 3 3 4 4 5 5."""
    values = [30, 10, 50, 20, 40, 60, 80, 70, 100, 90]
    assert quintile_scores(values).tolist() == [2, 1, 3, 1, 2, 3, 4, 4, 5, 5]
    assert quintile_scores(values, higher_is_better=False).tolist() == [
        4, 5, 3, 5, 4, 3, 2, 2, 1, 1,
    ]  # fmt: skip


def test_ties_share_a_score():
    """Values 1 1 1 2 5 5: average ranks 2 2 2 4 5.5 5.5, percentiles (r - 0.5) / 6 =
    0.25 0.25 0.25 0.583 0.833 0.833, scores 2 2 2 3 5 5."""
    assert quintile_scores([1, 1, 1, 2, 5, 5]).tolist() == [2, 2, 2, 3, 5, 5]
    assert quintile_scores([5, 1, 2, 1, 5, 1]).tolist() == [5, 2, 3, 2, 5, 2]


def test_all_ties_score_the_middle_and_empty_input_scores_nothing():
    assert quintile_scores([7, 7, 7, 7]).tolist() == [3, 3, 3, 3]
    assert quintile_scores([42]).tolist() == [3]
    assert quintile_scores([]).tolist() == []


def test_nan_is_refused():
    with pytest.raises(ValueError):
        quintile_scores([1.0, np.nan])


def test_rfm_scores_and_segments_by_hand():
    """Five members, all values distinct in each column, so a score is the rank (mid-rank
    percentiles 0.1, 0.3, ..., 0.9 give 1..5); recency ranks fewer days higher:
      member  days since  purchases  spend   R  F  M  segment (R, F)
      0         2         12         9000    5  5  5  Champions
      1         5          1          500    4  1  1  Promising
      2        40          6         7000    3  3  3  Need attention
      3       100          9         8000    2  4  4  At risk
      4       200          3          600    1  2  2  Hibernating"""
    scores = rfm_scores([2, 5, 40, 100, 200], [12, 1, 6, 9, 3], [9000, 500, 7000, 8000, 600])
    assert scores.recency.tolist() == [5, 4, 3, 2, 1]
    assert scores.frequency.tolist() == [5, 1, 3, 4, 2]
    assert scores.monetary.tolist() == [5, 1, 3, 4, 2]
    assert scores.segment.tolist() == [
        RfmSegment.CHAMPIONS,
        RfmSegment.PROMISING,
        RfmSegment.NEED_ATTENTION,
        RfmSegment.AT_RISK,
        RfmSegment.HIBERNATING,
    ]


def test_rfm_on_no_members_and_on_all_ties():
    empty = rfm_scores([], [], [])
    assert empty.segment.tolist() == []
    same = rfm_scores([10, 10, 10], [4, 4, 4], [1000, 1000, 1000])
    assert same.recency.tolist() == same.frequency.tolist() == [3, 3, 3]
    assert same.segment.tolist() == [RfmSegment.NEED_ATTENTION] * 3


def test_rfm_refuses_columns_of_different_lengths():
    with pytest.raises(ValueError):
        rfm_scores([1, 2], [1, 2, 3], [1, 2])


def test_segment_grid_corners_and_coverage():
    # Rows are recency 1..5, columns frequency 1..5.
    assert SEGMENT_GRID[0][0] is RfmSegment.LOST
    assert SEGMENT_GRID[0][4] is RfmSegment.CANT_LOSE_THEM
    assert SEGMENT_GRID[4][0] is RfmSegment.NEW
    assert SEGMENT_GRID[4][4] is RfmSegment.CHAMPIONS
    assert {cell for row in SEGMENT_GRID for cell in row} == set(RfmSegment)
    assert [len(row) for row in SEGMENT_GRID] == [5] * 5


def test_lapse_threshold_is_the_90th_percentile_of_gaps():
    """Gaps 1..100 days: 90% of them are <= 90, so the threshold is 90. Adding 0.5 to
    every gap makes the percentile 90.5, rounded up to 91."""
    gaps = np.arange(1, 101)
    assert lapse_threshold_days(gaps) == 90
    assert lapse_threshold_days(gaps + 0.5) == 91
    assert lapse_threshold_days(np.full(100, 7)) == 7
    assert lapse_threshold_days(np.r_[np.full(95, 3), np.full(5, 400)]) == 3


def test_lapse_threshold_from_a_histogram_equals_the_expanded_gaps():
    """95 gaps of 3 days and 5 of 400, as a histogram: the 90th percentile is 3; with 15 of
    400 instead it is 400."""
    assert lapse_threshold_days([3, 400], counts=[95, 5]) == 3
    assert lapse_threshold_days([3, 400], counts=[85, 15]) == 400
    assert lapse_threshold_days([3, 400], counts=[50, 40]) == DEFAULT_LAPSE_DAYS  # 90 gaps


def test_lapse_threshold_falls_back_with_too_few_gaps():
    assert lapse_threshold_days(np.arange(1, 100)) == 90  # 99 gaps: not enough
    assert lapse_threshold_days([]) == 90
    assert lapse_threshold_days([5, 6, 7], minimum_gaps=3) == 7
    assert lapse_threshold_days([5, 6], minimum_gaps=3, fallback_days=60) == 60


@pytest.mark.parametrize("gaps", [[0, 3], [-1.0], [np.nan], [np.inf]])
def test_lapse_threshold_refuses_impossible_gaps(gaps):
    with pytest.raises(ValueError):
        lapse_threshold_days(gaps)
