"""Headline counts of the network for the HQ landing page (sync: used by the dashboard)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, func, select

from shared.tables import member_balances, members, merchants, stores


@dataclass(frozen=True, slots=True)
class NetworkSummary:
    active_merchants: int
    suspended_merchants: int
    open_stores: int
    active_members: int
    members_enrolled_last_30_days: int
    points_outstanding: int  # the members' balances: points HQ owes the network


def network_summary(connection: Connection) -> NetworkSummary:
    merchant_counts = dict(
        connection.execute(
            select(merchants.c.status, func.count()).group_by(merchants.c.status)
        ).all()
    )
    return NetworkSummary(
        active_merchants=merchant_counts.get("active", 0),
        suspended_merchants=merchant_counts.get("suspended", 0),
        open_stores=connection.scalar(
            select(func.count()).select_from(stores).where(stores.c.status == "open")
        ),
        active_members=connection.scalar(
            select(func.count()).select_from(members).where(members.c.status == "active")
        ),
        members_enrolled_last_30_days=connection.scalar(
            select(func.count())
            .select_from(members)
            .where(members.c.enrolled_at >= func.now() - func.make_interval(0, 0, 0, 30))
        ),
        points_outstanding=int(
            connection.scalar(select(func.coalesce(func.sum(member_balances.c.balance), 0)))
        ),
    )
