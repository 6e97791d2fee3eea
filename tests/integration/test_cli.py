from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import select

from shared.api_keys import KEY_PATTERN
from shared.database.migrate import alembic_config
from shared.tables import api_keys

ROOT = Path(__file__).resolve().parents[2]


def _coalition(database_url, *arguments: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, DATABASE_URL=database_url.render_as_string(hide_password=False))
    return subprocess.run(
        [sys.executable, "-m", "shared.cli", *arguments],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_create_admin_prints_only_the_secret_and_stores_only_its_hash(database_url, clean_database):
    result = _coalition(database_url, "keys", "create-admin", "--label", "ops")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and KEY_PATTERN.match(lines[0])
    with clean_database.connect() as connection:
        row = connection.execute(select(api_keys).where(api_keys.c.label == "ops")).one()
    assert row.role == "hq_admin" and row.merchant_id is None
    assert lines[0] not in str(tuple(row)) and row.prefix in lines[0]


def test_create_admin_refuses_merchant_role(database_url, clean_database):
    result = _coalition(database_url, "keys", "create-admin", "--role", "merchant")
    assert result.returncode == 2
    assert result.stdout == ""


def test_db_upgrade_reports_head(database_url):
    result = _coalition(database_url, "db", "current")
    assert result.returncode == 0
    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    assert result.stdout.strip() == head


def test_audit_passes_on_a_consistent_ledger_and_fails_readably_on_a_broken_one(
    database_url, clean_database
):
    from sqlalchemy import text

    member_id = "00000000-0000-0000-0000-0000000000aa"
    with clean_database.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO merchants (merchant_id, name, industry, currency, earn_rate,"
                " issuance_price, redemption_rate) VALUES"
                " ('00000000-0000-0000-0000-0000000000bb', 'M', 'grocery', 'USD', 1, 0.01, 0.008)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO members (member_id, enrolled_at, acquiring_merchant_id)"
                " VALUES (:id, now(), '00000000-0000-0000-0000-0000000000bb')"
            ),
            {"id": member_id},
        )
        connection.execute(
            text("INSERT INTO member_balances (member_id) VALUES (:id)"), {"id": member_id}
        )
    healthy = _coalition(database_url, "audit")
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    with clean_database.begin() as connection:
        connection.execute(text("UPDATE member_balances SET balance = 7"))
    broken = _coalition(database_url, "audit")
    assert broken.returncode == 1
    assert "balance = postings" in broken.stderr and "'balance': 7" in broken.stderr


def test_jobs_loop_runs_one_round(database_url, clean_database):
    result = _coalition(database_url, "jobs", "loop", "--rounds", "1")
    assert result.returncode == 0, result.stderr
    assert "lots expired: 0" in result.stderr and "members requalified: 0" in result.stderr
    assert "rollups rebuilt: 1 batches" in result.stderr  # the first round builds them
