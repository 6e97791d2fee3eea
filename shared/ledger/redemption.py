"""Spending points: redemption as tender, points + cash, and holds (reserve, capture, void).

A hold reserves points on specific lots (first-to-expire first) so that they can neither
be spent elsewhere nor expire while the hold is active. An active hold past its TTL is
treated as released by every read and every write of that member, and is finalised by
`coalition jobs expire`.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.access import Principal
from shared.database.driver import driver
from shared.errors import (
    BelowMinimumRedemption,
    CurrencyMismatch,
    HoldNotActive,
    InsufficientPoints,
    InvalidInput,
    NotFound,
)
from shared.ledger import journal
from shared.ledger.context import LockingRead, merchant_terms, require_store
from shared.ledger.journal import MEMBER, REDEEMED, LockedMember, OpenLot, Posting
from shared.ledger.rules import (
    NotEnoughPoints,
    payable_by_points,
    points_and_cash,
    points_value_minor,
)
from shared.members import MemberRef
from shared.program import ProgramRules
from shared.tables import holds


@dataclass(frozen=True, slots=True)
class RedemptionResult:
    transaction_id: uuid.UUID
    member_id: uuid.UUID
    points: int
    value_minor: int  # what the points paid for
    cash_minor: int  # what is left to pay in cash (points + cash)
    currency: str
    balance: int


@dataclass(frozen=True, slots=True)
class HoldView:
    hold_id: uuid.UUID
    member_id: uuid.UUID
    merchant_id: uuid.UUID
    points: int
    status: str
    created_at: datetime
    expires_at: datetime
    captured_points: int | None
    capture_transaction_id: uuid.UUID | None


async def release_expired_holds(connection: AsyncConnection, member: LockedMember) -> int:
    """Release the member's holds past their TTL; returns how many."""
    expired = (
        await connection.scalars(
            select(holds.c.hold_id).where(
                holds.c.member_id == member.member_id,
                holds.c.status == "active",
                holds.c.expires_at <= member.now,
            )
        )
    ).all()
    for hold_id in expired:
        await _release_and_close(connection, member, hold_id, "expired")
        await _repay_debt(connection, member, hold_id)
    return len(expired)


async def _repay_debt(
    connection: AsyncConnection, member: LockedMember, transaction_id: uuid.UUID
) -> None:
    """A refund cannot claw back points a hold reserves, so they become debt; once the hold
    lets them go they repay it before anything else (a member in debt has no free points).
    No ledger transaction moves the balance here, so a void or an expiry names the hold as
    the allocations' transaction."""
    await journal.absorb_debt(connection, member, transaction_id)


def _refuse_while_in_debt(member: LockedMember, requested: int) -> None:
    if member.debt > 0:
        raise InsufficientPoints(
            "The member owes points from a refund; earnings repay it first.",
            available=0,
            requested=requested,
            debt=member.debt,
        )


_SPEND_CONTEXT = LockingRead()
# A spend reads the member's lots first-to-expire, this many at most; all of them only when
# those cannot pay it (enough_first_lots).
FIRST_LOTS_READ = 64


@functools.cache
def spending_sql(first_lots: int) -> str:
    """After the lock: whether a hold of the member has run out (then the slow path releases
    it first), the free points of every lot the member can spend now, and its first
    `first_lots` spendable lots by expiry. A function of the limit, read at each call, so
    that tests can read fewer lots than FIRST_LOTS_READ."""
    return f"""
SELECT EXISTS (SELECT 1 FROM holds h WHERE h.member_id = $1 AND h.status = 'active'
               AND h.expires_at <= $2) AS holds_ran_out,
       (SELECT coalesce(sum(l.remaining - l.reserved), 0)::bigint FROM lots l
         WHERE {journal.SPENDABLE_LOT}) AS available,
       (SELECT array_agg(ROW({", ".join(OpenLot.__slots__)})) FROM (
          SELECT {journal.OPEN_LOT_FIELDS} FROM lots l WHERE {journal.SPENDABLE_LOT}
          ORDER BY l.expires_at LIMIT {int(first_lots)}) AS first) AS first_lots
"""


