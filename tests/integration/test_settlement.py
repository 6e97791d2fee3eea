"""Settlement, on a worked example whose every amount is computed by hand below.

Programme: monthly periods in UTC, 1 point = 1 cent, lots expire after 1 month, no
behaviour points, HQ gives back 50% of the breakage on merchant-funded points.

Partners (earn rate / issuance price / redemption rate per point):
  A grocery  1 / $0.010000 / $0.008000
  B coffee   2 / $0.012000 / $0.009000
  C cinema   1 / $0.011000 / $0.008500, runs its own campaign (+100% bonus, C-funded)

January
  10th  M1 buys $100.00 at A           -> 100 points (lot A1, A-funded)
  12th  M1 buys $25.00 at B            -> 50 points (lot B1, B-funded)
  20th  M1 pays 120 points at C        -> 100 from A1, 20 from B1 (first to expire)
  25th  M2 buys $40.00 at C            -> 40 base + 40 campaign bonus, both C-funded
February
  3rd   A refunds $50.00 of M1's Jan 10 purchase -> claws back 50 points of A1, which M1
        already spent: 50 of debt, of which 30 repaid at once from B1 (20 remain owed)
  5th   M2 pays 30 points at A         -> from the base lot (base before bonus)
  25th  M2's remaining 10 base + 40 bonus points expire (C-funded breakage: 50 points)

January statements
  A  points_issued     100 x  0.010  =  $1.00  -> +100
  B  points_issued      50 x  0.012  =  $0.60  -> +60
  C  points_issued      40 x  0.011  =  $0.44  -> +44
     campaign_points    40 x  0.011  =  $0.44  -> +44
     points_redeemed   120 x -0.0085 = -$1.02  -> -102;  net -14 (HQ pays C 14 cents)
  clearing: A->C 100 points (x 0.0085 = 85 cents), B->C 20 points (17 cents)
February statements
  A  refund_clawbacks  -50 x  0.010  = -$0.50  -> -50, correcting January
     points_redeemed    30 x -0.008  = -$0.24  -> -24;  net -74
  B  nothing                                      net 0
  C  breakage_share     50 x -0.0055 = -$0.275 -> -28 (half away from zero); net -28
  clearing: C->A 30 points (24 cents)
  HQ: fees -50, payments 24, breakage shared 28, net cash -102;
      breakage revenue 50 x 0.011 = 55 cents, less the 28 shared = 27
"""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from shared import members as members_service
from shared.access import SYSTEM, Principal, Role
from shared.ledger import corrections, earning, expiry, journal, redemption
from shared.ledger.journal import ISSUED, MEMBER, NewLot, Posting
from shared.members import MemberRef
from shared.merchants import create_merchant
from shared.program import ProgramRules, Tier
from shared.settlement import reads
from shared.settlement.closing import close_due_periods
from tests.integration.clock import clock_engine, set_clock
from tests.integration.conftest import bearer, client_for

RULES = ProgramRules(
    expiry_months=1,
    min_redemption_points=10,
    enrolment_bonus_points=0,
    profile_completion_bonus_points=0,
    referral_bonus_points=0,
    tiers=(Tier(name="basic", threshold=0, multiplier=Decimal("1")),),
    breakage_share_percent=Decimal("50"),
    settlement_period="monthly",
    time_zone="UTC",
)


def day(month: int, day_of_month: int, hour: int = 10) -> datetime:
    return datetime(2026, month, day_of_month, hour, tzinfo=UTC)


