"""Campaign award rules: who a campaign applies to at a purchase, and the bonus it gives.

Pure functions over an `Offer` (a campaign in force, as the earn path reads it), the
`Purchase` being earned and the member's `History` in the campaign: the earn path, the
seed's replay and the tests share them. Points are integers; a multiplier's bonus is
floor(base x (m - 1)), like the tier bonus.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from shared.campaigns.assignment import Arm, arm, in_global_holdout

# Kinds whose award depends on what the member did earlier in the campaign (or before it).
HISTORY_KINDS = frozenset({"spend_threshold", "cross_merchant", "win_back"})


@dataclass(frozen=True, slots=True)
class Offer:
    campaign_id: uuid.UUID
    name: str
    owner_merchant_id: uuid.UUID | None  # the funder; None: HQ
    kind: str
    starts_at: datetime
    ends_at: datetime
    terms: dict[str, Any]
    merchant_ids: frozenset[uuid.UUID]  # empty: every partner
    tiers: frozenset[str]  # empty: every tier
    holdout_bps: int
    salt: str
    audience: str
    per_member_cap_points: int | None
    budget_points: int | None
    listed: bool = False  # the member is on the campaign's target list ('listed' audience)
    assigned: bool = False  # the member already has an arm in the campaign

    def at_merchant(self, merchant_id: uuid.UUID | None) -> bool:
        return not self.merchant_ids or merchant_id in self.merchant_ids

    @property
    def needs_history(self) -> bool:
        return self.kind in HISTORY_KINDS or self.per_member_cap_points is not None


@dataclass(frozen=True, slots=True)
class Purchase:
    member_id: uuid.UUID
    tier: str
    enrolled_at: datetime
    merchant_id: uuid.UUID
    occurred_at: datetime
    base_points: int
    eligible_minor: int


@dataclass(frozen=True, slots=True)
class PastEarn:
    merchant_id: uuid.UUID | None
    occurred_at: datetime
    eligible_minor: int


@dataclass(frozen=True, slots=True)
class History:
    """The member's earlier earns (those posted before this one) and campaign points."""

    last_earn_at: datetime | None = None  # the latest earn that occurred before this one
    earns: tuple[PastEarn, ...] = ()  # earns that occurred in the campaigns' windows
    awarded: dict[uuid.UUID, int] = field(default_factory=dict)  # campaign -> points given


def multiplier_bonus(base_points: int, multiplier: str) -> int:
    numerator, denominator = Decimal(multiplier).as_integer_ratio()
    return base_points * (numerator - denominator) // denominator


def targets(offer: Offer, purchase: Purchase, global_holdout_bps: int) -> bool:
    """The campaign is in force for this member at this purchase: in its window, at one of
    its partners, for the member's tier and audience, and the member is not in the
    programme's global holdout."""
    return (
        offer.starts_at <= purchase.occurred_at < offer.ends_at
        and offer.at_merchant(purchase.merchant_id)
        and (not offer.tiers or purchase.tier in offer.tiers)
        and in_audience(offer, purchase)
        and not in_global_holdout(purchase.member_id, global_holdout_bps)
    )


def in_audience(offer: Offer, purchase: Purchase) -> bool:
    if offer.audience == "enrolled_before_start":
        return purchase.enrolled_at < offer.starts_at
    if offer.audience == "listed":
        return offer.listed
    return True


def lapsed(offer: Offer, purchase: Purchase, history: History) -> bool:
    """Win-back: no earn for more than `lapsedDays` before this purchase (since enrolment
    for a member who never bought)."""
    last = history.last_earn_at or purchase.enrolled_at
    return purchase.occurred_at - last > timedelta(days=int(offer.terms["lapsedDays"]))


def eligible(offer: Offer, purchase: Purchase, history: History, global_holdout_bps: int) -> bool:
    """The purchase makes the member eligible, which records the member's arm."""
    return targets(offer, purchase, global_holdout_bps) and admits(offer, purchase, history)


def admits(offer: Offer, purchase: Purchase, history: History) -> bool:
    """What eligibility asks beyond targeting: a triggered win-back campaign is only for
    members coming back after a lapse."""
    if offer.kind == "win_back" and offer.audience == "triggered":
        return lapsed(offer, purchase, history)
    return True


def member_arm(offer: Offer, member_id: uuid.UUID) -> Arm:
    return arm(member_id, offer.salt, offer.holdout_bps)


def bonus(offer: Offer, purchase: Purchase, history: History) -> int:
    """The bonus a treated, eligible member earns on this purchase, before caps."""
    terms, awarded = offer.terms, history.awarded.get(offer.campaign_id, 0)
    if offer.kind == "multiplier":
        return multiplier_bonus(purchase.base_points, terms["multiplier"])
    if offer.kind == "fixed_bonus":
        return (
            int(terms["bonusPoints"])
            if purchase.eligible_minor >= int(terms.get("minSpendMinor", 0))
            else 0
        )
    if awarded:  # the remaining kinds reward once per member
        return 0
    if offer.kind == "spend_threshold":
        spent = (
            sum(earn.eligible_minor for earn in _earns_in_campaign(offer, history))
            + purchase.eligible_minor
        )
        return int(terms["bonusPoints"]) if spent >= int(terms["thresholdMinor"]) else 0
    if offer.kind == "cross_merchant":
        partners = {earn.merchant_id for earn in _earns_in_campaign(offer, history)}
        partners.add(purchase.merchant_id)
        return int(terms["bonusPoints"]) if len(partners) >= int(terms["distinctPartners"]) else 0
    if offer.kind == "win_back":
        if not lapsed(offer, purchase, history):
            return 0
        if "multiplier" in terms:
            return multiplier_bonus(purchase.base_points, terms["multiplier"])
        return int(terms["bonusPoints"])
    raise ValueError(f"unknown campaign kind {offer.kind!r}")


def within_member_cap(points: int, offer: Offer, history: History) -> int:
    """What is left under the per-member cap (points already given count in full, even if
    a refund clawed some back: the cap limits what the campaign hands out)."""
    if offer.per_member_cap_points is None:
        return points
    left = offer.per_member_cap_points - history.awarded.get(offer.campaign_id, 0)
    return max(0, min(points, left))


def _earns_in_campaign(offer: Offer, history: History):
    return (
        earn
        for earn in history.earns
        if offer.starts_at <= earn.occurred_at < offer.ends_at
        and offer.at_merchant(earn.merchant_id)
    )
