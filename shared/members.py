"""One member identity across the network: enrolment, identifiers, lookup, status, merge.

What a merchant sees of a member: the network member id, masked card, tier and status,
plus only what that merchant itself submitted (the profile if it enrolled the member, the
phone numbers / e-mails it attached, its own customer references). HQ sees everything.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from shared import audit
from shared.access import Principal
from shared.errors import (
    Conflict,
    Forbidden,
    IdentifierInUse,
    InvalidInput,
    MemberNotActive,
    MerchantNotActive,
    NotFound,
)
from shared.identifiers import IdentifierKind, generate_card_number, mask_card, normalise
from shared.ledger.journal import lock_member  # the one member lock, shared with the ledger
from shared.program import ProgramRules
from shared.tables import member_balances, member_identifiers, members, merchants, stores

CARD_GENERATION_ATTEMPTS = 8
STATUS_TRANSITIONS = {
    "active": {"suspended", "closed"},
    "suspended": {"active", "closed"},
    "closed": set(),
    "merged": set(),
}


@dataclass(frozen=True, slots=True)
class Identifier:
    identifier_id: uuid.UUID
    kind: str
    value: str  # masked for cards seen by merchants
    added_at: datetime
    added_by_merchant_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class Profile:
    given_name: str | None = None
    family_name: str | None = None
    birth_date: date | None = None
    preferred_locale: str | None = None


@dataclass(frozen=True, slots=True)
class Consents:
    marketing_email: bool = False
    marketing_sms: bool = False


@dataclass(frozen=True, slots=True)
class MemberView:
    member_id: uuid.UUID
    status: str
    tier: str
    enrolled_at: datetime
    masked_card: str | None
    acquiring_merchant_id: uuid.UUID | None
    merged_into_member_id: uuid.UUID | None
    identifiers: list[Identifier] = field(default_factory=list)
    profile: Profile | None = None
    consents: Consents | None = None


@dataclass(frozen=True, slots=True)
class IdentifierInput:
    kind: IdentifierKind
    value: str


async def enrol(
    connection: AsyncConnection,
    actor: Principal,
    *,
    merchant_id: uuid.UUID,
    store_id: uuid.UUID | None,
    card_number: str | None,
    identifiers: list[IdentifierInput],
    profile: Profile | None,
    consents: Consents | None,
    card_prefix: str,
    default_region: str,
    rules: ProgramRules | None = None,
    referred_by: MemberRef | None = None,
) -> MemberView:
    """Create a member at `merchant_id`, with a generated card unless a physical one is given.

    With `rules`, behaviour points follow (enrolment bonus, profile completion, referral)."""
    await _require_active_merchant(connection, merchant_id)
    if store_id is not None:
        store_owner = await connection.scalar(
            select(stores.c.merchant_id).where(stores.c.store_id == store_id)
        )
        if store_owner != merchant_id:
            raise NotFound(f"Store {store_id} does not exist.")
    normalised = [
        (item.kind, normalise(item.kind, item.value, default_region)) for item in identifiers
    ]
    if card_number is not None:
        normalised.insert(
            0, (IdentifierKind.CARD, normalise(IdentifierKind.CARD, card_number, default_region))
        )
    if len({pair for pair in normalised}) != len(normalised):
        raise InvalidInput("The same identifier is given twice.")

    referrer_id = None
    if referred_by is not None:
        referrer_id = await resolve(connection, actor, referred_by, default_region)
        referrer_status = await connection.scalar(
            select(members.c.status).where(members.c.member_id == referrer_id)
        )
        if referrer_status != "active":
            raise InvalidInput("The referrer is not an active member.")
    member_id = uuid.uuid4()
    profile = profile or Profile()
    consents = consents or Consents()
    await connection.execute(
        insert(members).values(
            member_id=member_id,
            enrolled_at=func.now(),
            acquiring_merchant_id=merchant_id,
            acquiring_store_id=store_id,
            given_name=profile.given_name,
            family_name=profile.family_name,
            birth_date=profile.birth_date,
            preferred_locale=profile.preferred_locale,
            profile_source_merchant_id=merchant_id,
            consent_marketing_email=consents.marketing_email,
            consent_marketing_sms=consents.marketing_sms,
            consents_updated_at=func.now(),
            referred_by_member_id=referrer_id,
        )
    )
    await connection.execute(insert(member_balances).values(member_id=member_id))
    for kind, value in normalised:
        if await _insert_identifier(connection, member_id, kind, value, merchant_id) is None:
            raise _in_use(kind)
    if card_number is None:
        await _issue_card(connection, member_id, merchant_id, card_prefix)
    await audit.record(
        connection, actor, "member.enrolled", "member", member_id, {"merchantId": str(merchant_id)}
    )
    if rules is not None:
        from shared.ledger.behaviour import on_enrolment  # the ledger builds on identity

        await on_enrolment(connection, actor, member_id, merchant_id, rules)
    return await get_member(connection, actor, member_id)


async def _require_active_merchant(connection: AsyncConnection, merchant_id: uuid.UUID) -> None:
    status = await connection.scalar(
        select(merchants.c.status).where(merchants.c.merchant_id == merchant_id)
    )
    if status is None:
        raise NotFound(f"Merchant {merchant_id} does not exist.")
    if status != "active":
        raise MerchantNotActive("The merchant is suspended: it keeps read access only.")


async def _insert_identifier(
    connection: AsyncConnection,
    member_id: uuid.UUID,
    kind: IdentifierKind,
    value: str,
    added_by_merchant_id: uuid.UUID | None,
) -> uuid.UUID | None:
    """Insert unless taken: None when the (kind, scope, value) already exists anywhere.

    ON CONFLICT DO NOTHING (rather than catching the error) keeps the transaction usable,
    and a concurrent insert of the same value waits on the unique index, then conflicts.
    """
    identifier_id = uuid.uuid4()
    scope = added_by_merchant_id if kind is IdentifierKind.MERCHANT_REF else None
    inserted = await connection.scalar(
        pg_insert(member_identifiers)
        .values(
            member_id=member_id,
            identifier_id=identifier_id,
            kind=kind.value,
            scope_merchant_id=scope,
            value=value,
            added_by_merchant_id=added_by_merchant_id,
        )
        .on_conflict_do_nothing()
        .returning(member_identifiers.c.identifier_id)
    )
    return inserted


def _in_use(kind: IdentifierKind) -> IdentifierInUse:
    return IdentifierInUse(
        f"This {kind.value} is already attached to a member.", identifierKind=kind.value
    )


async def _issue_card(
    connection: AsyncConnection, member_id: uuid.UUID, merchant_id: uuid.UUID, prefix: str
) -> None:
    for _ in range(CARD_GENERATION_ATTEMPTS):
        number = generate_card_number(prefix)
        if await _insert_identifier(
            connection, member_id, IdentifierKind.CARD, number, merchant_id
        ):
            return
    raise Conflict("Could not generate a free card number; the card range may be exhausted.")


def _resolve_scope(viewer: Principal, kind: IdentifierKind) -> uuid.UUID | None:
    if kind is not IdentifierKind.MERCHANT_REF:
        return None
    if viewer.merchant_id is None:
        raise InvalidInput("Customer references are looked up with the merchant's own key.")
    return viewer.merchant_id


async def find_member_id(
    connection: AsyncConnection,
    viewer: Principal,
    kind: IdentifierKind,
    raw_value: str,
    default_region: str,
) -> uuid.UUID:
    value = normalise(kind, raw_value, default_region)
    scope = _resolve_scope(viewer, kind)
    condition = [member_identifiers.c.kind == kind.value, member_identifiers.c.value == value]
    if scope is None:
        condition.append(member_identifiers.c.scope_merchant_id.is_(None))
    else:
        condition.append(member_identifiers.c.scope_merchant_id == scope)
    member_id = await connection.scalar(select(member_identifiers.c.member_id).where(*condition))
    if member_id is None:
        raise NotFound(f"No member has this {kind.value}.")
    return member_id


async def lookup(
    connection: AsyncConnection,
    viewer: Principal,
    kind: IdentifierKind,
    raw_value: str,
    default_region: str,
) -> MemberView:
    member_id = await find_member_id(connection, viewer, kind, raw_value, default_region)
    return await get_member(connection, viewer, member_id)


async def get_member(
    connection: AsyncConnection, viewer: Principal, member_id: uuid.UUID
) -> MemberView:
    row = (
        await connection.execute(select(members).where(members.c.member_id == member_id))
    ).one_or_none()
    if row is None:
        raise NotFound(f"Member {member_id} does not exist.")
    identifier_rows = (
        await connection.execute(
            select(member_identifiers)
            .where(member_identifiers.c.member_id == member_id)
            .order_by(member_identifiers.c.added_at, member_identifiers.c.identifier_id)
        )
    ).all()
    cards = [item.value for item in identifier_rows if item.kind == IdentifierKind.CARD]
    visible = [
        Identifier(
            identifier_id=item.identifier_id,
            kind=item.kind,
            value=mask_card(item.value)
            if item.kind == IdentifierKind.CARD and not viewer.is_hq
            else item.value,
            added_at=item.added_at,
            added_by_merchant_id=item.added_by_merchant_id,
        )
        for item in identifier_rows
        if _sees_identifier(viewer, item)
    ]
    sees_profile = viewer.is_hq or viewer.merchant_id == row.profile_source_merchant_id
    return MemberView(
        member_id=row.member_id,
        status=row.status,
        tier=row.tier,
        enrolled_at=row.enrolled_at,
        masked_card=mask_card(cards[-1]) if cards else None,
        acquiring_merchant_id=row.acquiring_merchant_id if sees_profile else None,
        merged_into_member_id=row.merged_into_member_id,
        identifiers=visible,
        profile=Profile(
            given_name=row.given_name,
            family_name=row.family_name,
            birth_date=row.birth_date,
            preferred_locale=row.preferred_locale,
        )
        if sees_profile
        else None,
        consents=Consents(
            marketing_email=row.consent_marketing_email, marketing_sms=row.consent_marketing_sms
        )
        if sees_profile
        else None,
    )


def _sees_identifier(viewer: Principal, row: Any) -> bool:
    if viewer.is_hq or row.kind == IdentifierKind.CARD:
        return True
    return row.added_by_merchant_id == viewer.merchant_id


async def attach_identifier(
    connection: AsyncConnection,
    actor: Principal,
    member_id: uuid.UUID,
    item: IdentifierInput,
    default_region: str,
    rules: ProgramRules | None = None,
) -> Identifier:
    """Idempotent: attaching what the member already has returns the existing identifier.

    With `rules`, a profile completed by this identifier earns its one-time bonus."""
    if actor.merchant_id is not None:
        # A suspended merchant keeps read access but no longer changes member data.
        await _require_active_merchant(connection, actor.merchant_id)
    member = await lock_member(connection, member_id)
    if member.status in ("closed", "merged"):
        raise MemberNotActive(f"The member is {member.status}.")
    value = normalise(item.kind, item.value, default_region)
    scope = _resolve_scope(actor, item.kind)
    existing = (
        await connection.execute(
            select(member_identifiers).where(
                member_identifiers.c.member_id == member_id,
                member_identifiers.c.kind == item.kind.value,
                member_identifiers.c.value == value,
                member_identifiers.c.scope_merchant_id.is_(None)
                if scope is None
                else member_identifiers.c.scope_merchant_id == scope,
            )
        )
    ).one_or_none()
    if existing is None:
        identifier_id = await _insert_identifier(
            connection, member_id, item.kind, value, actor.merchant_id
        )
        if identifier_id is None:
            raise _in_use(item.kind)
        await audit.record(
            connection,
            actor,
            "member.identifier_attached",
            "member",
            member_id,
            {"kind": item.kind.value, "identifierId": str(identifier_id)},
        )
        if rules is not None and item.kind in (IdentifierKind.PHONE, IdentifierKind.EMAIL):
            from shared.ledger import behaviour  # the ledger builds on identity

            await behaviour.on_profile_change(
                connection,
                actor,
                member,
                actor.merchant_id,
                rules,
            )
        existing = (
            await connection.execute(
                select(member_identifiers).where(
                    member_identifiers.c.member_id == member_id,
                    member_identifiers.c.identifier_id == identifier_id,
                )
            )
        ).one()
    elif not _sees_identifier(actor, existing):
        # Another merchant attached it: say it is in use, as for any other member.
        raise _in_use(item.kind)
    return Identifier(
        identifier_id=existing.identifier_id,
        kind=existing.kind,
        value=mask_card(existing.value)
        if existing.kind == IdentifierKind.CARD and not actor.is_hq
        else existing.value,
        added_at=existing.added_at,
        added_by_merchant_id=existing.added_by_merchant_id,
    )


async def detach_identifier(
    connection: AsyncConnection, actor: Principal, member_id: uuid.UUID, identifier_id: uuid.UUID
) -> None:
    """Merchants detach what they attached; HQ detaches anything. A member keeps one card."""
    if actor.merchant_id is not None:
        await _require_active_merchant(connection, actor.merchant_id)
    await lock_member(connection, member_id)
    row = (
        await connection.execute(
            select(member_identifiers).where(
                member_identifiers.c.member_id == member_id,
                member_identifiers.c.identifier_id == identifier_id,
            )
        )
    ).one_or_none()
    if row is None or not (actor.is_hq or row.added_by_merchant_id == actor.merchant_id):
        raise NotFound(f"Identifier {identifier_id} does not exist.")
    if row.kind == IdentifierKind.CARD:
        cards = await connection.scalar(
            select(func.count()).where(
                member_identifiers.c.member_id == member_id,
                member_identifiers.c.kind == IdentifierKind.CARD.value,
            )
        )
        if cards <= 1:
            raise Conflict("A member keeps at least one card; attach the new card first.")
    await connection.execute(
        member_identifiers.delete().where(
            member_identifiers.c.member_id == member_id,
            member_identifiers.c.identifier_id == identifier_id,
        )
    )
    await audit.record(
        connection,
        actor,
        "member.identifier_detached",
        "member",
        member_id,
        {"kind": row.kind, "identifierId": str(identifier_id)},
    )


async def set_status(
    connection: AsyncConnection, actor: Principal, member_id: uuid.UUID, status: str, reason: str
) -> MemberView:
    if not actor.is_hq:
        raise Forbidden("Only HQ changes a member's status.")
    member = await lock_member(connection, member_id)
    if status != member.status:
        if status not in STATUS_TRANSITIONS[member.status]:
            raise Conflict(f"A {member.status} member cannot become {status}.")
        await connection.execute(
            update(members)
            .where(members.c.member_id == member_id)
            .values(status=status, updated_at=func.now())
        )
        await audit.record(
            connection,
            actor,
            "member.status_changed",
            "member",
            member_id,
            {"from": member.status, "to": status, "reason": reason},
        )
    return await get_member(connection, actor, member_id)


async def merge(
    connection: AsyncConnection,
    actor: Principal,
    survivor_id: uuid.UUID,
    duplicate_id: uuid.UUID,
    reason: str,
) -> MemberView:
    """Fold `duplicate_id` into `survivor_id`: identifiers, lots, debt and balance move, the
    duplicate is marked merged (never deleted), and an audit record keeps what moved."""
    if survivor_id == duplicate_id:
        raise InvalidInput("A member cannot be merged into itself.")
    # Lock both rows in a fixed order so that two crossing merges cannot deadlock.
    locked = {}
    for member_id in sorted((survivor_id, duplicate_id)):
        locked[member_id] = await lock_member(connection, member_id)
    if locked[survivor_id].status not in ("active", "suspended"):
        raise MemberNotActive(f"The surviving member is {locked[survivor_id].status}.")
    if locked[duplicate_id].status == "merged":
        raise Conflict("The duplicate member was already merged.")
    moved = (
        await connection.execute(
            update(member_identifiers)
            .where(member_identifiers.c.member_id == duplicate_id)
            .values(member_id=survivor_id)
            .returning(member_identifiers.c.identifier_id, member_identifiers.c.kind)
        )
    ).all()
    from shared.ledger.transfers import merge_points  # the ledger builds on identity

    moved_points = await merge_points(
        connection, actor, survivor_id=survivor_id, duplicate_id=duplicate_id
    )
    await connection.execute(
        update(members)
        .where(members.c.member_id == duplicate_id)
        .values(status="merged", merged_into_member_id=survivor_id, updated_at=func.now())
    )
    await audit.record(
        connection,
        actor,
        "member.merged",
        "member",
        survivor_id,
        {
            "duplicateMemberId": str(duplicate_id),
            "duplicateStatus": locked[duplicate_id].status,
            "reason": reason,
            "movedPoints": moved_points.points,
            "movedIdentifiers": [
                {"identifierId": str(item.identifier_id), "kind": item.kind} for item in moved
            ],
        },
    )
    return await get_member(connection, actor, survivor_id)


@dataclass(frozen=True, slots=True)
class MemberRef:
    """How a till names a member: any identifier, or the network member id."""

    kind: str  # "member_id" or an IdentifierKind value
    value: str


async def resolve(
    connection: AsyncConnection, viewer: Principal, ref: MemberRef, default_region: str
) -> uuid.UUID:
    if ref.kind == "member_id":
        try:
            return uuid.UUID(ref.value)
        except ValueError:
            raise InvalidInput("memberId is not a UUID.") from None
    return await find_member_id(
        connection, viewer, IdentifierKind(ref.kind), ref.value, default_region
    )
