"""The asyncpg connection under a SQLAlchemy AsyncConnection, for the hot paths.

Statements sent through it run in the same transaction as everything else on that
connection; asyncpg prepares and caches them, and skipping SQLAlchemy's statement
construction saves most of the per-statement Python time (design principle 8).
"""

from __future__ import annotations

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection


async def driver(connection: AsyncConnection) -> asyncpg.Connection:
    sync = connection.sync_connection
    if sync is not None and not sync.invalidated and not sync.closed:
        # Checked out already: a plain attribute read. `get_raw_connection` would hop through
        # a greenlet for it, about 15 µs of CPU per statement on the hot path.
        raw = sync.connection
    else:
        raw = await connection.get_raw_connection()
    database = raw.driver_connection
    if connection.in_transaction() and not database.is_in_transaction():
        # SQLAlchemy's asyncpg adapter sends BEGIN lazily, with its own first statement: a
        # statement sent straight to asyncpg before that would run and commit on its own
        # (an idempotency claim surviving a rollback, a FOR UPDATE lock released at once).
        await raw.dbapi_connection._start_transaction()
    return database
