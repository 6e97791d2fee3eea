"""When the database cannot be reached, clients get a retryable 503 problem, not a 500."""

from __future__ import annotations

import asyncpg
from sqlalchemy.ext.asyncio import create_async_engine

from api.app import create_app
from api.problems import _transient
from tests.integration.conftest import client_for

WELL_FORMED_KEY = "coal_abcdefghijkl_" + "A" * 43


async def test_unreachable_database_is_a_retryable_503(test_settings):
    engine = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:9/nowhere")
    try:
        async with client_for(create_app(test_settings, engine=engine)) as client:
            response = await client.get(
                "/v1/merchants", headers={"Authorization": f"Bearer {WELL_FORMED_KEY}"}
            )
            ready = await client.get("/ready")
    finally:
        await engine.dispose()
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["retry-after"] == "1"
    assert response.json()["type"] == "/problems/unavailable"
    assert ready.status_code == 503


def test_deadlocks_and_serialization_failures_count_as_transient():
    for cause in (asyncpg.DeadlockDetectedError("deadlock"), asyncpg.SerializationError("x")):
        wrapped = RuntimeError("wrapped")
        wrapped.__cause__ = cause
        assert _transient(wrapped)
    assert not _transient(ValueError("a bug"))