async def _spend_context(
    connection: AsyncConnection,
    actor: Principal,
    merchant_id: uuid.UUID,
    member_ref: MemberRef,
    default_region: str,
    currency: str | None,
    store_id: uuid.UUID | None,
    requested: int,
) -> tuple[LockedMember, list[OpenLot], int]:
    """The member locked, checked active, with lots from which first-to-expire plans
    `requested` points as it would from all of them, and how many points the member can
    spend: two round trips unless one of its holds has run out and must be released first,
    or the spend reaches past the first lots read."""
    context = await _SPEND_CONTEXT.fetch(
        connection, actor, merchant_id, member_ref, default_region, store_id
    )
    terms = merchant_terms(context, merchant_id)
    if currency is not None and currency != terms.currency:
        raise CurrencyMismatch(f"Points are valued in {currency} at this merchant.")
    require_store(context, merchant_id, store_id)
    member = journal.locked_member(context)
    journal.require_active(member)
    candidates, available = await spendable_lots(connection, member, requested)
    return member, candidates, available


async def spendable_lots(
    connection: AsyncConnection, member: LockedMember, requested: int
) -> tuple[list[OpenLot], int]:
    """For a member locked and active: lots from which first-to-expire plans `requested`
    points as it would from all of them, and how many points the member can spend. Holds
    past their TTL are released first; debt refuses the spend. One round trip unless a hold
    has run out or the spend reaches past the first lots read."""
    found = await (await driver(connection)).fetchrow(
        spending_sql(FIRST_LOTS_READ), member.member_id, member.now
    )
    if found["holds_ran_out"]:
        await release_expired_holds(connection, member)
        _refuse_while_in_debt(member, requested)
        candidates = await journal.open_lots(connection, member, spendable_only=True)
        return candidates, sum(lot.free for lot in candidates)
    _refuse_while_in_debt(member, requested)
    candidates = enough_first_lots([OpenLot(*lot) for lot in found["first_lots"] or ()], requested)
    if candidates is None:
        candidates = await journal.open_lots(connection, member, spendable_only=True)
    return candidates, found["available"]


def enough_first_lots(first_lots: list[OpenLot], requested: int) -> list[OpenLot] | None:
    """Of the first lots by expiry that spending_sql read, those from which first-to-expire
    plans `requested` points exactly as it would from all of the member's lots; None when
    the spend needs more lots than were read."""
    if len(first_lots) < FIRST_LOTS_READ:
        return first_lots  # all of them
    # Lots not read expire no earlier than the last one read, so those that expire before
    # it are complete, ties included.
    last_expiry = max(lot.expires_at for lot in first_lots)
    complete = [lot for lot in first_lots if lot.expires_at < last_expiry]
    return complete if sum(lot.free for lot in complete) >= requested else None


def plan_spend(candidates: list[OpenLot], points: int) -> list[tuple[OpenLot, int]]:
    try:
        return journal.plan_first_to_expire(candidates, points)
    except NotEnoughPoints as shortage:
        raise InsufficientPoints(
            f"{points} points requested, {shortage.available} available.",
            available=shortage.available,
            requested=points,
        ) from None