class Network:
    """The worked example's partners and members, driven through the services."""

    def __init__(self, engine):
        self.engine = engine
        self.merchants: dict[str, uuid.UUID] = {}
        self.members: dict[str, uuid.UUID] = {}

    async def at(self, moment: datetime, call):
        await set_clock(self.engine, moment)
        async with self.engine.begin() as connection:
            return await call(connection)

    def actor(self, merchant: str) -> Principal:
        return Principal(Role.MERCHANT, None, self.merchants[merchant])

    async def merchant(self, name, industry, earn_rate, issuance, redemption) -> None:
        made = await self.at(day(1, 1), lambda c: create_merchant(
            c, SYSTEM, name=name, industry=industry, currency="USD",
            earn_rate=Decimal(earn_rate), issuance_price=Decimal(issuance),
            redemption_rate=Decimal(redemption), allowed_currencies=["USD"],
        ))  # fmt: skip
        self.merchants[name] = made.merchant_id

    async def member(self, name: str) -> None:
        view = await self.at(day(1, 5), lambda c: members_service.enrol(
            c, SYSTEM, merchant_id=self.merchants["A"], store_id=None, card_number=None,
            identifiers=[], profile=None, consents=None, card_prefix="6034",
            default_region="US", rules=RULES,
        ))  # fmt: skip
        self.members[name] = view.member_id

    async def earn(self, moment, member, merchant, amount_minor):
        return await self.at(moment, lambda c: earning.earn(
            c, self.actor(merchant), merchant_id=self.merchants[merchant],
            member_ref=MemberRef("member_id", str(self.members[member])), default_region="US",
            amount_minor=amount_minor, currency="USD", occurred_at=moment, store_id=None,
            line_items=[], external_reference=None, rules=RULES,
        ))  # fmt: skip

    async def campaign_earn(self, moment, member, merchant, amount_minor, bonus) -> None:
        """What issue 6's earn path will post for a treated member: the base lot plus a
        bonus lot funded by the campaign's owner (here written with the journal)."""
        merchant_id = self.merchants[merchant]

        async def call(connection):
            locked = await journal.lock_member(connection, self.members[member])
            expires = moment.replace(month=moment.month + 1)
            base = amount_minor // 100
            await journal.post(
                connection, locked, kind="earn",
                entries=[Posting(MEMBER, base + bonus), Posting(ISSUED, -base, merchant_id),
                         Posting(ISSUED, -bonus, merchant_id)],
                occurred_at=moment, earned=base + bonus, merchant_id=merchant_id,
                amount_minor=amount_minor, currency="USD",
                new_lots=[
                    NewLot("base", base, merchant_id, merchant_id, moment, moment, expires),
                    NewLot("campaign", bonus, merchant_id, merchant_id, moment, moment, expires,
                           campaign_id=uuid.uuid4()),
                ],
            )  # fmt: skip

        await self.at(moment, call)

    async def redeem(self, moment, member, merchant, points):
        return await self.at(moment, lambda c: redemption.redeem(
            c, self.actor(merchant), merchant_id=self.merchants[merchant],
            member_ref=MemberRef("member_id", str(self.members[member])), default_region="US",
            points=points, purchase_amount_minor=None, currency="USD", store_id=None,
            external_reference=None, rules=RULES,
        ))  # fmt: skip

    async def refund(self, moment, merchant, earn_transaction_id, amount_minor):
        return await self.at(moment, lambda c: corrections.refund(
            c, self.actor(merchant), merchant_id=self.merchants[merchant],
            earn_transaction_id=earn_transaction_id, amount_minor=amount_minor,
            external_reference=None,
        ))  # fmt: skip

    async def settle(self, moment):
        await set_clock(self.engine, moment)
        return await close_due_periods(self.engine, RULES)

    async def expire(self, moment):
        await set_clock(self.engine, moment)
        return await expiry.expire_due_lots(self.engine)


