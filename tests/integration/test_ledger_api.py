"""The till's points API end to end, with exact expected numbers."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from shared.ledger import redemption
from tests.integration.ledger_support import EXACT_RULES, execute, rows

pytestmark = pytest.mark.usefixtures("ledger_stays_consistent")


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


@pytest.fixture
async def client(client_with_rules):
    """No behaviour bonuses, and a 10-point minimum: every balance below is exact."""
    async with client_with_rules(**EXACT_RULES) as test_client:
        yield test_client


async def earn(client, merchant, member_id, amount_minor, key=None, occurred_at=None, **extra):
    body = {
        "member": {"kind": "member_id", "value": member_id},
        "amountMinor": amount_minor,
        "currency": "USD",
        "occurredAt": occurred_at or now_iso(),
        **extra,
    }
    return await client.post(
        "/v1/earn",
        json=body,
        headers={**merchant.headers, "Idempotency-Key": key or str(uuid.uuid4())},
    )


async def redeem(client, merchant, member_id, points, key=None):
    body = {
        "member": {"kind": "member_id", "value": member_id},
        "points": points,
        "currency": "USD",
    }
    return await client.post(
        "/v1/redemptions",
        json=body,
        headers={**merchant.headers, "Idempotency-Key": key or str(uuid.uuid4())},
    )


async def test_earn_posts_base_points_with_breakdown_and_lot(client, shop, member):
    response = await earn(client, shop, member, 12_345)  # $123.45 at 1 point per dollar
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["points"] == 123
    assert body["breakdown"]["basePoints"] == 123
    assert body["breakdown"]["tierBonusPoints"] == 0
    assert [lot["points"] for lot in body["lots"]] == [123]
    balance = (await client.get(f"/v1/members/{member}/balance", headers=shop.headers)).json()
    assert (balance["total"], balance["available"], balance["pending"], balance["debt"]) == (
        123,
        123,
        0,
        0,
    )


async def test_redeem_then_insufficient(client, shop, member):
    await earn(client, shop, member, 50_000)
    first = await redeem(client, shop, member, 300)
    assert first.status_code == 201, first.text
    assert first.json()["balance"] == 200
    second = await redeem(client, shop, member, 300)
    assert second.status_code == 409
    assert second.json()["type"] == "/problems/insufficient-points"
    assert second.json()["available"] == 200


async def test_replay_returns_the_original_response_and_reuse_is_refused(client, shop, member):
    at = now_iso()
    first = await earn(client, shop, member, 1_000, key="till-7-0001", occurred_at=at)
    replay = await earn(client, shop, member, 1_000, key="till-7-0001", occurred_at=at)
    assert replay.status_code == 201
    assert replay.json() == first.json()
    assert replay.headers["idempotent-replayed"] == "true"
    reused = await earn(client, shop, member, 2_000, key="till-7-0001", occurred_at=at)
    assert reused.status_code == 409
    assert reused.json()["type"] == "/problems/idempotency-key-reused"


async def test_fifty_concurrent_redeems_of_ten_against_one_hundred(client, shop, member):
    await earn(client, shop, member, 10_000)  # 100 points
    results = await asyncio.gather(*(redeem(client, shop, member, 10) for _ in range(50)))
    statuses = sorted(response.status_code for response in results)
    assert statuses.count(201) == 10
    assert statuses.count(409) == 40
    assert {r.json()["type"] for r in results if r.status_code == 409} == {
        "/problems/insufficient-points"
    }


async def test_pending_window_keeps_new_points_unspendable(client, make_merchant, member):
    returns_shop = await make_merchant(earnRate="1", name="Returns Ltd", pendingDays=14)
    assert returns_shop.body["pendingDays"] == 14
    earned = await earn(client, returns_shop, member, 50_000)  # 500 points, pending 14 days
    assert earned.status_code == 201, earned.text
    available_at = datetime.fromisoformat(earned.json()["lots"][0]["availableAt"])
    assert 13.9 < (available_at - datetime.now(UTC)).total_seconds() / 86400 <= 14
    balance = (
        await client.get(f"/v1/members/{member}/balance", headers=returns_shop.headers)
    ).json()
    assert (balance["total"], balance["pending"], balance["available"]) == (500, 500, 0)
    refused = await redeem(client, returns_shop, member, 100)
    assert refused.status_code == 409
    assert refused.json()["available"] == 0


async def test_a_merchants_own_store_is_recorded_on_earn_redemption_and_hold(
    client, shop, member, keys, sync_engine
):
    created = await client.post(
        f"/v1/merchants/{shop.merchant_id}/stores",
        json={"code": "A-001", "name": "Shop A Main Street"},
        headers=keys.hq_admin,
    )
    assert created.status_code == 201, created.text
    store_id = created.json()["storeId"]
    earned = await earn(client, shop, member, 50_000, storeId=store_id)
    assert earned.status_code == 201, earned.text
    spent = await client.post(
        "/v1/redemptions",
        json={"member": {"kind": "member_id", "value": member}, "points": 100,
              "currency": "USD", "storeId": store_id},
        headers={**shop.headers, "Idempotency-Key": "redeem-in-store"},
    )  # fmt: skip
    assert spent.status_code == 201, spent.text
    held = await client.post(
        "/v1/holds",
        json={"member": {"kind": "member_id", "value": member}, "points": 100,
              "storeId": store_id},
        headers={**shop.headers, "Idempotency-Key": "hold-in-store"},
    )  # fmt: skip
    assert held.status_code == 201, held.text
    with sync_engine.connect() as connection:
        stores = connection.execute(
            text("SELECT kind, store_id::text FROM ledger_transactions ORDER BY kind")
        ).all()
        hold_store = connection.execute(text("SELECT store_id::text FROM holds")).scalar_one()
    assert [tuple(row) for row in stores] == [("earn", store_id), ("redeem", store_id)]
    assert hold_store == store_id


@pytest.mark.parametrize("first_lots_read", [3, 5, 64])
async def test_a_redemption_takes_ties_in_expiry_in_earning_order(
    client, shop, member, sync_engine, monkeypatch, first_lots_read
):
    """Lots expiring at the same instant are spent in the order they were earned, whichever
    of them the database lists first, however many of the member's lots the redemption
    reads first (3: part of the tie, so all are read again; 5: all of them, as 64)."""
    monkeypatch.setattr(redemption, "FIRST_LOTS_READ", first_lots_read)
    for amount_minor in (2_000, 1_500, 1_500, 1_500, 1_500):  # 20, then four lots of 15
        assert (await earn(client, shop, member, amount_minor)).status_code == 201
    lot_ids = [
        row.lot_id
        for row in rows(
            sync_engine, "SELECT lot_id FROM lots WHERE member_id = :m ORDER BY earned_at", m=member
        )
    ]
    first, *tie, last = lot_ids
    # The tie's three lots were earned second, third and first, in the order they are listed;
    # the first lot expires before them, the last after.
    now = datetime.now(UTC)  # one instant: the tie's lots expire at exactly the same one
    for lot, days, hours in (
        (first, 10, 50),
        (tie[0], 20, 30),
        (tie[1], 20, 20),
        (tie[2], 20, 40),
        (last, 30, 10),
    ):
        execute(
            sync_engine,
            "UPDATE lots SET expires_at = :now + :days, earned_at = :now - :hours WHERE lot_id = :lot",
            lot=lot,
            now=now,
            days=timedelta(days=days),
            hours=timedelta(hours=hours),
        )
    response = await redeem(client, shop, member, 30)
    assert response.status_code == 201, response.text
    taken = dict(
        rows(
            sync_engine,
            "SELECT lot_id, points FROM allocations WHERE transaction_id = :t",
            t=response.json()["transactionId"],
        )
    )
    assert taken == {first: 20, tie[2]: 10}

    short = await redeem(client, shop, member, 51)  # 50 points are left
    assert short.status_code == 409
    assert (short.json()["available"], short.json()["requested"]) == (50, 51)
