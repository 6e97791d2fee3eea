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
