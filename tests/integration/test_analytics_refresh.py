"""The rollups refresh job: steps equal a rebuild, re-runs change nothing, a transaction
that commits late is not lost, and on a seeded network every metric agrees with the same
metric computed here, in Python, straight from the raw ledger tables."""

from __future__ import annotations

import threading
import uuid
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, text

from seed import bulk
from seed.config import SeedConfig
from shared.analytics import activity, lifecycle, members, redemption, retention
from shared.analytics.query import MetricScope, next_period, period_start, periods, run
from shared.analytics.refresh import ROLLUP_TABLES, refresh
from shared.database.urls import libpq_conninfo
from tests.databases import beside, migrated_database
from tests.integration.analytics_support import Story

ZONE = "Europe/Paris"
END = datetime(2026, 6, 1, tzinfo=UTC)
AS_OF = date(2026, 6, 1)
NETWORK_CONFIG = SeedConfig(
    members=300, months=14, merchants=8, seed=11, end=END, shard_members=150, workers=1
)
ACTIVE_KINDS = ("earn", "redeem", "capture")


@pytest.fixture(scope="module")
def rules(test_settings):
    return test_settings.program.model_copy(update={"time_zone": ZONE})


@pytest.fixture(scope="module")
def seeded(database_url, test_settings):
    """A seeded network in a database of its own (other modules empty the worker's)."""
    with migrated_database(beside(database_url, "rollups")) as url:
        program = test_settings.program
        bulk.run(NETWORK_CONFIG, program, test_settings.card_prefix, libpq_conninfo(url),
                 show_progress=False)  # fmt: skip
        engine = create_engine(url)
        yield engine
        engine.dispose()


def snapshot(engine) -> dict[str, str]:
    """Row count and an md5 over every rollup table's rows in a canonical order."""
    with engine.connect() as connection:
        return {
            table: connection.execute(
                text(
                    f"SELECT count(*) || ':' || coalesce(md5(string_agg(r::text, '|'"
                    f" ORDER BY r::text)), '') FROM {table} r"
                )
            ).scalar_one()
            for table in ROLLUP_TABLES
        }


