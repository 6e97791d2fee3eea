"""Posting primitives: lock a member, post a balanced transaction, create and consume lots.

Every write locks exactly one member_balances row (SELECT ... FOR UPDATE) for the rest of
its transaction; merchant and network accounts have no balance row, so concurrent writes
for different members never wait for each other.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.database.driver import driver
from shared.errors import MemberNotActive, NotFound
from shared.ledger.rules import SpendableLot, first_to_expire
from shared.tables import allocations, lots

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


# The select list of a statement that locks member `m`'s balance row `b` (FOR UPDATE OF b):
# LockedMember's fields, and whether `b` was read as the last write left it (fetch_locked).
LOCKED_MEMBER_COLUMNS = """m.member_id, m.status, m.tier, m.tier_valid_until, m.enrolled_at,
       m.referred_by_member_id, m.merged_into_member_id, b.balance, b.debt, now() AS now,
       b.xmin = (SELECT b2.xmin FROM member_balances b2 WHERE b2.member_id = m.member_id)
         AS read_after_last_write"""
_LOCK_MEMBER_SQL = f"""
SELECT {LOCKED_MEMBER_COLUMNS}
FROM members m
JOIN member_balances b ON b.member_id = m.member_id
WHERE m.member_id = $1
FOR UPDATE OF b
"""


async def fetch_locked(connection: AsyncConnection, statement: str, *arguments: Any) -> Any:
    """The row of a statement with LOCKED_MEMBER_COLUMNS, read as of the lock.

    The statement reads one snapshot, taken before the lock is granted. When a write of the
    same member commits while this one waits for it, the balance row comes back as that
    write left it, but everything else as it was before it. A write that moved the balance
    gave the balance row a new version (its xmin), which the snapshot's view of the row
    lacks: then the statement runs again, under the lock now held, and reads everything as
    it is (otherwise two concurrent earns that together reach a tier would each miss the
    other's points, and a refund that waited for its member's merge would post on the
    merged member)."""
    database = await driver(connection)
    row = await database.fetchrow(statement, *arguments)
    if row is not None and not row["read_after_last_write"]:
        row = await database.fetchrow(statement, *arguments)  # a fresh snapshot, locked
    return row


def locked_member(row: Any) -> LockedMember:
    return LockedMember(**{name: row[name] for name in LockedMember.__slots__})


async def lock_member(connection: AsyncConnection, member_id: uuid.UUID) -> LockedMember:
    """The member with its balance row locked, as of the lock (fetch_locked)."""
    row = await fetch_locked(connection, _LOCK_MEMBER_SQL, member_id)
    if row is None:
        raise NotFound(f"Member {member_id} does not exist.")
    return locked_member(row)


def require_active(member: LockedMember) -> None:
    if member.status == "active":
        return
    extensions: dict[str, Any] = {"memberStatus": member.status}
    if member.merged_into_member_id is not None:
        extensions["mergedIntoMemberId"] = str(member.merged_into_member_id)
    raise MemberNotActive(f"The member is {member.status}.", **extensions)


_POST_SQL = """
WITH tx AS (
    INSERT INTO ledger_transactions (member_id, transaction_id, kind, merchant_id, store_id,
        occurred_at, posted_at, points, amount_minor, currency, original_transaction_id, hold_id,
        counterparty_member_id, external_reference, reason, actor_key_id, details)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17::jsonb)
), entries AS (
    INSERT INTO postings (member_id, transaction_id, line, account, merchant_id, amount, posted_at)
    SELECT $1, $2, e.line, e.account, e.merchant_id, e.amount, $7
    FROM unnest($18::bigint[], $19::text[], $20::uuid[], $21::bigint[])
        AS e(line, account, merchant_id, amount)
), new_lots AS (
    INSERT INTO lots (member_id, lot_id, transaction_id, source, issuing_merchant_id,
        funder_merchant_id, campaign_id, earned_at, available_at, expires_at, original, remaining,
        origin_lot_id)
    SELECT $1, l.lot_id, $2, l.source, l.issuing, l.funder, l.campaign, l.earned_at,
        l.available_at, l.expires_at, l.original, l.remaining, l.origin
    FROM unnest($22::uuid[], $23::text[], $24::uuid[], $25::uuid[], $26::uuid[],
        $27::timestamptz[], $28::timestamptz[], $29::timestamptz[], $30::bigint[], $31::bigint[],
        $32::uuid[])
        AS l(lot_id, source, issuing, funder, campaign, earned_at, available_at, expires_at,
             original, remaining, origin)
)
UPDATE member_balances SET
    balance = balance + $8,
    debt = debt + $33,
    lifetime_earned = lifetime_earned + $34,
    lifetime_redeemed = lifetime_redeemed + $35,
    last_activity_at = CASE WHEN $36 THEN $7 ELSE last_activity_at END,
    updated_at = $7
