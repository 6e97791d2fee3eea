"""Posting primitives: lock a member, post a balanced transaction, create and consume lots.

Every write locks exactly one member_balances row (SELECT ... FOR UPDATE) for the rest of
its transaction; merchant and network accounts have no balance row, so concurrent writes
for different members never wait for each other.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.errors import MemberNotActive, NotFound
from shared.ledger.rules import SpendableLot, first_to_expire
from shared.tables import allocations, ledger_transactions, lots, member_balances, members, postings

MEMBER = "member"
ISSUED = "issued"  # points a funder issued (merchant pays HQ per point; NULL merchant: HQ)
REDEEMED = "redeemed"  # points taken as tender at a merchant (HQ reimburses the merchant)
BREAKAGE = "breakage"  # expired points, attributed to the issuing merchant
ADJUSTMENT = "adjustment"  # HQ's manual corrections
TRANSFER_CLEARING = "transfer_clearing"  # member-to-member transfers and merges


@dataclass(frozen=True, slots=True)
class Posting:
    account: str
    amount: int
    merchant_id: uuid.UUID | None = None


@dataclass(slots=True)
class LockedMember:
    member_id: uuid.UUID
    status: str
    tier: str
    tier_valid_until: datetime | None
    enrolled_at: datetime
    referred_by_member_id: uuid.UUID | None
    merged_into_member_id: uuid.UUID | None
    balance: int
    debt: int
    now: datetime  # the transaction's clock: every timestamp of this write uses it


@dataclass(frozen=True, slots=True)
class NewLot:
    source: str
    points: int
    issuing_merchant_id: uuid.UUID | None
    funder_merchant_id: uuid.UUID | None
    earned_at: datetime
    available_at: datetime
    expires_at: datetime
    campaign_id: uuid.UUID | None = None
    origin_lot_id: uuid.UUID | None = None
    lot_id: uuid.UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True, slots=True)
class OpenLot:
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

    @property
    def free(self) -> int:
        return self.remaining - self.reserved


async def lock_member(connection: AsyncConnection, member_id: uuid.UUID) -> LockedMember:
    row = (
        await connection.execute(
            select(
                members.c.member_id,
                members.c.status,
                members.c.tier,
                members.c.tier_valid_until,
                members.c.enrolled_at,
                members.c.referred_by_member_id,
                members.c.merged_into_member_id,
                member_balances.c.balance,
                member_balances.c.debt,
                func.now().label("now"),
            )
            .select_from(
                members.join(member_balances, member_balances.c.member_id == members.c.member_id)
            )
            .where(members.c.member_id == member_id)
            .with_for_update(of=member_balances)
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"Member {member_id} does not exist.")
    return LockedMember(**row._mapping)


def require_active(member: LockedMember) -> None:
    if member.status == "active":
        return
    extensions: dict[str, Any] = {"memberStatus": member.status}
    if member.merged_into_member_id is not None:
        extensions["mergedIntoMemberId"] = str(member.merged_into_member_id)
    raise MemberNotActive(f"The member is {member.status}.", **extensions)


async def post(
    connection: AsyncConnection,
    member: LockedMember,
    *,
    kind: str,
    entries: Sequence[Posting],
    transaction_id: uuid.UUID | None = None,
    occurred_at: datetime | None = None,
    debt_delta: int = 0,
    earned: int = 0,
    redeemed: int = 0,
    activity: bool = True,
    **columns: Any,
) -> uuid.UUID:
    """Append one balanced transaction and move the member's stored balance with it."""
    if sum(entry.amount for entry in entries) != 0:
        raise AssertionError(f"unbalanced {kind} transaction: {entries}")
    delta = sum(entry.amount for entry in entries if entry.account == MEMBER)
    transaction_id = transaction_id or uuid.uuid4()
    await connection.execute(
        insert(ledger_transactions).values(
            member_id=member.member_id,
            transaction_id=transaction_id,
            kind=kind,
            occurred_at=occurred_at or member.now,
            posted_at=member.now,
            points=delta,
            **columns,
        )
    )
    rows = [
        {
            "member_id": member.member_id,
            "transaction_id": transaction_id,
            "line": line,
            "account": entry.account,
            "merchant_id": entry.merchant_id,
            "amount": entry.amount,
            "posted_at": member.now,
        }
        for line, entry in enumerate(entries, start=1)
        if entry.amount != 0
    ]
    if rows:  # a zero-point event (a merge of an empty account) is recorded without postings
        await connection.execute(insert(postings), rows)
    values: dict[str, Any] = {
        "balance": member_balances.c.balance + delta,
        "debt": member_balances.c.debt + debt_delta,
        "updated_at": member.now,
    }
    if earned:
        values["lifetime_earned"] = member_balances.c.lifetime_earned + earned
    if redeemed:
        values["lifetime_redeemed"] = member_balances.c.lifetime_redeemed + redeemed
    if activity:
        values["last_activity_at"] = member.now
    await connection.execute(
        update(member_balances)
        .where(member_balances.c.member_id == member.member_id)
        .values(**values)
    )
    member.balance += delta
    member.debt += debt_delta
    return transaction_id


