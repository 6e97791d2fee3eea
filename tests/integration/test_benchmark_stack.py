"""The stack benchmark measures what it says: each endpoint answers the amount it was sent,
and the transaction endpoint's statements run inside one transaction."""

from __future__ import annotations

import pytest
from litestar.testing import TestClient

from seed import benchmark_stack


@pytest.fixture
def stack_client(database_url, monkeypatch):
    libpq_url = database_url.set(drivername="postgresql").render_as_string(hide_password=False)
    monkeypatch.setenv("COALITION_STACK_BENCH_URL", libpq_url)
    monkeypatch.setenv("COALITION_DB_POOL_SIZE", "2")
    with TestClient(app=benchmark_stack.app) as client:
        yield client


@pytest.mark.parametrize("endpoint", benchmark_stack.ENDPOINTS)
def test_each_endpoint_answers_the_amount_it_was_sent(stack_client, endpoint):
    response = stack_client.post(f"/{endpoint}", json={"amountMinor": 1234})
    assert response.status_code == 201
    assert response.json() == {"amountMinor": 1234}


def test_the_transaction_shape_runs_its_statements_in_one_transaction(stack_client, monkeypatch):
    transactions = []
    original = benchmark_stack.driver

    async def spying_driver(connection):
        database = await original(connection)
        transactions.append(await database.fetchval("SELECT txid_current()"))
        return database

    monkeypatch.setattr(benchmark_stack, "driver", spying_driver)
    response = stack_client.post("/transaction", json={"amountMinor": 7})
    assert response.status_code == 201
    assert len(transactions) == 3 and len(set(transactions)) == 1
