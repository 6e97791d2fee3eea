"""Stateful property test of the points ledger against the real database.

A Hypothesis state machine drives the ledger's service functions (earn, redeem as tender
or points + cash, hold, capture, void, a hold passing its TTL, refund, reversal, HQ
adjustment, the expiry job, transfer, merge), one database transaction per step, and keeps
an independent in-memory model of every lot, hold, debt and balance. After every step the
database must agree with the model lot by lot, the reads (balance, open lots) must agree
with what the writes allow, and every check of `coalition audit` must pass.

The model is written from the documented rules, not from the code: base points =
floor(amount / 100 x earn rate) for USD, tier bonus = floor(base x (multiplier - 1)),
lots are consumed first-to-expire first (ties: earn time, then lot id), refund clawback per
lot = floor(original x cumulative refunded / purchase) - clawed before, clawed points that
were already spent become debt, and debt is repaid before any point can be spent.
"""

from __future__ import annotations

import asyncio
import copy
import math
import os
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from dateutil.relativedelta import relativedelta
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared import members as members_service
from shared.access import SYSTEM, Principal, Role
from shared.database.bootstrap import async_url
from shared.errors import (
    AlreadyReversed,
    DomainError,
    HoldNotActive,
    InsufficientPoints,
    MemberNotActive,
    RefundExceedsPurchase,
)
from shared.ledger import corrections, earning, expiry, reads, redemption, transfers
from shared.ledger.integrity import run_checks
from shared.ledger.rules import spending_order
from shared.members import MemberRef
from shared.merchants import create_merchant, update_merchant
from shared.program import ProgramRules, Tier
from shared.tables import holds, ledger_transactions, lots, member_balances, metadata

# Low thresholds so that a short run reaches the tiers: earns then create two lots (base and
# an HQ-funded tier bonus), which is what makes refunds and debt interesting.
RULES = ProgramRules(
    # A point worth 1.5 cents makes points + cash round (points down, cash up).
    point_value_minor=Decimal("1.5"),
    min_redemption_points=1,
    enrolment_bonus_points=0,
    profile_completion_bonus_points=0,
    referral_bonus_points=0,
    transfers_enabled=True,
    tiers=(
        Tier(name="basic", threshold=0, multiplier=Decimal("1")),
        Tier(name="silver", threshold=300, multiplier=Decimal("1.25")),
        Tier(name="gold", threshold=1_000, multiplier=Decimal("1.5")),
    ),
)
REGION = "US"
# Backdated lots expire at distinct, known instants so first-to-expire order stays exact.
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)

# Half the purchases earn 100-500 points (Hypothesis favours small integers, which alone
# would leave members too poor to spend), half 0-100.
amounts = st.one_of(st.integers(10_000, 50_000), st.integers(1, 10_000))


class SeededOs:
    """Stands in for `os` inside the `uuid` module, so that every uuid.uuid4() (including
    where it was bound as a dataclass default factory) comes from a seeded generator.

    The ledger breaks first-to-expire ties by lot id (the base and tier-bonus lots of one
    earn always tie), so random ids would make the same Hypothesis choices lead to different
    states: generation would be flaky and failures would not replay or shrink. For the same
    reason the ledger draws ids in an order set by the ledger alone, never by the order in
    which rows come back from a table (a merge reads the lots it copies by expiry).
    """

    def __init__(self) -> None:
        self.generator = random.Random(0)

    def urandom(self, size: int) -> bytes:
        return self.generator.randbytes(size)

    def __getattr__(self, name: str):
        return getattr(os, name)


@dataclass
class Env:
    """What the machine runs on; set by the test function for the machine's lifetime."""

    loop: asyncio.AbstractEventLoop
    engine: AsyncEngine
    sync_engine: object
    ids: SeededOs


@dataclass
class Lot:
    lot_id: uuid.UUID
    member_id: uuid.UUID
    source: str
    earned_at: datetime
    expires_at: datetime
    original: int
    remaining: int
    reserved: int = 0
    clawed_back: int = 0
    pending: bool = False  # available_at still ahead (the merchant's pending window)
    origin: uuid.UUID | None = None  # a merge's copy: the duplicate's lot it copies

    @property
    def free(self) -> int:
        return self.remaining - self.reserved

    @property
    def expired(self) -> bool:
        return self.expires_at <= datetime.now(UTC)

    @property
    def order(self) -> tuple:
        return spending_order(self.expires_at, self.earned_at, self.source, self.lot_id)


@dataclass
class Member:
    member_id: uuid.UUID
    status: str = "active"
    debt: int = 0
    tier: int = 0  # index into RULES.tiers
    merged_into: uuid.UUID | None = None


@dataclass
class Hold:
    hold_id: uuid.UUID
    member_id: uuid.UUID
    merchant_id: uuid.UUID
    points: int
    reservations: list[tuple[uuid.UUID, int]]
    status: str = "active"
    lapsed: bool = False  # past its TTL: released for reads, and by the member's next spend


@dataclass
class Earn:
    transaction_id: uuid.UUID
    member_id: uuid.UUID
    merchant_id: uuid.UUID
    amount: int
    lot_ids: list[uuid.UUID]
    refunded: int = 0


