"""Bulk seeding: deterministic, consistent with the ledger's invariants and with its own
ground truth."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from seed import bulk, truth
from seed.config import SeedConfig
from seed.loading import BULK_TABLES, COLUMNS
from shared.database.urls import libpq_conninfo
from shared.identifiers import IdentifierKind, normalise
from shared.ledger.integrity import run_checks
from tests.databases import beside, migrated_database

ROOT = Path(__file__).resolve().parents[2]
END = datetime(2026, 6, 1, tzinfo=UTC)
# Reversals (0.5%) and refunds (2%) are rare: the network raises their rates, and is
# large enough that every part of the ledger appears (voided holds, refunds after the
# points were spent...), whatever the draws.
SMALL = SeedConfig(
    members=600,
    months=14,
    merchants=8,
    seed=3,
    end=END,
    shard_members=240,
    reversal_rate=0.03,
    refund_rate=0.06,
)
REFERENCE_TABLES = {
    "merchants": ("merchant_id", "name", "industry", "earn_rate", "pending_days", "created_at"),
    "stores": ("store_id", "merchant_id", "code", "name", "city"),
    "campaigns": ("campaign_id", "name", "owner_merchant_id", "starts_at", "ends_at", "salt"),
}


def seed(database_url, config: SeedConfig, tmp_path: Path | None = None, settings=None):
    from shared.settings import get_settings

    settings = settings or get_settings()
    report = bulk.run(
        config, settings.program, settings.card_prefix, libpq_conninfo(database_url),
        show_progress=False,
    )  # fmt: skip
    path = truth.write(report, (tmp_path or Path("/tmp")) / "truth.json")
    return report, json.loads(path.read_text())


def checksums(sync_engine) -> dict[str, str]:
    """One md5 per table over its rows in a canonical order (the audit log's sequence
    numbers depend on which process wrote first, so they are left out)."""
    tables = {name: COLUMNS[name] for name in BULK_TABLES} | REFERENCE_TABLES
    sums = {}
    with sync_engine.connect() as connection:
        for table, columns in tables.items():
            sums[table] = connection.execute(
                text(
                    f"SELECT count(*) || ':' || coalesce(md5(string_agg(r::text, '|' ORDER BY"
                    f" r::text)), '') FROM (SELECT {', '.join(columns)} FROM {table}) r"
                )
            ).scalar_one()
    return sums


def truncate(sync_engine) -> None:
    from tests.conftest import _truncate_all

    _truncate_all(sync_engine)


@pytest.mark.slow
def test_same_seed_gives_identical_tables_whatever_the_number_of_workers(
    database_url, clean_database
):
    seed(database_url, replace(SMALL, workers=1))
    first = checksums(clean_database)
    truncate(clean_database)
    seed(database_url, replace(SMALL, workers=2))
    second = checksums(clean_database)
    assert first == second
    assert int(first["ledger_transactions"].split(":")[0]) > 1000
    truncate(clean_database)
    seed(database_url, replace(SMALL, seed=4, workers=1))
    assert checksums(clean_database)["ledger_transactions"] != first["ledger_transactions"]


@pytest.fixture(scope="module")
def seeded(database_url, tmp_path_factory):
    """One small seeded network shared by the read-only checks below, in a database of its
    own (other modules empty the worker's database after each of their tests)."""
    from sqlalchemy import create_engine

    with migrated_database(beside(database_url, "seeded")) as url:
        engine = create_engine(url)
        report, document = seed(url, SMALL, tmp_path_factory.mktemp("truth"))
        yield engine, report, document
        engine.dispose()


def test_every_ledger_invariant_holds_after_a_seed(seeded):
    engine, _, _ = seeded
    with engine.connect() as connection:
        results = run_checks(connection)
    assert [r.check.name for r in results if not r.ok] == []
    assert len(results) >= 12


def test_the_seed_exercises_every_part_of_the_ledger(seeded):
    engine, _, document = seeded
    with engine.connect() as connection:
        kinds = dict(
            connection.execute(
                text("SELECT kind, count(*) FROM ledger_transactions GROUP BY kind")
            ).all()
        )
        hold_statuses = set(connection.execute(text("SELECT DISTINCT status FROM holds")).scalars())
        debt_repaid = connection.execute(
            text("SELECT count(*) FROM allocations WHERE kind = 'debt_repayment'")
        ).scalar_one()
        tiers = set(connection.execute(text("SELECT DISTINCT tier FROM members")).scalars())
        flows = connection.execute(
            text(
                "SELECT count(DISTINCT (issuing_merchant_id, redeeming_merchant_id)) FROM"
                " allocations WHERE kind = 'redemption'"
                " AND issuing_merchant_id <> redeeming_merchant_id"
            )
        ).scalar_one()
    assert {"earn", "behaviour", "redeem", "capture", "refund", "expiry", "reversal"} <= set(kinds)
    assert {"captured", "voided"} <= hold_statuses
    assert debt_repaid > 0, "some refunds came after the points were spent"
    assert len(tiers) >= 2
    assert flows >= 5, "points earned at one partner are spent at others"
    assert document["counts"]["referrals"] > 0


def test_ground_truth_counts_match_the_tables(seeded):
    engine, _, document = seeded
    counts = document["counts"]
    with engine.connect() as connection:
        members = connection.execute(text("SELECT count(*) FROM members")).scalar_one()
        by_kind = dict(
            connection.execute(
                text("SELECT kind, count(*) FROM ledger_transactions GROUP BY kind")
            ).all()
        )
        for table, rows in counts["rows"].items():
            assert connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() == rows
        issued = connection.execute(
            text("SELECT coalesce(sum(lifetime_earned), 0) FROM member_balances")
        ).scalar_one()
    assert members == counts["members"] == SMALL.members
    assert by_kind == counts["transactions"]
    assert issued == counts["pointsIssued"]
    assert document["config"]["seed"] == SMALL.seed
    assert document["bgNbd"]["r"] == SMALL.truth.r


def test_campaign_arms_follow_the_configured_holdout(seeded):
    engine, _, document = seeded
    with engine.connect() as connection:
        arms = connection.execute(
            text(
                "SELECT c.salt, a.arm, count(*) FROM campaign_assignments a"
                " JOIN campaigns c USING (campaign_id) GROUP BY 1, 2"
            )
        ).all()
        rewarded_holdouts = connection.execute(
            text(
                "SELECT count(*) FROM lots l JOIN campaign_assignments a"
                " ON a.member_id = l.member_id AND a.campaign_id = l.campaign_id"
                " WHERE a.arm = 'holdout'"
            )
        ).scalar_one()
        outside_window = connection.execute(
            text(
                "SELECT count(*) FROM lots l JOIN campaigns c USING (campaign_id)"
                " WHERE l.earned_at < c.starts_at OR l.earned_at >= c.ends_at"
            )
        ).scalar_one()
        campaign_lots = connection.execute(
            text("SELECT count(*) FROM lots WHERE campaign_id IS NOT NULL")
        ).scalar_one()
    observed = {(salt, arm): count for salt, arm, count in arms}
    for campaign in document["campaigns"]:
        treatment = observed.get((campaign["salt"], "treatment"), 0)
        holdout = observed.get((campaign["salt"], "holdout"), 0)
        assert {"treatment": treatment, "holdout": holdout} == campaign["arms"]
        total = treatment + holdout
        expected = campaign["holdoutBps"] / 10_000
        tolerance = 4 * math.sqrt(expected * (1 - expected) / total)
        assert abs(holdout / total - expected) <= tolerance, campaign["key"]
    assert campaign_lots > 0
    assert rewarded_holdouts == 0
    assert outside_window == 0


def test_incidents_are_in_the_data(seeded):
    engine, _, document = seeded
    incidents = {item["kind"]: item for item in document["incidents"]}
    feed = incidents["feed_stop"]
    with engine.connect() as connection:
        during = connection.execute(
            text(
                "SELECT count(*) FROM ledger_transactions WHERE kind = 'earn'"
                " AND merchant_id = :merchant AND occurred_at >= :start AND occurred_at < :end"
                " AND occurred_at > (SELECT enrolled_at FROM members m"
                "   WHERE m.member_id = ledger_transactions.member_id) + interval '1 minute'"
            ),
            {"merchant": feed["merchantId"], "start": feed["startsAt"], "end": feed["endsAt"]},
        ).scalar_one()
    assert during == 0
    assert incidents["churn_spike"]["membersChurned"] > 0


def test_identifiers_are_stored_normalised_and_unique(seeded):
    engine, _, _ = seeded
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT kind, value FROM member_identifiers")).all()
    assert len(rows) == len(set(rows))
    for kind, value in rows[:500]:
        assert normalise(IdentifierKind(kind), value, "US") == value


def test_the_member_truth_file_lists_every_member(seeded):
    import csv
    import gzip

    engine, _, document = seeded
    with gzip.open(document["memberFile"], "rt") as handle:
        rows = list(csv.DictReader(handle))
    with engine.connect() as connection:
        member_ids = set(
            str(m) for m in connection.execute(text("SELECT member_id FROM members")).scalars()
        )
    assert {row["member_id"] for row in rows} == member_ids
    rates = [float(row["purchase_rate_per_week"]) for row in rows]
    # Gamma(r, alpha) has mean r / alpha; 300 draws land within a few standard errors.
    mean, r, alpha = sum(rates) / len(rates), SMALL.truth.r, SMALL.truth.alpha
    assert abs(mean - r / alpha) < 4 * math.sqrt(r) / alpha / math.sqrt(len(rates))


def test_seed_command_refuses_a_seeded_database_then_resets_it(database_url, clean_database):
    env = dict(os.environ, DATABASE_URL=database_url.render_as_string(hide_password=False))
    arguments = [sys.executable, "-m", "seed", "--profile", "test", "--members", "150",
                 "--end", "2026-06-01", "--merchants", "6"]  # fmt: skip

    def run(*extra):
        return subprocess.run(
            [*arguments, *extra], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )

    first = run("--truth", "/tmp/coalition-test-truth.json")
    assert first.returncode == 0, first.stderr
    assert "ground truth: /tmp/coalition-test-truth.json" in first.stderr
    again = run()
    assert again.returncode == 1 and "--reset" in again.stderr
    reset = run("--reset", "--seed", "9", "--truth", "/tmp/coalition-test-truth.json")
    assert reset.returncode == 0, reset.stderr
    with psycopg.connect(libpq_conninfo(database_url)) as connection:
        members = connection.execute("SELECT count(*) FROM members").fetchone()[0]
    assert members == 150
    assert json.loads(Path("/tmp/coalition-test-truth.json").read_text())["config"]["seed"] == 9
