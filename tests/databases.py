"""Test databases: created and migrated with Alembic, dropped afterwards. The worker's own
(tests/conftest.py) and the seeded ones some modules build beside it, since other modules
empty the worker's tables after every test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL


def _on_server(url: URL, statement: str) -> None:
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(statement))
    finally:
        admin.dispose()


def _drop(url: URL) -> None:
    # FORCE: a test that failed may have left a connection open.
    _on_server(url, f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')


@contextmanager
def migrated_database(url: URL) -> Iterator[URL]:
    """A fresh database at `url` (one left by an interrupted run is dropped first)."""
    from shared.database.migrate import upgrade

    _drop(url)
    _on_server(url, f'CREATE DATABASE "{url.database}"')
    try:
        upgrade(url)
        yield url
    finally:
        _drop(url)


def beside(worker_url: URL, suffix: str) -> URL:
    """The address of a database of a module's own, named after the worker's."""
    return worker_url.set(database=f"{worker_url.database}_{suffix}")
