"""Bulk loading: COPY rows into the member-scoped tables, with their indexes and foreign
keys set aside during the load and rebuilt afterwards.

Building an index once over sorted data is several times cheaper than maintaining it row
by row under random UUID keys, and foreign-key triggers would run once per row. The
definitions are read back from the catalogue before they are dropped, so what is rebuilt
is exactly what the migrations created.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import psycopg

from shared.tables import metadata

# The member-scoped tables bulk mode writes, in load order. Rows are tuples in the tables'
# column order (shared/tables.py), identity columns left to the database. Every table
# with a foreign key into these is one of them (its keys are set aside during the load):
# campaign_targets stays empty, since seeded campaigns have no uploaded lists.
BULK_TABLES = (
    "members", "member_balances", "member_identifiers", "audit_log", "ledger_transactions",
    "postings", "lots", "allocations", "holds", "hold_reservations", "campaign_assignments",
    "campaign_targets",
)  # fmt: skip
COLUMNS = {
    name: tuple(column.name for column in metadata.tables[name].c if column.identity is None)
    for name in BULK_TABLES
}


def copy_rows(connection: psycopg.Connection, table: str, rows: Iterable[tuple]) -> None:
    columns = ", ".join(COLUMNS[table])
    with connection.cursor() as cursor, cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


@dataclass(frozen=True, slots=True)
class SetAside:
    """Index and constraint definitions dropped for a load, in the order to rebuild them."""

    primary_and_unique: list[tuple[str, str, str]]  # table, name, definition
    indexes: list[str]  # CREATE INDEX statements
    foreign_keys: list[tuple[str, str, str]]


_CONSTRAINTS_SQL = """
SELECT cls.relname, con.conname, pg_get_constraintdef(con.oid), con.contype
FROM pg_constraint con JOIN pg_class cls ON cls.oid = con.conrelid
WHERE cls.relname = ANY(%s) AND con.contype IN ('p', 'u', 'f')
  AND cls.relnamespace = 'public'::regnamespace
ORDER BY con.contype DESC, cls.relname, con.conname
"""
_FOREIGN_KEYS_INTO_SQL = """
SELECT cls.relname, con.conname, pg_get_constraintdef(con.oid)
FROM pg_constraint con JOIN pg_class cls ON cls.oid = con.conrelid
JOIN pg_class target ON target.oid = con.confrelid
WHERE target.relname = ANY(%s) AND NOT cls.relname = ANY(%s) AND con.contype = 'f'
"""
_INDEXES_SQL = """
SELECT indexdef FROM pg_indexes idx
WHERE idx.schemaname = 'public' AND idx.tablename = ANY(%s)
  AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conname = idx.indexname)
ORDER BY idx.tablename, idx.indexname
"""


def set_aside(connection: psycopg.Connection, tables: tuple[str, ...]) -> SetAside:
    names = list(tables)
    rows = connection.execute(_CONSTRAINTS_SQL, (names,)).fetchall()
    # Foreign keys from other tables into the bulk ones (campaign_targets -> members) go too:
    # a primary key cannot be dropped while another table's foreign key depends on it.
    outside = connection.execute(_FOREIGN_KEYS_INTO_SQL, (names, names)).fetchall()
    indexes = [row[0] for row in connection.execute(_INDEXES_SQL, (names,)).fetchall()]
    kept = SetAside(
        primary_and_unique=[(t, n, d) for t, n, d, kind in rows if kind in ("p", "u")],
        indexes=indexes,
        foreign_keys=[(t, n, d) for t, n, d, kind in rows if kind == "f"]
        + [(t, n, d) for t, n, d in outside],
    )
    for table, name, _ in kept.foreign_keys:
        connection.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for statement in kept.indexes:
        name = statement.split(" INDEX ", 1)[1].split(" ON ", 1)[0]
        connection.execute(f"DROP INDEX {name}")
    for table, name, _ in kept.primary_and_unique:
        connection.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    return kept


def rebuild(connection: psycopg.Connection, kept: SetAside) -> None:
    """Primary keys and unique constraints, then indexes, then foreign keys (validated)."""
    connection.execute("SET maintenance_work_mem = '1GB'")
    connection.execute("SET max_parallel_maintenance_workers = 2")
    for table, name, definition in kept.primary_and_unique:
        connection.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
    for statement in kept.indexes:
        connection.execute(statement)
    for table, name, definition in kept.foreign_keys:
        connection.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
