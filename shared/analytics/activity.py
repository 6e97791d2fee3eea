"""Activity: active members per day / week / month (DAU, WAU, MAU), transactions per
active member, the active-days histogram, cross-merchant penetration and partner-pair
affinity. Definitions: docs/metrics.md.

Network-wide figures and figures for one merchant come from activity_periods (summed over
the selected tiers: a member has one tier, so distinct counts add up across tiers). Several
merchants at once need distinct members across them, so those figures are computed from
activity_member_days.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Select, distinct, func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from shared.analytics.query import (
    NETWORK,
    Filters,
    Grain,
    Query,
    complete,
    date_range,
    ratio,
    truncate,
)
from shared.tables import (
    DAY_COUNTERS,
    activity_active_days,
    activity_member_days,
    activity_members,
    activity_merchant_pairs,
    activity_periods,
)

_DISTINCT = ("active_members", "purchasers", "redeemers", "multi_merchant_members")
PERIOD_FIELDS = (*_DISTINCT, "active_member_days", *DAY_COUNTERS)


@dataclass(frozen=True, slots=True)
class ActivityPeriod:
    period_start: date
    complete: bool
    active_members: int  # members with a purchase or a redemption in the period
    purchasers: int
    redeemers: int
    multi_merchant_members: int  # active at 2+ of the partners in scope
    active_member_days: int  # sum over members of their active days
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


def _needs_days(filters: Filters) -> bool:
    return len(filters.merchant_ids) > 1


def _scoped_days(filters: Filters, grain: Grain) -> tuple[Select, ColumnElement]:
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


def _per_member_period(filters: Filters, grain: Grain):
    """One row per member and period: what activity_periods' network rows count, over the
    merchants in scope."""
    d = activity_member_days.c
    active = or_(d.purchases > 0, d.redemptions > 0)
    scoped, period = _scoped_days(filters, grain)
    return (
        scoped.add_columns(
            d.member_id,
            func.bool_or(active).label("active"),
            func.bool_or(d.purchases > 0).label("purchased"),
            func.bool_or(d.redemptions > 0).label("redeemed"),
            (func.count(distinct(d.merchant_id)).filter(active) >= 2).label("multi"),
            func.count(distinct(d.day)).filter(active).label("active_days"),
            *(func.sum(d[name]).label(name) for name in DAY_COUNTERS),
        )
        .group_by(period, d.member_id)
        .subquery("per_member")
    )


def period_statement(grain: Grain, filters: Filters) -> Select:
    """Rows (period_start, *PERIOD_FIELDS) for the periods overlapping the filter."""
    if _needs_days(filters):
        m = _per_member_period(filters, grain).c
        return (
            select(
                m.period_start,
                func.count().filter(m.active).label("active_members"),
                func.count().filter(m.purchased).label("purchasers"),
                func.count().filter(m.redeemed).label("redeemers"),
                func.count().filter(m.multi).label("multi_merchant_members"),
                func.sum(m.active_days).label("active_member_days"),
                *(func.sum(m[name]).label(name) for name in DAY_COUNTERS),
            )
            .group_by(m.period_start)
            .order_by(m.period_start)
        )
    p = activity_periods.c
    merchant = filters.merchant_ids[0] if filters.merchant_ids else NETWORK
    conditions = [p.grain == grain, p.merchant_id == merchant]
    conditions += date_range(p.period_start, filters, grain)
    if filters.tiers:
        conditions.append(p.tier.in_(filters.tiers))
    return (
        select(p.period_start, *(func.sum(p[name]).label(name) for name in PERIOD_FIELDS))
        .where(*conditions)
        .group_by(p.period_start)
        .order_by(p.period_start)
    )


def shape_periods(rows: Sequence[Any], grain: Grain, as_of: date) -> list[ActivityPeriod]:
    return [
        ActivityPeriod(
            period_start=row.period_start,
            complete=complete(row.period_start, grain, as_of),
            **{name: int(getattr(row, name) or 0) for name in PERIOD_FIELDS},
        )
        for row in rows
    ]


def series(grain: Grain, filters: Filters, as_of: date) -> Query[list[ActivityPeriod]]:
    """DAU (grain "day"), WAU ("week"), MAU ("month") and the other per-period activity
    figures. Periods without any activity are absent."""
    return Query(
        (period_statement(grain, filters),), lambda rows: shape_periods(rows, grain, as_of)
    )


@dataclass(frozen=True, slots=True)
class ActiveDaysHistogram:
    period_start: date
    complete: bool
    members_by_days: tuple[tuple[int, int], ...]  # (active days, members), days ascending


def active_days_histogram(
    grain: Grain, filters: Filters, as_of: date
) -> Query[list[ActiveDaysHistogram]]:
    """How many active members had 1, 2, 3... active days in each week or month."""
    if grain == "day":
        raise ValueError("a day has one active day: use week or month")
    if filters.merchant_ids or filters.tiers:
        m = _per_member_period(filters, grain).c
        statement = (
            select(m.period_start, m.active_days, func.count().label("members"))
            .where(m.active_days > 0)
            .group_by(m.period_start, m.active_days)
        )
    else:
        h = activity_active_days.c
        statement = select(h.period_start, h.active_days, h.members).where(
            h.grain == grain, *date_range(h.period_start, filters, grain)
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
