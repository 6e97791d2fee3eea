"""Every metric's set-based query against a plain Python count over the same random
ledger, for every scope, at many ticks in one query and at one tick alone."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from shared.alerts.metrics import METRICS, Measure, measure
from tests.integration.alerts_support import DAY, HOUR, T0, Ledger

TIERS = ["basic", "silver", "gold"]
FLOW_KINDS = {"earn", "redeem", "capture", "reversal"}


@pytest.fixture(scope="module")
def random_ledger(database_url, sync_engine):
    """40 members at three merchants (one suspended), 100 days of purchases at irregular
    hours, redemptions and reversals, and one member buying in bursts."""
    from tests.conftest import _truncate_all

    _truncate_all(sync_engine)
    draws = random.Random(8)
    ledger = Ledger(sync_engine)
    shops = [ledger.merchant("North"), ledger.merchant("South"), ledger.merchant("West")]
    ledger.merchant("Closed", status="suspended")
    tiers = {}
    rows = []
    for index in range(40):
        tier = TIERS[index % 3] if index % 4 else "basic"
        member_id = ledger.member(shops[index % 3], tier)
        tiers[member_id] = tier
        rate = draws.choice([0.05, 0.2, 0.5, 1.5])  # purchases per day
        at = T0 - 70 * DAY + timedelta(hours=draws.uniform(0, 48))
        while at < T0 + 30 * DAY:
            shop = draws.choice(shops)
            rows.append(dict(member_id=member_id, merchant_id=shop, kind="earn", at=at, points=draws.randint(5, 300)))  # fmt: skip
            if draws.random() < 0.15:
                kind = draws.choice(["redeem", "redeem", "capture"])
                rows.append(dict(member_id=member_id, merchant_id=draws.choice(shops), kind=kind, at=at + HOUR, points=-draws.randint(50, 400)))  # fmt: skip
                if draws.random() < 0.1:
                    rows.append(dict(member_id=member_id, merchant_id=shop, kind="reversal", at=at + 2 * HOUR, points=30))  # fmt: skip
            at += timedelta(days=draws.expovariate(rate))
        if index == 7:  # a burst: 9 purchases within an hour
            for minute in range(9):
                rows.append(dict(member_id=member_id, merchant_id=shops[0], kind="earn", at=T0 + 5 * DAY + timedelta(minutes=5 * minute), points=10))  # fmt: skip
    # a behaviour bonus moves the balance (liability) but is no purchase
    rows.append(dict(member_id=next(iter(tiers)), merchant_id=None, kind="behaviour", at=T0 + DAY, points=100))  # fmt: skip
    ledger.bulk(rows)
    yield rows, tiers, [str(shop) for shop in shops]
    _truncate_all(sync_engine)


def _key(row, scope, tiers):
    return {"network": "network", "merchant": str(row["merchant_id"]), "tier": tiers[row["member_id"]]}[scope]  # fmt: skip


def reference(metric, scope, rows, tiers, keys, tick, window):
    """The metric by definition, one row at a time."""

    def within(row, start, end, kinds):
        return row["kind"] in kinds and start <= row["at"] < end

    def scoped(start, end, kinds):
        found = {key: [] for key in keys}
        for row in rows:
            if within(row, start, end, kinds) and row["merchant_id"] is not None:
                key = _key(row, scope, tiers)
                if key in found:
                    found[key].append(row)
        return found

    start = tick - window
    if metric == "liability_growth":

        def outstanding(moment):  # noqa: E306
            return sum(row["points"] for row in rows if row["at"] < moment)

        opening = outstanding(start)
        return {"network": (outstanding(tick) - opening) / opening if opening > 0 else None}
    earns = scoped(start, tick, {"earn"})
    if metric == "purchases":
        return {key: len(found) for key, found in earns.items()}
    if metric == "points_issued":
        return {key: sum(r["points"] for r in found) for key, found in earns.items()}
    redemptions = scoped(start, tick, {"redeem", "capture"})
    spent = scoped(start, tick, {"redeem", "capture", "reversal"})
    if metric == "redemptions":
        return {key: len(found) for key, found in redemptions.items()}
    if metric == "points_redeemed":
        return {key: -sum(r["points"] for r in found) for key, found in spent.items()}
    if metric == "burn_earn_ratio":
        return {
            key: (-sum(r["points"] for r in spent[key]) / issued if (issued := sum(r["points"] for r in earns[key])) else None)
            for key in keys
        }  # fmt: skip
    if metric == "active_members":
        return {key: len({r["member_id"] for r in found}) for key, found in earns.items()}
    if metric == "earn_velocity":
        result = {}
        for key, found in earns.items():
            counts = {}
            for r in found:
                counts[r["member_id"]] = counts.get(r["member_id"], 0) + 1
            result[key] = max(counts.values(), default=0)
        return result
    if metric in ("lapse_rate", "regular_lapse_rate"):
        regular = 1 if metric == "lapse_rate" else 3
        before = scoped(tick - 2 * window, start, {"earn"})
        result = {}
        for key in keys:
            counts = {}
            for r in before[key]:
                counts[r["member_id"]] = counts.get(r["member_id"], 0) + 1
            base = {member for member, count in counts.items() if count >= regular}
            recent = {r["member_id"] for r in earns[key]}
            result[key] = len(base - recent) / len(base) if base else None
        return result
    raise AssertionError(metric)


TICKS = [T0 + timedelta(days=day, hours=hour) for day, hour in ((0, 0), (3, 7), (5, 1), (9, 13), (17, 0), (17, 5), (29, 23))]  # fmt: skip
CASES = [
    (metric, scope, window)
    for metric in sorted(set(METRICS) - {"settlement_imbalance"})
    for scope in METRICS[metric].scopes
    for window in (HOUR, 3 * DAY, 10 * DAY)
    if not (metric == "earn_velocity" and window == 10 * DAY)
]


@pytest.mark.parametrize(("metric", "scope", "window"), CASES)
def test_each_metric_equals_its_definition_at_every_tick(
    random_ledger, sync_engine, metric, scope, window
):
    rows, tiers, shops = random_ledger
    keys = {"network": ["network"], "merchant": shops, "tier": TIERS}[scope]
    with sync_engine.connect() as connection:
        together = measure(connection, Measure(metric, scope, window), TICKS, TIERS)
        alone = measure(connection, Measure(metric, scope, window), [TICKS[3]], TIERS)
    assert sorted(together) == sorted(keys)  # suspended merchants are not a scope key
    for i, tick in enumerate(TICKS):
        expected = reference(metric, scope, rows, tiers, keys, tick, window)
        for key in keys:
            assert together[key][i] == pytest.approx(expected[key]), (key, tick)
    for key in keys:
        assert alone[key] == [together[key][3]]


def test_the_reference_ledger_exercises_the_metrics(random_ledger, sync_engine):
    """Guards against a test that passes on zeros: the random ledger has lapsed regulars,
    a burst, redemptions and liability growth at the ticks compared."""
    rows, tiers, shops = random_ledger
    with sync_engine.connect() as connection:
        values = {
            metric: measure(connection, Measure(metric, "network", window), TICKS, TIERS)["network"]
            for metric, window in (
                ("regular_lapse_rate", 10 * DAY),
                ("earn_velocity", HOUR),
                ("burn_earn_ratio", 3 * DAY),
                ("liability_growth", 10 * DAY),
                ("active_members", 10 * DAY),
            )
        }
    assert max(v for v in values["regular_lapse_rate"] if v is not None) > 0
    assert max(values["earn_velocity"]) >= 9
    assert all(v is not None and v > 0 for v in values["burn_earn_ratio"])
    assert all(v is not None for v in values["liability_growth"])
    assert min(values["active_members"]) >= 10


def test_a_baseline_divides_by_the_same_window_earlier_and_a_small_one_is_no_data(
    random_ledger, sync_engine
):
    rows, tiers, shops = random_ledger
    week = 7 * DAY
    with sync_engine.connect() as connection:
        plain = measure(
            connection, Measure("purchases", "merchant", 3 * DAY), TICKS + [t - week for t in TICKS]
        )
        ratio = measure(connection, Measure("purchases", "merchant", 3 * DAY, week), TICKS)
        strict = measure(
            connection, Measure("purchases", "merchant", 3 * DAY, week, min_baseline=1e9), TICKS
        )
    n = len(TICKS)
    for key in shops:
        for i in range(n):
            current, baseline = plain[key][i], plain[key][n + i]
            assert ratio[key][i] == (pytest.approx(current / baseline) if baseline else None)
            assert strict[key][i] is None
