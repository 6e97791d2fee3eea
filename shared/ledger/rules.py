"""Pure business rules of the ledger: no I/O, unit-tested without a database.

Rounding, written down once:
- base points = floor(eligible amount in major units x earn rate): a member never gets a
  fraction of a point, and the merchant never pays for one;
- tier bonus = floor(base x (multiplier - 1));
- refund clawback, per lot = floor(original x cumulative refunded / purchase) minus what
  earlier refunds of the same purchase already clawed back: computed on the cumulative
  amount so that partial refunds that add up to the whole purchase claw back exactly the
  original points, never one more or one less;
- points + cash: points cover floor(amount / point value) at most; the cash remainder is
  the amount minus the points' value, rounded up to the minor unit (the merchant is never
  short of money);
- lots are consumed first-to-expire first; ties by earn time, then by source (a
  purchase's merchant-funded base points before its campaign and tier bonuses, then
  behaviour, adjustment and moved points), then lot id: the order never depends on
  random ids where the funder differs, so settlement is reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Generic, TypeVar

from dateutil.relativedelta import relativedelta

from shared.program import ProgramRules, Tier

Key = TypeVar("Key")


@dataclass(frozen=True, slots=True)
class LineItem:
    amount_minor: int
    category: str | None = None


@dataclass(frozen=True, slots=True)
class EarnBreakdown:
    purchase_amount_minor: int
    excluded_amount_minor: int
    eligible_amount_minor: int
    earn_rate: Decimal
    base_points: int
    tier: str
    tier_multiplier: Decimal
    tier_bonus_points: int

    @property
    def total_points(self) -> int:
        return self.base_points + self.tier_bonus_points


def earn_breakdown(
    *,
    amount_minor: int,
    currency_exponent: int,
    earn_rate: Decimal,
    tier: Tier,
    line_items: Sequence[LineItem] = (),
    excluded_categories: Iterable[str] = (),
) -> EarnBreakdown:
    excluded = set(excluded_categories)
    excluded_amount = sum(item.amount_minor for item in line_items if item.category in excluded)
    eligible = max(amount_minor - excluded_amount, 0)
    base = int(
        (Decimal(eligible) * earn_rate / (Decimal(10) ** currency_exponent)).to_integral_value(
            rounding=ROUND_FLOOR
        )
    )
    bonus = int((Decimal(base) * (tier.multiplier - 1)).to_integral_value(rounding=ROUND_FLOOR))
    return EarnBreakdown(
        purchase_amount_minor=amount_minor,
        excluded_amount_minor=min(excluded_amount, amount_minor),
        eligible_amount_minor=eligible,
        earn_rate=earn_rate,
        base_points=base,
        tier=tier.name,
        tier_multiplier=tier.multiplier,
        tier_bonus_points=bonus,
    )


SOURCE_ORDER = ("base", "campaign", "tier_bonus", "behaviour", "adjustment", "transfer", "merge")
_SOURCE_RANK = {source: rank for rank, source in enumerate(SOURCE_ORDER)}


def spending_order(expires_at: datetime, earned_at: datetime, source: str, lot_id: object) -> tuple:
    return (expires_at, earned_at, _SOURCE_RANK.get(source, len(SOURCE_ORDER)), str(lot_id))


@dataclass(frozen=True, slots=True)
class SpendableLot(Generic[Key]):
    lot_id: Key
    free: int  # remaining - reserved
    expires_at: datetime
    earned_at: datetime
    source: str


class NotEnoughPoints(Exception):
    def __init__(self, needed: int, available: int) -> None:
        super().__init__(f"needed {needed}, available {available}")
        self.needed = needed
        self.available = available


def first_to_expire(lots: Iterable[SpendableLot[Key]], points: int) -> list[tuple[Key, int]]:
    """Which lots pay for `points`, first-to-expire first."""
    if points <= 0:
        return []
    ordered = sorted(
        (lot for lot in lots if lot.free > 0),
        key=lambda lot: spending_order(lot.expires_at, lot.earned_at, lot.source, lot.lot_id),
    )
    plan: list[tuple[Key, int]] = []
    still_needed = points
    for lot in ordered:
        take = min(lot.free, still_needed)
        plan.append((lot.lot_id, take))
        still_needed -= take
        if still_needed == 0:
            return plan
    raise NotEnoughPoints(points, points - still_needed)


def refund_clawback(
    *,
    lot_originals: dict[Key, int],
    purchase_amount_minor: int,
    refunded_before_minor: int,
    refund_minor: int,
    clawed_before: dict[Key, int],
) -> dict[Key, int]:
    """Points to claw back from each lot of an earn for this refund (see module rounding)."""
    if purchase_amount_minor <= 0:
        return {lot: 0 for lot in lot_originals}
    cumulative = refunded_before_minor + refund_minor
    return {
        lot: original * cumulative // purchase_amount_minor - clawed_before.get(lot, 0)
        for lot, original in lot_originals.items()
    }


@dataclass(frozen=True, slots=True)
class PointsAndCash:
    points: int
    cash_minor: int


def payable_by_points(amount_minor: int, point_value_minor: Decimal) -> int:
    """The most points a purchase can take: whole points, never worth more than it."""
    return int((Decimal(amount_minor) / point_value_minor).to_integral_value(rounding=ROUND_FLOOR))


def points_and_cash(
    amount_minor: int, point_value_minor: Decimal, available_points: int
) -> PointsAndCash:
    """Use up to the available points for a purchase; the rest is paid in cash."""
    points = max(min(payable_by_points(amount_minor, point_value_minor), available_points), 0)
    cash = Decimal(amount_minor) - Decimal(points) * point_value_minor
    return PointsAndCash(points, int(cash.to_integral_value(rounding=ROUND_CEILING)))


def points_value_minor(points: int, point_value_minor: Decimal) -> int:
    return int((Decimal(points) * point_value_minor).to_integral_value(rounding=ROUND_FLOOR))


def split_for_debt(new_lot_points: Sequence[int], debt: int) -> list[int]:
    """How much of each new lot repays debt (in order) before any of it becomes spendable."""
    repayments = []
    for points in new_lot_points:
        repay = min(points, debt)
        repayments.append(repay)
        debt -= repay
    return repayments


def qualified_tier(tiers: Sequence[Tier], qualifying_points: int) -> Tier:
    eligible = [tier for tier in tiers if tier.threshold <= qualifying_points]
    return eligible[-1]


def tier_after_requalification(tiers: Sequence[Tier], current: str, qualifying_points: int) -> Tier:
    """At the end of a status period: keep the tier (or go higher) if qualified, else one
    level down at most."""
    names = [tier.name for tier in tiers]
    index = names.index(current) if current in names else 0
    earned = qualified_tier(tiers, qualifying_points)
    earned_index = names.index(earned.name)
    if earned_index >= index:
        return tiers[earned_index]
    return tiers[max(index - 1, 0)]


def referral_share(points: int, percent: Decimal) -> int:
    return math.floor(Decimal(points) * percent / 100)


def lot_expiry(earned_at: datetime, rules: ProgramRules) -> datetime:
    """Calendar months, so a lot earned on 31 January expires on the last day of the month."""
    return earned_at + relativedelta(months=rules.expiry_months)
