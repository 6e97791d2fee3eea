"""Alembic, driven from code: `coalition db upgrade`, `coalition up` and the test fixtures."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
# Two processes starting at once (a second `coalition up`, parallel test workers) must not
# both run DDL: a transaction-level advisory lock serialises them; the second sees "at head".
_MIGRATION_LOCK_ID = 0x0C0A11710


def alembic_config(url: URL | str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Passed as an attribute, not an ini option: URLs with %-escapes break configparser.
    config.attributes["url"] = url
    return config


def upgrade(url: URL | str, revision: str = "head") -> None:
    _migrate(url, command.upgrade, revision)


def downgrade(url: URL | str, revision: str) -> None:
    """`coalition seed --reset` goes down to "base": every table dropped, data and all."""
    _migrate(url, command.downgrade, revision)


def _migrate(url: URL | str, step, revision: str) -> None:
    engine = create_engine(url, poolclass=None)
    try:
        with engine.begin() as connection:
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID}
            )
            config = alembic_config(url)
            config.attributes["connection"] = connection
            step(config, revision)
    finally:
        engine.dispose()


def current_revision(url: URL | str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