async def build_worked_example(engine) -> Network:
    network = Network(engine)
    await network.merchant("A", "grocery", "1", "0.010000", "0.008000")
    await network.merchant("B", "coffee", "2", "0.012000", "0.009000")
    await network.merchant("C", "cinema", "1", "0.011000", "0.008500")
    # The partners joined on 1 January (the test clock cannot date column defaults).
    async with engine.begin() as connection:
        await connection.execute(text("UPDATE merchants SET created_at = :day"), {"day": day(1, 1)})
    await network.member("M1")
    await network.member("M2")
    purchase = await network.earn(day(1, 10), "M1", "A", 10_000)
    assert purchase.points == 100
    assert (await network.earn(day(1, 12), "M1", "B", 2_500)).points == 50
    await network.redeem(day(1, 20), "M1", "C", 120)
    await network.campaign_earn(day(1, 25), "M2", "C", 4_000, bonus=40)
    closed = await network.settle(day(2, 1, 1))
    assert [period.label for period in closed] == ["2026-01"]
    refund = await network.refund(day(2, 3), "A", purchase.transaction_id, 5_000)
    assert (refund.points, refund.debt_created, refund.debt) == (-50, 50, 20)
    await network.redeem(day(2, 5), "M2", "A", 30)
    report = await network.expire(day(2, 26, 3))
    assert report.points == 50
    closed = await network.settle(day(3, 1, 1))
    assert [period.label for period in closed] == ["2026-02"]
    return network


def lines_of(statement) -> dict[str, tuple[int, int]]:
    return {line.line: (line.points, line.amount_minor) for line in statement.lines}


@pytest.fixture
async def worked_example(database_url, clean_database):
    async with clock_engine(database_url) as engine:
        network = await build_worked_example(engine)
        yield engine, network


async def test_statements_of_the_worked_example(worked_example):
    engine, network = worked_example
    a, b, c = (network.merchants[name] for name in "ABC")
    async with engine.connect() as connection:
        periods = {period.label: period for period in await reads.list_periods(connection)}
        january = {
            s.merchant_id: s
            for s in await reads.list_statements(
                connection, merchant_id=None, period_id=periods["2026-01"].period_id
            )
        }
        february = {
            s.merchant_id: s
            for s in await reads.list_statements(
                connection, merchant_id=None, period_id=periods["2026-02"].period_id
            )
        }
    assert lines_of(january[a]) == {"points_issued": (100, 100)}
    assert lines_of(january[b]) == {"points_issued": (50, 60)}
    assert lines_of(january[c]) == {
        "points_issued": (40, 44), "campaign_points": (40, 44), "points_redeemed": (120, -102),
    }  # fmt: skip
    assert [january[m].net_minor for m in (a, b, c)] == [100, 60, -14]
    assert [january[m].direction for m in (a, b, c)] == [
        "merchant_pays",
        "merchant_pays",
        "hq_pays",
    ]
    assert lines_of(february[a]) == {"refund_clawbacks": (-50, -50), "points_redeemed": (30, -24)}
    refund_line = next(line for line in february[a].lines if line.line == "refund_clawbacks")
    assert refund_line.corrects == {"2026-01": -50}
    assert lines_of(february[b]) == {} and february[b].net_minor == 0
    assert february[b].direction == "nothing_due"
    assert lines_of(february[c]) == {"breakage_share": (50, -28)}
    assert [february[m].net_minor for m in (a, b, c)] == [-74, 0, -28]
    async with engine.connect() as connection:
        breakage_rows = await reads.statement_transactions(connection, february[c])
    columns = reads.CSV_COLUMNS
    assert [(row[columns.index("kind")], row[columns.index("breakage_share")], row[-1])
            for row in breakage_rows] == [("expiry", 50, Decimal("-0.275"))]  # fmt: skip
    # No minor unit is created or lost between the lines and the totals.
    for statement in [*january.values(), *february.values()]:
        assert statement.net_minor == sum(line.amount_minor for line in statement.lines)