@dataclass
class Redemption:
    transaction_id: uuid.UUID
    member_id: uuid.UUID
    merchant_id: uuid.UUID
    taken: list[tuple[uuid.UUID, int]]
    reversed: bool = False


@dataclass
class Model:
    members: dict[uuid.UUID, Member] = field(default_factory=dict)
    lots: dict[uuid.UUID, Lot] = field(default_factory=dict)
    holds: dict[uuid.UUID, Hold] = field(default_factory=dict)
    earns: list[Earn] = field(default_factory=list)
    redemptions: list[Redemption] = field(default_factory=list)

    def lots_of(self, member_id: uuid.UUID) -> list[Lot]:
        return [lot for lot in self.lots.values() if lot.member_id == member_id]

    def unexpired_free(self, member_id: uuid.UUID) -> list[tuple[Lot, int]]:
        return [
            (lot, lot.free) for lot in self.lots_of(member_id) if lot.free > 0 and not lot.expired
        ]

    def spendable(self, member_id: uuid.UUID) -> list[tuple[Lot, int]]:
        return [(lot, free) for lot, free in self.unexpired_free(member_id) if not lot.pending]

    def available(self, member_id: uuid.UUID) -> int:
        if self.members[member_id].debt > 0:
            return 0
        return sum(free for _, free in self.spendable(member_id))

    def stored_balance(self, member_id: uuid.UUID) -> int:
        lots_total = sum(lot.remaining for lot in self.lots_of(member_id))
        return lots_total - self.members[member_id].debt

    def qualifying(self, member_id: uuid.UUID) -> int:
        return sum(
            lot.original - lot.clawed_back
            for lot in self.lots_of(member_id)
            if lot.source == "base"
        )

    def release(self, hold: Hold, status: str) -> None:
        for lot_id, points in hold.reservations:
            self.lots[lot_id].reserved -= points
        hold.status = status

    def release_lapsed(self, member_id: uuid.UUID) -> int:
        """What a spend (or the expiry job) does first: holds past their TTL let their points
        go, and those repay any debt before anything else."""
        lapsed = [
            hold
            for hold in self.holds.values()
            if hold.member_id == member_id and hold.status == "active" and hold.lapsed
        ]
        for hold in lapsed:
            self.release(hold, "expired")
            self.absorb_debt(member_id)
        return len(lapsed)

    def spendable_now(self, member_id: uuid.UUID) -> int:
        """What a redemption would find right now (after releasing lapsed holds)."""
        trial = copy.deepcopy(self)
        trial.release_lapsed(member_id)
        return trial.available(member_id)

    def expire(self, member_id: uuid.UUID | None = None) -> list[tuple[Lot, int]]:
        """Unreserved points of lots past expiry become breakage (one member, or everyone)."""
        due = [
            (lot, lot.free)
            for lot in self.lots.values()
            if lot.expired and lot.free > 0 and member_id in (None, lot.member_id)
        ]
        for lot, points in due:
            lot.remaining -= points
        return due

    def absorb_debt(self, member_id: uuid.UUID) -> None:
        member = self.members[member_id]
        candidates = self.unexpired_free(member_id)  # pending points repay debt too
        repay = min(member.debt, sum(free for _, free in candidates))
        if repay <= 0:
            return
        for lot, take in plan(candidates, repay):
            lot.remaining -= take
        member.debt -= repay


def plan(candidates: list[tuple[Lot, int]], points: int) -> list[tuple[Lot, int]]:
    """First-to-expire first; the caller has checked that the candidates cover `points`."""
    taken, needed = [], points
    for lot, free in sorted(candidates, key=lambda item: item[0].order):
        if needed == 0:
            break
        take = min(free, needed)
        if take > 0:
            taken.append((lot, take))
            needed -= take
    assert needed == 0, "the model planned more than the candidates hold"
    return taken


def merchant_actor(merchant_id: uuid.UUID) -> Principal:
    return Principal(role=Role.MERCHANT, key_id=None, merchant_id=merchant_id)


def ref(member_id: uuid.UUID) -> MemberRef:
    return MemberRef("member_id", str(member_id))


