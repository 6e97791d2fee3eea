"""Corrections are new transactions pointing at the original, never edits of history:
refunds of an earn (proportional clawback), reversals of a redemption, HQ adjustments."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from itertools import pairwise

from sqlalchemy import and_, bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from shared import audit
from shared.access import Principal
from shared.errors import (
    AlreadyReversed,
    InsufficientPoints,
    InvalidInput,
    MemberNotActive,
    NotFound,
    RefundExceedsPurchase,
)
from shared.ledger import journal
from shared.ledger.expiry import ExpiryReport, expire_member
from shared.ledger.journal import ADJUSTMENT, ISSUED, MEMBER, REDEEMED, NewLot, Posting
from shared.ledger.rules import NotEnoughPoints, lot_expiry, refund_clawback
from shared.merchants import transacting_terms
from shared.program import ProgramRules
from shared.tables import allocations, ledger_transactions, lots


@dataclass(frozen=True, slots=True)
class CorrectionResult:
    transaction_id: uuid.UUID
    member_id: uuid.UUID
    original_transaction_id: uuid.UUID
    points: int  # effect on the member's balance (negative for a clawback)
    debt_created: int
    balance: int
    debt: int


async def _original(
    connection: AsyncConnection,
    merchant_id: uuid.UUID | None,
    transaction_id: uuid.UUID,
    kinds: tuple[str, ...],
):
    query = select(ledger_transactions).where(
        ledger_transactions.c.transaction_id == transaction_id,
        ledger_transactions.c.kind.in_(kinds),
    )
    if merchant_id is not None:
        query = query.where(ledger_transactions.c.merchant_id == merchant_id)
    row = (await connection.execute(query)).one_or_none()
    if row is None:
        raise NotFound(f"Transaction {transaction_id} does not exist.")
    return row


def _not_merged(member: journal.LockedMember) -> None:
    if member.status == "merged":
        raise MemberNotActive(
            "The member was merged; correct the survivor with an HQ adjustment.",
            memberStatus="merged",
            mergedIntoMemberId=str(member.merged_into_member_id),
        )


async def _holder(
    connection: AsyncConnection, member: journal.LockedMember
) -> tuple[journal.LockedMember, list[uuid.UUID]]:
    """Who holds a member's points now: the member, or the survivor its merges lead to,
    locked; and the chain of members from the first to the holder."""
    chain = [member.member_id]
    while member.status == "merged":
        member = await journal.lock_member(connection, member.merged_into_member_id)
        chain.append(member.member_id)
    return member, chain


async def _held_lots(connection: AsyncConnection, chain: list[uuid.UUID], earn_lots: dict) -> dict:
    """Each of the first member's lots, or its copy on the holder when merges moved it (None
    when a merge found nothing left of it to copy). A merge copies each lot with points
    left into the survivor's merge_in transaction, pointing back with origin_lot_id."""
    held = dict(earn_lots)
    for duplicate, survivor in pairwise(chain):
        merge_in = select(ledger_transactions.c.transaction_id).where(
            ledger_transactions.c.member_id == survivor,
            ledger_transactions.c.kind == "merge_in",
            ledger_transactions.c.counterparty_member_id == duplicate,
        )
        copies = {
            row.origin_lot_id: row
            for row in await connection.execute(
                select(lots).where(
                    lots.c.member_id == survivor,
                    lots.c.transaction_id.in_(merge_in),
                    lots.c.origin_lot_id.in_([lot.lot_id for lot in held.values() if lot]),
                )
            )
        }
        held = {lot_id: lot and copies.get(lot.lot_id) for lot_id, lot in held.items()}
    return held


