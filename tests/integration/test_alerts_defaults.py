"""The default rule set on seeded networks: backtested over the seeded history (after its
first four months) it fires on each injected incident, when it happens, and on nothing
else; on the same network without incidents it stays quiet. (docs/alerts.md, "Default
rules", has the tuning on other seeds and sizes.)"""

from __future__ import annotations

import asyncio
import json
import uuid
from contextlib import ExitStack
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, select

from seed import bulk, truth
from seed.config import PROFILES
from shared.access import SYSTEM
from shared.alerts import reads
from shared.alerts.backtest import MIN_STEP, backtest_rule, backtest_ticks
from shared.alerts.defaults import DEFAULT_RULES, definition, install_defaults
from shared.alerts.definitions import Rule
from shared.alerts.evaluation import evaluate_all
from shared.database.urls import libpq_conninfo
from shared.tables import alert_rules, settlement_periods
from tests.databases import beside, migrated_database
from tests.integration.alerts_support import HOUR, T0, Ledger

START = datetime(2025, 8, 1, tzinfo=UTC)  # four months into the seeded history
END = datetime(2026, 6, 1, tzinfo=UTC)
# The demo profile at twice its members: the size the churn rule is tuned for.
NETWORK = replace(PROFILES["demo"], members=6000, seed=1, end=END)
ALL_QUIET = {rule.name: [] for rule in DEFAULT_RULES}


def _seed(url, name: str, config, tmp_path, settings) -> dict:
    report = bulk.run(
        config, settings.program, settings.card_prefix, libpq_conninfo(url), show_progress=False
    )
    return json.loads(truth.write(report, tmp_path / f"{name}.json").read_text())


def _close_settlement_periods(url, program) -> None:
    """Real statements, so that the settlement rule is judged on reconciled periods."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from shared.database.bootstrap import async_url
    from shared.settlement.closing import close_due_periods

    async def close():
        engine = create_async_engine(async_url(url))
        try:
            return await close_due_periods(engine, program)
        finally:
            await engine.dispose()

    assert asyncio.run(close())


@pytest.fixture(scope="module")
def networks(database_url, tmp_path_factory, test_settings):
    """The seeded network with its incidents and the same network without them, each in a
    database of its own."""
    tmp_path = tmp_path_factory.mktemp("alerts-truth")
    seeded = {}
    with ExitStack() as databases:
        for name, incidents in (("incidents", True), ("quiet", False)):
            url = databases.enter_context(migrated_database(beside(database_url, f"alerts_{name}")))
            document = _seed(
                url, name, replace(NETWORK, incidents=incidents), tmp_path, test_settings
            )
            _close_settlement_periods(url, test_settings.program)
            engine = create_engine(url)
            databases.callback(engine.dispose)
            seeded[name] = (engine, document)
        yield seeded


def backtest_defaults(engine) -> dict[str, list]:
    """Every default rule replayed over the seeded history, as the job would have run it."""
    episodes = {}
    with engine.connect() as connection:
        for default in DEFAULT_RULES:
            rule = Rule(rule_id=uuid.uuid4(), **definition(default))
            step = max(rule.evaluate_every, MIN_STEP)
            ticks = backtest_ticks(END, (END - START).days, step)
            episodes[default.name] = backtest_rule(connection, rule, ticks, ["basic"]).episodes
    return episodes


def _incident(document, kind):
    found = next(item for item in document["incidents"] if item["kind"] == kind)
    return (
        datetime.fromisoformat(found["startsAt"]),
        datetime.fromisoformat(found["endsAt"]),
        found,
    )


@pytest.mark.slow
def test_the_defaults_fire_on_each_injected_incident_and_on_nothing_else(networks):
    engine, document = networks["incidents"]
    episodes = backtest_defaults(engine)
    fired = {name: found for name, found in episodes.items() if found}
    assert set(fired) == {
        "Partner feed silent", "Redemption surge", "Points liability falling",
        "Regular members lapsing",
    }  # fmt: skip

    # The silent partner, and only it, within three and a half days of its feed stopping.
    starts, ends, feed = _incident(document, "feed_stop")
    [silent] = fired["Partner feed silent"]
    assert silent.scope_key == feed["merchantId"] and silent.scope_label == feed["merchantName"]
    assert starts + timedelta(days=2) < silent.fired_at <= starts + timedelta(days=3, hours=12)
    assert silent.resolved_at is not None and silent.resolved_at > ends

    # Redemptions: from the surge's third day; resolved within a week after its end.
    starts, ends, _ = _incident(document, "redemption_surge")
    [surge] = fired["Redemption surge"]
    assert starts < surge.fired_at <= starts + timedelta(days=3)
    assert ends < surge.resolved_at <= ends + timedelta(days=7)
    [draining] = fired["Points liability falling"]
    assert starts < draining.fired_at <= ends + timedelta(days=1)

    # Members leaving: regulars' 28-day lapse rate passes 31.5% four weeks after the spike.
    spike, _, churn = _incident(document, "churn_spike")
    assert churn["membersChurned"] > 400
    [lapsing] = fired["Regular members lapsing"]
    assert spike + timedelta(days=21) < lapsing.fired_at <= spike + timedelta(days=35)


@pytest.mark.slow
def test_the_defaults_stay_quiet_on_the_same_network_without_incidents(networks):
    engine, document = networks["quiet"]
    assert document["incidents"] == []
    assert backtest_defaults(engine) == ALL_QUIET
    with engine.connect() as connection:  # the settlement rule had statements to check
        assert connection.scalar(select(settlement_periods.c.period_id).limit(1)) is not None


@pytest.mark.slow
def test_installed_defaults_raise_the_feed_alert_through_the_job(networks):
    engine, document = networks["incidents"]
    with engine.begin() as connection:
        assert len(install_defaults(connection, SYSTEM)) == len(DEFAULT_RULES)
        assert install_defaults(connection, SYSTEM) == []  # by name: nothing twice
    starts, _, feed = _incident(document, "feed_stop")
    for hour in range(4):  # pending for three hourly evaluations, then firing
        evaluate_all(engine, at=starts + timedelta(days=3, hours=hour), tiers=["basic"])
    with engine.connect() as connection:
        firing = [
            (alert.rule_name, alert.scope_label)
            for alert in reads.current_alerts(connection)
            if alert.state == "firing"
        ]
        names = set(connection.execute(select(alert_rules.c.name)).scalars())
    assert names == {rule.name for rule in DEFAULT_RULES}
    assert ("Partner feed silent", feed["merchantName"]) in firing


def test_the_default_earn_velocity_rule_fires_on_a_burst(clean_database):
    """The fraud rule is quiet on the seeded networks; here it is shown to work."""
    ledger = Ledger(clean_database)
    shop = ledger.merchant("North")
    regular, fraud = ledger.member(shop), ledger.member(shop)
    ledger.purchases(regular, shop, [T0 - 30 * HOUR + i * 5 * HOUR for i in range(6)])
    ledger.purchases(fraud, shop, [T0 + i * timedelta(minutes=6) for i in range(7)])
    velocity = next(rule for rule in DEFAULT_RULES if rule.name == "Earn velocity")
    rule = Rule(rule_id=uuid.uuid4(), **definition(velocity))
    with clean_database.connect() as connection:
        episodes = backtest_rule(connection, rule, backtest_ticks(T0 + 3 * HOUR, 2, HOUR)).episodes
    assert [(e.fired_at, e.resolved_at, e.worst_value) for e in episodes] == [
        (T0 + HOUR, T0 + 2 * HOUR, 7.0)
    ]