def at(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


def test_refreshing_in_steps_gives_what_a_rebuild_gives(seeded, rules):
    refresh(seeded, rules, full=True, until=at(2025, 9, 1))
    stepped = refresh(seeded, rules, until=at(2026, 1, 10), batch=timedelta(days=9))
    assert stepped.batches >= 14 and not stepped.full
    with seeded.begin() as connection:
        # A tier change and a new enrolment after the history: found through
        # members.updated_at, with no ledger transaction.
        connection.execute(
            text(
                "UPDATE members SET tier = 'diamond', updated_at = now() WHERE member_id ="
                " (SELECT member_id FROM members WHERE tier = 'basic' ORDER BY member_id LIMIT 1)"
            )
        )
        new_member = {"id": uuid.uuid4()}
        connection.execute(
            text(
                "INSERT INTO members (member_id, enrolled_at, acquiring_merchant_id)"
                " SELECT :id, now(), merchant_id FROM merchants ORDER BY merchant_id LIMIT 1"
            ),
            new_member,
        )
        connection.execute(text("INSERT INTO member_balances (member_id) VALUES (:id)"), new_member)
    refresh(seeded, rules, until=at(2026, 4, 1), batch=timedelta(days=40))
    # No margin: the changes above are a moment old (a rebuild reads members as they are).
    refresh(seeded, rules, margin=timedelta(0))
    in_steps = snapshot(seeded)
    assert int(in_steps["activity_member_days"].split(":")[0]) > 1000
    assert in_steps["activity_members"].startswith("301:")
    again = refresh(seeded, rules, margin=timedelta(0))
    assert again.members == 0 and snapshot(seeded) == in_steps  # idempotent
    rebuilt = refresh(seeded, rules, full=True, margin=timedelta(0))
    assert rebuilt.full and rebuilt.batches == 1
    assert snapshot(seeded) == in_steps


def test_a_transaction_that_commits_late_is_not_lost(clean_database, rules):
    engine = clean_database
    merchant, early, late = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO merchants (merchant_id, name, industry, currency, earn_rate,"
                " issuance_price, redemption_rate) VALUES (:m, 'A', 'grocery', 'USD', 1, 0.01,"
                " 0.008)"
            ),
            {"m": merchant},
        )
        for member in (early, late):
            connection.execute(
                text(
                    "INSERT INTO members (member_id, enrolled_at, acquiring_merchant_id)"
                    " VALUES (:id, now() - interval '1 day', :m)"
                ),
                {"id": member, "m": merchant},
            )
    refresh(engine, rules, margin=timedelta(0))
    purchase = text(
        "INSERT INTO ledger_transactions (member_id, transaction_id, kind, merchant_id,"
        " occurred_at, points, amount_minor) VALUES (:member, :id, 'earn', :m, now(), 5, 500)"
    )
    with engine.connect() as slow:
        # A till's transaction starts (posted_at = now() = its start) and is still open
        # while a later one commits and the job runs.
        slow.execute(purchase, {"member": late, "id": uuid.uuid4(), "m": merchant})
        started = slow.execute(text("SELECT now()")).scalar_one()
        threading.Event().wait(0.2)
        with engine.begin() as connection:
            connection.execute(purchase, {"member": early, "id": uuid.uuid4(), "m": merchant})
        report = refresh(engine, rules, margin=timedelta(0))
        assert report.watermark <= started
        slow.commit()
    refresh(engine, rules, margin=timedelta(0))
    with engine.connect() as connection:
        counted = dict(
            connection.execute(text("SELECT member_id, purchases FROM activity_member_days")).all()
        )
    assert counted == {early: 1, late: 1}


def test_a_change_of_time_zone_rebuilds_the_rollups(clean_database, rules):
    merchant, member = uuid.uuid4(), uuid.uuid4()
    with clean_database.begin() as connection:
        story = Story(connection)
        story.merchant(merchant, "A")
        story.member(member, "2026-01-05", merchant, "basic", 0)
        # 23:30 in New York on Jan 5 is Jan 6 in Paris.
        story.purchase(member, "2026-01-05", merchant, 1000, hour=23, minute=30)
    new_york = rules.model_copy(update={"time_zone": "America/New_York"})
    assert refresh(clean_database, new_york).full
    assert not refresh(clean_database, new_york).full
    assert refresh(clean_database, rules).full  # Paris

    with clean_database.connect() as connection:
        days = connection.execute(text("SELECT day FROM activity_member_days")).scalars().all()
        zone = connection.execute(text("SELECT time_zone FROM activity_refresh")).scalar_one()
    assert (days, zone) == ([date(2026, 1, 6)], ZONE)


def test_the_bulk_seed_builds_the_rollups(database_url, clean_database, tmp_path: Path):
    from seed.command import seed_database

    seed_database(database_url, profile_name="test", members=40, months=3, merchants=3,
                  end=END, workers=1, truth_path=tmp_path / "truth.json",
                  show_progress=False)  # fmt: skip
    with clean_database.connect() as connection:
        summarised = connection.execute(text("SELECT count(*) FROM activity_members")).scalar()
        watermark = connection.execute(text("SELECT watermark FROM activity_refresh")).scalar()
    assert summarised == 40 and watermark > END


# --- the same metrics straight from the raw tables ------------------------------------------


