"""Every analytics metric on a tiny network whose figures are computed by hand below.

The rows are inserted straight into the tables the rollups read (members, balances,
ledger transactions, allocations), then `coalition jobs rollups` runs. The programme's time
zone is New York, so local days differ from UTC days. Partners A, B, C; as of 2026-05-01
(January to April complete). Amounts in cents; points as the ledger would post them.

Ann   enrolled Mon Jan 5 at A (basic), balance 500
      Jan  5 buys at A 1000 (10 pts); Jan 6 at B 2000 (20 pts)
      Feb 10 buys at A 500 (5 pts) and redeems 50 at B (lots: 10 from A, 20 from B,
             20 from an HQ bonus); Feb 12 A refunds 400 of Jan 5's purchase (4 pts back)
Ben   enrolled Tue Jan 20 at B (silver), balance 300
      Jan 20 buys at B 3000 (30 pts); Mar 3 at C 1000 (10 pts); Apr 15 7 of his points
             (issued by B) expire
Cat   enrolled Mon Feb 2 at A (basic), balance 50
      Feb  2 buys at A 800 (8 pts) at 22:30 local, which is Feb 3 in UTC
Dan   enrolled Sat Jan 10 at C (basic), balance 0, never buys
Eve   enrolled Mon Jan 5 at A (gold), balance 1000
      Jan  5 buys twice at A, 100 and 200 (1 + 2 pts); Jan 7 at B 300 (3); Jan 8 at C
             400 (4) and redeems 100 at C (60 from A's lot, 40 from B's); Jan 9 C reverses
             that redemption; Apr 20 buys at A 600 (6)

Active days (a purchase or a redemption): Ann Jan 5, Jan 6, Feb 10; Ben Jan 20, Mar 3;
Cat Feb 2; Eve Jan 5, 7, 8, Apr 20. (Ann's refund day and Eve's reversal day are not.)

Months   active purchasers redeemers 2+partners active-days purchases spend  earned
January  Ann Ben Eve = 3   3        1 (Eve)   2 (Ann, Eve) 2+1+3=6   2+1+4=7   7000  70
February Ann Cat = 2       2        1 (Ann)   1 (Ann: A, B) 2        2         1300  13
March    Ben = 1; April Eve = 1
February: refunds 1, 400 refunded, 4 clawed back; redeemed 50: burn/earn 50 / 9.
January: redeemed 100, reversed 100: burn/earn 0 / 70.
"""

from __future__ import annotations

import uuid
from datetime import date
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from shared.analytics import activity, lifecycle, members, redemption, retention
from shared.analytics.query import MetricScope, data_as_of, run
from shared.analytics.refresh import refresh
from tests.integration.analytics_support import ZONE, Story, local

AS_OF = date(2026, 5, 1)
A, B, C = (uuid.UUID(int=n) for n in (0xA, 0xB, 0xC))
ANN, BEN, CAT, DAN, EVE = (uuid.UUID(int=0x100 + n) for n in range(5))


def tell(connection) -> None:
    story = Story(connection)
    for merchant, name in ((A, "A"), (B, "B"), (C, "C")):
        story.merchant(merchant, name)
    story.member(ANN, "2026-01-05", A, "basic", 500)
    story.member(BEN, "2026-01-20", B, "silver", 300)
    story.member(CAT, "2026-02-02", A, "basic", 50)
    story.member(DAN, "2026-01-10", C, "basic", 0)
    story.member(EVE, "2026-01-05", A, "gold", 1000)
    story.purchase(ANN, "2026-01-05", A, 1000)
    story.purchase(ANN, "2026-01-06", B, 2000)
    story.purchase(ANN, "2026-02-10", A, 500)
    story.redeem(ANN, "2026-02-10", B, [(A, 10), (B, 20), (None, 20)])
    story.transaction(ANN, "refund", local("2026-02-12"), A, -4, 400)
    story.purchase(BEN, "2026-01-20", B, 3000)
    story.purchase(BEN, "2026-03-03", C, 1000)
    expiry = story.transaction(BEN, "expiry", local("2026-04-15", 4), None, -7)
    story.allocations(BEN, expiry, "expiry", local("2026-04-15", 4), None, [(B, 7)])
    story.purchase(CAT, "2026-02-02", A, 800, hour=22, minute=30)
    story.purchase(EVE, "2026-01-05", A, 100)
    story.purchase(EVE, "2026-01-05", A, 200, hour=15)
    story.purchase(EVE, "2026-01-07", B, 300)
    story.purchase(EVE, "2026-01-08", C, 400)
    redeemed = story.redeem(EVE, "2026-01-08", C, [(A, 60), (B, 40)])
    reversal = story.transaction(EVE, "reversal", local("2026-01-09"), C, 100)
    connection.execute(
        text(
            "UPDATE ledger_transactions SET original_transaction_id = :o WHERE transaction_id = :t"
        ),
        {"o": redeemed, "t": reversal},
    )
    story.allocations(EVE, reversal, "reversal", local("2026-01-09"), C, [(A, -60), (B, -40)])
    story.purchase(EVE, "2026-04-20", A, 600)


