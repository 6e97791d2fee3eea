"""Behaviour points, funded by HQ: enrolment, profile completion, referrals.

- enrolment: a fixed bonus when a member joins;
- profile completion: once, when the member has a name, a birth date and a phone or
  e-mail on file;
- referral: a fixed bonus to the referrer at the referee's enrolment, plus a share of the
  referee's base points for `referral_window_days` after enrolment.

Referrals always point from a newer member to an older one, so locking the referee and
then the referrer can never form a cycle with another transaction.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import and_, exists, select
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.access import Principal
from shared.ledger import journal
from shared.ledger.journal import ISSUED, MEMBER, LockedMember, NewLot, Posting
from shared.ledger.rules import lot_expiry, referral_share
from shared.program import ProgramRules
from shared.tables import ledger_transactions, member_identifiers, members


async def award(
    connection: AsyncConnection,
    actor: Principal,
    member: LockedMember,
    *,
    reason: str,
    points: int,
    issuing_merchant_id: uuid.UUID | None,
    rules: ProgramRules,
    details: dict | None = None,
) -> uuid.UUID | None:
    if points <= 0 or member.status != "active":
        return None
    lot = NewLot(
        "behaviour",
        points,
        issuing_merchant_id,
        None,
        member.now,
        member.now,
        lot_expiry(member.now, rules),
    )
    transaction_id = await journal.post(
        connection,
        member,
        kind="behaviour",
        entries=[Posting(MEMBER, points), Posting(ISSUED, -points, None)],
        earned=points,
        activity=False,
        new_lots=[lot],
        merchant_id=issuing_merchant_id,
        reason=reason,
        actor_key_id=actor.key_id,
        details={"reason": reason, **(details or {})},
    )
    await journal.absorb_debt(connection, member, transaction_id)
    return transaction_id


async def _already_awarded(connection: AsyncConnection, member_id: uuid.UUID, reason: str) -> bool:
    return bool(
        await connection.scalar(
            select(
                exists().where(
                    ledger_transactions.c.member_id == member_id,
                    ledger_transactions.c.kind == "behaviour",
                    ledger_transactions.c.reason == reason,
                )
            )
        )
    )


async def on_enrolment(
    connection: AsyncConnection,
    actor: Principal,
    member_id: uuid.UUID,
    merchant_id: uuid.UUID,
    rules: ProgramRules,
) -> None:
    member = await journal.lock_member(connection, member_id)
    await award(
        connection,
        actor,
        member,
        reason="enrolment",
        points=rules.enrolment_bonus_points,
        issuing_merchant_id=merchant_id,
        rules=rules,
    )
    await on_profile_change(connection, actor, member, merchant_id, rules)
    if member.referred_by_member_id is not None:
        referrer = await journal.lock_member(connection, member.referred_by_member_id)
        await award(
            connection,
            actor,
            referrer,
            reason="referral",
            points=rules.referral_bonus_points,
            issuing_merchant_id=merchant_id,
            rules=rules,
            details={"refereeMemberId": str(member_id)},
        )


async def on_profile_change(
    connection: AsyncConnection,
    actor: Principal,
    member: LockedMember,
    merchant_id: uuid.UUID | None,
    rules: ProgramRules,
) -> None:
    if rules.profile_completion_bonus_points <= 0:
        return
    complete = await connection.scalar(
        select(
            exists().where(
                members.c.member_id == member.member_id,
                members.c.given_name.is_not(None),
                members.c.family_name.is_not(None),
                members.c.birth_date.is_not(None),
                exists().where(
                    and_(
                        member_identifiers.c.member_id == member.member_id,
                        member_identifiers.c.kind.in_(("phone", "email")),
                    )
                ),
            )
        )
    )
    if complete and not await _already_awarded(connection, member.member_id, "profile_completion"):
        await award(
            connection,
            actor,
            member,
            reason="profile_completion",
            points=rules.profile_completion_bonus_points,
            issuing_merchant_id=merchant_id,
            rules=rules,
        )


async def on_referee_earn(
    connection: AsyncConnection,
    actor: Principal,
    referee: LockedMember,
    base_points: int,
    merchant_id: uuid.UUID,
    earn_transaction_id: uuid.UUID,
    rules: ProgramRules,
) -> None:
    if referee.referred_by_member_id is None or base_points <= 0:
        return
    if referee.now > referee.enrolled_at + timedelta(days=rules.referral_window_days):
        return
    share = referral_share(base_points, rules.referral_share_percent)
    if share <= 0:
        return
    referrer = await journal.lock_member(connection, referee.referred_by_member_id)
    await award(
        connection,
        actor,
        referrer,
        reason="referral_share",
        points=share,
        issuing_merchant_id=merchant_id,
        rules=rules,
        details={
            "refereeMemberId": str(referee.member_id),
            "earnTransactionId": str(earn_transaction_id),
        },
    )