async def refund(
    connection: AsyncConnection,
    actor: Principal,
    *,
    merchant_id: uuid.UUID,
    earn_transaction_id: uuid.UUID,
    amount_minor: int,
    external_reference: str | None,
) -> CorrectionResult:
    if amount_minor <= 0:
        raise InvalidInput("A refund amount is positive.")
    await transacting_terms(connection, merchant_id)  # a suspended merchant only reads
    original = await _original(connection, merchant_id, earn_transaction_id, ("earn",))
    # The earner's lock serialises refunds of its earns, merged or not.
    earner = await journal.lock_member(connection, original.member_id)
    member, chain = await _holder(connection, earner)
    refunded_before = int(
        await connection.scalar(
            select(func.coalesce(func.sum(ledger_transactions.c.amount_minor), 0)).where(
                ledger_transactions.c.member_id.in_(chain),
                ledger_transactions.c.original_transaction_id == earn_transaction_id,
                ledger_transactions.c.kind == "refund",
            )
        )
    )
    if refunded_before + amount_minor > original.amount_minor:
        raise RefundExceedsPurchase(
            f"{refunded_before} of {original.amount_minor} already refunded.",
            refundableMinor=original.amount_minor - refunded_before,
        )
    earn_lots = {
        lot.lot_id: lot
        for lot in (
            await connection.execute(
                select(lots).where(
                    lots.c.member_id == earner.member_id,
                    lots.c.transaction_id == earn_transaction_id,
                )
            )
        ).all()
    }
    held = await _held_lots(connection, chain, earn_lots)
    claw = refund_clawback(
        lot_originals={lot_id: lot.original for lot_id, lot in earn_lots.items()},
        purchase_amount_minor=original.amount_minor,
        refunded_before_minor=refunded_before,
        refund_minor=amount_minor,
        clawed_before={lot_id: lot.clawed_back for lot_id, lot in earn_lots.items()},
    )
    from_lots, per_funder, debt = [], defaultdict(int), 0
    clawed = []  # clawed_back to add: the purchase's lots, and the survivor's copies
    for lot_id, points in claw.items():
        if points <= 0:
            continue
        per_funder[earn_lots[lot_id].funder_merchant_id] += points
        clawed.append({"member": earner.member_id, "lot": lot_id, "points": points})
        lot = held[lot_id]
        take = 0 if lot is None else min(points, lot.remaining - lot.reserved)
        debt += points - take
        if lot is not None:
            from_lots.append((journal.open_lot(lot), take))
            if lot.lot_id != lot_id:
                # The survivor's copy stops counting the refunded base points towards its
                # tier, as far as the copy carried them.
                copied = min(points, lot.original - lot.clawed_back)
                clawed.append({"member": member.member_id, "lot": lot.lot_id, "points": copied})
    total = sum(per_funder.values())
    transaction_id = uuid.uuid4()
    entries = [Posting(MEMBER, -total)] + [
        Posting(ISSUED, points, funder) for funder, points in per_funder.items()
    ]
    await journal.post(
        connection,
        member,
        kind="refund",
        entries=entries,
        transaction_id=transaction_id,
        debt_delta=debt,
        activity=False,
        merchant_id=merchant_id,
        store_id=original.store_id,
        amount_minor=amount_minor,
        currency=original.currency,
        original_transaction_id=earn_transaction_id,
        external_reference=external_reference,
        actor_key_id=actor.key_id,
        details={
            "clawback": {str(lot_id): points for lot_id, points in claw.items()},
            "debtCreated": debt,
        },
        # Only what is still in the lot leaves it now (`take`); the part already spent
        # becomes debt. `clawed_back` keeps the whole clawback so later partial refunds add
        # up exactly.
        consumed=from_lots,
        allocation_kind="clawback",
    )
    clawed = [item for item in clawed if item["points"] > 0]
    if clawed:
        await connection.execute(
            update(lots)
            .where(lots.c.member_id == bindparam("member"), lots.c.lot_id == bindparam("lot"))
            .values(clawed_back=lots.c.clawed_back + bindparam("points")),
            clawed,
        )
    await journal.absorb_debt(connection, member, transaction_id)
    return CorrectionResult(
        transaction_id,
        member.member_id,
        earn_transaction_id,
        -total,
        debt,
        member.balance,
        member.debt,
    )