@pytest.fixture
def network(clean_database, test_settings):
    with clean_database.begin() as connection:
        tell(connection)
    rules = test_settings.program.model_copy(update={"time_zone": ZONE})
    refresh(clean_database, rules)
    return clean_database


def query(engine, metric):
    with engine.connect() as connection:
        return run(connection, metric)


def by_period(periods) -> dict[date, object]:
    return {period.period_start: period for period in periods}


def test_monthly_activity(network):
    months = by_period(query(network, activity.series("month", MetricScope(), AS_OF)))
    assert sorted(months) == [date(2026, m, 1) for m in (1, 2, 3, 4)]
    january, february = months[date(2026, 1, 1)], months[date(2026, 2, 1)]
    assert (january.active_members, january.purchasers, january.redeemers) == (3, 3, 1)
    assert (january.multi_merchant_members, january.active_member_days) == (2, 6)
    assert (january.purchases, january.spend_minor, january.points_earned) == (7, 7000, 70)
    assert (january.redemptions, january.points_redeemed, january.points_reversed) == (1, 100, 100)
    assert january.transactions_per_active_member == 8 / 3
    assert january.cross_merchant_penetration == 2 / 3
    assert (february.active_members, february.redeemers, february.multi_merchant_members) == (
        2,
        1,
        1,
    )
    assert (february.purchases, february.spend_minor, february.points_earned) == (2, 1300, 13)
    assert (february.refunds, february.refunded_minor, february.points_clawed_back) == (1, 400, 4)
    assert february.net_spend_minor == 900
    assert [months[date(2026, m, 1)].active_members for m in (3, 4)] == [1, 1]
    assert all(month.complete for month in months.values())


def test_daily_and_weekly_actives_use_local_days(network):
    days = by_period(
        query(
            network, activity.series("day", MetricScope(date(2026, 1, 1), date(2026, 3, 1)), AS_OF)
        )
    )
    assert days[date(2026, 1, 5)].active_members == 2  # Ann and Eve (Eve twice)
    assert days[date(2026, 1, 5)].purchases == 3
    assert days[date(2026, 2, 2)].active_members == 1  # Cat at 22:30 in New York
    assert date(2026, 2, 3) not in days
    assert date(2026, 2, 12) in days and days[date(2026, 2, 12)].active_members == 0  # refund
    weeks = by_period(query(network, activity.series("week", MetricScope(), AS_OF)))
    assert weeks[date(2026, 1, 5)].active_members == 2  # Ann (Mon, Tue), Eve (Mon, Wed, Thu)
    assert weeks[date(2026, 1, 19)].active_members == 1  # Ben
    assert weeks[date(2026, 1, 5)].active_member_days == 5


def test_activity_filters(network):
    january = MetricScope(date(2026, 1, 1), date(2026, 2, 1))
    only_a = query(
        network, activity.series("month", MetricScope(january.start, january.end, (A,)), AS_OF)
    )
    assert [(p.active_members, p.purchases) for p in only_a] == [(2, 3)]  # Ann, Eve
    a_and_b = query(
        network, activity.series("month", MetricScope(january.start, january.end, (A, B)), AS_OF)
    )
    assert [(p.active_members, p.multi_merchant_members, p.purchases) for p in a_and_b] == [
        (3, 2, 6)  # purchases: Ann 2, Ben 1, Eve 3
    ]
    b_and_c = query(
        network,
        activity.series("month", MetricScope(january.start, date(2026, 3, 1), (B, C)), AS_OF),
    )
    # January: Ann (B), Ben (B), Eve (B, C; redeemed at C); February: Ann redeemed at B.
    assert [
        (p.active_members, p.purchasers, p.redeemers, p.multi_merchant_members, p.redemptions)
        for p in b_and_c
    ] == [(3, 3, 1, 1, 1), (1, 0, 1, 0, 1)]
    assert b_and_c[0].active_member_days is None  # not kept over several merchants
    gold = query(
        network,
        activity.series("month", MetricScope(january.start, january.end, tiers=("gold",)), AS_OF),
    )
    assert [(p.active_members, p.purchases) for p in gold] == [(1, 4)]
    gold_at_a_and_c = MetricScope(january.start, january.end, (A, C), ("gold",))
    assert [
        p.active_members for p in query(network, activity.series("month", gold_at_a_and_c, AS_OF))
    ] == [1]
    may = query(
        network, activity.series("month", MetricScope(date(2026, 4, 25)), date(2026, 4, 28))
    )
    assert [(p.period_start, p.complete) for p in may] == [(date(2026, 4, 1), False)]


