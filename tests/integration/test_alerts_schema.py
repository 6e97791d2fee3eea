"""The alert tables the migrations create are the ones shared/tables.py declares, and the
CLI installs the defaults and runs the job."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from shared.alerts.defaults import DEFAULT_RULES
from shared.tables import metadata
from tests.integration.alerts_support import Ledger

ROOT = Path(__file__).resolve().parents[2]
ALERT_TABLES = {
    "alert_rules", "alert_instances", "alert_events", "webhook_endpoints", "alert_deliveries",
    "alert_delivery_attempts",
}  # fmt: skip


def _tables_in(diff) -> set[str]:
    found = set()
    for item in diff if isinstance(diff, list) else [diff]:
        for part in item if isinstance(item, tuple) else [item]:
            name = getattr(part, "name", None)
            table = getattr(part, "table", None)
            if isinstance(part, str) and part in ALERT_TABLES:
                found.add(part)
            if name in ALERT_TABLES:
                found.add(name)
            if table is not None and getattr(table, "name", None) in ALERT_TABLES:
                found.add(table.name)
    return found


def test_migration_0008_creates_exactly_the_declared_alert_tables(sync_engine):
    with sync_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
        existing = set(context.bind.dialect.get_table_names(connection))
    assert existing >= ALERT_TABLES
    assert [d for d in differences if _tables_in(d)] == []


def test_the_cli_installs_the_defaults_and_runs_the_alert_job(database_url, clean_database):
    env = dict(os.environ, DATABASE_URL=database_url.render_as_string(hide_password=False))

    def coalition(*arguments):
        return subprocess.run(
            [sys.executable, "-m", "shared.cli", *arguments],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    Ledger(clean_database).merchant("North")  # the per-merchant rule has a scope key
    installed = coalition("alerts", "install-defaults")
    assert installed.returncode == 0, installed.stderr
    assert f"{len(DEFAULT_RULES)} default alert rules installed" in installed.stderr
    first, again = coalition("jobs", "alerts"), coalition("jobs", "alerts")
    assert first.returncode == 0, first.stderr
    assert f"alert rules evaluated: {len(DEFAULT_RULES)} of {len(DEFAULT_RULES)}" in first.stderr
    assert f"alert rules evaluated: 0 of {len(DEFAULT_RULES)}" in again.stderr  # same tick
