"""Tiers: qualification on base points earned network-wide in a rolling 12 months.

Upgrades happen at once (on the earn that crosses a threshold) and hold for
`tier_validity_months`; when a status period ends, `coalition jobs tiers` requalifies and
moves down one level at most. Qualifying points are base points only (bonuses do not
qualify), net of refund clawbacks.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from dateutil.relativedelta import relativedelta
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.ledger.journal import LockedMember, lock_member
from shared.ledger.rules import qualified_tier, tier_after_requalification
from shared.program import ProgramRules
from shared.tables import lots, members

QUALIFYING_WINDOW = relativedelta(months=12)


# The earn path computes the same sum inline, in earning._EARN_CONTEXT, to save a round trip:
# change both together.
async def qualifying_points(
    connection: AsyncConnection, member_id: uuid.UUID, now: datetime
) -> int:
    since = now - QUALIFYING_WINDOW
    earned = select(func.coalesce(func.sum(lots.c.original - lots.c.clawed_back), 0)).where(
        lots.c.member_id == member_id, lots.c.source == "base", lots.c.earned_at > since
    )
    return int(await connection.scalar(earned))


async def _set_tier(
    connection: AsyncConnection, member: LockedMember, tier: str, rules: ProgramRules
) -> None:
    valid_until = (
        None
        if tier == rules.base_tier.name
        else member.now + relativedelta(months=rules.tier_validity_months)
    )
    await connection.execute(
        update(members)
        .where(members.c.member_id == member.member_id)
        .values(
            tier=tier, tier_since=member.now, tier_valid_until=valid_until, updated_at=member.now
        )
    )
    member.tier = tier
    member.tier_valid_until = valid_until


async def upgrade_if_qualified(
    connection: AsyncConnection,
    member: LockedMember,
    rules: ProgramRules,
    qualifying: int | None = None,
) -> str:
    """Upgrade at once when the rolling qualifying points reach a higher tier (`qualifying`
    may be given when the caller already knows it, saving a query on the earn path)."""
    names = rules.tier_names
    if qualifying is None:
        qualifying = await qualifying_points(connection, member.member_id, member.now)
    earned = qualified_tier(rules.tiers, qualifying)
    current = names.index(member.tier) if member.tier in names else 0
    if names.index(earned.name) > current:
        await _set_tier(connection, member, earned.name, rules)
    return member.tier


async def requalify_due(engine: AsyncEngine, rules: ProgramRules, batch_size: int = 500) -> int:
    """Members whose status period ended: keep, raise, or drop one level. Idempotent."""
    changed = 0
    while True:
        async with engine.begin() as connection:
            due = (
                await connection.scalars(
                    select(members.c.member_id)
                    .where(members.c.tier_valid_until <= func.now(), members.c.status == "active")
                    .limit(batch_size)
                )
            ).all()
            for member_id in due:
                member = await lock_member(connection, member_id)
                if member.tier_valid_until is None or member.tier_valid_until > member.now:
                    continue
                points = await qualifying_points(connection, member_id, member.now)
                new_tier = tier_after_requalification(rules.tiers, member.tier, points)
                await _set_tier(connection, member, new_tier.name, rules)
                changed += 1
        if len(due) < batch_size:
            return changed


@dataclass(frozen=True, slots=True)
class TierProgress:
    tier: str
    multiplier: str
    valid_until: datetime | None
    qualifying_points: int
    window_start: datetime
    reason: str
    next_tier: str | None
    next_tier_threshold: int | None
    points_to_next_tier: int | None
    keeps_tier_at_renewal: bool


async def progress(
    connection: AsyncConnection, member_id: uuid.UUID, rules: ProgramRules
) -> TierProgress:
    row = (
        await connection.execute(
            select(members.c.tier, members.c.tier_valid_until, func.now().label("now")).where(
                members.c.member_id == member_id
            )
        )
    ).one()
    points = await qualifying_points(connection, member_id, row.now)
    names = rules.tier_names
    index = names.index(row.tier) if row.tier in names else 0
    current = rules.tiers[index]
    following = rules.tiers[index + 1] if index + 1 < len(rules.tiers) else None
    if index == 0:
        reason = "Every member starts in the base tier."
    else:
        reason = (
            f"{current.name.title()} needs {current.threshold:,} qualifying points in 12 months; "
            f"the status was reached on an earlier earn and holds until its renewal date."
        )
    return TierProgress(
        tier=current.name,
        multiplier=str(current.multiplier),
        valid_until=row.tier_valid_until,
        qualifying_points=points,
        window_start=row.now - QUALIFYING_WINDOW,
        reason=reason,
        next_tier=following.name if following else None,
        next_tier_threshold=following.threshold if following else None,
        points_to_next_tier=max(following.threshold - points, 0) if following else None,
        keeps_tier_at_renewal=points >= current.threshold,
    )
