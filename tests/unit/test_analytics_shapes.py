"""Pure parts of shared/analytics: period arithmetic and the shaping of rows."""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace

import pytest

from shared.analytics.query import complete, next_period, offset, period_start, periods
from shared.analytics.redemption import RedemptionDurations
from shared.analytics.retention import shape_matrix


@pytest.mark.parametrize(
    ("day", "grain", "start", "following"),
    [
        (date(2026, 3, 4), "day", date(2026, 3, 4), date(2026, 3, 5)),
        (date(2026, 3, 4), "week", date(2026, 3, 2), date(2026, 3, 9)),  # a Wednesday
        (date(2026, 3, 1), "week", date(2026, 2, 23), date(2026, 3, 2)),  # a Sunday
        (date(2026, 12, 31), "month", date(2026, 12, 1), date(2027, 1, 1)),
        (date(2024, 2, 29), "month", date(2024, 2, 1), date(2024, 3, 1)),
    ],
)
def test_periods_start_and_end(day, grain, start, following):
    assert period_start(day, grain) == start
    assert next_period(start, grain) == following


def test_periods_overlapping_a_range_and_offsets():
    assert periods(date(2026, 1, 15), date(2026, 3, 1), "month") == [
        date(2026, 1, 1),
        date(2026, 2, 1),
    ]
    assert periods(date(2026, 1, 15), date(2026, 3, 2), "month")[-1] == date(2026, 3, 1)
    assert offset(date(2025, 11, 1), date(2026, 2, 1), "month") == 3
    assert offset(date(2026, 1, 5), date(2026, 2, 2), "week") == 4
    assert complete(date(2026, 2, 1), "month", date(2026, 3, 1))
    assert not complete(date(2026, 2, 1), "month", date(2026, 2, 28))


def test_the_retention_triangle_suppresses_periods_not_yet_ended():
    sizes = [
        SimpleNamespace(cohort_start=date(2026, 1, 1), acquiring=None, members=10),
        SimpleNamespace(cohort_start=date(2026, 2, 1), acquiring=None, members=4),
    ]
    cells = [
        SimpleNamespace(cohort_start=date(2026, 1, 1), acquiring=None, period_start=p,
                        active=a, last_active=last)
        for p, a, last in ((date(2026, 1, 1), 8, 2), (date(2026, 2, 1), 5, 1),
                           (date(2026, 3, 1), 4, 4))
    ] + [
        SimpleNamespace(cohort_start=date(2026, 2, 1), acquiring=None, period_start=p,
                        active=a, last_active=last)
        for p, a, last in ((date(2026, 2, 1), 4, 3), (date(2026, 3, 1), 1, 1))
    ]  # fmt: skip
    matrix = shape_matrix(sizes, cells, "month", date(2026, 3, 10))
    january, february = matrix.rows
    # March is not over: its column is suppressed, and February's cohort has one period.
    assert january.active == (8, 5)
    assert january.on_or_after == (7, 5)  # last active Jan 2, Feb 1, Mar 4
    assert january.retention == (0.8, 0.5)
    assert february.active == (4, None)
    assert february.on_or_after == (4, None)
    assert february.unbounded_retention == (1.0, None)


def test_durations_expand_to_one_entry_per_member():
    days, events = RedemptionDurations(((3, True, 2), (10, False, 1))).arrays()
    assert days.tolist() == [3, 3, 10]
    assert events.tolist() == [True, True, False]
