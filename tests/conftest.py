"""Test database: a real PostgreSQL (DATABASE_URL, or the embedded one), one database per
xdist worker, migrated once per session with Alembic, emptied after every test (TRUNCATE is
~10 ms here, a template clone ~80 ms), so tests may commit and run concurrent transactions."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

from shared.database.urls import server_url, with_driver
from shared.settings import Settings, get_settings
from tests.databases import migrated_database

# Fixtures shared by the ledger test modules (a plugin: only the root conftest may load one).
pytest_plugins = ["tests.integration.ledger_support"]


def _worker_database_name() -> str:
    # The pid keeps concurrent runs (two developers' shells, xdist workers) apart.
    return f"coalition_test_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{os.getpid()}"


@pytest.fixture(scope="session")
def test_settings() -> Settings:
    return get_settings()


@pytest.fixture(scope="session")
def database_url(test_settings: Settings) -> Iterator[URL]:
    """A freshly migrated database for this worker."""
    server = with_driver(server_url(test_settings), "psycopg")
    with migrated_database(server.set(database=_worker_database_name())) as url:
        yield url


@pytest.fixture(scope="session")
def sync_engine(database_url: URL):
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


def _truncate_all(sync_engine) -> None:
    from shared.tables import metadata

    names = ", ".join(f'"{table.name}"' for table in metadata.sorted_tables)
    with sync_engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture
def clean_database(sync_engine):
    """Empty tables for the test, emptied again afterwards."""
    yield sync_engine
    _truncate_all(sync_engine)
