"""A test clock for the database: `now()` answers what the test says.

PostgreSQL resolves an unqualified `now()` through the search path, and a schema listed
before pg_catalog wins, so connections opened by `clock_engine` call faketime.now(), which
reads a one-row table. The services and jobs then run at any moment a test chooses, with
their own SQL unchanged. (Column defaults were bound to pg_catalog.now() by the
migrations, so audit and `created_at` stamps keep the real time.)
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from datetime import datetime

import psycopg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.database.bootstrap import async_url
from shared.database.urls import libpq_conninfo

_INSTALL = """
CREATE SCHEMA IF NOT EXISTS faketime;
CREATE TABLE IF NOT EXISTS faketime.clock (now timestamptz NOT NULL);
DELETE FROM faketime.clock;
INSERT INTO faketime.clock VALUES (pg_catalog.now());
CREATE OR REPLACE FUNCTION faketime.now() RETURNS timestamptz
    LANGUAGE sql STABLE AS 'SELECT now FROM faketime.clock';
"""


@asynccontextmanager
async def clock_engine(database_url):
    """An async engine whose `now()` is the test clock; the clock is removed afterwards."""
    with psycopg.connect(libpq_conninfo(database_url), autocommit=True) as connection:
        connection.execute(_INSTALL)
    engine = create_async_engine(
        async_url(database_url),
        connect_args={"server_settings": {"search_path": "faketime, pg_catalog, public"}},
    )
    try:
        yield engine
    finally:
        await engine.dispose()
        with psycopg.connect(libpq_conninfo(database_url), autocommit=True) as connection:
            connection.execute("DROP SCHEMA faketime CASCADE")


async def set_clock(engine: AsyncEngine, moment: datetime) -> None:
    async with engine.begin() as connection:
        await connection.execute(text("UPDATE faketime.clock SET now = :now"), {"now": moment})
