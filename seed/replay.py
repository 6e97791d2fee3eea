"""The ledger services, replayed in memory for one member at a time, writing table rows.

Bulk mode cannot afford a database round trip per event, so this module applies the same
rules as shared/ledger (it calls the pure rule functions where they are cheap, and exact
integer twins of the Decimal ones, tested equal in tests/unit/test_seed_rules.py) and
produces the rows the services would have written: transactions, postings, lots with
their final remainders, allocations, holds, balances. tests/integration/test_seed_replay.py
plays the same events through the real services and compares the tables.

Time is whole seconds since the Unix epoch. Each member's events run in time order on a
small heap; the nightly jobs (`coalition jobs expire` and `jobs tiers`, at 03:00 UTC) run
for the member whenever something of theirs falls due before the next event.
"""

from __future__ import annotations

import heapq
import json
import random
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from seed.behaviour import Purchases, ShardMembers
from seed.network import DAY, MerchantPlan, Network, moment
from shared.campaigns.rules import multiplier_bonus
from shared.ledger.rules import (
    referral_share,
    refund_clawback,
    spending_order,
    split_for_debt,
    tier_after_requalification,
)

JOB_HOUR_S = 3 * 3600
NO_MERCHANT = None


def base_points(eligible_minor: int, earn_rate: tuple[int, int], minor_per_major: int) -> int:
    """rules.earn_breakdown's base points, in integers: floor(eligible x rate / 10^exp)."""
    numerator, denominator = earn_rate
    return eligible_minor * numerator // (denominator * minor_per_major)


def bonus_points(base: int, multiplier: tuple[int, int]) -> int:
    """rules.earn_breakdown's tier bonus: floor(base x (m - 1))."""
    numerator, denominator = multiplier
    return base * (numerator - denominator) // denominator


def split_points_and_cash(
    amount_minor: int, point_value: tuple[int, int], available: int
) -> tuple[int, int]:
    """rules.points_and_cash in integers: (points, cash in minor units, rounded up)."""
    points = max(min(points_payable(amount_minor, point_value), available), 0)
    return points, cash_after_points(amount_minor, point_value, points)


def points_payable(amount_minor: int, point_value: tuple[int, int]) -> int:
    """The most points a purchase can take: floor(amount / point value)."""
    numerator, denominator = point_value
    return amount_minor * denominator // numerator


def value_of_points(points: int, point_value: tuple[int, int]) -> int:
    """rules.points_value_minor in integers: what the points pay for, rounded down."""
    numerator, denominator = point_value
    return points * numerator // denominator


