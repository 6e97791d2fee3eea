"""`coalition jobs alerts`' evaluation: instances per scope key, state changes stored with
their values, idempotent ticks, the outbox of deliveries, no data, rule changes."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from shared.access import SYSTEM
from shared.alerts import definitions, reads, webhooks
from shared.alerts.evaluation import evaluate_all
from shared.alerts.metrics import Measure, measure
from shared.alerts.rules import Comparator, NoDataPolicy, Severity
from shared.tables import alert_deliveries, alert_events, alert_instances
from tests.integration.alerts_support import DAY, HOUR, T0, Ledger

FEED_RULE = dict(
    name="Feed silent",
    description="",
    metric="purchases",
    scope="merchant",
    comparator=Comparator.LT,
    threshold=0.2,
    recovery_threshold=0.5,
    window=DAY,
    evaluate_every=HOUR,
    baseline_offset=7 * DAY,
    min_baseline=5,
    pending_evaluations=3,
    recovery_evaluations=1,
    severity=Severity.WARNING,
    no_data=NoDataPolicy.KEEP,
    owner="ops",
    enabled=True,
)


@pytest.fixture
def shops(clean_database):
    """Three merchants selling every 2 hours for 30 days; Quiet stops at T0 + 14 days."""
    ledger = Ledger(clean_database)
    names = ["Busy", "Steady", "Quiet"]
    ids = {name: ledger.merchant(name) for name in names}
    member = ledger.member(ids["Busy"])
    rows = []
    for name, merchant_id in ids.items():
        for step in range(30 * 12):
            at = T0 + step * 2 * HOUR + timedelta(minutes=names.index(name))
            if name == "Quiet" and at >= T0 + 14 * DAY:
                break
            rows.append(dict(member_id=member, merchant_id=merchant_id, kind="earn", at=at, points=10))  # fmt: skip
    ledger.bulk(rows)
    return ids


def instances(engine) -> dict[str, tuple[str, int]]:
    with engine.connect() as connection:
        return {
            row.scope_key: (row.state, row.streak)
            for row in connection.execute(select(alert_instances))
        }


def events(engine) -> list[tuple[str, str, str, float | None]]:
    with engine.connect() as connection:
        return [
            (row.scope_key, row.from_state, row.to_state, row.value)
            for row in connection.execute(select(alert_events).order_by(alert_events.c.tick))
        ]


def test_a_per_merchant_rule_has_one_alert_per_merchant_and_only_the_silent_one_fires(
    clean_database, shops
):
    with clean_database.begin() as connection:
        rule = definitions.create_rule(connection, SYSTEM, **FEED_RULE)
    quiet = str(shops["Quiet"])
    # The window [t - 1 day, t) is empty from T0 + 15 days on: 0 / 12 purchases.
    for hour in range(-2, 4):
        evaluate_all(clean_database, at=T0 + 15 * DAY + hour * HOUR)
    states = instances(clean_database)
    assert set(states) == {str(merchant_id) for merchant_id in shops.values()}
    assert states[quiet] == ("firing", 0)
    assert {key: state for key, (state, _) in states.items() if key != quiet} == {
        str(shops["Busy"]): "normal",
        str(shops["Steady"]): "normal",
    }
    # Two hours before T0 + 15 days the window still held a purchase of the 14th day:
    # 1/12 = 0.083 is already a breach; pending for three evaluations, then firing.
    assert events(clean_database) == [
        (quiet, "normal", "pending", pytest.approx(1 / 12)),
        (quiet, "pending", "firing", 0.0),
    ]
    with clean_database.connect() as connection:
        assert reads.firing_count(connection) == 1
        current = reads.current_alerts(connection)
    assert [(a.rule_id, a.scope_label, a.state, a.value) for a in current] == [
        (rule.rule_id, "Quiet", "firing", 0.0)
    ]


def test_evaluating_a_tick_again_changes_nothing(clean_database, shops):
    with clean_database.begin() as connection:
        definitions.create_rule(connection, SYSTEM, **FEED_RULE | {"pending_evaluations": 1})
    at = T0 + 15 * DAY + 30 * timedelta(minutes=1)
    first, failures = evaluate_all(clean_database, at=at)
    assert failures == [] and first[0].evaluated == 3 and len(first[0].changes) == 1
    before = instances(clean_database)
    for later in (at, at + timedelta(minutes=29)):  # the same hourly tick
        again, _ = evaluate_all(clean_database, at=later)
        assert again[0].evaluated == 0 and again[0].changes == []
    assert instances(clean_database) == before
    assert len(events(clean_database)) == 1
    # the next tick is evaluated (and changes nothing: still firing)
    following, _ = evaluate_all(clean_database, at=at + HOUR)
    assert following[0].evaluated == 3 and following[0].changes == []


def test_recovery_is_recorded_with_its_value(clean_database, shops):
    ledger = Ledger(clean_database)
    member = ledger.member(shops["Quiet"])
    with clean_database.begin() as connection:
        definitions.create_rule(connection, SYSTEM, **FEED_RULE | {"pending_evaluations": 1})
    evaluate_all(clean_database, at=T0 + 15 * DAY)
    # Quiet's feed comes back: 8 purchases in the next day against 12 a week before.
    ledger.purchases(member, shops["Quiet"], [T0 + 15 * DAY + i * HOUR for i in range(8)])
    evaluate_all(clean_database, at=T0 + 16 * DAY)
    assert events(clean_database)[-1] == (
        str(shops["Quiet"]), "firing", "normal", pytest.approx(8 / 12),
    )  # fmt: skip


def test_notified_changes_queue_one_delivery_per_matching_destination(clean_database, shops):
    with clean_database.begin() as connection:
        definitions.create_rule(connection, SYSTEM, **FEED_RULE | {"pending_evaluations": 2})
        wants_all = webhooks.create_endpoint(
            connection, SYSTEM, url="http://hooks.example/all", min_severity=Severity.INFO
        )
        webhooks.create_endpoint(
            connection, SYSTEM, url="http://hooks.example/pager", min_severity=Severity.CRITICAL
        )
        paused = webhooks.create_endpoint(connection, SYSTEM, url="http://hooks.example/paused")
        webhooks.update_endpoint(
            connection, SYSTEM, paused.endpoint.endpoint_id, {"enabled": False}
        )
    for hour in range(3):
        evaluate_all(
            clean_database, at=T0 + 15 * DAY + hour * HOUR, email_min_severity=Severity.WARNING
        )
    with clean_database.connect() as connection:
        rows = connection.execute(select(alert_deliveries)).all()
    # pending is not notified; firing goes to the info endpoint and to e-mail, not to the
    # critical-only endpoint nor the disabled one
    assert sorted((row.channel, row.endpoint_id) for row in rows) == sorted(
        [("email", None), ("webhook", wants_all.endpoint.endpoint_id)]
    )
    payload = rows[0].payload
    assert payload["type"] == "alert.firing" and payload["scopeLabel"] == "Quiet"
    assert payload["rule"]["window"] == "P1D" and payload["value"] == 0.0
    assert {row.status for row in rows} == {"pending"}


def test_no_data_alert_policy_has_its_own_state_and_is_notified(clean_database):
    Ledger(clean_database).merchant("Empty")
    with clean_database.begin() as connection:
        definitions.create_rule(
            connection, SYSTEM,
            **FEED_RULE | {"name": "Burn", "metric": "burn_earn_ratio", "scope": "network",
                           "comparator": Comparator.GT, "threshold": 2.0, "recovery_threshold": None,
                           "baseline_offset": None, "min_baseline": None,
                           "no_data": NoDataPolicy.ALERT},
        )  # fmt: skip
    evaluate_all(clean_database, at=T0)
    with clean_database.connect() as connection:
        event = connection.execute(select(alert_events)).one()
        current = reads.current_alerts(connection)
    assert (event.from_state, event.to_state, event.value, event.notified) == (
        "normal",
        "no_data",
        None,
        True,
    )
    assert [(a.scope_key, a.state) for a in current] == [("network", "no_data")]


def test_disabled_rules_are_not_evaluated_nor_counted_and_a_new_scope_starts_afresh(
    clean_database, shops
):
    with clean_database.begin() as connection:
        rule = definitions.create_rule(connection, SYSTEM, **FEED_RULE | {"pending_evaluations": 1})
    evaluate_all(clean_database, at=T0 + 15 * DAY)
    with clean_database.begin() as connection:
        definitions.update_rule(connection, SYSTEM, rule.rule_id, {"enabled": False})
        assert reads.firing_count(connection) == 0
    evaluations, _ = evaluate_all(clean_database, at=T0 + 16 * DAY)
    assert evaluations == []
    with clean_database.begin() as connection:
        definitions.update_rule(
            connection, SYSTEM, rule.rule_id, {"enabled": True, "threshold": 0.1}
        )
        assert reads.firing_count(connection) == 1  # a threshold change keeps the state
        definitions.update_rule(connection, SYSTEM, rule.rule_id, {"scope": "network"})
        assert connection.scalar(select(func.count()).select_from(alert_instances)) == 0
        definitions.archive_rule(connection, SYSTEM, rule.rule_id)
    assert evaluate_all(clean_database, at=T0 + 17 * DAY) == ([], [])
    assert len(events(clean_database)) == 1  # history stays


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"metric": "liability_growth", "scope": "merchant"}, "scope"),
        ({"metric": "no_such_metric"}, "metric"),
        ({"min_baseline": 5, "baseline_offset": None}, "minBaseline"),
        ({"evaluate_every": timedelta(seconds=30)}, "evaluateEvery"),
        ({"window": timedelta(days=401)}, "window"),
        ({"recovery_threshold": 0.1}, "recoveryThreshold"),
        ({"owner": "  "}, "owner"),
    ],
)
def test_rules_that_cannot_be_evaluated_are_refused(clean_database, change, field):
    from shared.errors import InvalidInput

    with clean_database.begin() as connection, pytest.raises(InvalidInput) as refused:
        definitions.create_rule(connection, SYSTEM, **FEED_RULE | change)
    assert refused.value.extensions["field"] == field


def test_a_broken_rule_is_reported_and_the_others_still_run(clean_database, shops, monkeypatch):
    from shared.alerts import metrics

    with clean_database.begin() as connection:
        definitions.create_rule(connection, SYSTEM, **FEED_RULE)
        definitions.create_rule(connection, SYSTEM, **FEED_RULE | {"name": "Velocity", "metric": "earn_velocity", "scope": "network", "comparator": Comparator.GT, "threshold": 5, "recovery_threshold": None, "baseline_offset": None, "min_baseline": None})  # fmt: skip
    broken = metrics.METRICS["earn_velocity"]

    def fail(*_):
        raise RuntimeError("metric query failed")

    monkeypatch.setitem(metrics.METRICS, "earn_velocity", broken.__class__(**{**{f: getattr(broken, f) for f in broken.__slots__}, "compute": fail}))  # fmt: skip
    evaluations, failures = evaluate_all(clean_database, at=T0 + 15 * DAY)
    assert [e.name for e in evaluations] == ["Feed silent"]
    assert len(failures) == 1 and "metric query failed" in failures[0].error
    with clean_database.connect() as connection:
        velocity = next(r for r in definitions.list_rules(connection) if r.name == "Velocity")
    assert failures[0].rule_id == velocity.rule_id


def test_settlement_imbalance_counts_unreconciled_statements_of_periods_closed_in_the_window(
    clean_database,
):
    from sqlalchemy import insert

    from shared.tables import settlement_periods, statement_lines, statements

    ledger = Ledger(clean_database)
    shop = ledger.merchant("North")
    other = ledger.merchant("South")
    period_id = uuid.uuid4()
    with clean_database.begin() as connection:
        connection.execute(
            insert(settlement_periods).values(
                period_id=period_id, starts_at=T0 - 30 * DAY, ends_at=T0, length="monthly",
                time_zone="UTC", closed_at=T0 + timedelta(minutes=10), transactions=0,
            )
        )  # fmt: skip
        for merchant_id, points in ((shop, 100), (other, 0)):
            statement_id = uuid.uuid4()
            connection.execute(
                insert(statements).values(
                    statement_id=statement_id, period_id=period_id, merchant_id=merchant_id,
                    currency="USD", net_minor=points, issuance_price="0.01", redemption_rate="0.008",
                )
            )  # fmt: skip
            # North states 100 points issued that the ledger never settled: unreconciled.
            connection.execute(
                insert(statement_lines).values(
                    statement_id=statement_id, line="points_issued", points=points, rate="0.01",
                    amount_minor=points,
                )
            )  # fmt: skip
    ticks = [T0, T0 + HOUR, T0 + 2 * DAY]
    with clean_database.connect() as connection:
        network = measure(connection, Measure("settlement_imbalance", "network", DAY), ticks)
        per_merchant = measure(connection, Measure("settlement_imbalance", "merchant", DAY), ticks)
    assert network == {"network": [0, 1, 0]}  # closed at T0 + 10 min; out of the window after a day
    assert per_merchant == {str(shop): [0, 1, 0], str(other): [0, 0, 0]}
