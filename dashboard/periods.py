"""Which periods the analytics pages show, from the sidebar's dates. Plain Python.

- A trend (a series per day, week or month, a cohort heatmap) covers the periods that
  overlap the selected dates, reaching back at least `TREND_PERIODS[grain]` periods from
  the last day: the default 30 days would otherwise give a monthly chart two points.
- A tile shows the headline period, the latest *complete* period (ended before the data's
  as-of day) that overlaps the dates, or the latest one when none is complete yet, and
  its delta compares it with the period just before it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date, timedelta
from typing import Protocol, TypeVar

from shared.analytics.filters import Filters
from shared.analytics.query import Grain, MetricScope, period_start

TREND_PERIODS: dict[Grain, int] = {"day": 30, "week": 26, "month": 13}
GRAIN_NAMES: dict[Grain, str] = {"day": "Daily", "week": "Weekly", "month": "Monthly"}


def periods_back(day: date, grain: Grain, count: int) -> date:
    """The start of the period `count - 1` periods before the one `day` falls in."""
    start = period_start(day, grain)
    for _ in range(count - 1):
        start = previous_period(start, grain)
    return start


def trend_scope(filters: Filters, grain: Grain) -> MetricScope:
    start = periods_back(filters.last_day, grain, TREND_PERIODS[grain])
    return replace(filters.scope(), start=min(filters.first_day, start))


def trend_start(filters: Filters, grain: Grain) -> date:
    """The first day of a trend (the first period's start)."""
    return period_start(trend_scope(filters, grain).start, grain)


def previous_period(start: date, grain: Grain) -> date:
    return period_start(start - timedelta(days=1), grain)


def label(start: date, grain: Grain) -> str:
    """Mon 9 Nov 2026 · week of 9 Nov 2026 · Nov 2026"""
    if grain == "month":
        return f"{start:%b %Y}"
    if grain == "week":
        return f"week of {start.day} {start:%b %Y}"
    return f"{start:%a} {start.day} {start:%b %Y}"


class _Period(Protocol):
    period_start: date
    complete: bool


P = TypeVar("P", bound=_Period)


def headline(periods: Sequence[P], filters: Filters, grain: Grain) -> tuple[P, P | None] | None:
    """The headline period among a trend's periods and the one just before it (None when
    it had no activity); None when no period overlapping the dates has any."""
    first = period_start(filters.first_day, grain)
    in_dates = [period for period in periods if period.period_start >= first]
    if not in_dates:
        return None
    complete = [period for period in in_dates if period.complete]
    current = complete[-1] if complete else in_dates[-1]
    before = previous_period(current.period_start, grain)
    previous = next((period for period in periods if period.period_start == before), None)
    return current, previous


def same_periods(items: Sequence[P], start: date, grain: Grain) -> tuple[P | None, P | None]:
    """Another series' entries for a headline period and the one before it."""
    by_start = {item.period_start: item for item in items}
    return by_start.get(start), by_start.get(previous_period(start, grain))