async def redeem(
    connection: AsyncConnection,
    actor: Principal,
    *,
    merchant_id: uuid.UUID,
    member_ref: MemberRef,
    default_region: str,
    points: int | None,
    purchase_amount_minor: int | None,
    currency: str,
    store_id: uuid.UUID | None,
    external_reference: str | None,
    rules: ProgramRules,
) -> RedemptionResult:
    """Exactly one of `points` (points as tender) or `purchase_amount_minor` (points + cash)."""
    if (points is None) == (purchase_amount_minor is None):
        raise InvalidInput("Give either points (tender) or purchaseAmountMinor (points + cash).")
    if purchase_amount_minor is not None and purchase_amount_minor <= 0:
        raise InvalidInput("A purchase amount is positive.")
    if currency != rules.currency:
        raise CurrencyMismatch(f"Points are valued in {rules.currency} at this merchant.")
    most = points
    if most is None:
        most = payable_by_points(purchase_amount_minor, rules.point_value_minor)
    member, candidates, available = await _spend_context(
        connection, actor, merchant_id, member_ref, default_region, currency, store_id, most
    )
    cash_minor = 0
    if purchase_amount_minor is not None:
        split = points_and_cash(purchase_amount_minor, rules.point_value_minor, available)
        points, cash_minor = split.points, split.cash_minor
        if points == 0:
            raise InsufficientPoints(
                "The member has no available points.", available=available, requested=0
            )
    assert points is not None
    if points < rules.min_redemption_points:
        raise BelowMinimumRedemption(
            f"The minimum redemption is {rules.min_redemption_points} points.",
            minimum=rules.min_redemption_points,
            available=available,
        )
    plan = plan_spend(candidates, points)
    return await _post_redemption(
        connection,
        actor,
        member,
        merchant_id,
        plan,
        points,
        kind="redeem",
        store_id=store_id,
        external_reference=external_reference,
        rules=rules,
        amount_minor=purchase_amount_minor,
        cash_minor=cash_minor,
        currency=currency,
    )


async def _post_redemption(
    connection: AsyncConnection,
    actor: Principal,
    member: LockedMember,
    merchant_id: uuid.UUID,
    plan: list[tuple[OpenLot, int]],
    points: int,
    *,
    kind: str,
    rules: ProgramRules,
    currency: str,
    store_id: uuid.UUID | None = None,
    external_reference: str | None = None,
    amount_minor: int | None = None,
    cash_minor: int = 0,
    hold_id: uuid.UUID | None = None,
    transaction_id: uuid.UUID | None = None,
) -> RedemptionResult:
    value_minor = points_value_minor(points, rules.point_value_minor)
    transaction_id = await journal.post(
        connection,
        member,
        kind=kind,
        transaction_id=transaction_id,
        entries=[Posting(MEMBER, -points), Posting(REDEEMED, points, merchant_id)],
        redeemed=points,
        merchant_id=merchant_id,
        store_id=store_id,
        amount_minor=amount_minor,
        currency=currency,
        external_reference=external_reference,
        actor_key_id=actor.key_id,
        hold_id=hold_id,
        details={
            "valueMinor": value_minor,
            "cashMinor": cash_minor,
            "pointValueMinor": str(rules.point_value_minor),
        },
        consumed=plan,
        allocation_kind="redemption",
        redeeming_merchant_id=merchant_id,
    )
    return RedemptionResult(
        transaction_id, member.member_id, points, value_minor, cash_minor, currency, member.balance
    )


async def create_hold(
    connection: AsyncConnection,
    actor: Principal,
    *,
    merchant_id: uuid.UUID,
    member_ref: MemberRef,
    default_region: str,
    points: int,
    ttl_seconds: int | None,
    store_id: uuid.UUID | None,
    external_reference: str | None,
    rules: ProgramRules,
) -> HoldView:
    ttl = ttl_seconds or rules.hold_default_ttl_seconds
    if not 1 <= ttl <= rules.hold_max_ttl_seconds:
        raise InvalidInput(f"A hold lasts 1 to {rules.hold_max_ttl_seconds} seconds.")
    if points < rules.min_redemption_points:
        raise BelowMinimumRedemption(
            f"The minimum redemption is {rules.min_redemption_points} points.",
            minimum=rules.min_redemption_points,
        )
    member, candidates, _ = await _spend_context(
        connection, actor, merchant_id, member_ref, default_region, None, store_id, points
    )
    plan = plan_spend(candidates, points)
    row = await (await driver(connection)).fetchrow(
        _RESERVE_SQL,
        member.member_id,
        uuid.uuid4(),
        merchant_id,
        store_id,
        points,
        member.now,
        member.now + timedelta(seconds=ttl),
        external_reference,
        [lot.lot_id for lot, _ in plan],
        [take for _, take in plan],
    )
    return HoldView(**{name: row[name] for name in HoldView.__slots__})


