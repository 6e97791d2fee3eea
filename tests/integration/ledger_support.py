"""Helpers shared by the tests/integration/test_ledger_*.py modules: till calls, reads,
row counts, the ledger's invariants (shared.ledger.integrity) checked after a test, and the
fixtures every ledger module uses (registered as a plugin by tests/conftest.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from shared.ledger.integrity import run_checks

PROBLEM = "application/problem+json"
LEDGER_TABLES = (
    "ledger_transactions",
    "postings",
    "lots",
    "allocations",
    "holds",
    "hold_reservations",
    "idempotency_records",
)


def now_iso(delta: timedelta = timedelta(0)) -> str:
    return (datetime.now(UTC) + delta).isoformat()


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


def by_id(member_id: str) -> dict[str, str]:
    return {"kind": "member_id", "value": member_id}


def keyed(headers: dict[str, str], key: str | None = None) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key or str(uuid.uuid4())}


async def enrol(client: httpx.AsyncClient, merchant, **body: Any) -> str:
    response = await client.post("/v1/members", json=body, headers=merchant.headers)
    assert response.status_code == 201, response.text
    return response.json()["memberId"]


async def earn(
    client: httpx.AsyncClient,
    merchant,
    member_id: str,
    amount_minor: int,
    *,
    key: str | None = None,
    occurred_at: str | None = None,
    currency: str = "USD",
    **extra: Any,
) -> httpx.Response:
    body = {
        "member": by_id(member_id),
        "amountMinor": amount_minor,
        "currency": currency,
        "occurredAt": occurred_at or now_iso(),
        **extra,
    }
    return await client.post("/v1/earn", json=body, headers=keyed(merchant.headers, key))


async def earned(
    client: httpx.AsyncClient, merchant, member_id: str, amount_minor: int, **extra: Any
) -> dict:
    response = await earn(client, merchant, member_id, amount_minor, **extra)
    assert response.status_code == 201, response.text
    return response.json()


async def redeem(
    client: httpx.AsyncClient, merchant, member_id: str, points: int, **extra: Any
) -> httpx.Response:
    body = {"member": by_id(member_id), "points": points, "currency": "USD", **extra}
    return await client.post("/v1/redemptions", json=body, headers=keyed(merchant.headers))


async def hold(
    client: httpx.AsyncClient, merchant, member_id: str, points: int, **extra: Any
) -> httpx.Response:
    body = {"member": by_id(member_id), "points": points, **extra}
    return await client.post("/v1/holds", json=body, headers=keyed(merchant.headers))


async def capture(
    client: httpx.AsyncClient, merchant, hold_id: str, points: int | None = None
) -> httpx.Response:
    body = {} if points is None else {"points": points}
    return await client.post(
        f"/v1/holds/{hold_id}/capture", json=body, headers=keyed(merchant.headers)
    )


async def void(client: httpx.AsyncClient, merchant, hold_id: str) -> httpx.Response:
    return await client.post(f"/v1/holds/{hold_id}/void", json={}, headers=keyed(merchant.headers))


async def refund(
    client: httpx.AsyncClient, merchant, transaction_id: str, amount_minor: int
) -> httpx.Response:
    return await client.post(
        f"/v1/transactions/{transaction_id}/refunds",
        json={"amountMinor": amount_minor},
        headers=keyed(merchant.headers),
    )


async def reverse(client: httpx.AsyncClient, merchant, transaction_id: str) -> httpx.Response:
    return await client.post(
        f"/v1/transactions/{transaction_id}/reversal",
        json={},
        headers=keyed(merchant.headers),
    )


async def balance(client: httpx.AsyncClient, headers: dict[str, str], member_id: str) -> dict:
    response = await client.get(f"/v1/members/{member_id}/balance", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def lots(client: httpx.AsyncClient, headers: dict[str, str], member_id: str) -> list[dict]:
    response = await client.get(f"/v1/members/{member_id}/lots", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body = response.json()
    assert body["type"] == f"/problems/{slug}", body
    assert body["status"] == status
    return body


def rows(sync_engine, sql: str, **params: Any) -> list[Any]:
    with sync_engine.connect() as connection:
        return list(connection.execute(text(sql), params))


def scalar(sync_engine, sql: str, **params: Any) -> Any:
    with sync_engine.connect() as connection:
        return connection.execute(text(sql), params).scalar()


def execute(sync_engine, sql: str, **params: Any) -> None:
    with sync_engine.begin() as connection:
        connection.execute(text(sql), params)


def row_counts(sync_engine) -> dict[str, int]:
    with sync_engine.connect() as connection:
        return {
            table: connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in LEDGER_TABLES
        }


def stored(sync_engine, member_id: str) -> tuple[int, int]:
    """(balance, debt) as stored in member_balances."""
    row = rows(
        sync_engine, "SELECT balance, debt FROM member_balances WHERE member_id = :m", m=member_id
    )[0]
    return row.balance, row.debt


def assert_ledger_consistent(sync_engine) -> None:
    with sync_engine.connect() as connection:
        failures = [
            (result.check.name, result.examples)
            for result in run_checks(connection)
            if not result.ok
        ]
    assert failures == [], failures


# Program rules under which every balance in a ledger test is exact: no behaviour bonuses,
# and a minimum redemption small enough for hand-sized numbers.
EXACT_RULES: dict[str, Any] = {
    "enrolment_bonus_points": 0,
    "profile_completion_bonus_points": 0,
    "min_redemption_points": 10,
}


@pytest.fixture
async def shop(make_merchant):
    return await make_merchant(earnRate="1", name="Shop A")


@pytest.fixture
async def other_shop(make_merchant):
    return await make_merchant(earnRate="1", name="Shop B")


@pytest.fixture
async def member(client, shop):
    return await enrol(client, shop)


@pytest.fixture
def ledger_stays_consistent(clean_database):
    """Use with `pytestmark = pytest.mark.usefixtures("ledger_stays_consistent")`."""
    yield
    assert_ledger_consistent(clean_database)