class Raw:
    """The seeded network's raw rows, with local days, and the metrics computed from them
    the plain way (sets of members per period, day by day lifecycle)."""

    def __init__(self, engine) -> None:
        zone = ZoneInfo(ZONE)
        with engine.connect() as connection:
            self.transactions = [
                (row.member_id, row.kind, row.merchant_id, row.occurred_at.astimezone(zone).date(),
                 row.amount_minor, row.points)
                for row in connection.execute(
                    text(
                        "SELECT member_id, kind, merchant_id, occurred_at, amount_minor, points"
                        " FROM ledger_transactions WHERE merchant_id IS NOT NULL"
                        " AND kind IN ('earn', 'refund', 'redeem', 'capture', 'reversal')"
                    )
                )
            ]  # fmt: skip
            self.members = {
                row.member_id: (row.enrolled_at.astimezone(zone).date(), row.acquiring, row.tier)
                for row in connection.execute(
                    text(
                        "SELECT member_id, enrolled_at, acquiring_merchant_id AS acquiring, tier"
                        " FROM members"
                    )
                )
            }
            self.allocations = [
                (row.kind, row.issuing_merchant_id, row.redeeming_merchant_id,
                 row.posted_at.astimezone(zone).date(), row.points)
                for row in connection.execute(
                    text(
                        "SELECT kind, issuing_merchant_id, redeeming_merchant_id, posted_at,"
                        " points FROM allocations"
                        " WHERE kind IN ('redemption', 'reversal', 'expiry')"
                    )
                )
            ]  # fmt: skip
        self.active_days: dict[uuid.UUID, set[date]] = defaultdict(set)
        for member, kind, _, day, _, _ in self.transactions:
            if kind in ACTIVE_KINDS:
                self.active_days[member].add(day)

    def enrolled(self, member) -> date:
        days = self.active_days.get(member)
        return min(self.members[member][0], *days) if days else self.members[member][0]

    def active(self, grain, merchants=(), tiers=()) -> dict[date, set]:
        found = defaultdict(set)
        for member, kind, merchant, day, _, _ in self.transactions:
            in_scope = (not merchants or merchant in merchants) and (
                not tiers or self.members[member][2] in tiers
            )
            if kind in ACTIVE_KINDS and in_scope:
                found[period_start(day, grain)].add(member)
        return found

    def sums(self, grain, kinds, field) -> Counter:
        total = Counter()
        for transaction in self.transactions:
            if transaction[1] in kinds:
                total[period_start(transaction[3], grain)] += abs(transaction[field])
        return total


@pytest.fixture(scope="module")
def raw(seeded, rules):
    refresh(seeded, rules, full=True, margin=timedelta(0))
    return Raw(seeded)


def fetch(engine, metric):
    with engine.connect() as connection:
        return run(connection, metric)


@pytest.mark.parametrize("grain", ["day", "week", "month"])
def test_active_members_and_sums_agree_with_the_ledger(seeded, raw, grain):
    series = fetch(seeded, activity.series(grain, MetricScope(), AS_OF))
    active = raw.active(grain)
    assert {p.period_start: p.active_members for p in series if p.active_members} == {
        start: len(found) for start, found in active.items()
    }
    assert {p.period_start: p.purchases for p in series if p.purchases} == dict(
        Counter(period_start(t[3], grain) for t in raw.transactions if t[1] == "earn")
    )
    assert {p.period_start: p.spend_minor for p in series if p.spend_minor} == dict(
        raw.sums(grain, ("earn",), 4)
    )
    assert {p.period_start: p.points_redeemed for p in series if p.points_redeemed} == dict(
        raw.sums(grain, ("redeem", "capture"), 5)
    )
    assert {p.period_start: p.points_clawed_back for p in series if p.points_clawed_back} == dict(
        raw.sums(grain, ("refund",), 5)
    )


