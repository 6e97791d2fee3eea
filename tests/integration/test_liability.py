"""The points liability on a worked example whose every figure is computed by hand below.

The services run on a test clock (tests/integration/clock.py), so each event is posted at
the moment the story says. Programme: 1 point = 1 cent, lots expire 12 months after
earning, no behaviour points, one partner earning 1 point per dollar. Breakage: default
rate 20%, full credibility at 1,000 resolved points (so two small cohorts already count).

2025
  Jan 10  Ann buys $100         -> 100 points (cohort 2025-01), expire 2026-01-10
  Jan 20  Ben buys $200         -> 200 points (cohort 2025-01), expire 2026-01-20
  Feb 14  Cat buys $500         -> 500 points (cohort 2025-02), expire 2026-02-14
  Feb 20  $100 of it refunded   -> 100 clawed back from the lot: 400 issued
  Mar  5  Ann redeems 60
  Apr  1  Cat redeems 300, reversed on Apr 3 (the points go back to her lot)
  May  1  Cat redeems 250
  Jun 10  Ben redeems 150
2026
  Jan  5  Dan buys $100         -> 100 points (cohort 2026-01); Jan 6 he redeems all 100
  Jan 10  Ann's 40 left expire (the expiry job at noon); Jan 20 Ben's 50
  Feb  1  $50 of Dan's purchase refunded -> 50 clawed back, already spent: 50 of debt
  Feb 10  Ann buys $1,000       -> 1,000 points (cohort 2026-02)
  Feb 14  Cat's 150 left expire
  Mar  1  Ann redeems 200
  Mar  2  Dan buys $100         -> 100 points (cohort 2026-03), 50 of them repay his debt
  Mar 10  HQ credits Ben 30 points (an adjustment lot, cohort 2026-03)
Report as of 2026-03-15 00:00 UTC.

Cohorts as of then (issued / redeemed / expired / outstanding, other = the rest):
  2025-01  300 / 210 /  90 /   0   resolved (last lot expired Jan 20)
  2025-02  400 / 250 / 150 /   0   resolved (Feb 14); the reversal nets out
  2026-01   50 / 100 /   0 /   0   other -50: the refund clawed back spent points (debt)
  2026-02 1000 / 200 /   0 / 800
  2026-03  130 /   0 /   0 /  80   other +50: the debt repayment
Breakage: resolved 240 expired of 700 points, z = 700 / 1,000 = 0.7,
  rate = 0.7 x 240/700 + 0.3 x 0.20 = 0.30; expected breakage (800 + 80) x 0.3 = 264.
Liability: 880 points x 1 cent x 0.7 = 616 cents.

Rates at each month end: 0.20 until the first cohort resolves; end of January 2026
(2025-01 resolved: 90 of 300 broke) (90 + 0.2 x 700) / 1,000 = 0.23; end of February
(both resolved) 0.30; 0.30 at the as-of.

Roll-forward (points; then cents, flows at the rate at the start of the month):
  month    open  issued redeemed expired other close | open issued redeemed expired other change close
  2025-04   640     0      0       0     0    640  |  512    0     0       0     0     0    512
  2025-05   640     0    250       0     0    390  |  512    0   200       0     0     0    312
  2025-06   390     0    150       0     0    240  |  312    0   120       0     0     0    192
  2025-07..12 240 unchanged                        |  192 unchanged
  2026-01   240   100    100      90     0    150  |  192   80    80      72     0    -4    116
  2026-02   150   950      0     150     0    950  |  116  732     0     116     0   -67    665
  2026-03   950   100    200       0    30    880  |  665   70   140       0    21     0    616
January's close: 150 x 0.77 = 115.5 -> 116 (half up); February's issuance 950 x 0.77 =
731.5 -> 732 and expiry 150 x 0.77 = 115.5 -> 116; February's change -67 is the book
re-measured, 950 x (0.23 - 0.30) = -66.5, plus half a cent of rounding.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from shared import members as members_service
from shared.access import SYSTEM, Principal, Role
from shared.ledger import corrections, earning, expiry, redemption, transfers
from shared.members import MemberRef
from shared.merchants import create_merchant
from shared.program import ProgramRules, Tier
from shared.settlement.liability import (
    CohortOutcome,
    MonthMovement,
    cohort_outcomes,
    estimate_breakage,
    liability_report,
    monthly_movements,
)
from tests.integration.clock import clock_engine, set_clock
from tests.integration.ledger_support import rows, scalar

pytestmark = pytest.mark.usefixtures("ledger_stays_consistent")

RULES = ProgramRules(
    min_redemption_points=10,
    enrolment_bonus_points=0,
    profile_completion_bonus_points=0,
    referral_bonus_points=0,
    tiers=(Tier(name="basic", threshold=0, multiplier=Decimal("1")),),
    transfers_enabled=True,
)
AS_OF = datetime(2026, 3, 15, tzinfo=UTC)
FULL_CREDIBILITY = 1_000


def at(year: int, month: int, day: int, hour: int = 10) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


class Network:
    """One partner and its members, driven through the services at chosen moments."""

    def __init__(self, engine):
        self.engine = engine
        self.shop: uuid.UUID | None = None
        self.members: dict[str, uuid.UUID] = {}

    async def at(self, moment: datetime, call):
        await set_clock(self.engine, moment)
        async with self.engine.begin() as connection:
            return await call(connection)

    @property
    def till(self) -> Principal:
        return Principal(Role.MERCHANT, None, self.shop)

    async def open(self, *names: str) -> None:
        made = await self.at(at(2025, 1, 1), lambda c: create_merchant(
            c, SYSTEM, name="Shop", industry="grocery", currency="USD",
            earn_rate=Decimal("1"), issuance_price=Decimal("0.01"),
            redemption_rate=Decimal("0.008"), allowed_currencies=["USD"],
        ))  # fmt: skip
        self.shop = made.merchant_id
        for name in names:
            view = await self.at(at(2025, 1, 1), lambda c: members_service.enrol(
                c, SYSTEM, merchant_id=self.shop, store_id=None, card_number=None,
                identifiers=[], profile=None, consents=None, card_prefix="6034",
                default_region="US", rules=RULES,
            ))  # fmt: skip
            self.members[name] = view.member_id

    def ref(self, member: str) -> MemberRef:
        return MemberRef("member_id", str(self.members[member]))

    async def earn(self, moment, member, amount_minor):
        return await self.at(moment, lambda c: earning.earn(
            c, self.till, merchant_id=self.shop, member_ref=self.ref(member),
            default_region="US", amount_minor=amount_minor, currency="USD",
            occurred_at=moment, store_id=None, line_items=[], external_reference=None,
            rules=RULES,
        ))  # fmt: skip

    async def redeem(self, moment, member, points):
        return await self.at(moment, lambda c: redemption.redeem(
            c, self.till, merchant_id=self.shop, member_ref=self.ref(member),
            default_region="US", points=points, purchase_amount_minor=None, currency="USD",
            store_id=None, external_reference=None, rules=RULES,
        ))  # fmt: skip

    async def refund(self, moment, earn_transaction_id, amount_minor):
        return await self.at(moment, lambda c: corrections.refund(
            c, self.till, merchant_id=self.shop, earn_transaction_id=earn_transaction_id,
            amount_minor=amount_minor, external_reference=None,
        ))  # fmt: skip

    async def reverse(self, moment, redemption_transaction_id):
        return await self.at(moment, lambda c: corrections.reverse_redemption(
            c, self.till, merchant_id=self.shop,
            redemption_transaction_id=redemption_transaction_id, external_reference=None,
            rules=RULES,
        ))  # fmt: skip

    async def adjust(self, moment, member, points):
        return await self.at(moment, lambda c: corrections.adjust(
            c, SYSTEM, member_id=self.members[member], points=points, reason="goodwill",
            rules=RULES,
        ))  # fmt: skip

    async def transfer(self, moment, sender, receiver, points):
        return await self.at(moment, lambda c: transfers.transfer(
            c, SYSTEM, from_member_id=self.members[sender],
            to_member_id=self.members[receiver], points=points, reason="gift", rules=RULES,
        ))  # fmt: skip

    async def merge(self, moment, survivor, duplicate):
        return await self.at(moment, lambda c: transfers.merge_points(
            c, SYSTEM, survivor_id=self.members[survivor],
            duplicate_id=self.members[duplicate],
        ))  # fmt: skip

    async def expire(self, moment) -> int:
        await set_clock(self.engine, moment)
        return (await expiry.expire_due_lots(self.engine)).points


async def build_worked_example(network: Network) -> None:
    await network.open("Ann", "Ben", "Cat", "Dan")
    await network.earn(at(2025, 1, 10), "Ann", 10_000)
    await network.earn(at(2025, 1, 20), "Ben", 20_000)
    cat_purchase = await network.earn(at(2025, 2, 14), "Cat", 50_000)
    refund = await network.refund(at(2025, 2, 20), cat_purchase.transaction_id, 10_000)
    assert (refund.points, refund.debt_created) == (-100, 0)
    await network.redeem(at(2025, 3, 5), "Ann", 60)
    spent = await network.redeem(at(2025, 4, 1), "Cat", 300)
    await network.reverse(at(2025, 4, 3), spent.transaction_id)
    await network.redeem(at(2025, 5, 1), "Cat", 250)
    await network.redeem(at(2025, 6, 10), "Ben", 150)
    dan_purchase = await network.earn(at(2026, 1, 5), "Dan", 10_000)
    await network.redeem(at(2026, 1, 6), "Dan", 100)
    assert await network.expire(at(2026, 1, 10, 12)) == 40  # Ann's
    assert await network.expire(at(2026, 1, 20, 12)) == 50  # Ben's
    refund = await network.refund(at(2026, 2, 1), dan_purchase.transaction_id, 5_000)
    assert (refund.points, refund.debt_created) == (-50, 50)
    assert (await network.earn(at(2026, 2, 10), "Ann", 100_000)).points == 1_000
    assert await network.expire(at(2026, 2, 14, 12)) == 150  # Cat's
    await network.redeem(at(2026, 3, 1), "Ann", 200)
    assert (await network.earn(at(2026, 3, 2), "Dan", 10_000)).debt_repaid == 50
    await network.adjust(at(2026, 3, 10), "Ben", 30)


@pytest.fixture
async def network(database_url, clean_database):
    async with clock_engine(database_url) as engine:
        yield Network(engine)


@pytest.fixture
async def worked_example(network):
    await build_worked_example(network)
    return network.engine


def month(year: int, number: int) -> date:
    return date(year, number, 1)


COHORTS_AS_OF = [
    CohortOutcome(month(2025, 1), 300, 210, 90, 0, resolved=True),
    CohortOutcome(month(2025, 2), 400, 250, 150, 0, resolved=True),
    CohortOutcome(month(2026, 1), 50, 100, 0, 0, resolved=False),
    CohortOutcome(month(2026, 2), 1_000, 200, 0, 800, resolved=False),
    CohortOutcome(month(2026, 3), 130, 0, 0, 80, resolved=False),
]


async def test_cohorts_of_the_worked_example(worked_example):
    async with worked_example.connect() as connection:
        cohorts = await cohort_outcomes(connection, AS_OF)
    assert cohorts == COHORTS_AS_OF
    # Debt repayments and clawbacks of spent points are neither redeemed nor expired.
    assert [cohort.other for cohort in cohorts] == [0, 0, -50, 0, 50]
    estimate = estimate_breakage(
        cohorts, default_rate=Decimal("0.20"), full_credibility_points=FULL_CREDIBILITY
    )
    assert (estimate.resolved_breakage_points, estimate.resolved_points) == (240, 700)
    assert (estimate.credibility, estimate.rate) == (Decimal("0.7"), Decimal("0.3"))
    assert estimate.expected_breakage_points == 264


async def test_cohorts_as_they_stood_at_an_earlier_moment(worked_example):
    async with worked_example.connect() as connection:
        # 20 January 2026, 11:00: Ben's lot expired at 10:00, the expiry job runs at noon.
        before_the_job = await cohort_outcomes(connection, at(2026, 1, 20, 11))
        end_of_january = await cohort_outcomes(connection, datetime(2026, 2, 1, tzinfo=UTC))
    assert before_the_job == [
        CohortOutcome(month(2025, 1), 300, 210, 40, 50, resolved=True),
        CohortOutcome(month(2025, 2), 400, 250, 0, 150, resolved=False),
        CohortOutcome(month(2026, 1), 100, 100, 0, 0, resolved=False),
    ]
    # Ben's 50 points past expiry already count as breakage: (40 + 50) / 300 resolved,
    # z = 0.3: 0.3 x 0.3 + 0.7 x 0.2 = 0.23; expected: those 50 in full + 150 x 0.23.
    estimate = estimate_breakage(
        before_the_job, default_rate=Decimal("0.20"), full_credibility_points=FULL_CREDIBILITY
    )
    assert (estimate.rate, estimate.expected_breakage_points) == (
        Decimal("0.23"),
        Decimal("84.5"),
    )
    # Dan's refund (1 February, 10:00) is not there yet: his cohort still shows 100 issued.
    assert end_of_january == [
        CohortOutcome(month(2025, 1), 300, 210, 90, 0, resolved=True),
        CohortOutcome(month(2025, 2), 400, 250, 0, 150, resolved=False),
        CohortOutcome(month(2026, 1), 100, 100, 0, 0, resolved=False),
    ]


async def test_cohorts_now_agree_with_the_lots(worked_example, clean_database):
    now = datetime.now(UTC)
    async with worked_example.connect() as connection:
        cohorts = await cohort_outcomes(connection, now)
    lots_by_month = {
        row.month: (row.issued, row.remaining)
        for row in rows(
            clean_database,
            "SELECT date_trunc('month', earned_at AT TIME ZONE 'UTC')::date AS month,"
            " sum(original - clawed_back) FILTER (WHERE origin_lot_id IS NULL) AS issued,"
            " sum(remaining) AS remaining FROM lots GROUP BY 1",
        )
    }
    assert {c.month: (c.issued, c.outstanding) for c in cohorts} == lots_by_month
    # Every lot is past expiry by the real clock except the 2026 ones.
    assert [c.resolved for c in cohorts] == [True, True, False, False, False]


MOVEMENTS = [
    MonthMovement(month(2025, 4), 640, 0, 0, 0, 0, 640),
    MonthMovement(month(2025, 5), 640, 0, 250, 0, 0, 390),
    MonthMovement(month(2025, 6), 390, 0, 150, 0, 0, 240),
    *(MonthMovement(month(2025, n), 240, 0, 0, 0, 0, 240) for n in range(7, 13)),
    MonthMovement(month(2026, 1), 240, 100, 100, 90, 0, 150),
    MonthMovement(month(2026, 2), 150, 950, 0, 150, 0, 950),
    MonthMovement(month(2026, 3), 950, 100, 200, 0, 30, 880),
]


def member_postings_before(sync_engine, moment: datetime) -> int:
    return scalar(
        sync_engine,
        "SELECT coalesce(sum(amount), 0) FROM postings WHERE account = 'member'"
        " AND posted_at < :moment",
        moment=moment,
    )


async def test_monthly_movements_close_on_the_member_postings(worked_example, clean_database):
    async with worked_example.connect() as connection:
        to_date = await monthly_movements(connection, month(2025, 4), month(2026, 3), until=AS_OF)
        whole_months = await monthly_movements(connection, date(2025, 4, 17), date(2026, 3, 2))
    assert to_date == MOVEMENTS
    # Nothing was posted between the as-of and the end of March.
    assert whole_months == MOVEMENTS
    month_ends = [datetime(m.year, m.month, 1, tzinfo=UTC) for m in (m.month for m in MOVEMENTS)]
    month_ends = [*month_ends[1:], datetime(2026, 4, 1, tzinfo=UTC)]
    for movement, end in zip(MOVEMENTS, month_ends, strict=True):
        assert movement.closing == member_postings_before(clean_database, end)
    assert MOVEMENTS[0].opening == member_postings_before(
        clean_database, datetime(2025, 4, 1, tzinfo=UTC)
    )
    # The closing is what the members hold: the sum of their stored balances.
    assert MOVEMENTS[-1].closing == scalar(
        clean_database, "SELECT sum(balance) FROM member_balances"
    )


def line_figures(line):
    return (
        line.month,
        (line.opening_points, line.issued_points, line.redeemed_points, line.expired_points,
         line.other_points, line.closing_points),
        (line.opening_rate, line.closing_rate),
        (line.opening_minor, line.issued_minor, line.redeemed_minor, line.expired_minor,
         line.other_minor, line.change_in_estimate_minor, line.closing_minor),
    )  # fmt: skip


async def test_the_liability_report_of_the_worked_example(worked_example):
    async with worked_example.connect() as connection:
        report = await liability_report(
            connection, RULES, AS_OF, full_credibility_points=FULL_CREDIBILITY
        )
    assert (report.as_of, report.currency, report.point_value_minor) == (AS_OF, "USD", 1)
    assert (report.outstanding_points, report.gross_value_minor) == (880, 880)
    assert (report.breakage_rate, report.liability_minor) == (Decimal("0.3"), 616)
    assert (report.expected_breakage_points, report.expected_breakage_minor) == (264, 264)
    assert report.cohorts == COHORTS_AS_OF
    assert report.method == report.breakage.method
    assert "Observed = 240 / 700" in report.method

    r20, r23, r30 = Decimal("0.20"), Decimal("0.23"), Decimal("0.30")
    steady = [
        (month(2025, n), (240, 0, 0, 0, 0, 240), (r20, r20), (192, 0, 0, 0, 0, 0, 192))
        for n in range(7, 13)
    ]
    assert [line_figures(line) for line in report.roll_forward] == [
        (month(2025, 4), (640, 0, 0, 0, 0, 640), (r20, r20), (512, 0, 0, 0, 0, 0, 512)),
        (month(2025, 5), (640, 0, 250, 0, 0, 390), (r20, r20), (512, 0, 200, 0, 0, 0, 312)),
        (month(2025, 6), (390, 0, 150, 0, 0, 240), (r20, r20), (312, 0, 120, 0, 0, 0, 192)),
        *steady,
        (month(2026, 1), (240, 100, 100, 90, 0, 150), (r20, r23), (192, 80, 80, 72, 0, -4, 116)),
        (month(2026, 2), (150, 950, 0, 150, 0, 950), (r23, r30), (116, 732, 0, 116, 0, -67, 665)),
        (month(2026, 3), (950, 100, 200, 0, 30, 880), (r30, r30), (665, 70, 140, 0, 21, 0, 616)),
    ]  # fmt: skip
    assert report.roll_forward[-1].closing_minor == report.liability_minor


async def test_with_no_resolved_history_the_report_uses_the_default_rate(worked_example):
    async with worked_example.connect() as connection:
        report = await liability_report(
            connection, RULES, datetime(2025, 7, 1, tzinfo=UTC), months=3
        )
    assert [line.month for line in report.roll_forward] == [
        month(2025, 4),
        month(2025, 5),
        month(2025, 6),
    ]
    assert report.breakage.observed_rate is None
    assert (report.outstanding_points, report.breakage_rate) == (240, Decimal("0.2"))
    assert (report.liability_minor, report.expected_breakage_points) == (192, 48)


async def test_moved_points_stay_in_their_cohort_and_count_once(network):
    """Transfers and merges copy lots to another member with the original earn date: the
    cohort neither issues them again nor loses them."""
    await network.open("Zed", "Yan")
    await network.earn(at(2026, 1, 10), "Zed", 10_000)  # 100 points
    await network.transfer(at(2026, 1, 15), "Zed", "Yan", 40)
    await network.redeem(at(2026, 2, 1), "Yan", 40)
    await network.merge(at(2026, 2, 10), "Yan", "Zed")  # Zed's 60 move to Yan
    await network.redeem(at(2026, 2, 20), "Yan", 50)
    async with network.engine.connect() as connection:
        cohorts = await cohort_outcomes(connection, AS_OF)
        movements = await monthly_movements(connection, month(2026, 1), month(2026, 3))
    assert cohorts == [CohortOutcome(month(2026, 1), 100, 90, 0, 10, resolved=False)]
    assert movements == [
        MonthMovement(month(2026, 1), 0, 100, 0, 0, 0, 100),  # the transfer nets to zero
        MonthMovement(month(2026, 2), 100, 0, 90, 0, 0, 10),  # and so does the merge
        MonthMovement(month(2026, 3), 10, 0, 0, 0, 0, 10),
    ]


async def test_a_refund_after_a_merge_counts_in_the_cohort_of_the_purchase(network):
    """The refund posts on the survivor, but it corrects the duplicate's purchase: its
    clawback leaves the purchase's cohort."""
    await network.open("Zed", "Yan")
    purchase = await network.earn(at(2026, 1, 10), "Zed", 10_000)  # 100 points
    yan, zed = network.members["Yan"], network.members["Zed"]
    await network.at(  # the whole merge: Zed's 100 move to Yan, and Zed is merged
        at(2026, 2, 10), lambda c: members_service.merge(c, SYSTEM, yan, zed, "one person")
    )
    refunded = await network.refund(at(2026, 2, 20), purchase.transaction_id, 5_000)
    assert (refunded.member_id, refunded.points) == (yan, -50)
    async with network.engine.connect() as connection:
        cohorts = await cohort_outcomes(connection, AS_OF)
        movements = await monthly_movements(connection, month(2026, 1), month(2026, 2))
    assert cohorts == [CohortOutcome(month(2026, 1), 50, 0, 0, 50, resolved=False)]
    assert movements == [
        MonthMovement(month(2026, 1), 0, 100, 0, 0, 0, 100),
        MonthMovement(month(2026, 2), 100, -50, 0, 0, 0, 50),
    ]


async def test_moments_need_a_time_zone(worked_example):
    async with worked_example.connect() as connection:
        with pytest.raises(ValueError, match="time zone"):
            await cohort_outcomes(connection, datetime(2026, 3, 15))


async def test_the_stored_report_is_the_report_of_its_moment(worked_example, clean_database):
    """`jobs settle` stores the current report for the dashboard, at most hourly; decoded,
    it is the report computed live at the moment it was stored (every Decimal, date and
    line)."""
    from shared.settlement.liability import store_current, stored_current

    stored = await store_current(worked_example, RULES)
    assert stored is not None
    assert await store_current(worked_example, RULES) is None  # fresh: nothing to do
    with clean_database.connect() as connection:
        assert stored_current(connection) == stored
    async with worked_example.connect() as connection:
        live = await liability_report(connection, RULES, stored.as_of)
    assert live == stored
