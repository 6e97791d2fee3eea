"""Retention: enrolment cohorts (by week or month, optionally split by acquiring
merchant), the share of each cohort active N periods after enrolment ("N-period") and
active in that period or any later one ("unbounded", on or after). Cells whose period has
not ended by `as_of` are suppressed (None). Definitions: docs/metrics.md.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from sqlalchemy import func, literal, select

from shared.analytics.query import (
    Query,
    complete,
    next_period,
    offset,
    period_start,
    truncate,
)
from shared.tables import activity_cohorts, activity_enrolments

CohortGrain = Literal["week", "month"]


@dataclass(frozen=True, slots=True)
class CohortRow:
    cohort_start: date
    acquiring_merchant_id: uuid.UUID | None  # None: all acquiring merchants in scope
    members: int  # enrolled in the cohort period
    # Index k: the k-th period after enrolment (0: the enrolment period itself).
    active: tuple[int | None, ...]  # members active in that period
    on_or_after: tuple[int | None, ...]  # members active in that period or later

    @property
    def retention(self) -> tuple[float | None, ...]:
        return tuple(None if n is None else n / self.members for n in self.active)

    @property
    def unbounded_retention(self) -> tuple[float | None, ...]:
        return tuple(None if n is None else n / self.members for n in self.on_or_after)


@dataclass(frozen=True, slots=True)
class RetentionMatrix:
    grain: CohortGrain
    as_of: date
    rows: tuple[CohortRow, ...]


def matrix(
    grain: CohortGrain,
    as_of: date,
    *,
    cohorts_from: date | None = None,
    cohorts_until: date | None = None,
    acquiring_merchant_ids: tuple[uuid.UUID, ...] = (),
    by_acquiring_merchant: bool = False,
) -> Query[RetentionMatrix]:
    """Cohorts enrolled in [cohorts_from, cohorts_until) (local days, whole periods) and
    before `as_of`, with every period after enrolment up to the last complete one."""
    e, c = activity_enrolments.c, activity_cohorts.c
    cohort = truncate(grain, e.day).label("cohort_start")
    # The same whole cohorts on both sides: sizes and cells.
    size_conditions, cell_conditions = [], [c.grain == grain]
    for column, conditions in ((cohort, size_conditions), (c.cohort_start, cell_conditions)):
        conditions.append(column < as_of)
        if cohorts_from is not None:
            conditions.append(column >= period_start(cohorts_from, grain))
        if cohorts_until is not None:
            conditions.append(column < cohorts_until)
    if acquiring_merchant_ids:
        size_conditions.append(e.acquiring_merchant_id.in_(acquiring_merchant_ids))
        cell_conditions.append(c.acquiring_merchant_id.in_(acquiring_merchant_ids))
    size_acquiring = e.acquiring_merchant_id if by_acquiring_merchant else literal(None)
    cell_acquiring = c.acquiring_merchant_id if by_acquiring_merchant else literal(None)
    sizes = (
        select(cohort, size_acquiring.label("acquiring"), func.sum(e.members).label("members"))
        .where(*size_conditions)
        .group_by(cohort, *([e.acquiring_merchant_id] if by_acquiring_merchant else []))
    )
    cells = (
        select(
            c.cohort_start,
            cell_acquiring.label("acquiring"),
            c.period_start,
            func.sum(c.active_members).label("active"),
            func.sum(c.last_active_members).label("last_active"),
        )
        .where(*cell_conditions)
        .group_by(
            c.cohort_start,
            c.period_start,
            *([c.acquiring_merchant_id] if by_acquiring_merchant else []),
        )
    )
    return Query((sizes, cells), lambda s, r: shape_matrix(s, r, grain, as_of))


def shape_matrix(
    sizes: Sequence[Any], cells: Sequence[Any], grain: CohortGrain, as_of: date
) -> RetentionMatrix:
    """Rows all as wide as the oldest cohort's complete periods; a cell whose period is
    not complete (a younger cohort's) is None."""
    active: dict[tuple, dict[int, int]] = defaultdict(dict)
    last: dict[tuple, dict[int, int]] = defaultdict(dict)
    for row in cells:
        key, k = (
            (row.cohort_start, row.acquiring),
            offset(row.cohort_start, row.period_start, grain),
        )
        active[key][k] = int(row.active)
        last[key][k] = int(row.last_active)
    ordered = sorted(sizes, key=lambda r: (r.cohort_start, str(r.acquiring)))
    width = max((_complete_offsets(r.cohort_start, grain, as_of) for r in ordered), default=0)
    rows = []
    for size in ordered:
        key = (size.cohort_start, size.acquiring)
        known = _complete_offsets(size.cohort_start, grain, as_of)
        # On or after period k: the members whose last active period is k or later.
        on_or_after, later = [0] * known, 0
        for k in range(max(last[key], default=-1), -1, -1):
            later += last[key].get(k, 0)
            if k < known:
                on_or_after[k] = later
        suppressed = (None,) * (width - known)
        rows.append(
            CohortRow(
                cohort_start=size.cohort_start,
                acquiring_merchant_id=size.acquiring,
                members=int(size.members),
                active=tuple(active[key].get(k, 0) for k in range(known)) + suppressed,
                on_or_after=tuple(on_or_after) + suppressed,
            )
        )
    return RetentionMatrix(grain, as_of, tuple(rows))


def _complete_offsets(cohort: date, grain: CohortGrain, as_of: date) -> int:
    """How many periods from the cohort's own are complete by `as_of`."""
    count, current = 0, cohort
    while complete(current, grain, as_of):
        count += 1
        current = next_period(current, grain)
    return count
