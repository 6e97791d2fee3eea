"""The Overview page's figures: a period's headline activity next to the period of the
same length just before it, and its points day by day (sync: the dashboard's engine).

Definitions, all from the ledger (`ledger_transactions`, by `posted_at`):

- active members: members with at least one purchase (earn) or redemption (redeem,
  capture) in the period;
- purchases: earn transactions;
- points issued / redeemed: the lines of the liability roll-forward
  (shared/settlement/liability.py): issued = earn + behaviour + refund clawbacks,
  redeemed = redeem + capture - reversals;
- outstanding points at the end of the period: the members' balances then, i.e. today's
  balances less what was posted since.

The merchants filter selects transactions by the merchant where they happened; it does
not apply to outstanding points, which belong to members, not to merchants (points
earned at one partner are spent at another). The tiers filter selects members by the tier
they hold now, everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Connection, Date, cast, func, select, text

from shared.analytics.filters import Filters
from shared.settlement.liability import ISSUED_KINDS, REDEEMED_KINDS
from shared.tables import ledger_transactions, member_balances, members

ACTIVITY_KINDS = ("earn", "redeem", "capture")  # a purchase, or points spent at a till
PURCHASE_KIND = "earn"

_transactions = ledger_transactions.c


@dataclass(frozen=True, slots=True)
class PeriodFigures:
    active_members: int
    purchases: int
    points_issued: int
    points_redeemed: int
    outstanding_points: int  # at the end of the period


@dataclass(frozen=True, slots=True)
class PeriodComparison:
    current: PeriodFigures
    previous: PeriodFigures  # the same number of days just before


@dataclass(frozen=True, slots=True)
class DayActivity:
    day: date
    purchases: int
    points_issued: int
    points_redeemed: int


def _members_in_tiers(member_id_column, filters: Filters) -> list:
    if not filters.tiers:
        return []
    return [
        member_id_column.in_(select(members.c.member_id).where(members.c.tier.in_(filters.tiers)))
    ]


def _transactions_in_scope(filters: Filters) -> list:
    conditions = _members_in_tiers(_transactions.member_id, filters)
    if filters.merchant_ids:
        conditions.append(_transactions.merchant_id.in_(filters.merchant_ids))
    return conditions


def _issued():
    return func.coalesce(
        func.sum(_transactions.points).filter(_transactions.kind.in_(ISSUED_KINDS)), 0
    )


def _redeemed():
    # Redemptions take points from members: negative postings, shown as positive points.
    return func.coalesce(
        -func.sum(_transactions.points).filter(_transactions.kind.in_(REDEEMED_KINDS)), 0
    )


def _purchases():
    return func.count().filter(_transactions.kind == PURCHASE_KIND)


def outstanding_points_at(
    connection: Connection, moments: list[datetime], filters: Filters
) -> list[int]:
    """The members' balances at each moment: today's balances less what was posted since
    (the ledger's invariant: a balance is the sum of the member's postings)."""
    balances = int(
        connection.scalar(
            select(func.coalesce(func.sum(member_balances.c.balance), 0)).where(
                *_members_in_tiers(member_balances.c.member_id, filters)
            )
        )
    )
    posted_since = connection.execute(
        select(
            *(
                func.coalesce(
                    func.sum(_transactions.points).filter(_transactions.posted_at >= moment), 0
                )
                for moment in moments
            )
        ).where(
            _transactions.posted_at >= min(moments),
            *_members_in_tiers(_transactions.member_id, filters),
        )
    ).one()
    return [balances - int(points) for points in posted_since]


def period_comparison(connection: Connection, filters: Filters) -> PeriodComparison:
    """The period's figures and those of the period of the same length before it, read in
    one pass over the two periods' transactions."""
    previous = filters.previous()
    in_current = (_transactions.posted_at >= filters.starts_at).label("in_current")
    rows = {
        row.in_current: row
        for row in connection.execute(
            select(
                in_current,
                func.count(_transactions.member_id.distinct())
                .filter(_transactions.kind.in_(ACTIVITY_KINDS))
                .label("active_members"),
                _purchases().label("purchases"),
                _issued().label("points_issued"),
                _redeemed().label("points_redeemed"),
            )
            .where(
                _transactions.posted_at >= previous.starts_at,
                _transactions.posted_at < filters.ends_at,
                *_transactions_in_scope(filters),
            )
            .group_by(in_current)
        )
    }
    outstanding = outstanding_points_at(connection, [filters.ends_at, previous.ends_at], filters)

    def figures(row, outstanding_points: int) -> PeriodFigures:
        if row is None:
            return PeriodFigures(0, 0, 0, 0, outstanding_points)
        return PeriodFigures(
            active_members=int(row.active_members),
            purchases=int(row.purchases),
            points_issued=int(row.points_issued),
            points_redeemed=int(row.points_redeemed),
            outstanding_points=outstanding_points,
        )

    return PeriodComparison(
        current=figures(rows.get(True), outstanding[0]),
        previous=figures(rows.get(False), outstanding[1]),
    )


def daily_activity(connection: Connection, filters: Filters) -> list[DayActivity]:
    """Every day of the period (days without activity included, as zeros)."""
    day = cast(func.timezone(filters.time_zone, _transactions.posted_at), Date).label("day")
    rows = connection.execute(
        select(
            day,
            _purchases().label("purchases"),
            _issued().label("points_issued"),
            _redeemed().label("points_redeemed"),
        )
        .where(
            _transactions.posted_at >= filters.starts_at,
            _transactions.posted_at < filters.ends_at,
            *_transactions_in_scope(filters),
        )
        # By output name: the time zone is a bound parameter, and PostgreSQL would not
        # match a repeated expression with a second parameter to the select list.
        .group_by(text("day"))
    )
    by_day = {row.day: row for row in rows}
    result = []
    for offset in range(filters.days):
        current = filters.first_day + timedelta(days=offset)
        row = by_day.get(current)
        result.append(
            DayActivity(
                day=current,
                purchases=int(row.purchases) if row else 0,
                points_issued=int(row.points_issued) if row else 0,
                points_redeemed=int(row.points_redeemed) if row else 0,
            )
        )
    return result
