"""Activity: active members per day / week / month (DAU, WAU, MAU), transactions per
active member, the active-days histogram, cross-merchant penetration and partner-pair
affinity. Definitions: docs/metrics.md.

Network-wide figures and figures for one merchant come from activity_periods (summed over
the selected tiers: a member has one tier, so distinct counts add up across tiers). Over
several merchants, the counters add up across their rows and the distinct members come
from activity_merchant_sets (members per set of partners used).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Integer, Select, any_, cast, distinct, func, literal, or_, select
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.sql.elements import ColumnElement

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
from shared.tables import (
    DAY_COUNTERS,
    PERIOD_COUNTERS,
    PERIOD_DISTINCT_COUNTS,
    activity_active_days,
    activity_member_days,
    activity_members,
    activity_merchant_pairs,
    activity_merchant_sets,
    activity_periods,
)


@dataclass(frozen=True, slots=True)
class ActivityPeriod:
    period_start: date
    complete: bool
    active_members: int  # members with a purchase or a redemption in the period
    purchasers: int
    redeemers: int
    multi_merchant_members: int  # active at 2+ of the partners in scope
    # Sum over members of their active days; None over several merchants (not kept).
    active_member_days: int | None
    purchases: int
    spend_minor: int
    points_earned: int
    refunds: int
    refunded_minor: int
    points_clawed_back: int
    redemptions: int
    points_redeemed: int
    points_reversed: int

    @property
    def transactions_per_active_member(self) -> float | None:
        """Purchases and redemptions per active member."""
        return ratio(self.purchases + self.redemptions, self.active_members)

    @property
    def cross_merchant_penetration(self) -> float | None:
        return ratio(self.multi_merchant_members, self.active_members)

    @property
    def redeemer_penetration(self) -> float | None:
        return ratio(self.redeemers, self.active_members)

    @property
    def net_spend_minor(self) -> int:
        return self.spend_minor - self.refunded_minor

    @property
    def points_earned_net(self) -> int:
        return self.points_earned - self.points_clawed_back

    @property
    def points_redeemed_net(self) -> int:
        return self.points_redeemed - self.points_reversed

    @property
    def burn_earn_ratio(self) -> float | None:
        return ratio(self.points_redeemed_net, self.points_earned_net)


def _scoped_days(filters: MetricScope, grain: Grain) -> tuple[Select, ColumnElement]:
    """activity_member_days in the filter's scope, with each row's period."""
    d = activity_member_days.c
    period = truncate(grain, d.day).label("period_start")
    conditions = date_range(d.day, filters, grain)
    if filters.merchant_ids:
        conditions.append(d.merchant_id.in_(filters.merchant_ids))
    source = activity_member_days
    if filters.tiers:
        source = source.join(
            activity_members, activity_members.c.member_id == activity_member_days.c.member_id
        )
        conditions.append(activity_members.c.tier.in_(filters.tiers))
    return select(period).select_from(source).where(*conditions), period


def _per_member_period(filters: MetricScope, grain: Grain):
    """One row per member and period with its active days at the merchants in scope (the
    member rows: for what no small aggregate answers)."""
    d = activity_member_days.c
    active = or_(d.purchases > 0, d.redemptions > 0)
    scoped, period = _scoped_days(filters, grain)
    return (
        scoped.add_columns(
            d.member_id, func.count(distinct(d.day)).filter(active).label("active_days")
        )
        .group_by(period, d.member_id)
        .subquery("per_member")
    )


def _sums(grain: Grain, filters: MetricScope) -> Select:
    """activity_periods' rows in scope, summed per period (over tiers; over merchants for
    the counters only when several are selected)."""
    p = activity_periods.c
    conditions = [p.grain == grain, *date_range(p.period_start, filters, grain)]
    if len(filters.merchant_ids) > 1:
        conditions.append(p.merchant_id.in_(filters.merchant_ids))
        fields = DAY_COUNTERS  # the distinct counts come from _distinct_over
    else:
        conditions.append(p.merchant_id == (filters.merchant_ids or (NETWORK,))[0])
        fields = PERIOD_COUNTERS
    if filters.tiers:
        conditions.append(p.tier.in_(filters.tiers))
    return (
        select(p.period_start, *(func.sum(p[name]).label(name) for name in fields))
        .where(*conditions)
        .group_by(p.period_start)
        .order_by(p.period_start)
    )


def _distinct_over(grain: Grain, filters: MetricScope) -> Select:
    """Distinct members over several merchants, from the partner sets."""
    s = activity_merchant_sets.c
    scope = literal(list(filters.merchant_ids), ARRAY(UUID(as_uuid=True)))
    in_scope = sum(
        cast(literal(merchant, UUID(as_uuid=True)) == any_(s.active_at), Integer)
        for merchant in filters.merchant_ids
    )
    conditions = [s.grain == grain, s.active_at.overlap(scope)]
    conditions += date_range(s.period_start, filters, grain)
    if filters.tiers:
        conditions.append(s.tier.in_(filters.tiers))

    def members(*condition) -> Any:
        return func.coalesce(func.sum(s.members).filter(*condition), 0)

    return (
        select(
            s.period_start,
            func.sum(s.members).label("active_members"),
            members(s.purchased_at.overlap(scope)).label("purchasers"),
            members(s.redeemed_at.overlap(scope)).label("redeemers"),
            members(in_scope >= 2).label("multi_merchant_members"),
        )
        .where(*conditions)
        .group_by(s.period_start)
    )


def series(grain: Grain, filters: MetricScope, as_of: date) -> Query[list[ActivityPeriod]]:
    """DAU (grain "day"), WAU ("week"), MAU ("month") and the other per-period activity
    figures; periods without any activity are absent. From activity_periods for the
    network or one merchant; with several merchants, their summed counters and the
    distinct members from activity_merchant_sets (active member-days are not kept: None)."""
    if len(filters.merchant_ids) <= 1:
        return Query((_sums(grain, filters),), lambda rows: shape_periods(rows, grain, as_of))

    def shape(sums: Sequence[Any], distinct_rows: Sequence[Any]) -> list[ActivityPeriod]:
        distinct = {row.period_start: row for row in distinct_rows}
        return [
            ActivityPeriod(
                period_start=row.period_start,
                complete=complete(row.period_start, grain, as_of),
                **{
                    name: int(getattr(distinct.get(row.period_start), name, 0))
                    for name in PERIOD_DISTINCT_COUNTS
                },
                active_member_days=None,
                **{name: int(getattr(row, name) or 0) for name in DAY_COUNTERS},
            )
            for row in sums
        ]

    return Query((_sums(grain, filters), _distinct_over(grain, filters)), shape)


def shape_periods(rows: Sequence[Any], grain: Grain, as_of: date) -> list[ActivityPeriod]:
    return [
        ActivityPeriod(
            period_start=row.period_start,
            complete=complete(row.period_start, grain, as_of),
            **{name: int(getattr(row, name) or 0) for name in PERIOD_COUNTERS},
        )
        for row in rows
    ]


@dataclass(frozen=True, slots=True)
class ActiveDaysHistogram:
    period_start: date
    complete: bool
    members_by_days: tuple[tuple[int, int], ...]  # (active days, members), days ascending


def active_days_histogram(
    grain: Grain, filters: MetricScope, as_of: date
) -> Query[list[ActiveDaysHistogram]]:
    """How many active members had 1, 2, 3... active days in each week or month. With a
    merchant filter (active days at those partners) it reads the member rows: slower."""
    if grain == "day":
        raise ValueError("a day has one active day: use week or month")
    if filters.merchant_ids:
        m = _per_member_period(filters, grain).c
        statement = (
            select(m.period_start, m.active_days, func.count().label("members"))
            .where(m.active_days > 0)
            .group_by(m.period_start, m.active_days)
        )
    else:
        h = activity_active_days.c
        conditions = [h.grain == grain, *date_range(h.period_start, filters, grain)]
        if filters.tiers:
            conditions.append(h.tier.in_(filters.tiers))
        statement = (
            select(h.period_start, h.active_days, func.sum(h.members).label("members"))
            .where(*conditions)
            .group_by(h.period_start, h.active_days)
        )
    statement = statement.order_by("period_start", "active_days")

    def shape(rows: Sequence[Any]) -> list[ActiveDaysHistogram]:
        grouped: dict[date, list[tuple[int, int]]] = {}
        for row in rows:
            grouped.setdefault(row.period_start, []).append(
                (int(row.active_days), int(row.members))
            )
        return [
            ActiveDaysHistogram(start, complete(start, grain, as_of), tuple(counts))
            for start, counts in grouped.items()
        ]

    return Query((statement,), shape)


@dataclass(frozen=True, slots=True)
class PairAffinity:
    merchant_a: uuid.UUID
    merchant_b: uuid.UUID
    both: int  # members active at both partners in the period
    members_a: int
    members_b: int
    active_members: int  # all active members in the period
    lift: float  # P(A and B) / (P(A) P(B))

    @property
    def support(self) -> float:
        return self.both / self.active_members

    @property
    def confidence_a_to_b(self) -> float:
        return self.both / self.members_a


def pair_affinity(
    grain: Grain, period: date, merchant_ids: tuple[uuid.UUID, ...] = (), min_members: int = 1
) -> Query[list[PairAffinity]]:
    """Partner pairs in one week or month, highest lift first. With merchant_ids, only the
    pairs that involve one of them."""
    pairs = activity_merchant_pairs.c
    conditions = [pairs.grain == grain, pairs.period_start == period, pairs.members >= min_members]
    if merchant_ids:
        conditions.append(
            or_(pairs.merchant_a.in_(merchant_ids), pairs.merchant_b.in_(merchant_ids))
        )
    pair_rows = select(pairs.merchant_a, pairs.merchant_b, pairs.members).where(*conditions)
    p = activity_periods.c
    singles = (
        select(p.merchant_id, func.sum(p.active_members).label("members"))
        .where(p.grain == grain, p.period_start == period)
        .group_by(p.merchant_id)
    )

    def shape(pair_list: Sequence[Any], single_list: Sequence[Any]) -> list[PairAffinity]:
        members = {row.merchant_id: int(row.members) for row in single_list}
        total = members.get(NETWORK, 0)
        result = [
            PairAffinity(
                row.merchant_a,
                row.merchant_b,
                int(row.members),
                members[row.merchant_a],
                members[row.merchant_b],
                total,
                row.members * total / (members[row.merchant_a] * members[row.merchant_b]),
            )
            for row in pair_list
        ]
        return sorted(result, key=lambda pair: (-pair.lift, -pair.both))

    return Query((pair_rows, singles), shape)
