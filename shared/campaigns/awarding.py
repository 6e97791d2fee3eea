"""Campaign bonuses at earn time: record the member's arm, award treated members.

The earn path reads the campaigns in force at its merchant in the same round trip as the
member's lock (`OFFERS_SQL`, a sub-select of its context query), so a purchase outside any
campaign costs nothing more; that query also says whether the member already has an arm
in each. When campaigns target the purchase: one statement records the arms not recorded
yet, one reads the member's campaign history if a rule needs it, and one per budgeted
campaign draws on its budget. Holdout members are recorded and never rewarded.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from shared.campaigns import budget
from shared.campaigns.rules import (
    History,
    Offer,
    PastEarn,
    Purchase,
    admits,
    bonus,
    member_arm,
    targets,
    within_member_cap,
)
from shared.database.driver import driver

# Campaigns that may apply to a purchase at merchant $2: not draft or cancelled, and whose
# window is near enough to the database's now (purchases may be backdated 30 days); and
# whether the member (m, in the earn context query) is on each one's target list and
# already has an arm in it (then no statement records it again).
OFFERS_SQL = """
(SELECT coalesce(json_agg(json_build_object(
    'campaign_id', c.campaign_id, 'name', c.name, 'owner_merchant_id', c.owner_merchant_id,
    'kind', c.kind, 'starts_at', c.starts_at, 'ends_at', c.ends_at, 'terms', c.terms,
    'merchant_ids', c.merchant_ids, 'tiers', c.tiers, 'holdout_bps', c.holdout_bps,
    'salt', c.salt, 'audience', c.audience, 'per_member_cap_points', c.per_member_cap_points,
    'budget_points', c.budget_points,
    'listed', c.audience = 'listed' AND EXISTS (SELECT 1 FROM campaign_targets t
      WHERE t.member_id = m.member_id AND t.campaign_id = c.campaign_id),
    'assigned', EXISTS (SELECT 1 FROM campaign_assignments a
      WHERE a.member_id = m.member_id AND a.campaign_id = c.campaign_id))
    ORDER BY c.starts_at, c.campaign_id), '[]')
 FROM campaigns c
 WHERE c.status NOT IN ('draft', 'cancelled')
   AND c.starts_at <= now() + interval '1 hour' AND c.ends_at > now() - interval '31 days'
   AND (c.merchant_ids = '{}' OR $2 = ANY(c.merchant_ids)))
"""


@dataclass(frozen=True, slots=True)
class Award:
    offer: Offer
    points: int


def _decoded(value):
    """json values arrive as text, or decoded when the connection has a json codec."""
    return json.loads(value) if isinstance(value, str) else value


def offers_from_json(value: str | list | None) -> list[Offer]:
    rows = _decoded(value) or []
    return [
        Offer(
            campaign_id=uuid.UUID(row["campaign_id"]),
            name=row["name"],
            owner_merchant_id=uuid.UUID(row["owner_merchant_id"])
            if row["owner_merchant_id"]
            else None,
            kind=row["kind"],
            starts_at=datetime.fromisoformat(row["starts_at"]),
            ends_at=datetime.fromisoformat(row["ends_at"]),
            terms=row["terms"],
            merchant_ids=frozenset(uuid.UUID(m) for m in row["merchant_ids"] or ()),
            tiers=frozenset(row["tiers"] or ()),
            holdout_bps=int(row["holdout_bps"]),
            salt=row["salt"],
            audience=row["audience"],
            per_member_cap_points=row["per_member_cap_points"],
            budget_points=row["budget_points"],
            listed=bool(row["listed"]),
            assigned=bool(row["assigned"]),
        )
        for row in rows
    ]


_RECORD_ARMS = """
INSERT INTO campaign_assignments (member_id, campaign_id, arm, assigned_at)
SELECT $1, campaign_id, arm, now()
FROM unnest($2::uuid[], $3::text[]) AS assigned(campaign_id, arm)
ON CONFLICT DO NOTHING
"""

_HISTORY = """
SELECT
  (SELECT max(occurred_at) FROM ledger_transactions
    WHERE member_id = $1 AND kind = 'earn' AND occurred_at < $2) AS last_earn_at,
  (SELECT coalesce(json_agg(json_build_object(
       'merchant_id', merchant_id, 'occurred_at', occurred_at,
       'eligible', details -> 'breakdown' -> 'eligible_amount_minor')), '[]')
    FROM ledger_transactions
    WHERE member_id = $1 AND kind = 'earn' AND occurred_at >= $3 AND occurred_at < $4) AS earns,
  (SELECT coalesce(json_object_agg(campaign_id, awarded), '{}') FROM (
     SELECT campaign_id, sum(original) AS awarded FROM lots
     WHERE member_id = $1 AND campaign_id = ANY($5::uuid[]) GROUP BY campaign_id) s) AS awarded
"""


async def _history(connection: AsyncConnection, purchase: Purchase, offers: list[Offer]) -> History:
    database = await driver(connection)
    row = await database.fetchrow(
        _HISTORY,
        purchase.member_id,
        purchase.occurred_at,
        min(offer.starts_at for offer in offers),
        max(offer.ends_at for offer in offers),
        [offer.campaign_id for offer in offers],
    )
    return History(
        last_earn_at=row["last_earn_at"],
        earns=tuple(
            PastEarn(
                uuid.UUID(earn["merchant_id"]) if earn["merchant_id"] else None,
                datetime.fromisoformat(earn["occurred_at"]),
                int(earn["eligible"] or 0),
            )
            for earn in _decoded(row["earns"])
        ),
        awarded={uuid.UUID(key): int(value) for key, value in _decoded(row["awarded"]).items()},
    )


async def award(
    connection: AsyncConnection,
    purchase: Purchase,
    offers: list[Offer],
    global_holdout_bps: int,
) -> list[Award]:
    """The campaign bonuses of this purchase, after per-member caps and budgets, with the
    member's arm recorded in every campaign the purchase makes them eligible for."""
    # The member's history is read only for campaigns that target this very purchase.
    targeted = [offer for offer in offers if targets(offer, purchase, global_holdout_bps)]
    history = (
        await _history(connection, purchase, targeted)
        if any(offer.needs_history for offer in targeted)
        else History()
    )
    applicable = [offer for offer in targeted if admits(offer, purchase, history)]
    if not applicable:
        return []
    arms = {offer.campaign_id: member_arm(offer, purchase.member_id) for offer in applicable}
    unrecorded = [offer.campaign_id for offer in applicable if not offer.assigned]
    if unrecorded:
        await (await driver(connection)).execute(
            _RECORD_ARMS, purchase.member_id, unrecorded, [arms[c] for c in unrecorded]
        )
    awards = []
    # Budgets are drawn in campaign-id order, so two earns never wait for each other.
    for offer in sorted(applicable, key=lambda offer: offer.campaign_id):
        if arms[offer.campaign_id] != "treatment":
            continue
        points = within_member_cap(bonus(offer, purchase, history), offer, history)
        if offer.budget_points is not None:
            points = await budget.draw(connection, offer.campaign_id, purchase.member_id, points)
        if points > 0:
            awards.append(Award(offer, points))
    order = {offer.campaign_id: position for position, offer in enumerate(offers)}
    return sorted(awards, key=lambda award: order[award.offer.campaign_id])
