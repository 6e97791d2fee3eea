"""Headline counts of the network for the HQ landing page (sync: used by the dashboard)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, func, select

from shared.tables import members, merchants, stores


@dataclass(frozen=True, slots=True)
class NetworkSummary:
    active_merchants: int
    suspended_merchants: int
    open_stores: int
    active_members: int


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
    )