def test_filtered_activity_agrees_with_the_ledger(seeded, raw):
    merchants = sorted({t[2] for t in raw.transactions}, key=str)
    tiers = ("silver", "gold")
    cases = [((merchants[0],), ()), (tuple(merchants[:3]), ()), ((), tiers), (tuple(merchants[1:3]), tiers)]  # fmt: skip
    for scope, tier_scope in cases:
        series = fetch(
            seeded,
            activity.series("month", MetricScope(merchant_ids=scope, tiers=tier_scope), AS_OF),
        )
        expected = raw.active("month", scope, tier_scope)
        assert {p.period_start: p.active_members for p in series if p.active_members} == {
            start: len(found) for start, found in expected.items()
        }, (scope, tier_scope)
    for months in fetch(
        seeded, activity.series("month", MetricScope(merchant_ids=tuple(merchants[:3])), AS_OF)
    ):
        used = defaultdict(set)
        for member, kind, merchant, day, _, _ in raw.transactions:
            if (
                kind in ACTIVE_KINDS
                and merchant in merchants[:3]
                and period_start(day, "month") == months.period_start
            ):
                used[member].add(merchant)
        assert months.multi_merchant_members == sum(len(m) >= 2 for m in used.values())


def test_retention_agrees_with_the_ledger(seeded, raw):
    result = fetch(seeded, retention.matrix("month", AS_OF, by_acquiring_merchant=True))
    cohorts = defaultdict(set)
    for member in raw.members:
        if raw.enrolled(member) < AS_OF:
            cohorts[(period_start(raw.enrolled(member), "month"), raw.members[member][1])].add(
                member
            )
    active = raw.active("month")
    assert {(r.cohort_start, r.acquiring_merchant_id): r.members for r in result.rows} == {
        key: len(found) for key, found in cohorts.items()
    }
    for row in result.rows:
        cohort = cohorts[(row.cohort_start, row.acquiring_merchant_id)]
        starts = periods(row.cohort_start, AS_OF, "month")
        assert row.active[: len(starts)] == tuple(len(cohort & active[p]) for p in starts)
        later = [set().union(*(active[q] for q in starts[k:])) | set().union(
            *(active[q] for q in periods(AS_OF, date(2027, 1, 1), "month"))) for k in range(len(starts))]  # fmt: skip
        assert row.on_or_after[: len(starts)] == tuple(len(cohort & m) for m in later)
        assert all(cell is None for cell in row.active[len(starts) :])


def test_lifecycle_agrees_with_a_day_by_day_reading_of_the_ledger(seeded, raw):
    threshold = 60
    result = fetch(seeded, lifecycle.states("month", date(2025, 1, 1), AS_OF, AS_OF, threshold))
    assert len(result) >= 12
    for period in result:
        first, after = period.period_start, next_period(period.period_start, "month")
        states = Counter()
        for member in raw.members:
            enrolled = raw.enrolled(member)
            if enrolled >= after:
                continue
            if enrolled >= first:
                states["new"] += 1
                continue
            days = sorted(raw.active_days.get(member, ()))
            before = [d for d in days if d < first]
            previous = before[-1] if before else enrolled
            inside = [d for d in days if first <= d < after]
            if (first - timedelta(days=1) - previous).days < threshold:
                states["not_lapsed_at_start"] += 1
            if inside:  # T full days without activity before coming back: a lapse
                lapsed_before = (inside[0] - previous).days - 1 >= threshold
                states["reactivated" if lapsed_before else "active"] += 1
            elif (after - timedelta(days=1) - previous).days >= threshold:
                states["lapsed"] += 1
                if (first - timedelta(days=1) - previous).days < threshold:
                    states["newly_lapsed"] += 1
            else:
                states["at_risk"] += 1
        found = {
            name: getattr(period, name)
            for name in ("new", "active", "reactivated", "at_risk", "lapsed",
                         "not_lapsed_at_start", "newly_lapsed")
        }  # fmt: skip
        assert found == {name: states[name] for name in found}, period.period_start


def test_member_states_add_up_to_the_lifecycle_counts(seeded, raw):
    counts = fetch(seeded, lifecycle.states("month", date(2026, 1, 1), AS_OF, AS_OF, 60))
    for period in counts:
        states = Counter(
            member.state
            for member in fetch(
                seeded, lifecycle.member_states("month", period.period_start, AS_OF, 60)
            )
        )
        assert states == Counter(
            {name: getattr(period, name) for name in lifecycle.STATES if getattr(period, name)}
        ), period.period_start