async def test_clearing_and_network_view_of_the_worked_example(worked_example):
    engine, network = worked_example
    a, b, c = (network.merchants[name] for name in "ABC")
    async with engine.connect() as connection:
        periods = {period.label: period for period in await reads.list_periods(connection)}
        january = await reads.clearing(connection, periods["2026-01"].period_id)
        february = await reads.clearing(connection, periods["2026-02"].period_id)
        view = await reads.network_view(connection, periods["2026-02"].period_id, RULES)
    assert {(x.issuing_merchant_id, x.redeeming_merchant_id): (x.points, x.amount_minor)
            for x in january} == {(a, c): (100, 85), (b, c): (20, 17)}  # fmt: skip
    assert {(x.issuing_merchant_id, x.redeeming_merchant_id): (x.points, x.amount_minor)
            for x in february} == {(c, a): (30, 24)}  # fmt: skip
    assert (view.issuance_fees_minor, view.redemption_payments_minor) == (-50, 24)
    assert (view.breakage_shared_minor, view.net_cash_minor) == (28, -102)
    assert view.issuance_spread_minor == -74
    assert view.breakage_revenue_minor == 27
    assert view.expired_points == {"merchants": 50, "network": 0}


async def test_closing_again_changes_nothing(worked_example, clean_database):
    engine, network = worked_example

    def snapshot():
        with clean_database.connect() as connection:
            return [
                connection.execute(text(f"SELECT * FROM {table} ORDER BY 1, 2")).all()
                for table in ("settlement_periods", "statements", "statement_lines",
                              "clearing_lines")
            ]  # fmt: skip

    before = snapshot()
    assert await network.settle(day(3, 1, 2)) == []
    assert snapshot() == before


async def test_a_partner_gets_statements_from_the_period_it_joined(worked_example):
    engine, network = worked_example
    await network.merchant("D", "fuel", "0.5", "0.009000", "0.008000")
    async with engine.begin() as connection:
        await connection.execute(
            text("UPDATE merchants SET created_at = :day WHERE name = 'D'"), {"day": day(4, 10)}
        )
    march = await network.settle(day(4, 1, 1))
    april = await network.settle(day(5, 1, 1))
    async with engine.connect() as connection:
        names = [
            {s.merchant_name for s in await reads.list_statements(
                connection, merchant_id=None, period_id=period[0].period_id)}
            for period in (march, april)
        ]  # fmt: skip
    assert names == [{"A", "B", "C"}, {"A", "B", "C", "D"}]


async def test_a_late_transaction_lands_in_the_next_open_period(worked_example, clean_database):
    engine, network = worked_example
    # A till's transaction began before the end of February but committed after the close:
    # its posted_at falls in a closed period.
    await network.earn(day(2, 28, 23), "M2", "B", 1_000)
    closed = await network.settle(day(4, 1, 1))
    assert [period.label for period in closed] == ["2026-03"]
    async with engine.connect() as connection:
        march = await reads.list_statements(
            connection, merchant_id=network.merchants["B"], period_id=closed[0].period_id
        )
    assert lines_of(march[0]) == {"points_issued": (20, 24)}
    with clean_database.connect() as connection:
        settled_twice = connection.execute(
            text(
                "SELECT count(*) FROM (SELECT transaction_id FROM settled_transactions"
                " GROUP BY 1 HAVING count(*) > 1) t"
            )  # fmt: skip
        ).scalar_one()
        unsettled = connection.execute(
            text(
                "SELECT count(*) FROM ledger_transactions t WHERE NOT EXISTS (SELECT 1 FROM"
                " settled_transactions s WHERE s.transaction_id = t.transaction_id)"
            )  # fmt: skip
        ).scalar_one()
    assert (settled_twice, unsettled) == (0, 0)