class LedgerMachine(RuleBasedStateMachine):
    env: Env  # set by the test function

    def __init__(self) -> None:
        super().__init__()
        names = ", ".join(f'"{table.name}"' for table in metadata.sorted_tables)
        with self.env.sync_engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        self.env.ids.generator.seed(0)  # each example replays to the same ids
        self.model = Model()
        self.merchants: list[uuid.UUID] = []
        self.pending_merchants: set[uuid.UUID] = set()
        self.last_occurred_at = datetime.now(UTC) - timedelta(days=1)
        self.backdated = 0

    # --- plumbing ----------------------------------------------------------------------

    def run(self, make_coroutine):
        """Run `make_coroutine(connection)` in its own committed transaction."""

        async def in_transaction():
            async with self.env.engine.begin() as connection:
                return await make_coroutine(connection)

        return self.env.loop.run_until_complete(in_transaction())

    def attempt(self, make_coroutine):
        """(result, None) on success, (None, error) on a domain error (rolled back)."""
        try:
            return self.run(make_coroutine), None
        except DomainError as error:
            return None, error

    def occurred_now(self) -> datetime:
        # A second in the past (before the transaction's now(), so spendable at once unless
        # the merchant has a pending window), and strictly increasing so that lots of
        # different earns never tie on expiry.
        moment = max(
            datetime.now(UTC) - timedelta(seconds=1),
            self.last_occurred_at + timedelta(microseconds=1),
        )
        self.last_occurred_at = moment
        return moment

    def active_members(self) -> list[uuid.UUID]:
        return [m.member_id for m in self.model.members.values() if m.status == "active"]

    def spender(self, data) -> uuid.UUID:
        """An active member, usually one with points to spend."""
        active = self.active_members()
        rich = [member_id for member_id in active if self.model.available(member_id) > 0]
        pool = active if not rich or data.draw(st.integers(0, 3), label="anyone") == 3 else rich
        return data.draw(st.sampled_from(pool), label="member")

    def points_for(self, data, available: int) -> int:
        """Usually what the member can afford, sometimes more."""
        if available == 0:
            return data.draw(st.integers(1, 20), label="points")
        if data.draw(st.integers(0, 3), label="overspend") == 3:
            return data.draw(st.integers(available + 1, available + 20), label="points")
        return data.draw(st.integers(1, available), label="points")

    def two_members(self, data) -> tuple[uuid.UUID, uuid.UUID]:
        first = self.spender(data)
        others = [member_id for member_id in self.active_members() if member_id != first]
        return first, data.draw(st.sampled_from(others), label="other member")

    def pick(self, data, items: list, usable):
        """Usually an item the operation can succeed on, sometimes any (to test refusals)."""
        candidates = [item for item in items if usable(item)]
        if not candidates or data.draw(st.integers(0, 3), label="any") == 3:
            candidates = items
        return data.draw(st.sampled_from(candidates))

    def is_active(self, member_id: uuid.UUID) -> bool:
        return self.model.members[member_id].status == "active"

    def pick_hold(self, data) -> Hold:
        return self.pick(
            data, list(self.model.holds.values()), lambda h: h.status == "active" and not h.lapsed
        )

    def adopt_copies(
        self,
        receiver: uuid.UUID,
        moved: list[tuple[Lot, int]],
        source: str | None,
        transaction_id: uuid.UUID,
    ) -> None:
        """The receiver's copies of moved lot points: a transfer relabels them, a merge keeps
        each lot's source. Only the new lot ids come from the database."""

        async def query(connection):
            result = await connection.execute(
                select(lots.c.origin_lot_id, lots.c.lot_id).where(
                    lots.c.member_id == receiver, lots.c.transaction_id == transaction_id
                )
            )
            return dict(result.all())

        rows = self.run(query)
        assert set(rows) == {lot.lot_id for lot, _ in moved}, (rows, moved)
        for lot, take in moved:
            self.model.lots[rows[lot.lot_id]] = Lot(
                rows[lot.lot_id],
                receiver,
                source or lot.source,
                lot.earned_at,
                lot.expires_at,
                take,
                take,
                pending=lot.pending,
                origin=None if source else lot.lot_id,
            )

    # --- setup -------------------------------------------------------------------------

    @initialize(
        merchant_count=st.integers(2, 3),
        member_count=st.integers(3, 4),
        opening=st.lists(st.integers(0, 50_000), min_size=4, max_size=4),
    )
    def network(self, merchant_count: int, member_count: int, opening: list[int]) -> None:
        """Merchants, members, and an opening purchase per member so spending starts early."""

        async def create(connection):
            merchant_ids = []
            for index in range(merchant_count):
                merchant = await create_merchant(
                    connection,
                    SYSTEM,
                    name=f"Merchant {index}",
                    industry="grocery",
                    currency="USD",
                    earn_rate=Decimal(1),
                    issuance_price=Decimal("0.01"),
                    redemption_rate=Decimal("0.008"),
                    allowed_currencies=["USD"],
                )
                merchant_ids.append(merchant.merchant_id)
            if merchant_count == 3:  # the third merchant's points stay pending for two days
                await update_merchant(
                    connection, SYSTEM, merchant_ids[2], {"pending_days": 2}, ["USD"]
                )
            member_ids = []
            for index in range(member_count):
                member = await members_service.enrol(
                    connection,
                    SYSTEM,
                    merchant_id=merchant_ids[index % merchant_count],
                    store_id=None,
                    card_number=None,
                    identifiers=[],
                    profile=None,
                    consents=None,
                    card_prefix="7300",
                    default_region=REGION,
                    rules=None,
                )
                member_ids.append(member.member_id)
            return merchant_ids, member_ids

        self.merchants, member_ids = self.run(create)
        self.pending_merchants = set(self.merchants[2:])
        for member_id in member_ids:
            self.model.members[member_id] = Member(member_id)
        for index, member_id in enumerate(member_ids):
            if opening[index]:
                self._earn(member_id, self.merchants[index % merchant_count], opening[index])

    # --- earning -----------------------------------------------------------------------

    @precondition(lambda self: self.active_members())
    @rule(data=st.data(), amount=amounts)
    def earn(self, data, amount: int) -> None:
        member_id = data.draw(st.sampled_from(self.active_members()), label="member")
        merchant_id = data.draw(st.sampled_from(self.merchants), label="merchant")
        self._earn(member_id, merchant_id, amount)

    def _earn(self, member_id: uuid.UUID, merchant_id: uuid.UUID, amount: int) -> None:
        member = self.model.members[member_id]
        occurred_at = self.occurred_now()
        result = self.run(
            lambda connection: earning.earn(
                connection,
                merchant_actor(merchant_id),
                merchant_id=merchant_id,
                member_ref=ref(member_id),
                default_region=REGION,
                amount_minor=amount,
                currency="USD",
                occurred_at=occurred_at,
                store_id=None,
                line_items=[],
                external_reference=None,
                rules=RULES,
            )
        )
        base = amount // 100
        bonus = math.floor(Decimal(base) * (RULES.tiers[member.tier].multiplier - 1))
        expected = [(s, p) for s, p in (("base", base), ("tier_bonus", bonus)) if p > 0]
        assert result.points == base + bonus
        assert sorted((lot.source, lot.points) for lot in result.lots) == sorted(expected)
        lot_ids = {lot.source: lot.lot_id for lot in result.lots}
        repaid_total = 0
        for source, points in expected:  # new points repay debt first, base lot first
            repaid = min(points, member.debt)
            member.debt -= repaid
            repaid_total += repaid
            self.model.lots[lot_ids[source]] = Lot(
                lot_ids[source],
                member_id,
                source,
                occurred_at,
                occurred_at + relativedelta(months=RULES.expiry_months),
                points,
                points - repaid,
                pending=merchant_id in self.pending_merchants,
            )
        assert result.debt_repaid == repaid_total
        event("earn: repaid debt" if repaid_total else f"earn: {len(expected)} lots")
        event(f"earn: at tier {RULES.tiers[member.tier].name}")
        self.model.earns.append(
            Earn(result.transaction_id, member_id, merchant_id, amount, list(lot_ids.values()))
        )
        qualifying = self.model.qualifying(member_id)
        earned_tier = max(
            index for index, tier in enumerate(RULES.tiers) if tier.threshold <= qualifying
        )
        member.tier = max(member.tier, earned_tier)
        assert result.tier == RULES.tiers[member.tier].name
        assert result.balance == self.model.stored_balance(member_id)

    # --- spending ----------------------------------------------------------------------

    @precondition(lambda self: self.active_members())
    @rule(data=st.data())
    def redeem(self, data) -> None:
        """Points as tender, or points + cash for a purchase amount."""
        member_id = self.spender(data)
        merchant_id = data.draw(st.sampled_from(self.merchants), label="merchant")
        before = self.spend_starts(member_id)
        available = self.model.available(member_id)
        with_cash = data.draw(st.booleans(), label="points + cash")
        if with_cash:
            purchase = data.draw(
                st.integers(1, math.ceil(available * RULES.point_value_minor) + 100),
                label="purchase amount",
            )
            # Points cover floor(amount / point value) at most; the cash rounds up.
            points = min(math.floor(purchase / RULES.point_value_minor), available)
        else:
            purchase = None
            points = self.points_for(data, available)
        result, error = self.attempt(
            lambda connection: redemption.redeem(
                connection,
                merchant_actor(merchant_id),
                merchant_id=merchant_id,
                member_ref=ref(member_id),
                default_region=REGION,
                points=None if with_cash else points,
                purchase_amount_minor=purchase,
                currency="USD",
                store_id=None,
                external_reference=None,
                rules=RULES,
            )
        )
        if points > available or points == 0:
            assert isinstance(error, InsufficientPoints), (points, available, error)
            event("refused: insufficient points")
            self.model = before  # the refused write rolled back, hold releases included
            return
        assert error is None, (points, available, purchase, error)
        taken = plan(self.model.spendable(member_id), points)
        for lot, take in taken:
            lot.remaining -= take
        self.model.redemptions.append(
            Redemption(
                result.transaction_id,
                member_id,
                merchant_id,
                [(lot.lot_id, take) for lot, take in taken],
            )
        )
        value = points * RULES.point_value_minor
        expected_cash = math.ceil(purchase - value) if with_cash else 0
        event("redeem: points + cash" if with_cash else "redeem")
        assert (result.points, result.value_minor, result.cash_minor) == (
            points,
            math.floor(value),
            expected_cash,
        )
        assert result.balance == self.model.stored_balance(member_id)

    @precondition(lambda self: self.active_members())
    @rule(data=st.data())
    def hold(self, data) -> None:
        member_id = self.spender(data)
        merchant_id = data.draw(st.sampled_from(self.merchants), label="merchant")
        before = self.spend_starts(member_id)
        available = self.model.available(member_id)
        points = self.points_for(data, available)
        view, error = self.attempt(
            lambda connection: redemption.create_hold(
                connection,
                merchant_actor(merchant_id),
                merchant_id=merchant_id,
                member_ref=ref(member_id),
                default_region=REGION,
                points=points,
                ttl_seconds=None,
                store_id=None,
                external_reference=None,
                rules=RULES,
            )
        )
        if points > available:
            assert isinstance(error, InsufficientPoints), (points, available, error)
            event("refused: insufficient points")
            self.model = before  # the refused write rolled back, hold releases included
            return
        assert error is None, (points, available, error)
        reserved = plan(self.model.spendable(member_id), points)
        for lot, take in reserved:
            lot.reserved += take
        self.model.holds[view.hold_id] = Hold(
            view.hold_id,
            member_id,
            merchant_id,
            points,
            [(lot.lot_id, take) for lot, take in reserved],
        )
        event("hold")
        assert (view.points, view.status) == (points, "active")

    def spend_starts(self, member_id: uuid.UUID) -> Model:
        """Release the member's lapsed holds in the model, as every spend does first; returns
        the model as it was, for when the spend is refused and rolls back."""
        before = copy.deepcopy(self.model)
        if self.model.release_lapsed(member_id):
            event("spend: released a lapsed hold")
        return before

    @precondition(lambda self: self.model.holds)
    @rule(data=st.data())
    def capture(self, data) -> None:
        hold = self.pick_hold(data)
        points = data.draw(st.one_of(st.none(), st.integers(1, hold.points)), label="points")
        result, error = self.attempt(
            lambda connection: redemption.capture_hold(
                connection,
                merchant_actor(hold.merchant_id),
                merchant_id=hold.merchant_id,
                hold_id=hold.hold_id,
                points=points,
                rules=RULES,
            )
        )
        if hold.status != "active" or hold.lapsed:
            assert isinstance(error, HoldNotActive), (hold, error)
            event("refused: hold not active")
            return
        assert error is None, (hold, error)
        captured = hold.points if points is None else points
        event("capture: partial" if captured < hold.points else "capture: full")
        if any(self.model.lots[lot_id].expired for lot_id, _ in hold.reservations):
            event("capture: of an expired lot")
        self.model.release(hold, "captured")
        candidates = [(self.model.lots[lot_id], held) for lot_id, held in hold.reservations]
        taken = plan(candidates, captured)
        for lot, take in taken:
            lot.remaining -= take
        self.model.absorb_debt(hold.member_id)  # released (uncaptured) points repay debt
        self.model.redemptions.append(
            Redemption(
                result.transaction_id,
                hold.member_id,
                hold.merchant_id,
                [(lot.lot_id, take) for lot, take in taken],
            )
        )
        assert result.points == captured
        assert result.balance == self.model.stored_balance(hold.member_id)

    @precondition(lambda self: self.model.holds)
    @rule(data=st.data())
    def void(self, data) -> None:
        hold = self.pick_hold(data)
        view, error = self.attempt(
            lambda connection: redemption.void_hold(
                connection,
                merchant_actor(hold.merchant_id),
                merchant_id=hold.merchant_id,
                hold_id=hold.hold_id,
            )
        )
        if hold.status != "active" or hold.lapsed:
            assert isinstance(error, HoldNotActive), (hold, error)
            event("refused: hold not active")
            return
        assert error is None, (hold, error)
        self.model.release(hold, "voided")
        self.model.absorb_debt(hold.member_id)  # released points repay debt first
        assert view.status == "voided"

    # --- corrections -------------------------------------------------------------------

    @precondition(lambda self: self.model.earns)
    @rule(data=st.data())
    def refund(self, data) -> None:
        # Merged members' purchases too: their refunds go to the survivor.
        earn = self.pick(data, self.model.earns, lambda earn: earn.refunded < earn.amount)
        refundable = earn.amount - earn.refunded
        if refundable == 0 or data.draw(st.integers(0, 4), label="overrefund") == 4:
            amount = data.draw(st.integers(refundable + 1, refundable + 50), label="amount")
        else:
            amount = data.draw(
                st.one_of(st.just(refundable), st.integers(1, refundable)), label="amount"
            )
        result, error = self.attempt(
            lambda connection: corrections.refund(
                connection,
                merchant_actor(earn.merchant_id),
                merchant_id=earn.merchant_id,
                earn_transaction_id=earn.transaction_id,
                amount_minor=amount,
                external_reference=None,
            )
        )
        # A merged earner's points are the survivor's: the refund claws back from the
        # survivor's copies of the earn's lots, and what they lack becomes its debt.
        member = self.model.members[earn.member_id]
        while member.status == "merged":
            member = self.model.members[member.merged_into]
        if amount > refundable:
            assert isinstance(error, RefundExceedsPurchase), (amount, refundable, error)
            event("refused: refund exceeds purchase")
            return
        assert error is None, (amount, refundable, error)
        if member.member_id != earn.member_id:
            event("refund: of a merged member's earn")
        earn.refunded += amount
        clawed = debt = 0
        for lot_id in earn.lot_ids:
            lot = self.model.lots[lot_id]
            claw = lot.original * earn.refunded // earn.amount - lot.clawed_back
            held = self.holding(lot, member.member_id)
            take = min(claw, held.free) if held else 0
            if held is not None:
                held.remaining -= take
                if held is not lot:
                    held.clawed_back += min(claw, held.original - held.clawed_back)
            lot.clawed_back += claw
            clawed += claw
            debt += claw - take
        member.debt += debt
        if debt:
            event("refund: created debt")
        if any(self.model.lots[lot_id].reserved for lot_id in earn.lot_ids):
            event("refund: of a lot reserved by a hold")
        self.model.absorb_debt(member.member_id)
        if member.debt:
            event("refund: debt outstanding")
        assert (result.points, result.debt_created) == (-clawed, debt)
        assert result.debt == member.debt
        assert result.balance == self.model.stored_balance(member.member_id)

    def holding(self, lot: Lot, holder: uuid.UUID) -> Lot | None:
        """The lot, or the copy of it that merges carried to `holder` (None when a merge
        found nothing left of it)."""
        while lot is not None and lot.member_id != holder:
            lot = next(
                (copy for copy in self.model.lots.values() if copy.origin == lot.lot_id), None
            )
        return lot

    @precondition(lambda self: self.model.redemptions)
    @rule(data=st.data())
    def reverse(self, data) -> None:
        spent = self.pick(
            data,
            self.model.redemptions,
            lambda spent: not spent.reversed and self.is_active(spent.member_id),
        )
        before = datetime.now(UTC)
        result, error = self.attempt(
            lambda connection: corrections.reverse_redemption(
                connection,
                merchant_actor(spent.merchant_id),
                merchant_id=spent.merchant_id,
                redemption_transaction_id=spent.transaction_id,
                external_reference=None,
                rules=RULES,
            )
        )
        after = datetime.now(UTC)
        if self.model.members[spent.member_id].status == "merged":
            assert isinstance(error, MemberNotActive), error
            event("refused: member merged")
            return
        if spent.reversed:
            assert isinstance(error, AlreadyReversed), error
            event("refused: already reversed")
            return
        assert error is None, error
        spent.reversed = True
        # Due lots expire first, so the grace period below revives only reversed points.
        self.model.release_lapsed(spent.member_id)
        if self.model.expire(spent.member_id):
            event("reversal: expired due lots first")
        regraced = []
        for lot_id, points in spent.taken:
            lot = self.model.lots[lot_id]
            lot.remaining += points
            if lot.expired:
                regraced.append(lot)
        event("reversal: regraced expired lots" if regraced else "reversal")
        if regraced:
            # The grace period starts at the transaction's own clock: read it back.
            expires = self.copies_expiry([lot.lot_id for lot in regraced])
            grace = timedelta(days=RULES.reversal_grace_days)
            for lot in regraced:
                assert before + grace - timedelta(seconds=5) <= expires[lot.lot_id] <= after + grace
                lot.expires_at = expires[lot.lot_id]
        self.model.absorb_debt(spent.member_id)
        assert result.points == sum(points for _, points in spent.taken)
        assert result.debt == self.model.members[spent.member_id].debt
        assert result.balance == self.model.stored_balance(spent.member_id)

    def copies_expiry(self, lot_ids: list[uuid.UUID]) -> dict[uuid.UUID, datetime]:
        async def query(connection):
            rows = await connection.execute(
                select(lots.c.lot_id, lots.c.expires_at).where(lots.c.lot_id.in_(lot_ids))
            )
            return dict(rows.all())

        return self.run(query)

    @rule(data=st.data())
    def adjust(self, data) -> None:
        """HQ's manual correction: a credit is a new HQ-funded lot (repaying debt first), a
        debit takes free points first-to-expire first and never creates debt."""
        member_id = self.pick(data, list(self.model.members), self.is_active)
        debitable = sum(free for _, free in self.model.unexpired_free(member_id))
        if data.draw(st.booleans(), label="debit"):
            points = -data.draw(st.integers(1, debitable + 20), label="points")
        else:
            points = data.draw(st.integers(1, 500), label="points")
        result, error = self.attempt(
            lambda connection: corrections.adjust(
                connection,
                SYSTEM,
                member_id=member_id,
                points=points,
                reason="stateful test",
                rules=RULES,
            )
        )
        member = self.model.members[member_id]
        if member.status == "merged":
            assert isinstance(error, MemberNotActive), error
            event("refused: member merged")
            return
        if -points > debitable:
            assert isinstance(error, InsufficientPoints), (points, debitable, error)
            event("refused: insufficient points")
            return
        assert error is None, (points, debitable, error)
        if points < 0:
            for lot, take in plan(self.model.unexpired_free(member_id), -points):
                lot.remaining -= take
            event("adjust: debit")
        else:

            async def new_lot(connection):
                return (
                    await connection.execute(
                        select(lots.c.lot_id, lots.c.earned_at, lots.c.expires_at).where(
                            lots.c.member_id == member_id,
                            lots.c.transaction_id == result.transaction_id,
                        )
                    )
                ).one()

            # Dated by the transaction's own clock: read back (only the dates and the id).
            row = self.run(new_lot)
            assert row.expires_at == row.earned_at + relativedelta(months=RULES.expiry_months)
            self.model.lots[row.lot_id] = Lot(
                row.lot_id, member_id, "adjustment", row.earned_at, row.expires_at, points, points
            )
            event("adjust: credit to a member in debt" if member.debt else "adjust: credit")
            self.model.absorb_debt(member_id)
        assert (result.points, result.debt) == (points, member.debt)
        assert result.balance == self.model.stored_balance(member_id)

    def lapsable(self) -> list[Hold]:
        # At most one lapsed hold per member: the ledger releases a member's lapsed holds in
        # no particular order, repaying debt after each, and the model could not tell which
        # lots that order picks.
        lapsed_members = {
            hold.member_id
            for hold in self.model.holds.values()
            if hold.status == "active" and hold.lapsed
        }
        return [
            hold
            for hold in self.model.holds.values()
            if hold.status == "active" and hold.member_id not in lapsed_members
        ]

    @precondition(lambda self: self.lapsable())
    @rule(data=st.data())
    def lapse(self, data) -> None:
        """A hold passes its TTL (backdated): reads treat it as released at once, writes
        release it when they next spend for the member."""
        hold = data.draw(st.sampled_from(self.lapsable()), label="hold")
        hold.lapsed = True
        self.run(
            lambda connection: connection.execute(
                update(holds)
                .where(holds.c.member_id == hold.member_id, holds.c.hold_id == hold.hold_id)
                .values(expires_at=LONG_AGO)
            )
        )

    # --- expiry ------------------------------------------------------------------------

    @precondition(lambda self: any(lot.remaining for lot in self.model.lots.values()))
    @rule(data=st.data())
    def expire(self, data) -> None:
        """Backdate a lot (usually), then run the expiry job over the whole network."""
        candidates = [
            lot for lot in self.model.lots.values() if lot.remaining > 0 and not lot.expired
        ]
        if candidates and data.draw(st.integers(0, 3), label="skip backdate") < 3:
            lot = data.draw(
                st.sampled_from(sorted(candidates, key=lambda lot: lot.order)), label="lot"
            )
            self.backdated += 1
            lot.expires_at = LONG_AGO + timedelta(seconds=self.backdated)
            self.run(
                lambda connection: connection.execute(
                    update(lots)
                    .where(lots.c.member_id == lot.member_id, lots.c.lot_id == lot.lot_id)
                    .values(expires_at=lot.expires_at)
                )
            )
        # What `coalition jobs expire` runs: holds past their TTL first, then lots.
        released = self.env.loop.run_until_complete(
            redemption.finalise_expired_holds(self.env.engine)
        )
        assert released == sum(self.model.release_lapsed(m) for m in self.model.members)
        report = self.env.loop.run_until_complete(expiry.expire_due_lots(self.env.engine))
        if any(lot.reserved for lot in self.model.lots.values() if lot.expired):
            event("expiry: lot with a reservation")
        due = self.model.expire()
        assert report.points == sum(points for _, points in due)
        assert report.members == len({lot.member_id for lot, _ in due})
        assert report.lots == len(due)
        event("expiry: posted" if due else "expiry: nothing due")

    # --- points that change owner ------------------------------------------------------

    @precondition(lambda self: len(self.active_members()) >= 2)
    @rule(data=st.data())
    def transfer(self, data) -> None:
        sender, receiver = self.two_members(data)
        before = self.spend_starts(sender)
        available = self.model.available(sender)
        points = self.points_for(data, available)
        result, error = self.attempt(
            lambda connection: transfers.transfer(
                connection,
                SYSTEM,
                from_member_id=sender,
                to_member_id=receiver,
                points=points,
                reason="stateful test",
                rules=RULES,
            )
        )
        if points > available:
            assert isinstance(error, InsufficientPoints), (points, available, error)
            event("refused: insufficient points")
            self.model = before  # the refused write rolled back, hold releases included
            return
        assert error is None, (points, available, error)
        moved = plan(self.model.spendable(sender), points)
        for lot, take in moved:
            lot.remaining -= take
        self.adopt_copies(receiver, moved, "transfer", result.incoming_transaction_id)
        event("transfer: to a member in debt" if self.model.members[receiver].debt else "transfer")
        self.model.absorb_debt(receiver)
        assert result.points == points
        assert result.sender_balance == self.model.stored_balance(sender)
        assert result.receiver_balance == self.model.stored_balance(receiver)

    @precondition(lambda self: len(self.active_members()) >= 2)
    @rule(data=st.data())
    def merge(self, data) -> None:
        survivor, duplicate = self.two_members(data)
        self.run(
            lambda connection: members_service.merge(
                connection, SYSTEM, survivor, duplicate, "stateful test"
            )
        )
        for hold in self.model.holds.values():
            if hold.member_id == duplicate and hold.status == "active":
                self.model.release(hold, "voided")
        moved = [(lot, lot.remaining) for lot in self.model.lots_of(duplicate) if lot.remaining]
        for lot, _ in moved:
            lot.remaining = 0

        async def merge_in(connection):
            return await connection.scalar(
                select(ledger_transactions.c.transaction_id).where(
                    ledger_transactions.c.member_id == survivor,
                    ledger_transactions.c.kind == "merge_in",
                    ledger_transactions.c.counterparty_member_id == duplicate,
                )
            )

        self.adopt_copies(survivor, moved, None, self.run(merge_in))
        if self.model.members[duplicate].debt:
            event("merge: duplicate in debt")
        if any(
            h.member_id == duplicate and h.status == "voided" for h in self.model.holds.values()
        ):
            event("merge: duplicate with holds")
        self.model.members[survivor].debt += self.model.members[duplicate].debt
        self.model.members[duplicate].debt = 0
        self.model.members[duplicate].status = "merged"
        self.model.members[duplicate].merged_into = survivor
        self.model.absorb_debt(survivor)

    # --- invariants --------------------------------------------------------------------

    @invariant()
    def audit_checks_pass(self) -> None:
        with self.env.sync_engine.connect() as connection:
            failed = [
                (result.check.name, result.examples)
                for result in run_checks(connection)
                if not result.ok
            ]
        assert not failed, failed

    @invariant()
    def database_matches_model(self) -> None:
        member_ids = list(self.model.members)

        async def snapshot(connection):
            return (
                {member_id: await reads.balance(connection, member_id) for member_id in member_ids},
                {
                    row.member_id: (row.balance, row.debt)
                    for row in await connection.execute(
                        select(
                            member_balances.c.member_id,
                            member_balances.c.balance,
                            member_balances.c.debt,
                        )
                    )
                },
                {
                    row.lot_id: row
                    for row in await connection.execute(
                        select(
                            lots.c.lot_id,
                            lots.c.member_id,
                            lots.c.source,
                            lots.c.expires_at,
                            lots.c.original,
                            lots.c.remaining,
                            lots.c.reserved,
                            lots.c.clawed_back,
                        )
                    )
                },
                dict((await connection.execute(select(holds.c.hold_id, holds.c.status))).all()),
                {
                    member_id: await reads.open_lots(connection, member_id)
                    for member_id in member_ids
                },
            )

        balances, stored, db_lots, db_holds, open_lots = self.run(snapshot)

        assert set(db_lots) == set(self.model.lots)
        for lot in self.model.lots.values():
            row = db_lots[lot.lot_id]
            expected = (
                lot.member_id,
                lot.source,
                lot.expires_at,
                lot.original,
                lot.remaining,
                lot.reserved,
                lot.clawed_back,
            )
            actual = (
                row.member_id,
                row.source,
                row.expires_at,
                row.original,
                row.remaining,
                row.reserved,
                row.clawed_back,
            )
            assert actual == expected, f"lot {lot.lot_id}: database {actual}, model {expected}"
        assert db_holds == {hold_id: hold.status for hold_id, hold in self.model.holds.items()}

        for member_id, member in self.model.members.items():
            assert stored[member_id] == (self.model.stored_balance(member_id), member.debt)
            own = self.model.lots_of(member_id)
            live_holds = [
                hold
                for hold in self.model.holds.values()
                if hold.member_id == member_id and hold.status == "active" and not hold.lapsed
            ]
            held = sum(hold.points for hold in live_holds)
            held_past_expiry = sum(
                points
                for hold in live_holds
                for lot_id, points in hold.reservations
                if self.model.lots[lot_id].expired
            )
            balance = balances[member_id]
            expected = {
                # Unexpired points, plus those an active hold keeps from expiring.
                "total": sum(lot.remaining for lot in own if not lot.expired) + held_past_expiry,
                "held": held,
                "pending": sum(lot.remaining for lot in own if lot.pending and not lot.expired),
                "debt": member.debt,
                # What the member can actually spend right now (redeem, hold, transfer).
                "available": self.model.spendable_now(member_id),
            }
            actual = {name: getattr(balance, name) for name in expected}
            assert actual == expected, f"member {member_id}: database {actual}, model {expected}"
            assert balance.available >= 0
            unexpired = sorted(
                (lot for lot in own if lot.remaining > 0 and not lot.expired),
                key=lambda lot: lot.order,
            )
            assert balance.next_expiry_at == (unexpired[0].expires_at if unexpired else None)
            # What the member sees as lots: unexpired, in the order they will be spent.
            assert [(lot.lot_id, lot.remaining, lot.reserved) for lot in open_lots[member_id]] == [
                (lot.lot_id, lot.remaining, lot.reserved) for lot in unexpired
            ]
            assert balance.tier == RULES.tiers[member.tier].name