async def insert_lots(
    connection: AsyncConnection,
    member: LockedMember,
    transaction_id: uuid.UUID,
    new_lots: Sequence[NewLot],
    repaid: Sequence[int] | None = None,
) -> None:
    """Create lots; `repaid[i]` points of lot i go straight to the member's debt."""
    repaid = repaid or [0] * len(new_lots)
    rows = [
        {
            "member_id": member.member_id,
            "lot_id": lot.lot_id,
            "transaction_id": transaction_id,
            "source": lot.source,
            "issuing_merchant_id": lot.issuing_merchant_id,
            "funder_merchant_id": lot.funder_merchant_id,
            "campaign_id": lot.campaign_id,
            "earned_at": lot.earned_at,
            "available_at": lot.available_at,
            "expires_at": lot.expires_at,
            "original": lot.points,
            "remaining": lot.points - repayment,
            "origin_lot_id": lot.origin_lot_id,
        }
        for lot, repayment in zip(new_lots, repaid, strict=True)
        if lot.points > 0
    ]
    if rows:
        await connection.execute(insert(lots), rows)
    repayments = [
        (lot, repayment) for lot, repayment in zip(new_lots, repaid, strict=True) if repayment > 0
    ]
    if repayments:
        await insert_allocations(
            connection,
            member,
            transaction_id,
            "debt_repayment",
            [(lot.lot_id, repayment, lot.issuing_merchant_id) for lot, repayment in repayments],
        )


async def open_lots(
    connection: AsyncConnection, member: LockedMember, *, spendable_only: bool
) -> list[OpenLot]:
    query = select(
        lots.c.lot_id,
        lots.c.source,
        lots.c.issuing_merchant_id,
        lots.c.funder_merchant_id,
        lots.c.earned_at,
        lots.c.available_at,
        lots.c.expires_at,
        lots.c.original,
        lots.c.remaining,
        lots.c.reserved,
    ).where(lots.c.member_id == member.member_id, lots.c.remaining > 0)
    if spendable_only:
        query = query.where(
            lots.c.remaining > lots.c.reserved,
            lots.c.available_at <= member.now,
            lots.c.expires_at > member.now,
        )
    return [OpenLot(**row._mapping) for row in await connection.execute(query)]


def plan_first_to_expire(candidates: Sequence[OpenLot], points: int) -> list[tuple[OpenLot, int]]:
    by_id = {lot.lot_id: lot for lot in candidates}
    plan = first_to_expire(
        [SpendableLot(lot.lot_id, lot.free, lot.expires_at, lot.earned_at) for lot in candidates],
        points,
    )
    return [(by_id[lot_id], take) for lot_id, take in plan]


async def consume_lots(
    connection: AsyncConnection,
    member: LockedMember,
    transaction_id: uuid.UUID,
    kind: str,
    plan: Sequence[tuple[OpenLot, int]],
    redeeming_merchant_id: uuid.UUID | None = None,
) -> None:
    """Take points from lots (negative: give them back) and record the allocations."""
    if not plan:
        return
    await connection.execute(
        update(lots)
        .where(lots.c.member_id == bindparam("m_id"), lots.c.lot_id == bindparam("l_id"))
        .values(remaining=lots.c.remaining - bindparam("take")),
        [{"m_id": member.member_id, "l_id": lot.lot_id, "take": take} for lot, take in plan],
    )
    await insert_allocations(
        connection,
        member,
        transaction_id,
        kind,
        [(lot.lot_id, take, lot.issuing_merchant_id) for lot, take in plan],
        redeeming_merchant_id,
    )


async def insert_allocations(
    connection: AsyncConnection,
    member: LockedMember,
    transaction_id: uuid.UUID,
    kind: str,
    items: Sequence[tuple[uuid.UUID, int, uuid.UUID | None]],
    redeeming_merchant_id: uuid.UUID | None = None,
) -> None:
    if not any(points for _, points, _ in items):
        return
    await connection.execute(
        insert(allocations),
        [
            {
                "member_id": member.member_id,
                "transaction_id": transaction_id,
                "lot_id": lot_id,
                "kind": kind,
                "points": points,
                "issuing_merchant_id": issuing_merchant_id,
                "redeeming_merchant_id": redeeming_merchant_id,
                "posted_at": member.now,
            }
            for lot_id, points, issuing_merchant_id in items
            if points != 0
        ],
    )


async def absorb_debt(
    connection: AsyncConnection, member: LockedMember, transaction_id: uuid.UUID
) -> None:
    """Debt is repaid from any free points before they can be spent (pending ones too).

    Balance does not move (lots and debt fall together), so no posting is needed; the
    allocations say which lots repaid it.
    """
    if member.debt <= 0:
        return
    candidates = [
        lot
        for lot in await open_lots(connection, member, spendable_only=False)
        if lot.free > 0 and lot.expires_at > member.now
    ]
    total_free = sum(lot.free for lot in candidates)
    repay = min(total_free, member.debt)
    if repay == 0:
        return
    plan = plan_first_to_expire(candidates, repay)
    await consume_lots(connection, member, transaction_id, "debt_repayment", plan)
    await connection.execute(
        update(member_balances)
        .where(member_balances.c.member_id == member.member_id)
        .values(debt=member_balances.c.debt - repay)
    )
    member.debt -= repay