async def test_a_refund_after_a_merge_corrects_the_period_of_the_purchase(worked_example):
    """B refunds M1's January purchase in March, after M1 was merged into M2: the refund
    posts on M2 and still says it corrects January."""
    engine, network = worked_example
    m1, m2, b = network.members["M1"], network.members["M2"], network.merchants["B"]
    async with engine.connect() as connection:
        purchase = await connection.scalar(
            text(
                "SELECT transaction_id FROM ledger_transactions WHERE kind = 'earn' AND merchant_id = :b"
            ),
            {"b": b},
        )
    await network.at(day(3, 3), lambda c: members_service.merge(c, SYSTEM, m2, m1, "one person"))
    refund = await network.refund(day(3, 5), "B", purchase, 2_500)
    # B1's 50 points were all spent or repaid debt: all of the clawback is M2's debt now.
    assert (refund.member_id, refund.points, refund.debt_created) == (m2, -50, 50)
    closed = await network.settle(day(4, 1, 1))
    async with engine.connect() as connection:
        (march,) = await reads.list_statements(
            connection, merchant_id=b, period_id=closed[0].period_id
        )
    assert lines_of(march) == {"refund_clawbacks": (-50, -60)}
    assert march.lines[0].corrects == {"2026-01": -50}


async def test_merchants_read_their_own_statements_only(
    worked_example, async_engine, test_settings
):
    from api.app import create_app
    from shared import api_keys

    engine, network = worked_example
    async with async_engine.begin() as connection:
        key_a = await api_keys.issue_key(
            connection, SYSTEM, role=Role.MERCHANT, label="t", merchant_id=network.merchants["A"]
        )
        key_b = await api_keys.issue_key(
            connection, SYSTEM, role=Role.MERCHANT, label="t", merchant_id=network.merchants["B"]
        )
        admin = await api_keys.issue_key(connection, SYSTEM, role=Role.HQ_ADMIN, label="t")
    settings = test_settings.model_copy(update={"program": RULES})
    async with client_for(create_app(settings, engine=async_engine)) as client:
        own = await client.get("/v1/statements", headers=bearer(key_a.secret))
        assert own.status_code == 200
        assert [s["merchantId"] for s in own.json()] == [str(network.merchants["A"])] * 2
        february = next(s for s in own.json() if s["period"]["label"] == "2026-02")
        assert february["netMinor"] == -74 and february["direction"] == "hq_pays"

        other = await client.get(
            f"/v1/statements/{february['statementId']}", headers=bearer(key_b.secret)
        )
        assert other.status_code == 404
        assert other.headers["content-type"].startswith("application/problem+json")
        other_csv = await client.get(
            f"/v1/statements/{february['statementId']}/transactions.csv",
            headers=bearer(key_b.secret),
        )
        assert other_csv.status_code == 404

        csv_response = await client.get(
            f"/v1/statements/{february['statementId']}/transactions.csv",
            headers=bearer(key_a.secret),
        )
        assert csv_response.status_code == 200
        assert csv_response.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(csv_response.text)))
        assert [(row["kind"], row["refund_clawbacks"], row["points_redeemed"], row["amount"])
                for row in rows] == [("refund", "-50", "", "-0.500000"),
                                     ("redeem", "", "30", "-0.240000")]  # fmt: skip
        assert sum(Decimal(row["amount"]) for row in rows) == Decimal("-0.74")

        hq = await client.get("/v1/hq/settlement/statements", headers=bearer(admin.secret))
        assert hq.status_code == 200 and len(hq.json()) == 6
        forbidden = await client.get("/v1/hq/settlement/periods", headers=bearer(key_a.secret))
        assert forbidden.status_code == 403
        periods = (
            await client.get("/v1/hq/settlement/periods", headers=bearer(admin.secret))
        ).json()
        clearing = await client.get(
            f"/v1/hq/settlement/periods/{periods[-1]['periodId']}/clearing",
            headers=bearer(admin.secret),
        )
        assert {(c["points"], c["amountMinor"]) for c in clearing.json()["cells"]} == {
            (100, 85), (20, 17),
        }  # fmt: skip