def test_histograms_pairs_and_gaps_agree_with_the_ledger(seeded, raw):
    month = date(2026, 3, 1)
    days_in_month = defaultdict(set)
    merchants_in_month = defaultdict(set)
    for member, kind, merchant, day, _, _ in raw.transactions:
        if kind in ACTIVE_KINDS and period_start(day, "month") == month:
            days_in_month[member].add(day)
            merchants_in_month[member].add(merchant)
    histogram = fetch(
        seeded,
        activity.active_days_histogram(
            "month", MetricScope(month, next_period(month, "month")), AS_OF
        ),
    )
    assert dict(histogram[0].members_by_days) == dict(
        Counter(len(d) for d in days_in_month.values())
    )
    pairs = fetch(seeded, activity.pair_affinity("month", month))
    expected = Counter()
    for used in merchants_in_month.values():
        for a in used:
            for b in used:
                if str(a) < str(b):
                    expected[frozenset((a, b))] += 1
    assert {frozenset((p.merchant_a, p.merchant_b)): p.both for p in pairs} == dict(expected)
    gaps = Counter()
    for days in raw.active_days.values():
        ordered = sorted(days)
        gaps.update((b - a).days for a, b in zip(ordered, ordered[1:], strict=False))
    assert dict(fetch(seeded, lifecycle.active_day_gaps()).counts) == dict(gaps)


def test_redemption_metrics_agree_with_the_ledger(seeded, raw):
    flows = fetch(seeded, redemption.flows(MetricScope(date(2025, 10, 1), date(2026, 3, 1))))
    expected = Counter()
    for kind, issuing, redeeming, day, points in raw.allocations:
        if kind != "expiry" and date(2025, 10, 1) <= day < date(2026, 3, 1):
            expected[(issuing, redeeming)] += points
    assert {(f.issuing_merchant_id, f.redeeming_merchant_id): f.points for f in flows} == {
        key: points for key, points in expected.items() if points
    }
    expired = Counter()
    for kind, _, _, day, points in raw.allocations:
        if kind == "expiry":
            expired[period_start(day, "month")] += points
    breakage = fetch(seeded, redemption.breakage("month", MetricScope(), AS_OF))
    assert {p.period_start: p.expired_points for p in breakage if p.expired_points} == dict(expired)
    assert sum(expired.values()) > 0
    first_redemption = {}
    for member, kind, _, day, _, _ in raw.transactions:
        if kind in ("redeem", "capture"):
            first_redemption[member] = min(day, first_redemption.get(member, day))
    durations = Counter()
    for member in raw.members:
        enrolled = raw.enrolled(member)
        if enrolled < AS_OF:
            redeemed = first_redemption.get(member)
            event = redeemed is not None and redeemed < AS_OF
            durations[((redeemed if event else AS_OF) - enrolled).days, event] += 1
    found = fetch(seeded, redemption.time_to_first_redemption(AS_OF))
    assert {(d, e): n for d, e, n in found.counts} == dict(durations)


def test_member_summaries_agree_with_the_ledger(seeded, raw):
    summary = fetch(seeded, members.summaries(date(2027, 1, 1)))
    purchase_days = defaultdict(set)
    spend = Counter()
    for member, kind, _, day, amount, _ in raw.transactions:
        if kind == "earn":
            purchase_days[member].add(day)
            spend[member] += amount
        elif kind == "refund":
            spend[member] -= amount
    assert len(summary) == len(raw.members)
    for i, member in enumerate(summary.uuids()):
        days = purchase_days.get(member, set())
        assert summary.purchase_days[i] == len(days)
        assert summary.net_spend_minor[i] == spend[member]
        if days:
            assert str(summary.first_purchase_day[i]) == min(days).isoformat()
            assert str(summary.last_purchase_day[i]) == max(days).isoformat()
