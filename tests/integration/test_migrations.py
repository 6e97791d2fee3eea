"""The migrations create exactly the schema shared/tables.py declares: every table, column
type, index and constraint the code relies on, and nothing else."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from shared.tables import metadata


def test_the_migrated_database_matches_the_declared_tables(sync_engine):
    with sync_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_the_comparison_sees_a_missing_index(sync_engine):
    """The check above would pass on a comparison that ignored indexes; this one would not."""
    with sync_engine.connect() as connection:
        connection.exec_driver_sql("DROP INDEX ix_lots_qualifying")
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
        connection.rollback()
    assert [(kind, index.name) for kind, index in differences] == [
        ("add_index", "ix_lots_qualifying")
    ]