def test_ledger_state_machine(database_url, sync_engine, clean_database, monkeypatch) -> None:
    # CI runs the same examples every time (the ids are seeded too, see SeededOs).
    ci = {"derandomize": True, "database": None} if os.environ.get("CI") else {}
    ids = SeededOs()
    monkeypatch.setattr(uuid, "os", ids)
    loop = asyncio.new_event_loop()
    # The engine (and its pool) lives and dies on this one loop, so pooled connections never
    # cross loops; a fresh connection per step would cost ~10 ms each.
    engine = create_async_engine(async_url(database_url), pool_size=2, max_overflow=2)
    LedgerMachine.env = Env(loop, engine, sync_engine, ids)
    try:
        run_state_machine_as_test(
            LedgerMachine,
            settings=settings(
                # LEDGER_STATEFUL_EXAMPLES=400 for a deeper hunt (about 3 minutes here).
                max_examples=int(os.environ.get("LEDGER_STATEFUL_EXAMPLES", "25")),
                stateful_step_count=25,
                deadline=None,
                **ci,
                suppress_health_check=[
                    HealthCheck.too_slow,
                    HealthCheck.data_too_large,
                    HealthCheck.filter_too_much,
                ],
            ),
        )
    finally:
        loop.run_until_complete(engine.dispose())
        loop.close()
