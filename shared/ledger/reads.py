"""What members and merchants read: balance, history, lots.

Reads take no lock. Holds past their TTL count as released and lots past expires_at as
expired at read time, even before the expiry job has posted them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.access import Principal
from shared.errors import NotFound
from shared.ledger.rules import SOURCE_ORDER
from shared.tables import (
    hold_reservations,
    holds,
    ledger_transactions,
    lots,
    member_balances,
    members,
)


def _spending_rank(source):
    """rules.spending_order's tie-break by source, in SQL."""
    ranks = {name: rank for rank, name in enumerate(SOURCE_ORDER)}
    return case(ranks, value=source, else_=len(SOURCE_ORDER))


@dataclass(frozen=True, slots=True)
class Balance:
    member_id: uuid.UUID
    total: int  # points in unexpired lots, plus points active holds keep from expiring
    available: int  # total - held - pending - debt (never below zero)
    pending: int
    held: int
    debt: int
    next_expiry_at: datetime | None
    next_expiry_points: int
    tier: str
    as_of: datetime


async def balance(connection: AsyncConnection, member_id: uuid.UUID) -> Balance:
    now = func.now()
    live = and_(lots.c.member_id == member_id, lots.c.remaining > 0, lots.c.expires_at > now)
    lot_totals = (
        await connection.execute(
            select(
                func.coalesce(func.sum(lots.c.remaining), 0).label("total"),
                func.coalesce(
                    func.sum(case((lots.c.available_at > now, lots.c.remaining), else_=0)), 0
                ).label("pending"),
                func.min(lots.c.expires_at).label("next_expiry_at"),
            ).where(live)
        )
    ).one()
    # Points an active hold reserves do not expire while it lasts (it may still capture
    # them), so a reserved lot past expires_at still counts its reserved part in the total;
    # otherwise `held` would take those points off `available` a second time.
    held_totals = (
        await connection.execute(
            select(
                func.coalesce(func.sum(hold_reservations.c.points), 0).label("held"),
                func.coalesce(
                    func.sum(case((lots.c.expires_at <= now, hold_reservations.c.points), else_=0)),
                    0,
                ).label("held_in_expired_lots"),
            )
            .select_from(
                hold_reservations.join(
                    holds,
                    and_(
                        holds.c.member_id == hold_reservations.c.member_id,
                        holds.c.hold_id == hold_reservations.c.hold_id,
                    ),
                ).join(
                    lots,
                    and_(
                        lots.c.member_id == hold_reservations.c.member_id,
                        lots.c.lot_id == hold_reservations.c.lot_id,
                    ),
                )
            )
            .where(
                hold_reservations.c.member_id == member_id,
                holds.c.status == "active",
                holds.c.expires_at > now,
            )
        )
    ).one()
    member = (
        await connection.execute(
            select(members.c.tier, member_balances.c.debt, now.label("now"))
            .select_from(
                members.join(member_balances, member_balances.c.member_id == members.c.member_id)
            )
            .where(members.c.member_id == member_id)
        )
    ).one_or_none()
    if member is None:
        raise NotFound(f"Member {member_id} does not exist.")
    next_points = 0
    if lot_totals.next_expiry_at is not None:
        next_points = await connection.scalar(
            select(func.sum(lots.c.remaining)).where(
                live,
                func.date_trunc("day", lots.c.expires_at)
                == func.date_trunc("day", lot_totals.next_expiry_at),
            )
        )
    total, pending, held, debt = (
        int(lot_totals.total) + int(held_totals.held_in_expired_lots),
        int(lot_totals.pending),
        int(held_totals.held),
        int(member.debt),
    )
    return Balance(
        member_id=member_id,
        total=total,
        available=max(total - held - pending - debt, 0),
        pending=pending,
        held=held,
        debt=debt,
        next_expiry_at=lot_totals.next_expiry_at,
        next_expiry_points=int(next_points or 0),
        tier=member.tier,
        as_of=member.now,
    )


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    transaction_id: uuid.UUID
    kind: str
    points: int
    merchant_id: uuid.UUID | None
    store_id: uuid.UUID | None
    occurred_at: datetime
    posted_at: datetime
    amount_minor: int | None
    currency: str | None
    original_transaction_id: uuid.UUID | None
    external_reference: str | None
    reason: str | None
    details: dict


async def history(
    connection: AsyncConnection,
    viewer: Principal,
    member_id: uuid.UUID,
    *,
    kinds: list[str] | None,
    merchant_id: uuid.UUID | None,
    posted_from: datetime | None,
    posted_to: datetime | None,
    limit: int,
    offset: int,
) -> tuple[list[HistoryEntry], int]:
    """Newest first. A merchant sees only the transactions posted at its own tills."""
    conditions = [ledger_transactions.c.member_id == member_id]
    if not viewer.is_hq:
        conditions.append(ledger_transactions.c.merchant_id == viewer.merchant_id)
    if merchant_id is not None:
        conditions.append(ledger_transactions.c.merchant_id == merchant_id)
    if kinds:
        conditions.append(ledger_transactions.c.kind.in_(kinds))
    if posted_from is not None:
        conditions.append(ledger_transactions.c.posted_at >= posted_from)
    if posted_to is not None:
        conditions.append(ledger_transactions.c.posted_at < posted_to)
    columns = [getattr(ledger_transactions.c, name) for name in HistoryEntry.__slots__]
    rows = await connection.execute(
        select(*columns)
        .where(*conditions)
        .order_by(ledger_transactions.c.posted_at.desc(), ledger_transactions.c.transaction_id)
        .limit(limit)
        .offset(offset)
    )
    total = await connection.scalar(
        select(func.count()).select_from(ledger_transactions).where(*conditions)
    )
    return [HistoryEntry(**row._mapping) for row in rows], int(total)


@dataclass(frozen=True, slots=True)
class LotView:
    lot_id: uuid.UUID
    source: str
    issuing_merchant_id: uuid.UUID | None
    funder_merchant_id: uuid.UUID | None
    earned_at: datetime
    available_at: datetime
    expires_at: datetime
    original: int
    remaining: int
    reserved: int


async def open_lots(connection: AsyncConnection, member_id: uuid.UUID) -> list[LotView]:
    columns = [getattr(lots.c, name) for name in LotView.__slots__]
    rows = await connection.execute(
        select(*columns)
        .where(lots.c.member_id == member_id, lots.c.remaining > 0, lots.c.expires_at > func.now())
        .order_by(lots.c.expires_at, lots.c.earned_at, _spending_rank(lots.c.source), lots.c.lot_id)
    )
    return [LotView(**row._mapping) for row in rows]
