"""Redemption: burn/earn ratio and redeemer penetration per period, time to first
redemption (Kaplan-Meier input), earned-at -> redeemed-at point flows, and breakage per
period. Definitions: docs/metrics.md. (The liability roll-forward is issue 5's
shared/settlement/liability.py.)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

import numpy as np
from sqlalchemy import Integer, case, func, or_, select

from shared.analytics.members import enrolled_member_conditions
from shared.analytics.query import (
    NETWORK,
    Grain,
    MetricScope,
    Query,
    complete,
    date_range,
    ratio,
    truncate,
)
from shared.tables import activity_members, activity_point_flows


@dataclass(frozen=True, slots=True)
class RedemptionDurations:
    """Days from enrolment to the first redemption (event) or to `as_of` (censored), as
    counts of members per (days, event)."""

    counts: tuple[tuple[int, bool, int], ...]  # (days, redeemed, members)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """One duration and one event flag per member, for a Kaplan-Meier fit."""
        days = np.array([c[0] for c in self.counts], dtype=np.int64)
        events = np.array([c[1] for c in self.counts], dtype=bool)
        members = np.array([c[2] for c in self.counts], dtype=np.int64)
        return np.repeat(days, members), np.repeat(events, members)


def time_to_first_redemption(
    as_of: date,
    *,
    enrolled_from: date | None = None,
    enrolled_until: date | None = None,
    acquiring_merchant_ids: tuple[uuid.UUID, ...] = (),
    tiers: tuple[str, ...] = (),
) -> Query[RedemptionDurations]:
    """Members enrolled before `as_of` (and in [enrolled_from, enrolled_until))."""
    m = activity_members.c
    redeemed = func.coalesce(m.first_redemption_day < as_of, False)
    days = case((redeemed, m.first_redemption_day), else_=as_of) - m.enrolled_day
    conditions = enrolled_member_conditions(acquiring_merchant_ids, tiers, as_of)
    if enrolled_from is not None:
        conditions.append(m.enrolled_day >= enrolled_from)
    if enrolled_until is not None:
        conditions.append(m.enrolled_day < enrolled_until)
    days = days.cast(Integer).label("days")
    redeemed = redeemed.label("redeemed")
    statement = (
        select(days, redeemed, func.count().label("members"))
        .where(*conditions)
        .group_by(days, redeemed)
        .order_by(days, redeemed)
    )
    return Query(
        (statement,),
        lambda rows: RedemptionDurations(
            tuple((int(r.days), bool(r.redeemed), int(r.members)) for r in rows)
        ),
    )


@dataclass(frozen=True, slots=True)
class PointFlow:
    issuing_merchant_id: uuid.UUID | None  # None: points HQ issued (behaviour, adjustments)
    redeeming_merchant_id: uuid.UUID
    points: int  # redeemed at the redeemer, net of reversals


def flows(filters: MetricScope) -> Query[list[PointFlow]]:
    """Points earned at one partner and redeemed at another, posted in [start, end).
    With merchant_ids: the flows in which one of them issued or redeemed."""
    f = activity_point_flows.c
    conditions = [f.kind.in_(("redemption", "reversal")), *date_range(f.day, filters, "day")]
    if filters.merchant_ids:
        conditions.append(
            or_(
                f.issuing_merchant_id.in_(filters.merchant_ids),
                f.redeeming_merchant_id.in_(filters.merchant_ids),
            )
        )
    points = func.sum(f.points)
    statement = (
        select(f.issuing_merchant_id, f.redeeming_merchant_id, points.label("points"))
        .where(*conditions)
        .group_by(f.issuing_merchant_id, f.redeeming_merchant_id)
        .having(points != 0)
        .order_by(points.desc())
    )
    return Query(
        (statement,),
        lambda rows: [
            PointFlow(
                None if row.issuing_merchant_id == NETWORK else row.issuing_merchant_id,
                row.redeeming_merchant_id,
                int(row.points),
            )
            for row in rows
        ],
    )


@dataclass(frozen=True, slots=True)
class BreakagePeriod:
    period_start: date
    complete: bool
    expired_points: int
    redeemed_points: int  # net of reversals

    @property
    def breakage_rate(self) -> float | None:
        """Of the points that left members' lots by use or expiry, the share that expired."""
        return ratio(self.expired_points, self.expired_points + self.redeemed_points)


def breakage(grain: Grain, filters: MetricScope, as_of: date) -> Query[list[BreakagePeriod]]:
    """Points expired and redeemed per period (posting day); with merchant_ids, of the
    points those partners issued."""
    f = activity_point_flows.c
    period = truncate(grain, f.day).label("period_start")
    conditions = date_range(f.day, filters, grain)
    if filters.merchant_ids:
        conditions.append(f.issuing_merchant_id.in_(filters.merchant_ids))
    expired = f.kind == "expiry"
    statement = (
        select(
            period,
            func.coalesce(func.sum(f.points).filter(expired), 0).label("expired"),
            func.coalesce(func.sum(f.points).filter(~expired), 0).label("redeemed"),
        )
        .where(*conditions)
        .group_by(period)
        .order_by(period)
    )
    return Query(
        (statement,),
        lambda rows: [
            BreakagePeriod(
                row.period_start,
                complete(row.period_start, grain, as_of),
                int(row.expired),
                int(row.redeemed),
            )
            for row in rows
        ],
    )
