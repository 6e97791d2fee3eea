"""The stored churn model on a seeded network: the fit recovers the seed's truth, its
summary agrees with P(alive) computed from the raw ledger, it is fitted once per day of
data, and the at-risk list holds what it says."""

from __future__ import annotations

from dataclasses import asdict, astuple
from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy import create_engine, text

from seed.config import BgNbdTruth, SeedConfig
from shared.analytics import churn_model
from shared.analytics.bgnbd import probability_alive
from shared.analytics.refresh import refresh
from shared.settings import get_settings
from tests.databases import beside, migrated_database
from tests.integration.test_seed_bulk import seed

# No campaigns or incidents: they add visits or end members outside the model.
NETWORK = SeedConfig(
    members=4000, months=14, merchants=8, seed=21, campaigns=(), incidents=False,
    end=datetime(2026, 6, 1, tzinfo=UTC), shard_members=2000,
)  # fmt: skip


@pytest.fixture(scope="module")
def fitted(database_url):
    with migrated_database(beside(database_url, "churn")) as url:
        seed(url, NETWORK)
        engine = create_engine(url)
        refresh(engine, get_settings().program, full=True)
        with engine.begin() as connection:
            fit = churn_model.fit_and_store(connection, as_of=NETWORK.end.date())
        yield engine, fit
        engine.dispose()


def test_the_fit_recovers_the_seeds_truth(fitted):
    """4,000 members at day resolution: each parameter within 20% (the 20,000-member unit
    test, tests/unit/test_bgnbd_simulation.py, holds them within 10%)."""
    _, fit = fitted
    assert fit.converged
    for name, truth in asdict(BgNbdTruth()).items():
        assert getattr(fit.parameters, name) == pytest.approx(truth, rel=0.20), name


def test_the_stored_summary_matches_the_raw_ledger(fitted):
    """P(alive) per member from the ledger's own earn transactions (not the rollups), with
    the stored parameters: the same expected active base and distribution."""
    engine, fit = fitted
    zone = get_settings().program.time_zone
    with engine.connect() as connection:
        stored = churn_model.latest_fit(connection)
        rows = connection.execute(
            text(
                "SELECT min((occurred_at AT TIME ZONE :zone)::date),"
                " max((occurred_at AT TIME ZONE :zone)::date), count(*)"
                " FROM ledger_transactions WHERE kind = 'earn'"
                " AND (occurred_at AT TIME ZONE :zone)::date < :as_of GROUP BY member_id"
            ),
            {"zone": zone, "as_of": fit.as_of},
        ).all()
    assert stored == fit
    first, last, count = (np.array(column) for column in zip(*rows, strict=True))
    histories = churn_model.histories(
        first.astype("datetime64[D]"), last.astype("datetime64[D]"), count, fit.as_of
    )
    p_alive = probability_alive(
        fit.parameters, histories.frequency, histories.recency, histories.age
    )
    assert fit.members == len(rows) == sum(fit.p_alive_counts)
    assert fit.expected_active == pytest.approx(float(p_alive.sum()), rel=1e-9)
    assert fit.p_alive_counts == churn_model.p_alive_distribution(p_alive)
    assert 0 < fit.expected_active < fit.members


def test_one_fit_per_day_of_data_unless_forced(fitted):
    engine, fit = fitted
    with engine.begin() as connection:
        assert churn_model.fit_and_store(connection, as_of=fit.as_of) is None
        again = churn_model.fit_and_store(connection, as_of=fit.as_of, force=True)
    assert again.as_of == fit.as_of and astuple(again.parameters) == pytest.approx(
        astuple(fit.parameters)
    )


def test_the_at_risk_list_is_high_balance_and_unlikely_alive(fitted):
    engine, fit = fitted
    with engine.connect() as connection:
        listed = churn_model.at_risk(connection, fit, min_balance=200, max_p_alive=0.5, limit=25)
        balances = dict(
            connection.execute(text("SELECT member_id, balance FROM member_balances")).all()
        )
    assert 0 < len(listed) <= 25
    assert [m.balance for m in listed] == sorted((m.balance for m in listed), reverse=True)
    assert all(m.balance >= 200 and m.p_alive <= 0.5 for m in listed)
    assert all(balances[m.member_id] == m.balance for m in listed)
    lines = churn_model.at_risk_csv(listed).splitlines()
    assert lines[0] == (
        "member_id,tier,balance_points,last_purchase_day,purchases,net_spend_minor,p_alive"
    )
    first = listed[0]
    assert lines[1].startswith(f"{first.member_id},{first.tier},{first.balance},")
    assert lines[1].endswith(f",{first.p_alive:.4f}")