def test_active_days_histogram(network):
    histograms = query(network, activity.active_days_histogram("month", MetricScope(), AS_OF))
    assert histograms[0].period_start == date(2026, 1, 1)
    assert histograms[0].members_by_days == ((1, 1), (2, 1), (3, 1))  # Ben, Ann, Eve
    at_a = query(
        network, activity.active_days_histogram("month", MetricScope(merchant_ids=(A, B)), AS_OF)
    )
    assert at_a[0].members_by_days == ((1, 1), (2, 2))  # Ben; Ann (A, B), Eve (A, B)


def test_partner_pair_affinity(network):
    pairs = query(network, activity.pair_affinity("month", date(2026, 1, 1)))
    found = {frozenset((p.merchant_a, p.merchant_b)): (p.both, p.lift) for p in pairs}
    # Active at A: Ann, Eve; at B: Ann, Ben, Eve; at C: Eve; 3 active members.
    assert found == {
        frozenset((A, B)): (2, 2 * 3 / (2 * 3)),
        frozenset((A, C)): (1, 1 * 3 / (2 * 1)),
        frozenset((B, C)): (1, 1 * 3 / (3 * 1)),
    }
    assert pairs[0].lift == 1.5
    with_c = query(network, activity.pair_affinity("month", date(2026, 1, 1), (C,)))
    assert len(with_c) == 2


def test_retention_matrix(network):
    result = query(network, retention.matrix("month", AS_OF))
    january, february = result.rows
    # January: Ann, Ben, Dan, Eve. Active: Jan Ann Ben Eve; Feb Ann; Mar Ben; Apr Eve.
    assert (january.cohort_start, january.members) == (date(2026, 1, 1), 4)
    assert january.active == (3, 1, 1, 1)
    assert january.on_or_after == (3, 3, 2, 1)
    assert january.retention == (0.75, 0.25, 0.25, 0.25)
    assert february.members == 1 and february.active == (1, 0, 0, None)  # Cat; May suppressed
    assert february.on_or_after == (1, 0, 0, None)
    split = query(network, retention.matrix("month", AS_OF, by_acquiring_merchant=True))
    rows = {(row.cohort_start, row.acquiring_merchant_id): row for row in split.rows}
    assert rows[(date(2026, 1, 1), A)].active == (2, 1, 0, 1)  # Ann, Eve
    assert rows[(date(2026, 1, 1), B)].active == (1, 0, 1, 0)  # Ben
    assert rows[(date(2026, 1, 1), C)].active == (0, 0, 0, 0)  # Dan
    only_b = query(network, retention.matrix("month", AS_OF, acquiring_merchant_ids=(B,)))
    assert [(r.members, r.on_or_after) for r in only_b.rows] == [(1, (1, 1, 1, 0))]
    early = query(network, retention.matrix("month", date(2026, 3, 15)))
    assert early.rows[0].active == (3, 1) and early.rows[1].active == (1, None)
    weekly = query(network, retention.matrix("week", AS_OF, cohorts_until=date(2026, 1, 12)))
    assert [(r.cohort_start, r.members) for r in weekly.rows] == [(date(2026, 1, 5), 3)]
    assert weekly.rows[0].active[:3] == (2, 0, 0)  # Ann and Eve in their first week only