# A hold in one statement: reserve the planned points on their lots, record which, and the
# hold itself.
_RESERVE_SQL = """
WITH reserve AS (
    UPDATE lots SET reserved = lots.reserved + r.points
    FROM unnest($9::uuid[], $10::bigint[]) AS r(lot_id, points)
    WHERE lots.member_id = $1 AND lots.lot_id = r.lot_id
), reservations AS (
    INSERT INTO hold_reservations (member_id, hold_id, lot_id, points)
    SELECT $1, $2, r.lot_id, r.points FROM unnest($9::uuid[], $10::bigint[]) AS r(lot_id, points)
)
INSERT INTO holds (member_id, hold_id, merchant_id, store_id, points, created_at, expires_at,
    external_reference)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING hold_id, member_id, merchant_id, points, status, created_at, expires_at,
    captured_points, capture_transaction_id
"""


async def _hold_view(
    connection: AsyncConnection, member_id: uuid.UUID, hold_id: uuid.UUID
) -> HoldView:
    row = (
        await connection.execute(
            select(holds).where(holds.c.member_id == member_id, holds.c.hold_id == hold_id)
        )
    ).one()
    return HoldView(
        hold_id=row.hold_id,
        member_id=row.member_id,
        merchant_id=row.merchant_id,
        points=row.points,
        status=row.status,
        created_at=row.created_at,
        expires_at=row.expires_at,
        captured_points=row.captured_points,
        capture_transaction_id=row.capture_transaction_id,
    )


# The member holding the merchant's hold, locked, and the merchant's terms.
_HOLDER_CONTEXT = LockingRead()
# After the lock: the hold, and the lots it reserves points on with how many (OpenLot's
# fields after the points).
_HOLD_SQL = f"""
SELECT h.status, h.points, h.expires_at, h.store_id, h.external_reference,
       (SELECT array_agg(ROW(r.points, {journal.OPEN_LOT_FIELDS}))
          FROM hold_reservations r
          JOIN lots l ON l.member_id = r.member_id AND l.lot_id = r.lot_id
         WHERE r.member_id = h.member_id AND r.hold_id = h.hold_id) AS reserved
FROM holds h
WHERE h.member_id = $1 AND h.hold_id = $2
"""


async def _locked_hold(
    connection: AsyncConnection, merchant_id: uuid.UUID, hold_id: uuid.UUID
) -> tuple[LockedMember, dict, list[tuple[int, OpenLot]]]:
    """The holder locked, the active hold, and its reservations (points held, lot)."""
    context = await _HOLDER_CONTEXT.fetch_holder(connection, merchant_id, hold_id)
    if context is None:
        raise NotFound(f"Hold {hold_id} does not exist.")
    merchant_terms(context, merchant_id)  # a suspended merchant only reads
    member = journal.locked_member(context)
    hold = dict(await (await driver(connection)).fetchrow(_HOLD_SQL, member.member_id, hold_id))
    if hold["status"] == "active" and hold["expires_at"] <= member.now:
        # Refusing rolls this transaction back, so the release is left to what persists it:
        # the member's next spend, or `coalition jobs expire`. Reads already treat it as
        # released.
        raise HoldNotActive("The hold expired before it was captured.", holdStatus="expired")
    if hold["status"] != "active":
        raise HoldNotActive(f"The hold is {hold['status']}.", holdStatus=hold["status"])
    reserved = [(held, OpenLot(*lot)) for held, *lot in hold["reserved"] or ()]
    return member, hold, reserved


# Give the hold's reserved points back to their lots and close it, in one statement.
_RELEASE_AND_CLOSE_SQL = """
WITH released AS (
    UPDATE lots SET reserved = lots.reserved - r.points
    FROM hold_reservations r
    WHERE r.member_id = $1 AND r.hold_id = $2 AND lots.member_id = $1 AND lots.lot_id = r.lot_id
)
UPDATE holds SET status = $3, closed_at = $4, captured_points = $5, capture_transaction_id = $6
WHERE member_id = $1 AND hold_id = $2
RETURNING hold_id, member_id, merchant_id, points, status, created_at, expires_at,
    captured_points, capture_transaction_id
"""


