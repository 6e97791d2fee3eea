"""Expiry: lot remainders past expires_at become breakage, attributed to the issuing merchant.

`coalition jobs expire` runs it: batches of members, one database transaction per batch,
each member locked like any other write. Idempotent (an expired remainder is zero) and
resumable (a crash loses at most the batch in flight, which the next run redoes).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.database.driver import driver
from shared.ledger import journal
from shared.ledger.journal import BREAKAGE, MEMBER, Posting
from shared.ledger.redemption import release_expired_holds
from shared.tables import lots


@dataclass(slots=True)
class ExpiryReport:
    members: int = 0
    lots: int = 0
    points: int = 0


def breakage_entries(expired: list[tuple[uuid.UUID | None, int]]) -> tuple[list[Posting], int]:
    """The postings of one member's expiry: the member's loss, breakage per issuing merchant.
    `expired` holds (issuing merchant, free points) per lot."""
    by_issuer: dict[uuid.UUID | None, int] = defaultdict(int)
    for issuer, points in expired:
        by_issuer[issuer] += points
    total = sum(by_issuer.values())
    entries = [Posting(MEMBER, -total)] + [
        Posting(BREAKAGE, points, issuer) for issuer, points in by_issuer.items()
    ]
    return entries, total


async def expire_member(
    connection: AsyncConnection, member_id: uuid.UUID, report: ExpiryReport
) -> None:
    member = await journal.lock_member(connection, member_id)
    await release_expired_holds(connection, member)
    expired = [
        lot
        for lot in await journal.open_lots(connection, member, spendable_only=False)
        if lot.expires_at <= member.now and lot.free > 0
    ]
    if not expired:
        return
    entries, total = breakage_entries([(lot.issuing_merchant_id, lot.free) for lot in expired])
    await journal.post(
        connection,
        member,
        kind="expiry",
        entries=entries,
        activity=False,
        details={"lots": len(expired)},
        consumed=[(lot, lot.free) for lot in expired],
        allocation_kind="expiry",
    )
    report.members += 1
    report.lots += len(expired)
    report.points += total


_DUE_MEMBERS_SQL = """
SELECT DISTINCT member_id FROM lots
WHERE expires_at <= now() AND remaining > reserved
LIMIT $1
"""
_LOCK_SQL = """
SELECT member_id FROM member_balances WHERE member_id = ANY($1::uuid[])
FOR UPDATE SKIP LOCKED
"""
_EXPIRED_HOLDS_SQL = """
SELECT DISTINCT member_id FROM holds
WHERE member_id = ANY($1::uuid[]) AND status = 'active' AND expires_at <= now()
"""
_EXPIRED_LOTS_SQL = """
SELECT member_id, lot_id, issuing_merchant_id, remaining - reserved AS free, now() AS now
FROM lots
WHERE member_id = ANY($1::uuid[]) AND expires_at <= now() AND remaining > reserved
ORDER BY member_id, expires_at, lot_id
"""


async def expire_due_lots(engine: AsyncEngine, batch_size: int = 5000) -> ExpiryReport:
    """Set-based: per batch of members, a handful of statements whatever the batch size.

    Members busy in another transaction are skipped (SKIP LOCKED) and picked up by the
    next run; members with a hold past its TTL take the per-member path first, so that
    the released points expire in the same run."""
    report = ExpiryReport()
    while True:
        async with engine.begin() as connection:
            database = await driver(connection)
            due = [row["member_id"] for row in await database.fetch(_DUE_MEMBERS_SQL, batch_size)]
            locked = [row["member_id"] for row in await database.fetch(_LOCK_SQL, due)]
            for row in await database.fetch(_EXPIRED_HOLDS_SQL, locked):
                member = await journal.lock_member(connection, row["member_id"])
                await release_expired_holds(connection, member)
            rows = await database.fetch(_EXPIRED_LOTS_SQL, locked)
            by_member: dict[uuid.UUID, list] = defaultdict(list)
            for row in rows:
                by_member[row["member_id"]].append(row)
            batch = []
            for member_id, expired in by_member.items():
                entries, total = breakage_entries(
                    [(lot["issuing_merchant_id"], lot["free"]) for lot in expired]
                )
                batch.append(
                    journal.BatchTransaction(
                        member_id=member_id,
                        entries=entries,
                        taken=[
                            (lot["lot_id"], lot["free"], lot["issuing_merchant_id"])
                            for lot in expired
                        ],
                        details={"lots": len(expired)},
                    )
                )
                report.members += 1
                report.lots += len(expired)
                report.points += total
            if rows:
                await journal.post_batch(
                    connection,
                    kind="expiry",
                    allocation_kind="expiry",
                    now=rows[0]["now"],
                    batch=batch,
                )
        if len(due) < batch_size or not locked:
            return report


@dataclass(frozen=True, slots=True)
class ExpiringSoon:
    member_id: uuid.UUID
    points: int
    first_expiry_at: object


async def expiring_within(
    connection: AsyncConnection, days: int = 30, limit: int = 1000, offset: int = 0
) -> list[ExpiringSoon]:
    """Members with points expiring in the next `days` (win-back and reminder lists)."""
    now = func.now()
    rows = await connection.execute(
        select(
            lots.c.member_id,
            func.sum(lots.c.remaining - lots.c.reserved).label("points"),
            func.min(lots.c.expires_at).label("first_expiry_at"),
        )
        .where(
            lots.c.remaining > lots.c.reserved,
            lots.c.expires_at > now,
            lots.c.expires_at <= now + timedelta(days=days),
        )
        .group_by(lots.c.member_id)
        .order_by(func.min(lots.c.expires_at), lots.c.member_id)
        .limit(limit)
        .offset(offset)
    )
    return [ExpiringSoon(row.member_id, int(row.points), row.first_expiry_at) for row in rows]