def test_lifecycle_states_and_churn(network):
    # T = 40 days without activity. Spells (last active, next active]: Ann (Jan 6, Feb 10],
    # (Feb 10, -); Ben (Jan 20, Mar 3], (Mar 3, -); Cat (Feb 2, -); Dan (enrolled Jan 10, -);
    # Eve (Jan 8, Apr 20], (Apr 20, -). Lapse days: Ann Feb 15 then Mar 22; Ben Mar 1 then
    # Apr 12; Cat Mar 14; Dan Feb 19; Eve Feb 17.
    result = by_period(
        query(network, lifecycle.states("month", date(2026, 1, 1), date(2026, 6, 1), AS_OF, 40))
    )
    assert sorted(result) == [date(2026, m, 1) for m in (1, 2, 3, 4)]  # May is not complete
    counts = {
        period.period_start.month: (
            period.new, period.active, period.reactivated, period.at_risk, period.lapsed,
            period.not_lapsed_at_start, period.newly_lapsed,
        )
        for period in result.values()
    }  # fmt: skip
    assert counts == {
        1: (4, 0, 0, 0, 0, 0, 0),
        2: (1, 1, 0, 1, 2, 4, 2),  # Cat new; Ann back in time; Ben at risk; Dan, Eve lapse
        3: (0, 0, 1, 0, 4, 3, 2),  # Ben back after lapsing; Ann and Cat lapse
        4: (0, 0, 1, 0, 4, 1, 1),  # Eve back; Ben lapses
    }
    assert result[date(2026, 2, 1)].churn_rate == 0.5
    assert result[date(2026, 1, 1)].churn_rate is None
    assert all(period.members == 4 + (period.period_start.month > 1) for period in result.values())
    shorter = query(
        network, lifecycle.states("month", date(2026, 2, 1), date(2026, 3, 1), AS_OF, 30)
    )
    assert (shorter[0].active, shorter[0].reactivated) == (0, 1)  # Ann's 35 days now count


def test_lifecycle_state_of_each_member(network):
    def states(month: int, **options) -> dict:
        found = query(
            network, lifecycle.member_states("month", date(2026, month, 1), AS_OF, 40, **options)
        )
        return {m.member_id: (m.state, m.last_active_day) for m in found}

    assert states(2) == {
        ANN: ("active", date(2026, 2, 10)),
        BEN: ("at_risk", date(2026, 1, 20)),
        CAT: ("new", date(2026, 2, 2)),
        DAN: ("lapsed", None),
        EVE: ("lapsed", date(2026, 1, 8)),
    }
    assert {member: state for member, (state, _) in states(3).items()} == {
        ANN: "lapsed", BEN: "reactivated", CAT: "lapsed", DAN: "lapsed", EVE: "lapsed"
    }  # fmt: skip
    assert list(states(4, states=("reactivated",))) == [EVE]
    assert len(states(4, states=("lapsed",), limit=2)) == 2
    with pytest.raises(ValueError):
        lifecycle.member_states("month", date(2026, 5, 1), AS_OF)


def test_gaps_between_active_days(network):
    gaps = query(network, lifecycle.active_day_gaps())
    # Ann 1 and 35; Ben 42; Eve 2, 1 and 102 (enrolment-to-purchase gaps are left out).
    assert gaps.counts == ((1, 2), (2, 1), (35, 1), (42, 1), (102, 1))
    assert query(network, lifecycle.active_day_gaps(start=date(2026, 2, 1))).gaps == 3


def test_burn_earn_and_redeemer_penetration(network):
    periods = by_period(query(network, activity.series("month", MetricScope(), AS_OF)))
    january, february = periods[date(2026, 1, 1)], periods[date(2026, 2, 1)]
    assert (january.points_earned_net, january.points_redeemed_net) == (70, 0)
    assert january.burn_earn_ratio == 0
    assert (february.points_earned_net, february.points_redeemed_net) == (9, 50)
    assert february.burn_earn_ratio == 50 / 9
    assert (january.redeemer_penetration, february.redeemer_penetration) == (1 / 3, 1 / 2)


def test_time_to_first_redemption(network):
    durations = query(network, redemption.time_to_first_redemption(AS_OF))
    # Eve Jan 5 -> Jan 8 and Ann Jan 5 -> Feb 10 redeemed; Ben, Cat and Dan are censored at
    # May 1 after 101, 88 and 111 days.
    assert durations.counts == ((3, True, 1), (36, True, 1), (88, False, 1), (101, False, 1),
                                (111, False, 1))  # fmt: skip
    days, events = durations.arrays()
    assert days.tolist() == [3, 36, 88, 101, 111] and events.sum() == 2
    earlier = query(network, redemption.time_to_first_redemption(date(2026, 2, 1)))
    assert earlier.counts == ((3, True, 1), (12, False, 1), (22, False, 1), (27, False, 1))
    gold = query(network, redemption.time_to_first_redemption(AS_OF, tiers=("gold",)))
    assert gold.counts == ((3, True, 1),)


def test_point_flows(network):
    flows = query(network, redemption.flows(MetricScope(date(2026, 1, 1), date(2026, 3, 1))))
    # Eve's redemption at C was reversed: nothing flows to C.
    assert {(f.issuing_merchant_id, f.redeeming_merchant_id): f.points for f in flows} == {
        (A, B): 10,
        (B, B): 20,
        (None, B): 20,
    }
    january = query(network, redemption.flows(MetricScope(date(2026, 1, 1), date(2026, 2, 1))))
    assert january == []