async def reverse_redemption(
    connection: AsyncConnection,
    actor: Principal,
    *,
    merchant_id: uuid.UUID,
    redemption_transaction_id: uuid.UUID,
    external_reference: str | None,
    rules: ProgramRules,
) -> CorrectionResult:
    """Points go back to the lots they came from; lots that expired meanwhile get
    `reversal_grace_days` of validity so the member can still use them."""
    await transacting_terms(connection, merchant_id)  # a suspended merchant only reads
    original = await _original(
        connection, merchant_id, redemption_transaction_id, ("redeem", "capture")
    )
    member = await journal.lock_member(connection, original.member_id)
    _not_merged(member)
    already = await connection.scalar(
        select(ledger_transactions.c.transaction_id).where(
            ledger_transactions.c.member_id == member.member_id,
            ledger_transactions.c.original_transaction_id == redemption_transaction_id,
            ledger_transactions.c.kind == "reversal",
        )
    )
    if already is not None:
        raise AlreadyReversed(
            "This redemption was already reversed.", reversalTransactionId=str(already)
        )
    # A lot past expiry that the expiry job has not reached yet still holds its unspent
    # remainder; expire it first, as the job would have, or the grace period below would
    # revive those expired points along with the reversed ones.
    await expire_member(connection, member.member_id, ExpiryReport())
    member = await journal.lock_member(connection, member.member_id)  # balance after expiry
    taken = [
        (journal.open_lot(row), row.points)
        for row in await connection.execute(
            select(allocations.c.points, *journal.OPEN_LOT_COLUMNS)
            .select_from(
                allocations.join(
                    lots,
                    and_(
                        lots.c.member_id == allocations.c.member_id,
                        lots.c.lot_id == allocations.c.lot_id,
                    ),
                )
            )
            .where(
                allocations.c.member_id == member.member_id,
                allocations.c.transaction_id == redemption_transaction_id,
                allocations.c.kind == "redemption",
            )
        )
    ]
    points = sum(taken_points for _, taken_points in taken)
    transaction_id = uuid.uuid4()
    try:
        async with connection.begin_nested():
            await journal.post(
                connection,
                member,
                kind="reversal",
                entries=[Posting(MEMBER, points), Posting(REDEEMED, -points, merchant_id)],
                transaction_id=transaction_id,
                redeemed=-points,
                merchant_id=merchant_id,
                store_id=original.store_id,
                original_transaction_id=redemption_transaction_id,
                external_reference=external_reference,
                actor_key_id=actor.key_id,
                currency=original.currency,
                consumed=[(lot, -taken_points) for lot, taken_points in taken],
                allocation_kind="reversal",
                redeeming_merchant_id=merchant_id,
            )
    except IntegrityError:
        raise AlreadyReversed("This redemption was already reversed.") from None
    expired = [lot.lot_id for lot, _ in taken if lot.expires_at <= member.now]
    if expired:
        await connection.execute(
            update(lots)
            .where(lots.c.member_id == member.member_id, lots.c.lot_id.in_(expired))
            .values(expires_at=member.now + timedelta(days=rules.reversal_grace_days))
        )
    await journal.absorb_debt(connection, member, transaction_id)
    return CorrectionResult(
        transaction_id,
        member.member_id,
        redemption_transaction_id,
        points,
        0,
        member.balance,
        member.debt,
    )


async def adjust(
    connection: AsyncConnection,
    actor: Principal,
    *,
    member_id: uuid.UUID,
    points: int,
    reason: str,
    rules: ProgramRules,
) -> CorrectionResult:
    """HQ's manual correction: a credit creates an HQ-funded lot; a debit takes free points
    first-to-expire first and never creates debt."""
    if points == 0:
        raise InvalidInput("An adjustment moves at least one point.")
    member = await journal.lock_member(connection, member_id)
    _not_merged(member)
    transaction_id = uuid.uuid4()
    plan = []
    if points < 0:
        candidates = [
            lot
            for lot in await journal.open_lots(connection, member, spendable_only=False)
            if lot.free > 0 and lot.expires_at > member.now
        ]
        try:
            plan = journal.plan_first_to_expire(candidates, -points)
        except NotEnoughPoints as shortage:
            raise InsufficientPoints(
                f"Only {shortage.available} points can be debited.",
                available=shortage.available,
                requested=-points,
            ) from None
    credit = (
        [
            NewLot(
                "adjustment",
                points,
                None,
                None,
                member.now,
                member.now,
                lot_expiry(member.now, rules),
            )
        ]
        if points > 0
        else []
    )
    await journal.post(
        connection,
        member,
        kind="adjustment",
        entries=[Posting(MEMBER, points), Posting(ADJUSTMENT, -points, None)],
        transaction_id=transaction_id,
        activity=False,
        reason=reason,
        actor_key_id=actor.key_id,
        earned=max(points, 0),
        new_lots=credit,
        consumed=plan,
        allocation_kind="adjustment",
    )
    if points > 0:
        await journal.absorb_debt(connection, member, transaction_id)
    await audit.record(
        connection,
        actor,
        "ledger.adjusted",
        "member",
        member_id,
        {"points": points, "reason": reason, "transactionId": str(transaction_id)},
    )
    return CorrectionResult(
        transaction_id, member_id, transaction_id, points, 0, member.balance, member.debt
    )