async def _release_and_close(
    connection: AsyncConnection,
    member: LockedMember,
    hold_id: uuid.UUID,
    status: str,
    captured_points: int | None = None,
    capture_transaction_id: uuid.UUID | None = None,
) -> HoldView:
    row = await (await driver(connection)).fetchrow(
        _RELEASE_AND_CLOSE_SQL,
        member.member_id,
        hold_id,
        status,
        member.now,
        captured_points,
        capture_transaction_id,
    )
    return HoldView(**{name: row[name] for name in HoldView.__slots__})


async def capture_hold(
    connection: AsyncConnection,
    actor: Principal,
    *,
    merchant_id: uuid.UUID,
    hold_id: uuid.UUID,
    points: int | None,
    rules: ProgramRules,
) -> RedemptionResult:
    """Capture all or part of a hold, once; an uncaptured remainder is released."""
    member, hold, reserved = await _locked_hold(connection, merchant_id, hold_id)
    captured = hold["points"] if points is None else points
    if not 1 <= captured <= hold["points"]:
        raise InvalidInput(f"Capture between 1 and {hold['points']} points.")
    # The plan takes from the points the hold reserved on each lot, first to expire first.
    held = [
        OpenLot(**{**_fields(lot), "remaining": points_held, "reserved": 0})
        for points_held, lot in reserved
    ]
    plan = journal.plan_first_to_expire(held, captured)
    transaction_id = uuid.uuid4()
    await _release_and_close(
        connection,
        member,
        hold_id,
        "captured",
        captured_points=captured,
        capture_transaction_id=transaction_id,
    )
    result = await _post_redemption(
        connection,
        actor,
        member,
        merchant_id,
        plan,
        captured,
        kind="capture",
        rules=rules,
        currency=rules.currency,
        store_id=hold["store_id"],
        external_reference=hold["external_reference"],
        hold_id=hold_id,
        transaction_id=transaction_id,
    )
    await _repay_debt(connection, member, result.transaction_id)  # the uncaptured remainder
    return result


def _fields(lot: OpenLot) -> dict:
    return {name: getattr(lot, name) for name in OpenLot.__slots__}


async def void_hold(
    connection: AsyncConnection, actor: Principal, *, merchant_id: uuid.UUID, hold_id: uuid.UUID
) -> HoldView:
    member, _, _ = await _locked_hold(connection, merchant_id, hold_id)
    view = await _release_and_close(connection, member, hold_id, "voided")
    await _repay_debt(connection, member, hold_id)
    return view


async def get_hold(
    connection: AsyncConnection, merchant_id: uuid.UUID | None, hold_id: uuid.UUID
) -> HoldView:
    query = select(holds.c.member_id).where(holds.c.hold_id == hold_id)
    if merchant_id is not None:
        query = query.where(holds.c.merchant_id == merchant_id)
    member_id = await connection.scalar(query)
    if member_id is None:
        raise NotFound(f"Hold {hold_id} does not exist.")
    view = await _hold_view(connection, member_id, hold_id)
    if view.status == "active" and view.expires_at <= await connection.scalar(select(func.now())):
        return HoldView(
            **{**{name: getattr(view, name) for name in HoldView.__slots__}, "status": "expired"}
        )
    return view


async def finalise_expired_holds(engine: AsyncEngine, batch_size: int = 500) -> int:
    """The job side of hold expiry; idempotent (a released hold is no longer active)."""
    finalised = 0
    while True:
        async with engine.begin() as connection:
            member_ids = (
                await connection.scalars(
                    select(holds.c.member_id)
                    .where(holds.c.status == "active", holds.c.expires_at <= func.now())
                    .distinct()
                    .limit(batch_size)
                )
            ).all()
            for member_id in member_ids:
                member = await journal.lock_member(connection, member_id)
                finalised += await release_expired_holds(connection, member)
        if len(member_ids) < batch_size:
            return finalised