def test_breakage(network):
    periods = by_period(query(network, redemption.breakage("month", MetricScope(), AS_OF)))
    assert {p.month: (v.expired_points, v.redeemed_points) for p, v in periods.items()} == {
        1: (0, 0),
        2: (0, 50),
        4: (7, 0),
    }
    assert periods[date(2026, 4, 1)].breakage_rate == 1.0
    assert periods[date(2026, 1, 1)].breakage_rate is None
    issued_by_a = query(
        network, redemption.breakage("month", MetricScope(merchant_ids=(A,)), AS_OF)
    )
    assert [(p.period_start.month, p.redeemed_points) for p in issued_by_a] == [(1, 0), (2, 10)]


def test_member_summaries(network):
    summary = query(network, members.summaries(AS_OF))
    rows = {member: i for i, member in enumerate(summary.uuids())}
    assert set(rows) == {ANN, BEN, CAT, DAN, EVE}
    ann, dan, eve = rows[ANN], rows[DAN], rows[EVE]
    assert str(summary.first_purchase_day[ann]) == "2026-01-05"
    assert str(summary.last_purchase_day[ann]) == "2026-02-10"
    assert (summary.purchase_days[ann], summary.purchases[ann]) == (3, 3)
    assert summary.net_spend_minor[ann] == 1000 + 2000 + 500 - 400
    assert (summary.points_earned_net[ann], summary.points_redeemed_net[ann]) == (31, 50)
    assert (summary.purchase_days[eve], summary.purchases[eve]) == (4, 5)
    assert summary.points_redeemed_net[eve] == 0
    assert str(summary.first_purchase_day[dan]) == "NaT" and summary.purchases[dan] == 0
    assert len(query(network, members.summaries(date(2026, 2, 1)))) == 4  # Cat not yet


def test_at_risk_list(network):
    # Inactive at May 1: Ann 80 days (500 points), Ben 59 (300), Cat 88 (50), Dan 111 (0),
    # Eve 11 (1000).
    found = query(network, members.at_risk(AS_OF, min_balance=100, min_days_inactive=50))
    assert [(m.member_id, m.balance, m.days_inactive) for m in found] == [
        (ANN, 500, 80), (BEN, 300, 59)
    ]  # fmt: skip
    assert (
        query(network, members.at_risk(AS_OF, min_balance=100, min_days_inactive=60, limit=5))[
            0
        ].member_id
        == ANN
    )


def test_data_as_of_is_the_watermark_day(network):
    with network.connect() as connection:
        watermark = connection.execute(text("SELECT watermark FROM activity_refresh")).scalar_one()
        as_of = run(connection, data_as_of())
    assert as_of == watermark.astimezone(ZoneInfo(ZONE)).date()


def every_metric() -> list:
    january = MetricScope(date(2026, 1, 1), date(2026, 2, 1))
    return [
        activity.series("day", january, AS_OF),
        activity.series("month", MetricScope(merchant_ids=(A,), tiers=("gold",)), AS_OF),
        activity.series("month", MetricScope(merchant_ids=(A, B)), AS_OF),
        activity.active_days_histogram("week", MetricScope(), AS_OF),
        activity.active_days_histogram("month", MetricScope(merchant_ids=(A, B)), AS_OF),
        activity.pair_affinity("month", date(2026, 1, 1), (A,)),
        retention.matrix("month", AS_OF, by_acquiring_merchant=True),
        retention.matrix("week", AS_OF, acquiring_merchant_ids=(A,), cohorts_from=date(2026, 1, 1)),
        lifecycle.states("week", date(2026, 1, 1), AS_OF, AS_OF, 40),
        lifecycle.active_day_gaps(date(2026, 1, 1), AS_OF),
        redemption.time_to_first_redemption(AS_OF, acquiring_merchant_ids=(A,), tiers=("gold",)),
        redemption.flows(MetricScope(merchant_ids=(B,))),
        redemption.breakage("week", MetricScope(), AS_OF),
        members.at_risk(AS_OF, min_balance=1, tiers=("basic",)),
        data_as_of(),
    ]


async def test_every_metric_runs_the_same_on_the_async_driver(network, async_engine):
    from shared.analytics.query import run_async

    with network.connect() as connection:
        expected = [run(connection, metric) for metric in every_metric()]
    async with async_engine.connect() as connection:
        found = [await run_async(connection, metric) for metric in every_metric()]
    assert found == expected
    summaries = query(network, members.summaries(AS_OF))
    async with async_engine.connect() as connection:
        summaries_async = await run_async(connection, members.summaries(AS_OF))
    assert summaries_async.uuids() == summaries.uuids()
    assert (summaries_async.first_purchase_day == summaries.first_purchase_day).sum() == 4