async def test_closed_periods_are_immutable_and_the_audit_catches_tampering(
    worked_example, clean_database
):
    from shared.ledger.integrity import CHECKS, run_checks
    from shared.settlement.reconciliation import CHECKS as SETTLEMENT_CHECKS

    with clean_database.connect() as connection:
        results = run_checks(connection, checks=CHECKS + SETTLEMENT_CHECKS)
    assert [r.check.name for r in results if not r.ok] == []
    # The database refuses to change a closed period's records...
    for statement in (
        "UPDATE statement_lines SET points = points + 1",
        "DELETE FROM settled_transactions",
        "UPDATE statements SET net_minor = 0",
        "DELETE FROM clearing_lines",
    ):
        with pytest.raises(IntegrityError, match="immutable"), clean_database.begin() as c:
            c.execute(text(statement))
    # ...so tampering needs a superuser who switches the guard off; the audit still sees it.
    with clean_database.begin() as connection:
        for table in ("statement_lines", "settled_transactions"):
            connection.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER {table}_immutable"))
        connection.execute(
            text("UPDATE statement_lines SET points = points + 1 WHERE line = 'points_redeemed'")
        )
        # A January transaction goes missing from January's settlement.
        connection.execute(
            text(
                "DELETE FROM settled_transactions WHERE transaction_id = (SELECT transaction_id"
                " FROM ledger_transactions WHERE posted_at < '2026-02-01' AND kind = 'earn'"
                " ORDER BY posted_at LIMIT 1)"
            )
        )
        for table in ("statement_lines", "settled_transactions"):
            connection.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER {table}_immutable"))
    with clean_database.connect() as connection:
        failed = {
            r.check.name for r in run_checks(connection, checks=SETTLEMENT_CHECKS) if not r.ok
        }
    assert {"settlement complete", "statements = ledger", "clearing = statements"} <= failed


async def test_hq_reads_the_liability_and_its_roll_forward_adds_up(
    worked_example, async_engine, test_settings, clean_database
):
    from api.app import create_app
    from shared import api_keys

    async with async_engine.begin() as connection:
        admin = await api_keys.issue_key(connection, SYSTEM, role=Role.HQ_ANALYST, label="t")
        merchant = await api_keys.issue_key(
            connection, SYSTEM, role=Role.MERCHANT, label="t",
            merchant_id=worked_example[1].merchants["A"],
        )  # fmt: skip
    settings = test_settings.model_copy(update={"program": RULES})
    async with client_for(create_app(settings, engine=async_engine)) as client:
        response = await client.get(
            "/v1/hq/settlement/liability", params={"as_of": "2026-04-01T00:00:00Z"},
            headers=bearer(admin.secret),
        )  # fmt: skip
        refused = await client.get("/v1/hq/settlement/liability", headers=bearer(merchant.secret))
    assert refused.status_code == 403
    assert response.status_code == 200, response.text
    report = response.json()
    with clean_database.connect() as connection:
        balances = connection.execute(text("SELECT sum(balance) FROM member_balances")).scalar()
    assert report["outstandingPoints"] == balances == -20  # M1 owes 20 points after the refund
    lines = report["rollForward"]
    assert [line["month"] for line in lines][-3:] == ["2026-01-01", "2026-02-01", "2026-03-01"]
    for line in lines:
        points = (line["openingPoints"] + line["issuedPoints"] - line["redeemedPoints"]
                  - line["expiredPoints"] + line["otherPoints"])  # fmt: skip
        money = (line["openingMinor"] + line["issuedMinor"] - line["redeemedMinor"]
                 - line["expiredMinor"] + line["otherMinor"] + line["changeInEstimateMinor"])  # fmt: skip
        assert (points, money) == (line["closingPoints"], line["closingMinor"])
    january = next(line for line in lines if line["month"] == "2026-01-01")
    # January: 100 + 50 + 80 issued, 120 redeemed.
    assert (january["issuedPoints"], january["redeemedPoints"], january["closingPoints"]) == (
        230, 120, 110,
    )  # fmt: skip
