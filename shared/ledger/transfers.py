"""Points that change owner: member-to-member transfers (behind a program flag) and the
points side of a member merge.

Moved points keep their identity: the receiver gets new lots that copy the issuing
merchant, funder, earn date and expiry of the lots they came from (origin_lot_id), so
settlement, breakage and the earned-at/redeemed-at flows stay attributable.

Each side is its own balanced transaction on its own member (through the
`transfer_clearing` account), and both members are locked in member_id order so two
crossing transfers cannot deadlock.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from shared import audit
from shared.access import Principal
from shared.errors import FeatureDisabled, InvalidInput
from shared.ledger import journal
from shared.ledger.journal import MEMBER, TRANSFER_CLEARING, LockedMember, NewLot, OpenLot, Posting
from shared.ledger.redemption import plan_spend, spendable_lots
from shared.program import ProgramRules
from shared.tables import holds, lots, member_balances


@dataclass(frozen=True, slots=True)
class TransferResult:
    outgoing_transaction_id: uuid.UUID
    incoming_transaction_id: uuid.UUID
    points: int
    sender_balance: int
    receiver_balance: int


async def _lock_pair(
    connection: AsyncConnection, first: uuid.UUID, second: uuid.UUID
) -> dict[uuid.UUID, LockedMember]:
    locked = {}
    for member_id in sorted((first, second)):
        locked[member_id] = await journal.lock_member(connection, member_id)
    return locked


def _copies(plan: list[tuple[OpenLot, int]], source: str | None) -> list[NewLot]:
    """Lots for the receiver; `source=None` keeps each lot's own source (a merge: base points
    keep counting towards the survivor's tier), a transfer relabels them (no bought status)."""
    return [
        NewLot(
            source or lot.source,
            take,
            lot.issuing_merchant_id,
            lot.funder_merchant_id,
            lot.earned_at,
            lot.available_at,
            lot.expires_at,
            origin_lot_id=lot.lot_id,
        )
        for lot, take in plan
    ]


async def _move(
    connection: AsyncConnection,
    actor: Principal,
    sender: LockedMember,
    receiver: LockedMember,
    plan: list[tuple[OpenLot, int]],
    *,
    kinds: tuple[str, str],
    allocation_kind: str,
    debt: int = 0,
    reason: str | None = None,
) -> TransferResult:
    """Move the planned lot points (and `debt`) from sender to receiver."""
    points = sum(take for _, take in plan)
    net = points - debt
    out_id = await journal.post(
        connection,
        sender,
        kind=kinds[0],
        entries=[Posting(MEMBER, -net), Posting(TRANSFER_CLEARING, net)],
        debt_delta=-debt,
        counterparty_member_id=receiver.member_id,
        actor_key_id=actor.key_id,
        reason=reason,
        activity=False,
        consumed=plan,
        allocation_kind=allocation_kind,
    )
    in_id = await journal.post(
        connection,
        receiver,
        kind=kinds[1],
        entries=[Posting(MEMBER, net), Posting(TRANSFER_CLEARING, -net)],
        debt_delta=debt,
        counterparty_member_id=sender.member_id,
        actor_key_id=actor.key_id,
        reason=reason,
        original_transaction_id=out_id,
        activity=False,
        new_lots=_copies(plan, None if allocation_kind == "merge" else allocation_kind),
    )
    await journal.absorb_debt(connection, receiver, in_id)
    return TransferResult(out_id, in_id, net, sender.balance, receiver.balance)


async def transfer(
    connection: AsyncConnection,
    actor: Principal,
    *,
    from_member_id: uuid.UUID,
    to_member_id: uuid.UUID,
    points: int,
    reason: str,
    rules: ProgramRules,
) -> TransferResult:
    if not rules.transfers_enabled:
        raise FeatureDisabled("Member-to-member transfers are disabled in this program.")
    if from_member_id == to_member_id:
        raise InvalidInput("A member cannot transfer points to itself.")
    if points <= 0:
        raise InvalidInput("A transfer moves at least one point.")
    locked = await _lock_pair(connection, from_member_id, to_member_id)
    sender, receiver = locked[from_member_id], locked[to_member_id]
    journal.require_active(sender)
    journal.require_active(receiver)
    candidates, _ = await spendable_lots(connection, sender, points)
    plan = plan_spend(candidates, points)
    result = await _move(
        connection,
        actor,
        sender,
        receiver,
        plan,
        kinds=("transfer_out", "transfer_in"),
        allocation_kind="transfer",
        reason=reason,
    )
    await audit.record(
        connection,
        actor,
        "ledger.transferred",
        "member",
        from_member_id,
        {"to": str(to_member_id), "points": points, "reason": reason},
    )
    return result


async def merge_points(
    connection: AsyncConnection,
    actor: Principal,
    *,
    survivor_id: uuid.UUID,
    duplicate_id: uuid.UUID,
) -> TransferResult:
    """All of the duplicate's lots, debt and balance move to the survivor; its active holds
    are released first (the till that placed them will see the hold as voided)."""
    locked = await _lock_pair(connection, survivor_id, duplicate_id)
    survivor, duplicate = locked[survivor_id], locked[duplicate_id]
    await connection.execute(
        update(lots).where(lots.c.member_id == duplicate_id).values(reserved=0)
    )
    await connection.execute(
        update(holds)
        .where(holds.c.member_id == duplicate_id, holds.c.status == "active")
        .values(status="voided", closed_at=duplicate.now)
    )
    plan = [
        (lot, lot.remaining)
        for lot in await journal.open_lots(connection, duplicate, spendable_only=False)
    ]
    result = await _move(
        connection,
        actor,
        duplicate,
        survivor,
        plan,
        kinds=("merge_out", "merge_in"),
        allocation_kind="merge",
        debt=duplicate.debt,
        reason="member merge",
    )
    await connection.execute(
        update(member_balances)
        .where(member_balances.c.member_id == duplicate_id)
        .values(updated_at=duplicate.now)
    )
    return result