def cash_after_points(amount_minor: int, point_value: tuple[int, int], points: int) -> int:
    numerator, denominator = point_value
    return -(-(amount_minor * denominator - points * numerator) // denominator)


# Event kinds, in the order they run when they share a second.
ENROL, PROFILE, CREDIT, CAPTURE, VOID, REVERSAL, REFUND, PURCHASE = range(8)


@dataclass(slots=True)
class Lot:
    lot_id: uuid.UUID
    transaction_id: uuid.UUID
    source: str
    issuing: uuid.UUID | None
    funder: uuid.UUID | None
    campaign_id: uuid.UUID | None
    earned_at: int
    available_at: int
    expires_at: int
    original: int
    remaining: int
    reserved: int = 0
    clawed_back: int = 0
    order: tuple = ()

    @property
    def free(self) -> int:
        return self.remaining - self.reserved


@dataclass(slots=True)
class Hold:
    hold_id: uuid.UUID
    merchant: MerchantPlan
    store_id: uuid.UUID
    points: int
    created_at: int
    expires_at: int
    reservations: list[tuple[Lot, int]]
    status: str = "active"
    closed_at: int | None = None
    captured_points: int | None = None
    capture_transaction_id: uuid.UUID | None = None


@dataclass(slots=True)
class Earn:
    transaction_id: uuid.UUID
    merchant: MerchantPlan
    store_id: uuid.UUID
    amount_minor: int
    lots: list[Lot]
    refunded_minor: int = 0


@dataclass(slots=True)
class Redemption:
    transaction_id: uuid.UUID
    merchant: MerchantPlan
    store_id: uuid.UUID
    taken: list[tuple[Lot, int]]


@dataclass(slots=True)
class Rows:
    """Rows per table, in the column order of shared/tables.py (seed/loading.py)."""

    members: list = field(default_factory=list)
    member_balances: list = field(default_factory=list)
    member_identifiers: list = field(default_factory=list)
    audit_log: list = field(default_factory=list)
    ledger_transactions: list = field(default_factory=list)
    postings: list = field(default_factory=list)
    lots: list = field(default_factory=list)
    allocations: list = field(default_factory=list)
    holds: list = field(default_factory=list)
    hold_reservations: list = field(default_factory=list)
    campaign_assignments: list = field(default_factory=list)
    campaign_targets: list = field(default_factory=list)

    def size(self) -> int:
        return sum(len(getattr(self, name)) for name in self.__slots__)

    def clear(self) -> None:
        for name in self.__slots__:
            getattr(self, name).clear()


@dataclass(slots=True)
class Counters:
    by_kind: dict = field(default_factory=lambda: defaultdict(int))
    points_issued: int = 0
    points_redeemed: int = 0
    points_expired: int = 0
    holds: dict = field(default_factory=lambda: defaultdict(int))
    campaign_points: dict = field(default_factory=lambda: defaultdict(int))
    referrals: int = 0


_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


class IdSource:
    """Deterministic random version-4 UUIDs from the shard's generator, drawn in blocks, as
    canonical text: COPY takes text, and lot ids order by their text (rules.spending_order)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._hex = ""
        self._offset = 0

    def next(self) -> str:
        if self._offset >= len(self._hex):
            self._hex = self._rng.bytes(16 * 4096).hex()
            self._offset = 0
        h = self._hex[self._offset : self._offset + 32]
        self._offset += 32
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


class MemberReplay:
    """One member's ledger, moved by the same rules as the services."""

    def __init__(self, shard: ShardReplay, index: int) -> None:
        self.shard = shard
        self.network = shard.network
        self.rules = shard.network.rules
        self.rows = shard.rows
        self.ids = shard.ids
        self.index = index
        members = shard.members
        self.member_id = members.member_ids[index]
        self.enrolled_s = int(members.enrolled_s[index])
        self.lots: list[Lot] = []
        self.base_lots: list[Lot] = []  # qualifying points come from these
        self.holds: list[Hold] = []
        self.earns: dict[int, Earn] = {}  # purchase row -> its earn
        self.redemptions: list[Redemption] = []
        self.balance = 0
        self.debt = 0
        self.lifetime_earned = 0
        self.lifetime_redeemed = 0
        self.last_activity: int | None = None
        self.balance_updated: int = self.enrolled_s
        self.member_updated: int = self.enrolled_s
        self.tier = 0
        self.tier_since: int | None = None
        self.tier_valid_until: int | None = None

    # --- posting primitives (shared/ledger/journal.py) -------------------------------

    def post(
        self,
        now: int,
        kind: str,
        entries: list[tuple[str, int, uuid.UUID | None]],
        *,
        occurred_at: int | None = None,
        debt_delta: int = 0,
        earned: int = 0,
        redeemed: int = 0,
        activity: bool = True,
        new_lots: list[Lot] = (),
        repaid: list[int] | None = None,
        merchant: MerchantPlan | None = None,
        store_id: uuid.UUID | None = None,
        amount_minor: int | None = None,
        currency: str | None = None,
        original_transaction_id: uuid.UUID | None = None,
        hold_id: uuid.UUID | None = None,
        reason: str | None = None,
        details: str = "{}",
        transaction_id: uuid.UUID | None = None,
    ) -> uuid.UUID:
        transaction_id = transaction_id or self.ids.next()
        posted = moment(now)
        delta = 0
        postings = self.rows.postings
        for line, (account, amount, account_merchant) in enumerate(entries, start=1):
            if amount == 0:
                continue
            if account == "member":
                delta += amount
            postings.append(
                (self.member_id, transaction_id, line, account, account_merchant, amount, posted)
            )
        self.rows.ledger_transactions.append(
            (
                self.member_id,
                transaction_id,
                kind,
                merchant.merchant_id if merchant else None,
                store_id,
                moment(occurred_at) if occurred_at is not None else posted,
                posted,
                delta,
                amount_minor,
                currency,
                original_transaction_id,
                hold_id,
                None,
                None,
                reason,
                None,
                details,
            )
        )
        repaid = repaid or [0] * len(new_lots)
        for lot, repayment in zip(new_lots, repaid, strict=True):
            lot.transaction_id = transaction_id
            lot.remaining = lot.original - repayment
            self.lots.append(lot)
            if lot.source == "base":
                self.base_lots.append(lot)
            if repayment:
                self._allocate(transaction_id, lot, repayment, "debt_repayment", None, posted)
        self.balance += delta
        self.debt += debt_delta
        self.lifetime_earned += earned
        self.lifetime_redeemed += redeemed
        if activity:
            self.last_activity = now
        self.balance_updated = now
        self.shard.counters.by_kind[kind] += 1
        return transaction_id

    def _allocate(self, transaction_id, lot, points, kind, redeeming, posted) -> None:
        self.rows.allocations.append(
            (
                self.member_id,
                transaction_id,
                lot.lot_id,
                kind,
                points,
                lot.issuing,
                redeeming,
                posted,
            )
        )

    def consume(self, now, transaction_id, kind, plan, redeeming=None) -> None:
        posted = moment(now)
        for lot, take in plan:
            lot.remaining -= take
            if take:
                self._allocate(transaction_id, lot, take, kind, redeeming, posted)

    def new_lot(self, source, points, issuing, funder, earned_at, available_at, expires_at,
                campaign_id=None) -> Lot:  # fmt: skip
        lot_id = self.ids.next()
        return Lot(
            lot_id, lot_id, source, issuing, funder, campaign_id, earned_at, available_at,
            expires_at, points, points,
            order=spending_order(expires_at, earned_at, source, lot_id),
        )  # fmt: skip

    @staticmethod
    def first_to_expire(candidates: list[Lot], points: int) -> list[tuple[Lot, int]]:
        plan, needed = [], points
        for lot in sorted(candidates, key=lambda lot: lot.order):
            if lot.free <= 0:
                continue
            take = min(lot.free, needed)
            plan.append((lot, take))
            needed -= take
            if needed == 0:
                return plan
        raise AssertionError(f"replay planned {points} points it does not have")

    def absorb_debt(self, now: int, transaction_id: uuid.UUID) -> None:
        if self.debt <= 0:
            return
        candidates = [lot for lot in self.lots if lot.free > 0 and lot.expires_at > now]
        repay = min(sum(lot.free for lot in candidates), self.debt)
        if repay == 0:
            return
        plan = self.first_to_expire(candidates, repay)
        self.consume(now, transaction_id, "debt_repayment", plan)
        self.debt -= repay

    def spendable(self, now: int) -> list[Lot]:
        return [
            lot
            for lot in self.lots
            if lot.remaining > lot.reserved and lot.available_at <= now and lot.expires_at > now
        ]

    # --- behaviour points (shared/ledger/behaviour.py) --------------------------------

    def award(self, now, reason, points, merchant: MerchantPlan, extra: dict | None = None):
        if points <= 0:
            return None
        lot = self.new_lot(
            "behaviour", points, merchant.merchant_id, None, now, now,
            self.network.calendar.plus_months(now, self.rules.expiry_months),
        )  # fmt: skip
        transaction_id = self.post(
            now, "behaviour",
            [("member", points, None), ("issued", -points, None)],
            earned=points, activity=False, new_lots=[lot], merchant=merchant, reason=reason,
            details=json.dumps({"reason": reason, **(extra or {})}),
        )  # fmt: skip
        self.shard.counters.points_issued += points
        self.absorb_debt(now, transaction_id)
        return transaction_id

    # --- earning (shared/ledger/earning.py) --------------------------------------------

    def qualifying(self, now: int) -> int:
        since = self.network.calendar.minus_twelve_months(now)
        return sum(
            lot.original - lot.clawed_back for lot in self.base_lots if lot.earned_at > since
        )

    def earn(self, now, merchant: MerchantPlan, store_id, amount_minor, line_items, campaigns):
        rules, network = self.rules, self.network
        tiers = rules.tiers
        excluded = sum(
            amount for amount, category in line_items if category in rules.excluded_categories
        )
        eligible = max(amount_minor - excluded, 0)
        base = base_points(eligible, merchant.earn_ratio, network.currency_scale)
        tier = tiers[self.tier]
        tier_bonus = bonus_points(base, self.shard.tier_ratios[self.tier])
        qualifying = self.qualifying(now) + base
        available_at = max(now + merchant.pending_days * DAY, now)
        expires_at = network.calendar.plus_months(now, rules.expiry_months)
        mid = merchant.merchant_id
        campaigns = [
            (campaign, points)
            for campaign in campaigns
            if (points := self.shard.campaign_points(campaign, base, eligible)) > 0
        ]
        candidates = [
            ("base", base, mid, None), ("tier_bonus", tier_bonus, None, None),
        ] + [
            ("campaign", points, campaign.owner.merchant_id if campaign.owner else None, campaign)
            for campaign, points in campaigns
        ]  # fmt: skip
        new_lots = [
            self.new_lot(
                source,
                points,
                mid,
                funder,
                now,
                available_at,
                expires_at,
                campaign.campaign_id if campaign else None,
            )  # fmt: skip
            for source, points, funder, campaign in candidates
            if points > 0
        ]
        repaid = split_for_debt([lot.original for lot in new_lots], self.debt)
        total = sum(points for _, points, _, _ in candidates)
        entries = [("member", total, None)] + [
            ("issued", -points, funder) for _, points, funder, _ in candidates
        ]
        # The services' details (json.dumps of the EarnBreakdown), formatted directly: it is
        # the busiest line of a bulk load, and every value is a number or a plain word.
        lines = ", ".join(
            f'{{"amount_minor": {amount}, "category": "{category}"}}'
            for amount, category in line_items
        )
        details = (
            f'{{"breakdown": {{"purchase_amount_minor": {amount_minor}, '
            f'"excluded_amount_minor": {min(excluded, amount_minor)}, '
            f'"eligible_amount_minor": {eligible}, "earn_rate": "{merchant.earn_rate}", '
            f'"base_points": {base}, "tier": "{tier.name}", '
            f'"tier_multiplier": "{tier.multiplier}", "tier_bonus_points": {tier_bonus}}}, '
            f'"lineItems": [{lines}]'
        )
        if campaigns:
            awarded = ", ".join(
                f'{{"campaignId": "{campaign.campaign_id}", "points": {points}}}'
                for campaign, points in campaigns
            )
            details += f', "campaigns": [{awarded}]'
        details += "}"
        transaction_id = self.post(
            now, "earn", entries, occurred_at=now, debt_delta=-sum(repaid), earned=total,
            new_lots=new_lots, repaid=repaid, merchant=merchant, store_id=store_id,
            amount_minor=amount_minor, currency=rules.currency, details=details,
        )  # fmt: skip
        self.shard.counters.points_issued += total
        for campaign, points in campaigns:
            self.shard.counters.campaign_points[campaign.key] += points
        # tiers.upgrade_if_qualified
        earned_tier = max(i for i, t in enumerate(tiers) if t.threshold <= qualifying)
        if earned_tier > self.tier:
            self.set_tier(now, earned_tier)
        # behaviour.on_referee_earn
        referrer = self.shard.members.referrer[self.index]
        if (
            referrer >= 0
            and base > 0
            and not now > self.enrolled_s + self.rules.referral_window_days * DAY
        ):
            share = referral_share(base, self.rules.referral_share_percent)
            if share > 0:
                self.shard.credit(referrer, now, "referral_share", share, merchant, {
                    "refereeMemberId": str(self.member_id),
                    "earnTransactionId": str(transaction_id),
                })  # fmt: skip
        return transaction_id, new_lots

    def set_tier(self, now: int, tier: int) -> None:
        self.tier = tier
        self.tier_since = now
        self.tier_valid_until = (
            None
            if tier == 0
            else self.network.calendar.plus_months(now, self.rules.tier_validity_months)
        )
        self.member_updated = now

    # --- spending (shared/ledger/redemption.py) ----------------------------------------

    def release_expired_holds(self, now: int) -> None:
        for hold in self.holds:
            if hold.status == "active" and hold.expires_at <= now:
                self._release(hold)
                self._close(hold, now, "expired")
                self.absorb_debt(now, hold.hold_id)

    def _release(self, hold: Hold) -> None:
        for lot, points in hold.reservations:
            lot.reserved -= points

    def _close(self, hold: Hold, now: int, status: str) -> None:
        hold.status = status
        hold.closed_at = now
        self.shard.counters.holds[status] += 1

    def available(self, now: int) -> int:
        """What a balance read shows: holds past their TTL count as released."""
        lapsed: dict[uuid.UUID, int] = defaultdict(int)
        for hold in self.holds:
            if hold.status == "active" and hold.expires_at <= now:
                for lot, points in hold.reservations:
                    lapsed[lot.lot_id] += points
        return sum(
            lot.remaining - lot.reserved + lapsed.get(lot.lot_id, 0)
            for lot in self.lots
            if lot.available_at <= now and lot.expires_at > now and lot.remaining > 0
        )

    def redeem(
        self, now, merchant: MerchantPlan, store_id, points, purchase_minor
    ) -> Redemption | None:
        """Points as tender (`points`) or points + cash (`purchase_minor`); None when the
        service would refuse. A refusal writes nothing (the service rolls back), so the
        checks run on what a read shows before anything moves."""
        if self.debt > 0:
            return None
        available = self.available(now)
        cash = 0
        requested = points
        if purchase_minor is not None:
            points, cash = split_points_and_cash(
                purchase_minor, self.shard.point_value_ratio, available
            )
            if points == 0:
                return None
        if points < self.rules.min_redemption_points or points > available:
            return None
        self.release_expired_holds(now)
        plan = self.first_to_expire(self.spendable(now), points)
        transaction_id = self._post_redemption(
            now, merchant, plan, points, kind="redeem", store_id=store_id,
            amount_minor=purchase_minor, cash_minor=cash,
        )  # fmt: skip
        redemption = Redemption(transaction_id, merchant, store_id, plan)
        self.redemptions.append(redemption)
        self.shard.log(
            now, "redeem", self, merchant, store_id, requested, purchase_minor, redemption
        )
        return redemption

    def _post_redemption(self, now, merchant, plan, points, *, kind, store_id,
                         amount_minor=None, cash_minor=0, hold_id=None) -> uuid.UUID:  # fmt: skip
        details = json.dumps({
            "valueMinor": value_of_points(points, self.shard.point_value_ratio),
            "cashMinor": cash_minor,
            "pointValueMinor": str(self.rules.point_value_minor),
        })  # fmt: skip
        transaction_id = self.post(
            now, kind,
            [("member", -points, None), ("redeemed", points, merchant.merchant_id)],
            redeemed=points, merchant=merchant, store_id=store_id, amount_minor=amount_minor,
            currency=self.rules.currency, hold_id=hold_id, details=details,
        )  # fmt: skip
        self.consume(now, transaction_id, "redemption", plan, merchant.merchant_id)
        self.shard.counters.points_redeemed += points
        return transaction_id

    def hold(self, now, merchant: MerchantPlan, store_id, points) -> Hold | None:
        if points < self.rules.min_redemption_points or self.debt > 0:
            return None
        if self.available(now) < points:
            return None
        self.release_expired_holds(now)
        plan = self.first_to_expire(self.spendable(now), points)
        for lot, take in plan:
            lot.reserved += take
        ttl = self.rules.hold_default_ttl_seconds
        hold = Hold(self.ids.next(), merchant, store_id, points, now, now + ttl, plan)
        self.holds.append(hold)
        self.shard.log(now, "hold", self, merchant, store_id, points, hold)
        return hold

    def capture(self, now, hold: Hold, points: int) -> uuid.UUID | None:
        if hold.status != "active" or hold.expires_at <= now:
            return None
        self._release(hold)
        candidates = [
            Lot(
                lot.lot_id,
                lot.transaction_id,
                lot.source,
                lot.issuing,
                lot.funder,
                lot.campaign_id,
                lot.earned_at,
                lot.available_at,
                lot.expires_at,
                lot.original,
                held,
                0,
                order=lot.order,
            )  # fmt: skip
            for lot, held in hold.reservations
        ]
        by_id = {lot.lot_id: lot for lot, _ in hold.reservations}
        plan = [(by_id[lot.lot_id], take) for lot, take in self.first_to_expire(candidates, points)]
        transaction_id = self._post_redemption(
            now, hold.merchant, plan, points, kind="capture", store_id=hold.store_id,
            hold_id=hold.hold_id,
        )  # fmt: skip
        self._close(hold, now, "captured")
        hold.captured_points = points
        hold.capture_transaction_id = transaction_id
        self.absorb_debt(now, transaction_id)
        redemption = Redemption(transaction_id, hold.merchant, hold.store_id, plan)
        self.redemptions.append(redemption)
        self.shard.log(now, "capture", self, hold, points, redemption)
        return transaction_id

    def void(self, now, hold: Hold) -> bool:
        if hold.status != "active" or hold.expires_at <= now:
            return False
        self._release(hold)
        self._close(hold, now, "voided")
        self.absorb_debt(now, hold.hold_id)
        self.shard.log(now, "void", self, hold)
        return True

    # --- corrections (shared/ledger/corrections.py) ------------------------------------

    def refund(self, now, earn: Earn, amount_minor: int) -> None:
        amount_minor = min(amount_minor, earn.amount_minor - earn.refunded_minor)
        if amount_minor <= 0:
            return
        self.shard.log(now, "refund", self, earn, amount_minor)
        claw = refund_clawback(
            lot_originals={lot.lot_id: lot.original for lot in earn.lots},
            purchase_amount_minor=earn.amount_minor,
            refunded_before_minor=earn.refunded_minor,
            refund_minor=amount_minor,
            clawed_before={lot.lot_id: lot.clawed_back for lot in earn.lots},
        )
        taking, per_funder, debt = [], {}, 0
        for lot in earn.lots:
            points = claw[lot.lot_id]
            if points <= 0:
                continue
            take = min(points, lot.remaining - lot.reserved)
            debt += points - take
            per_funder[lot.funder] = per_funder.get(lot.funder, 0) + points
            taking.append((lot, take))
        total = sum(per_funder.values())
        entries = [("member", -total, None)] + [
            ("issued", points, funder) for funder, points in per_funder.items()
        ]
        transaction_id = self.post(
            now, "refund", entries, debt_delta=debt, activity=False, merchant=earn.merchant,
            store_id=earn.store_id, amount_minor=amount_minor, currency=self.rules.currency,
            original_transaction_id=earn.transaction_id,
            details=json.dumps({
                "clawback": {str(lot_id): points for lot_id, points in claw.items()},
                "debtCreated": debt,
            }),
        )  # fmt: skip
        earn.refunded_minor += amount_minor
        self.consume(
            now, transaction_id, "clawback", [(lot, take) for lot, take in taking if take > 0]
        )
        for lot in earn.lots:
            if claw[lot.lot_id] > 0:
                lot.clawed_back += claw[lot.lot_id]
        self.absorb_debt(now, transaction_id)

    def reverse(self, now, redemption: Redemption) -> None:
        self.shard.log(now, "reverse", self, redemption)
        self.expire(now, batch=False)
        points = sum(take for _, take in redemption.taken)
        transaction_id = self.post(
            now, "reversal",
            [("member", points, None), ("redeemed", -points, redemption.merchant.merchant_id)],
            redeemed=-points, merchant=redemption.merchant, store_id=redemption.store_id,
            original_transaction_id=redemption.transaction_id, currency=self.rules.currency,
        )  # fmt: skip
        posted = moment(now)
        for lot, take in redemption.taken:
            self._allocate(
                transaction_id, lot, -take, "reversal", redemption.merchant.merchant_id, posted
            )
        grace_until = now + self.rules.reversal_grace_days * DAY
        for lot, take in redemption.taken:
            lot.remaining += take
            if lot.expires_at <= now:
                lot.expires_at = grace_until
                lot.order = spending_order(lot.expires_at, lot.earned_at, lot.source, lot.lot_id)
        self.shard.counters.points_redeemed -= points
        self.absorb_debt(now, transaction_id)

    # --- jobs (shared/ledger/expiry.py, tiers.py) --------------------------------------

    def expire(self, now: int, *, batch: bool) -> None:
        """The expiry job's batch path sorts a member's lots by (expires_at, lot_id); the
        per-member path (before a reversal) takes them in the order they were written."""
        self.release_expired_holds(now)
        expired = [lot for lot in self.lots if lot.expires_at <= now and lot.free > 0]
        if not expired:
            return
        if batch:
            expired.sort(key=lambda lot: (lot.expires_at, str(lot.lot_id)))
        by_issuer: dict = {}
        for lot in expired:
            by_issuer[lot.issuing] = by_issuer.get(lot.issuing, 0) + lot.free
        total = sum(by_issuer.values())
        entries = [("member", -total, None)] + [
            ("breakage", points, issuer) for issuer, points in by_issuer.items()
        ]
        transaction_id = self.post(
            now, "expiry", entries, activity=False, details=json.dumps({"lots": len(expired)})
        )
        self.consume(now, transaction_id, "expiry", [(lot, lot.free) for lot in expired])
        self.shard.counters.points_expired += total

    def requalify(self, now: int) -> None:
        if self.tier_valid_until is None or self.tier_valid_until > now:
            return
        tiers = self.rules.tiers
        new_tier = tier_after_requalification(tiers, tiers[self.tier].name, self.qualifying(now))
        self.set_tier(now, [tier.name for tier in tiers].index(new_tier.name))

    def next_job_due(self) -> int | None:
        due = [lot.expires_at for lot in self.lots if lot.remaining > lot.reserved]
        due += [hold.expires_at for hold in self.holds if hold.status == "active"]
        if self.tier_valid_until is not None:
            due.append(self.tier_valid_until)
        return min(due) if due else None

    def run_jobs_until(self, until: int) -> None:
        """Every nightly run before `until` that finds something of this member due."""
        start_s = self.network.calendar.start_s
        while True:
            due = self.next_job_due()
            if due is None:
                return
            run_at = start_s + JOB_HOUR_S + -(-(due - start_s - JOB_HOUR_S) // DAY) * DAY
            if run_at >= until:
                return
            self.shard.log(run_at, "jobs", self)
            self.release_expired_holds(run_at)
            self.expire(run_at, batch=True)
            self.requalify(run_at)


class ShardReplay:
    """Replays every member of a shard, newest first so that referral credits (from newer
    members to older ones) are known before their receiver is replayed."""

    def __init__(self, network: Network, members: ShardMembers, purchases: Purchases, seed: int):
        self.network = network
        self.members = members
        self.purchases = purchases
        self.rows = Rows()
        self.counters = Counters()
        self.ids = IdSource(np.random.default_rng([network.config.seed, 3, seed]))
        self.random = random.Random(f"{network.config.seed}-{seed}")
        self.credits: dict[int, list] = defaultdict(list)
        self.tier_ratios = [t.multiplier.as_integer_ratio() for t in network.rules.tiers]
        self.point_value_ratio = network.rules.point_value_minor.as_integer_ratio()
        bounds = np.searchsorted(purchases.member, np.arange(len(members.member_ids) + 1))
        self.purchase_bounds = bounds
        # The service calls this replay stands for, when a test wants to play them through
        # the real services (tests/integration/test_seed_replay.py): (time, action, *args).
        self.actions: list[tuple] | None = None

    def log(self, at: int, action: str, *arguments) -> None:
        if self.actions is not None:
            self.actions.append((at, action, *arguments))

    def credit(self, receiver: int, now: int, reason: str, points: int, merchant, details) -> None:
        self.credits[receiver].append((now, reason, points, merchant, details))

    def replay(self, index: int) -> None:
        MemberTimeline(self, index).run()

    def campaign_points(self, campaign, base: int, eligible_minor: int) -> int:
        """shared/campaigns/rules.bonus for the seed's kinds (multiplier, fixed bonus)."""
        if campaign.kind == "multiplier":
            return multiplier_bonus(base, campaign.terms["multiplier"])
        if eligible_minor >= int(campaign.terms.get("minSpendMinor", 0)):
            return int(campaign.terms["bonusPoints"])
        return 0

    def profile_complete_at_enrolment(self, index: int) -> bool:
        """behaviour.on_profile_change: a name, a birth date and a phone or an e-mail."""
        members = self.members
        return (
            members.profile_stage[index] == 0
            and members.birth_dates[index] is not None
            and (members.emails[index] is not None or members.phones[index] is not None)
        )

    def enrolment_rows(self, member_id, index: int, at: int, merchant: MerchantPlan) -> None:
        """members.enrol: identifiers (given ones, then the issued card) and the audit row."""
        members, rows, when = self.members, self.rows, moment(at)
        identifiers = []
        if members.profile_stage[index] != 1 and members.emails[index] is not None:
            identifiers.append(("email", members.emails[index]))
        if members.phones[index] is not None:
            identifiers.append(("phone", members.phones[index]))
        identifiers.append(("card", members.cards[index]))
        for kind, value in identifiers:
            rows.member_identifiers.append(
                (member_id, self.ids.next(), kind, None, value, merchant.merchant_id, when)
            )
        rows.audit_log.append(
            (when, None, "merchant", "member.enrolled", "member", str(member_id),
             json.dumps({"merchantId": str(merchant.merchant_id)}))
        )  # fmt: skip

    def attach_email(self, timeline: MemberTimeline, at: int, merchant: MerchantPlan) -> None:
        identifier_id = self.ids.next()
        member_id, when = timeline.ledger.member_id, moment(at)
        self.rows.member_identifiers.append(
            (member_id, identifier_id, "email", None, self.members.emails[timeline.index],
             merchant.merchant_id, when)
        )  # fmt: skip
        self.rows.audit_log.append(
            (when, None, "merchant", "member.identifier_attached", "member", str(member_id),
             json.dumps({"kind": "email", "identifierId": str(identifier_id)}))
        )  # fmt: skip

    def write_member(self, timeline: MemberTimeline) -> None:
        ledger, members, index, rows = timeline.ledger, self.members, timeline.index, self.rows
        network = self.network
        merchant = network.merchants[int(members.acquiring[index])]
        member_id = ledger.member_id
        enrolled = moment(ledger.enrolled_s)
        referrer = int(members.referrer[index])

        def optional(epoch_seconds):
            return moment(epoch_seconds) if epoch_seconds is not None else None

        rows.members.append((
            member_id, "active", network.rules.tiers[ledger.tier].name, optional(ledger.tier_since),
            optional(ledger.tier_valid_until),
            members.member_ids[referrer] if referrer >= 0 else None,
            enrolled, merchant.merchant_id,
            merchant.store_ids[int(members.acquiring_store[index])], None,
            members.given_names[index], members.family_names[index], members.birth_dates[index],
            network.config.locale, merchant.merchant_id, bool(members.consent_email[index]),
            bool(members.consent_sms[index]), enrolled, enrolled, moment(ledger.member_updated),
        ))  # fmt: skip
        rows.member_balances.append((
            member_id, ledger.balance, ledger.debt, ledger.lifetime_earned,
            ledger.lifetime_redeemed, optional(ledger.last_activity),
            moment(ledger.balance_updated),
        ))  # fmt: skip
        for lot in ledger.lots:
            rows.lots.append((
                member_id, lot.lot_id, lot.transaction_id, lot.source, lot.issuing, lot.funder,
                lot.campaign_id, moment(lot.earned_at), moment(lot.available_at),
                moment(lot.expires_at), lot.original, lot.remaining, lot.reserved,
                lot.clawed_back, None,
            ))  # fmt: skip
        for hold in ledger.holds:
            rows.holds.append((
                member_id, hold.hold_id, hold.merchant.merchant_id, hold.store_id, hold.points,
                hold.status, moment(hold.created_at), moment(hold.expires_at),
                optional(hold.closed_at), hold.captured_points, hold.capture_transaction_id, None,
            ))  # fmt: skip
            for lot, points in hold.reservations:
                rows.hold_reservations.append((member_id, hold.hold_id, lot.lot_id, points))
        for campaign in network.campaigns:
            assigned = members.arms[index].get(campaign.index)
            if assigned is not None:
                rows.campaign_assignments.append(
                    (member_id, campaign.campaign_id, assigned, moment(campaign.start_s))
                )


class MemberTimeline:
    """The member's events on a heap, each applied through MemberReplay."""

    def __init__(self, shard: ShardReplay, index: int) -> None:
        self.shard = shard
        self.network = shard.network
        self.members = shard.members
        self.index = index
        self.ledger = MemberReplay(shard, index)
        self.queue: list = []
        self.sequence = 0

    def schedule(self, at: int, kind: int, payload=None) -> None:
        self.sequence += 1
        heapq.heappush(self.queue, (at, kind, self.sequence, payload))

    def run(self) -> None:
        members, index, end_s = self.members, self.index, self.network.calendar.end_s
        self.schedule(int(members.enrolled_s[index]), ENROL)
        if members.profile_stage[index] == 1:
            self.schedule(int(members.profile_completed_s[index]), PROFILE)
        for credit in self.shard.credits.pop(index, ()):
            self.schedule(credit[0], CREDIT, credit)
        first, last = self.shard.purchase_bounds[index], self.shard.purchase_bounds[index + 1]
        for row in range(first, last):
            self.schedule(int(self.shard.purchases.at_s[row]), PURCHASE, row)
        ledger = self.ledger
        while self.queue:
            at, kind, _, payload = heapq.heappop(self.queue)
            if at >= end_s:
                continue
            ledger.run_jobs_until(at)
            self.apply(at, kind, payload)
        ledger.run_jobs_until(end_s)
        self.shard.write_member(self)

    def apply(self, at: int, kind: int, payload) -> None:
        ledger = self.ledger
        if kind == ENROL:
            self.enrol(at)
        elif kind == PROFILE:
            self.complete_profile(at)
        elif kind == CREDIT:
            _, reason, points, merchant, details = payload
            ledger.award(at, reason, points, merchant, details)
        elif kind == PURCHASE:
            self.purchase(at, payload)
        elif kind == CAPTURE:
            hold, points, row, amount = payload
            if ledger.capture(at, hold, points) is not None:
                value = value_of_points(points, self.shard.point_value_ratio)
                self.earn_cash_part(at, row, amount - value)
        elif kind == VOID:
            hold, row, amount = payload
            if ledger.void(at, hold):
                self.earn_cash_part(at, row, amount)
        elif kind == REFUND:
            row = payload
            earn = ledger.earns.get(row)
            if earn is not None:
                ledger.refund(at, earn, int(self.shard.purchases.refund_minor[row]))
        elif kind == REVERSAL:
            ledger.reverse(at, payload)

    def enrol(self, at: int) -> None:
        shard, members, index, ledger = self.shard, self.members, self.index, self.ledger
        merchant = self.network.merchants[int(members.acquiring[index])]
        rules = self.network.rules
        shard.enrolment_rows(ledger.member_id, index, at, merchant)
        shard.log(at, "enrol", ledger, index, merchant)
        ledger.award(at, "enrolment", rules.enrolment_bonus_points, merchant)
        if shard.profile_complete_at_enrolment(index):
            ledger.award(at, "profile_completion", rules.profile_completion_bonus_points, merchant)
        referrer = int(members.referrer[index])
        if referrer >= 0:
            shard.credit(referrer, at, "referral", rules.referral_bonus_points, merchant,
                         {"refereeMemberId": str(ledger.member_id)})  # fmt: skip
            shard.counters.referrals += 1

    def complete_profile(self, at: int) -> None:
        """The member adds an e-mail address: the profile is complete, the bonus follows."""
        merchant = self.network.merchants[int(self.members.acquiring[self.index])]
        self.shard.attach_email(self, at, merchant)
        self.shard.log(at, "attach_email", self.ledger, self.index, merchant)
        self.ledger.award(
            at, "profile_completion", self.network.rules.profile_completion_bonus_points, merchant
        )

    def purchase(self, at: int, row: int) -> None:
        shard, network, ledger = self.shard, self.network, self.ledger
        purchases = shard.purchases
        merchant = network.merchants[int(purchases.merchant[row])]
        store_id = merchant.store_ids[int(purchases.store[row])]
        amount = int(purchases.amount_minor[row])
        threshold = int(self.members.threshold[self.index])
        surge = network.incident("redemption_surge")
        if surge is not None and surge.start_s <= at < surge.end_s:
            threshold = int(threshold / surge.magnitude)
        rules = network.rules
        payable = points_payable(amount, shard.point_value_ratio)
        if ledger.debt == 0 and payable >= rules.min_redemption_points:
            available = ledger.available(at)
            if available >= max(threshold, rules.min_redemption_points):
                if purchases.online[row]:
                    if self.pay_online(
                        at, row, merchant, store_id, amount, min(available, payable)
                    ):
                        return
                elif self.members.prefers_points_and_cash[self.index]:
                    redemption = ledger.redeem(at, merchant, store_id, None, amount)
                    if redemption is not None:
                        self.maybe_reverse(at, redemption)
                        points = sum(take for _, take in redemption.taken)
                        cash = cash_after_points(amount, shard.point_value_ratio, points)
                        self.earn_cash_part(at + 1, row, cash)
                        return
                else:
                    points = min(available, payable) // 100 * 100
                    redemption = ledger.redeem(at, merchant, store_id, points, None)
                    if redemption is not None:
                        self.maybe_reverse(at, redemption)
                        value = value_of_points(points, shard.point_value_ratio)
                        self.earn_cash_part(at + 1, row, amount - value)
                        return
        self.earn_cash_part(at, row, amount, with_lines=True)

    def pay_online(self, at, row, merchant, store_id, amount, points) -> bool:
        """E-commerce checkout: reserve at checkout, then capture, capture part, void, or
        let the hold lapse (an abandoned cart)."""
        points = points // 100 * 100
        hold = self.ledger.hold(at, merchant, store_id, points)
        if hold is None:
            return False
        outcome = self.shard.random.random()
        later = at + self.shard.random.randint(60, 600)
        if outcome < 0.80:
            self.schedule(later, CAPTURE, (hold, points, row, amount))
        elif outcome < 0.88:
            part = max(int(points * self.shard.random.uniform(0.5, 0.95)), 1)
            self.schedule(later, CAPTURE, (hold, part, row, amount))
        elif outcome < 0.96:
            self.schedule(later, VOID, (hold, row, amount))
        return True

    def maybe_reverse(self, at: int, redemption: Redemption) -> None:
        if self.shard.random.random() < self.network.config.reversal_rate:
            self.schedule(at + self.shard.random.randint(3600, 3 * DAY), REVERSAL, redemption)

    def earn_cash_part(self, at: int, row: int, amount: int, with_lines: bool = False) -> None:
        if amount <= 0:
            return
        network, purchases = self.network, self.shard.purchases
        merchant = network.merchants[int(purchases.merchant[row])]
        store_id = merchant.store_ids[int(purchases.store[row])]
        line_items = []
        excluded_line = int(purchases.excluded_category[row])
        if with_lines and excluded_line >= 0:
            category = merchant.industry.excluded_lines[excluded_line][0]
            excluded = int(purchases.excluded_minor[row])
            line_items = [(amount - excluded, merchant.industry.name), (excluded, category)]
        campaigns = self.running_campaigns(at, merchant)
        transaction_id, lots = self.ledger.earn(
            at, merchant, store_id, amount, line_items, campaigns
        )
        earn = Earn(transaction_id, merchant, store_id, amount, lots)
        self.ledger.earns[row] = earn
        self.shard.log(at, "earn", self.ledger, merchant, store_id, amount, line_items, earn)
        refund_at = int(purchases.refund_at_s[row])
        if refund_at > at:
            self.schedule(refund_at, REFUND, row)

    def running_campaigns(self, at: int, merchant: MerchantPlan) -> list:
        """Campaigns that treat this member here and now."""
        arms = self.members.arms[self.index]
        return (
            [
                campaign
                for campaign in self.network.campaigns
                if arms.get(campaign.index) == "treatment"
                and campaign.start_s <= at < campaign.end_s
                and (not campaign.merchants or merchant.index in campaign.merchants)
            ]
            if arms
            else []
        )
