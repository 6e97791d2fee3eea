"""Earning: a purchase becomes points, one lot per funder, with an explainable breakdown."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.access import Principal
from shared.campaigns import awarding
from shared.campaigns.rules import Purchase
from shared.errors import CurrencyMismatch, InvalidInput
from shared.ledger import behaviour, journal, tiers
from shared.ledger.context import LockingRead, merchant_terms, require_store
from shared.ledger.journal import ISSUED, MEMBER, LockedMember, NewLot, Posting
from shared.ledger.rules import EarnBreakdown, LineItem, earn_breakdown, lot_expiry, split_for_debt
from shared.members import MemberRef
from shared.program import CURRENCY_EXPONENTS, ProgramRules
from shared.tables import lots

# How far back a till may date a purchase (offline tills catching up) and how far ahead
# (clock skew).
MAX_BACKDATE = timedelta(days=30)
MAX_CLOCK_SKEW = timedelta(minutes=5)
# Balances are BIGINT: the largest amount at the largest earn rate gives 10^18 points, and a
# handful of such earns overflowed the member's balance (a 500). A trillion points per
# purchase is beyond any real basket and leaves millions of them before an overflow.
MAX_POINTS_PER_EARN = 10**12


@dataclass(frozen=True, slots=True)
class LotSummary:
    lot_id: uuid.UUID
    source: str
    points: int
    funder_merchant_id: uuid.UUID | None
    available_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class CampaignBonus:
    campaign_id: uuid.UUID
    name: str
    points: int
    funder_merchant_id: uuid.UUID | None  # None: HQ


@dataclass(frozen=True, slots=True)
class EarnResult:
    transaction_id: uuid.UUID
    member_id: uuid.UUID
    points: int
    breakdown: EarnBreakdown
    campaigns: list[CampaignBonus]
    lots: list[LotSummary]
    debt_repaid: int
    tier: str
    balance: int


def check_occurred_at(occurred_at: datetime, now: datetime) -> None:
    if occurred_at.tzinfo is None:
        raise InvalidInput("occurredAt needs a time zone offset.")
    if occurred_at > now + MAX_CLOCK_SKEW:
        raise InvalidInput("occurredAt is in the future.")
    if occurred_at < now - MAX_BACKDATE:
        raise InvalidInput(f"occurredAt is more than {MAX_BACKDATE.days} days ago.")


async def extend_lots_on_activity(
    connection: AsyncConnection, member: LockedMember, rules: ProgramRules
) -> None:
    """Policy "12 months after the member's last activity": activity pushes every open lot."""
    if rules.expiry_policy != "last_activity":
        return
    await connection.execute(
        update(lots)
        .where(
            lots.c.member_id == member.member_id,
            lots.c.remaining > 0,
            lots.c.expires_at > member.now,
        )
        .values(expires_at=func.greatest(lots.c.expires_at, lot_expiry(member.now, rules)))
    )


# What the earn rules need besides the member and the merchant's terms: the member's
# qualifying points (tiers.qualifying_points' sum, inlined) and the campaigns in force at
# the merchant.
_EARN_CONTEXT = LockingRead(
    """
    (SELECT coalesce(sum(l.original - l.clawed_back), 0) FROM lots l
      WHERE l.member_id = m.member_id AND l.source = 'base'
        AND l.earned_at > now() - interval '12 months') AS qualifying,
    """
    + awarding.OFFERS_SQL.strip()
    + " AS offers"
)


async def earn(
    connection: AsyncConnection,
    actor: Principal,
    *,
    merchant_id: uuid.UUID,
    member_ref: MemberRef,
    default_region: str,
    amount_minor: int,
    currency: str,
    occurred_at: datetime,
    store_id: uuid.UUID | None,
    line_items: list[LineItem],
    external_reference: str | None,
    rules: ProgramRules,
) -> EarnResult:
    if amount_minor <= 0:
        raise InvalidInput("A purchase amount is positive.")
    if sum(item.amount_minor for item in line_items) > amount_minor:
        raise InvalidInput("Line items add up to more than the purchase amount.")
    context = await _EARN_CONTEXT.fetch(
        connection, actor, merchant_id, member_ref, default_region, store_id
    )
    terms = merchant_terms(context, merchant_id)
    if currency != terms.currency:
        raise CurrencyMismatch(f"This merchant transacts in {terms.currency}, not {currency}.")
    require_store(context, merchant_id, store_id)
    member = journal.locked_member(context)
    journal.require_active(member)
    check_occurred_at(occurred_at, member.now)

    breakdown = earn_breakdown(
        amount_minor=amount_minor,
        currency_exponent=CURRENCY_EXPONENTS.get(currency, 2),
        earn_rate=terms.earn_rate,
        tier=rules.tier(member.tier),
        line_items=line_items,
        excluded_categories=rules.excluded_categories,
    )
    if breakdown.total_points > MAX_POINTS_PER_EARN:
        raise InvalidInput(f"One purchase earns at most {MAX_POINTS_PER_EARN:,} points.")
    available_at = max(member.now + timedelta(days=terms.pending_days), occurred_at)
    expires_at = lot_expiry(occurred_at, rules)
    offers = awarding.offers_from_json(context["offers"])
    awards = (
        await awarding.award(
            connection,
            Purchase(
                member_id=member.member_id,
                tier=member.tier,
                enrolled_at=context["enrolled_at"],
                merchant_id=merchant_id,
                occurred_at=occurred_at,
                base_points=breakdown.base_points,
                eligible_minor=breakdown.eligible_amount_minor,
            ),
            offers,
            rules.global_holdout_bps,
        )
        if offers
        else []
    )
    # (source, points, funder, campaign): one lot and one issued posting each.
    grants = [
        ("base", breakdown.base_points, merchant_id, None),
        ("tier_bonus", breakdown.tier_bonus_points, None, None),
    ] + [
        ("campaign", award.points, award.offer.owner_merchant_id, award.offer.campaign_id)
        for award in awards
    ]
    total_points = sum(points for _, points, _, _ in grants)
    new_lots = [
        NewLot(
            source,
            points,
            merchant_id,
            funder,
            occurred_at,
            available_at,
            expires_at,
            campaign_id=campaign_id,
        )
        for source, points, funder, campaign_id in grants
        if points > 0
    ]
    repaid = split_for_debt([lot.points for lot in new_lots], member.debt)
    await extend_lots_on_activity(connection, member, rules)
    details = {
        "breakdown": _json(asdict(breakdown)),
        "lineItems": [asdict(item) for item in line_items],
    }
    if awards:
        details["campaigns"] = [
            {"campaignId": str(award.offer.campaign_id), "points": award.points} for award in awards
        ]
    transaction_id = await journal.post(
        connection,
        member,
        kind="earn",
        entries=[Posting(MEMBER, total_points)]
        + [Posting(ISSUED, -points, funder) for _, points, funder, _ in grants],
        occurred_at=occurred_at,
        debt_delta=-sum(repaid),
        earned=total_points,
        new_lots=new_lots,
        repaid=repaid,
        merchant_id=merchant_id,
        store_id=store_id,
        amount_minor=amount_minor,
        currency=currency,
        external_reference=external_reference,
        actor_key_id=actor.key_id,
        details=details,
    )
    tier = await tiers.upgrade_if_qualified(
        connection, member, rules, qualifying=context["qualifying"] + breakdown.base_points
    )
    await behaviour.on_referee_earn(
        connection, actor, member, breakdown.base_points, merchant_id, transaction_id, rules
    )
    return EarnResult(
        transaction_id=transaction_id,
        member_id=member.member_id,
        points=total_points,
        breakdown=breakdown,
        campaigns=[
            CampaignBonus(
                award.offer.campaign_id,
                award.offer.name,
                award.points,
                award.offer.owner_merchant_id,
            )
            for award in awards
        ],
        lots=[
            LotSummary(
                lot.lot_id,
                lot.source,
                lot.points,
                lot.funder_merchant_id,
                lot.available_at,
                lot.expires_at,
            )
            for lot in new_lots
        ],
        debt_repaid=sum(repaid),
        tier=tier,
        balance=member.balance,
    )


def _json(values: dict) -> dict:
    return {
        key: str(value) if not isinstance(value, int | str) else value
        for key, value in values.items()
    }