WHERE member_id = $1
"""
# Points taken from member $1's lots (negative: given back) for transaction $2, recorded as
# allocations: two parts of a statement, formatted with the placeholders of its arguments.
_CONSUMPTION_CTES = """taken AS (
    INSERT INTO allocations (member_id, transaction_id, lot_id, kind, points,
        issuing_merchant_id, redeeming_merchant_id, posted_at)
    SELECT $1, $2, a.lot_id, {kind}, a.points, a.issuer, {redeemer}, {now}
    FROM unnest({lots}::uuid[], {points}::bigint[], {issuers}::uuid[])
        AS a(lot_id, points, issuer)
), consumed AS (
    UPDATE lots SET remaining = lots.remaining - a.points
    FROM unnest({lots}::uuid[], {points}::bigint[]) AS a(lot_id, points)
    WHERE lots.member_id = $1 AND lots.lot_id = a.lot_id
)"""
# The posting that also takes points from existing lots: a redemption, a clawback or an
# expiry in one round trip.
_POST_CONSUMING_SQL = _POST_SQL.replace(
    "\n)\nUPDATE member_balances SET",
    "\n), "
    + _CONSUMPTION_CTES.format(
        now="$7", kind="$37", redeemer="$38", lots="$39", points="$40", issuers="$41"
    )
    + "\nUPDATE member_balances SET",
)
assert _POST_CONSUMING_SQL != _POST_SQL
# Debt repaid from the member's free points: the lots and the debt fall together.
_REPAY_DEBT_SQL = (
    "WITH "
    + _CONSUMPTION_CTES.format(
        now="$3", kind="$4", redeemer="NULL::uuid", lots="$5", points="$6", issuers="$7"
    )
    + "\nUPDATE member_balances SET debt = debt - $8 WHERE member_id = $1"
)

_TRANSACTION_COLUMNS = (
    "merchant_id", "store_id", "amount_minor", "currency", "original_transaction_id", "hold_id",
    "counterparty_member_id", "external_reference", "reason", "actor_key_id", "details",
)  # fmt: skip


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
    new_lots: Sequence[NewLot] = (),
    repaid: Sequence[int] | None = None,
    consumed: Sequence[tuple[OpenLot, int]] = (),
    allocation_kind: str | None = None,
    redeeming_merchant_id: uuid.UUID | None = None,
    **columns: Any,
) -> uuid.UUID:
    """Append one balanced transaction, its postings and any new lots, and move the member's
    stored balance with it: one statement, one round trip.

    `consumed` takes the plan's points from existing lots (negative: gives them back),
    recorded as `allocation_kind` allocations, in the same statement.

    `repaid[i]` points of new lot i go straight to the member's debt (debt_delta must
    include them); they are recorded as debt_repayment allocations.
    """
    if sum(entry.amount for entry in entries) != 0:
        raise AssertionError(f"unbalanced {kind} transaction: {entries}")
    unknown = set(columns) - set(_TRANSACTION_COLUMNS)
    if unknown:
        raise TypeError(f"unknown transaction columns: {unknown}")
    delta = sum(entry.amount for entry in entries if entry.account == MEMBER)
    transaction_id = transaction_id or uuid.uuid4()
    lines = [(line, entry) for line, entry in enumerate(entries, start=1) if entry.amount != 0]
    repaid = list(repaid or [0] * len(new_lots))
    lots_made = [
        (lot, repayment) for lot, repayment in zip(new_lots, repaid, strict=True) if lot.points > 0
    ]
    taken = [(lot, points) for lot, points in consumed if points != 0]
    if taken and allocation_kind is None:
        raise TypeError("consuming lots needs an allocation_kind")
    consuming = (
        (
            allocation_kind,
            redeeming_merchant_id,
            [lot.lot_id for lot, _ in taken],
            [points for _, points in taken],
            [lot.issuing_merchant_id for lot, _ in taken],
        )
        if taken
        else ()
    )
    await (await driver(connection)).execute(
        _POST_CONSUMING_SQL if taken else _POST_SQL,
        member.member_id,
        transaction_id,
        kind,
        columns.get("merchant_id"),
        columns.get("store_id"),
        occurred_at or member.now,
        member.now,
        delta,
        columns.get("amount_minor"),
        columns.get("currency"),
        columns.get("original_transaction_id"),
        columns.get("hold_id"),
        columns.get("counterparty_member_id"),
        columns.get("external_reference"),
        columns.get("reason"),
        columns.get("actor_key_id"),
        json.dumps(columns.get("details") or {}),
        [line for line, _ in lines],
        [entry.account for _, entry in lines],
        [entry.merchant_id for _, entry in lines],
        [entry.amount for _, entry in lines],
        [lot.lot_id for lot, _ in lots_made],
        [lot.source for lot, _ in lots_made],
        [lot.issuing_merchant_id for lot, _ in lots_made],
        [lot.funder_merchant_id for lot, _ in lots_made],
        [lot.campaign_id for lot, _ in lots_made],
        [lot.earned_at for lot, _ in lots_made],
        [lot.available_at for lot, _ in lots_made],
        [lot.expires_at for lot, _ in lots_made],
        [lot.points for lot, _ in lots_made],
        [lot.points - repayment for lot, repayment in lots_made],
        [lot.origin_lot_id for lot, _ in lots_made],
        debt_delta,
        earned,
        redeemed,
        activity,
        *consuming,
    )
    member.balance += delta
    member.debt += debt_delta
    repayments = [
        (lot.lot_id, repayment, lot.issuing_merchant_id)
        for lot, repayment in lots_made
        if repayment > 0
    ]
    if repayments:
        await _insert_allocations(connection, member, transaction_id, "debt_repayment", repayments)
    return transaction_id


# A lot of `l` as OpenLot's fields, in order, for statements that read lots as records.
OPEN_LOT_FIELDS = ", ".join(f"l.{name}" for name in OpenLot.__slots__)
# The same columns for SQLAlchemy Core selects, and the OpenLot of a row that has them.
OPEN_LOT_COLUMNS = tuple(lots.c[name] for name in OpenLot.__slots__)


def open_lot(row: Any) -> OpenLot:
    return OpenLot(**{name: row._mapping[name] for name in OpenLot.__slots__})


# Lot `l` is one member $1 can spend at $2.
SPENDABLE_LOT = """l.member_id = $1 AND l.remaining > 0 AND l.remaining > l.reserved
    AND l.available_at <= $2 AND l.expires_at > $2"""
# Every lot member $1 can spend at $2, as one array of OpenLot records.
SPENDABLE_LOTS_SQL = f"SELECT array_agg(ROW({OPEN_LOT_FIELDS})) FROM lots l WHERE {SPENDABLE_LOT}"


async def open_lots(
    connection: AsyncConnection, member: LockedMember, *, spendable_only: bool
) -> list[OpenLot]:
    if spendable_only:
        found = await (await driver(connection)).fetchval(
            SPENDABLE_LOTS_SQL, member.member_id, member.now
        )
        return [OpenLot(*lot) for lot in found or ()]
    # A merge copies the lots in this order: one that depends on the ledger alone, not on
    # where the rows lie in the table, so that the same merge replays to the same copies.
    query = (
        select(*OPEN_LOT_COLUMNS)
        .where(lots.c.member_id == member.member_id, lots.c.remaining > 0)
        .order_by(lots.c.expires_at, lots.c.earned_at, lots.c.lot_id)
    )
    return [open_lot(row) for row in await connection.execute(query)]


def plan_first_to_expire(candidates: Sequence[OpenLot], points: int) -> list[tuple[OpenLot, int]]:
    by_id = {lot.lot_id: lot for lot in candidates}
    plan = first_to_expire(
        [
            SpendableLot(lot.lot_id, lot.free, lot.expires_at, lot.earned_at, lot.source)
            for lot in candidates
        ],
        points,
    )
    return [(by_id[lot_id], take) for lot_id, take in plan]


async def _insert_allocations(
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
    await (await driver(connection)).execute(
        _REPAY_DEBT_SQL,
        member.member_id,
        transaction_id,
        member.now,
        "debt_repayment",
        [lot.lot_id for lot, _ in plan],
        [take for _, take in plan],
        [lot.issuing_merchant_id for lot, _ in plan],
        repay,
    )
    member.debt -= repay


@dataclass(frozen=True, slots=True)
class BatchTransaction:
    """One member's transaction in a set-based write (jobs, bulk loads): postings and the
    lot points it takes (allocations of one kind)."""

    member_id: uuid.UUID
    entries: Sequence[Posting]
    taken: Sequence[tuple[uuid.UUID, int, uuid.UUID | None]]  # lot, points, issuing merchant
    details: dict = field(default_factory=dict)
    transaction_id: uuid.UUID = field(default_factory=uuid.uuid4)


_POST_BATCH_SQL = """
WITH tx AS (
    INSERT INTO ledger_transactions (member_id, transaction_id, kind, occurred_at, posted_at,
        points, details)
    SELECT t.member_id, t.transaction_id, $1, $2, $2, t.points, t.details::jsonb
    FROM unnest($3::uuid[], $4::uuid[], $5::bigint[], $6::text[])
        AS t(member_id, transaction_id, points, details)
), entries AS (
    INSERT INTO postings (member_id, transaction_id, line, account, merchant_id, amount, posted_at)
    SELECT e.member_id, e.transaction_id, e.line, e.account, e.merchant_id, e.amount, $2
    FROM unnest($7::uuid[], $8::uuid[], $9::bigint[], $10::text[], $11::uuid[], $12::bigint[])
        AS e(member_id, transaction_id, line, account, merchant_id, amount)
), taken AS (
    INSERT INTO allocations (member_id, transaction_id, lot_id, kind, points, issuing_merchant_id,
        posted_at)
    SELECT a.member_id, a.transaction_id, a.lot_id, $13, a.points, a.issuer, $2
    FROM unnest($14::uuid[], $15::uuid[], $16::uuid[], $17::bigint[], $18::uuid[])
        AS a(member_id, transaction_id, lot_id, points, issuer)
), lot_updates AS (
    UPDATE lots SET remaining = lots.remaining - a.points
    FROM unnest($14::uuid[], $16::uuid[], $17::bigint[]) AS a(member_id, lot_id, points)
    WHERE lots.member_id = a.member_id AND lots.lot_id = a.lot_id
)
UPDATE member_balances SET balance = member_balances.balance + t.points, updated_at = $2
FROM unnest($3::uuid[], $5::bigint[]) AS t(member_id, points)
WHERE member_balances.member_id = t.member_id
"""


async def post_batch(
    connection: AsyncConnection,
    *,
    kind: str,
    allocation_kind: str,
    now: datetime,
    batch: Sequence[BatchTransaction],
) -> None:
    """The same rows `post(consumed=...)` writes, for many members in one statement.

    The caller holds the members' locks. Each member appears once per batch (a lot is
    updated once per statement)."""
    if not batch:
        return
    for item in batch:
        if sum(entry.amount for entry in item.entries) != 0:
            raise AssertionError(f"unbalanced {kind} transaction: {item.entries}")
    lines = [
        (item, line, entry)
        for item in batch
        for line, entry in enumerate(item.entries, start=1)
        if entry.amount != 0
    ]
    taken = [
        (item, lot_id, points, issuer) for item in batch for lot_id, points, issuer in item.taken
    ]
    await (await driver(connection)).execute(
        _POST_BATCH_SQL,
        kind,
        now,
        [item.member_id for item in batch],
        [item.transaction_id for item in batch],
        [sum(e.amount for e in item.entries if e.account == MEMBER) for item in batch],
        [json.dumps(item.details) for item in batch],
        [item.member_id for item, _, _ in lines],
        [item.transaction_id for item, _, _ in lines],
        [line for _, line, _ in lines],
        [entry.account for _, _, entry in lines],
        [entry.merchant_id for _, _, entry in lines],
        [entry.amount for _, _, entry in lines],
        allocation_kind,
        [item.member_id for item, _, _, _ in taken],
        [item.transaction_id for item, _, _, _ in taken],
        [lot_id for _, lot_id, _, _ in taken],
        [points for _, _, points, _ in taken],
        [issuer for _, _, _, issuer in taken],
    )
