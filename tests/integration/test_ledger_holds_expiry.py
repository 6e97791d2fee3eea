"""Holds (reserve, capture, void, TTL) and lot expiry (breakage), with exact numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.ledger.expiry import expire_due_lots
from shared.ledger.redemption import finalise_expired_holds
from tests.integration.ledger_support import (
    EXACT_RULES,
    assert_problem,
    balance,
    capture,
    earned,
    enrol,
    execute,
    hold,
    lots,
    now_iso,
    redeem,
    rows,
    scalar,
    stored,
    void,
)

pytestmark = pytest.mark.usefixtures("ledger_stays_consistent")


@pytest.fixture
async def client(client_with_rules):
    """No behaviour bonuses and a 10-point minimum: every balance below is exact."""
    async with client_with_rules(**EXACT_RULES) as test_client:
        yield test_client


def amounts(read: dict) -> tuple[int, int, int, int]:
    return read["total"], read["available"], read["held"], read["debt"]


# --- holds -----------------------------------------------------------------------------


async def test_hold_reserves_then_partial_capture_releases_the_rest(
    client, shop, member, sync_engine
):
    await earned(client, shop, member, 10_000)  # 100 points
    created = await hold(client, shop, member, 40)
    assert created.status_code == 201, created.text
    held = created.json()
    assert (held["points"], held["status"], held["capturedPoints"]) == (40, "active", None)
    # The hold moves points from available to held; the total does not change.
    assert amounts(await balance(client, shop.headers, member)) == (100, 60, 40, 0)
    (lot,) = await lots(client, shop.headers, member)
    assert (lot["remaining"], lot["reserved"]) == (100, 40)
    assert stored(sync_engine, member) == (100, 0)
    # Another till cannot spend the held points: 61 > 100 - 40.
    body = assert_problem(await redeem(client, shop, member, 61), 409, "insufficient-points")
    assert body["available"] == 60

    captured = await capture(client, shop, held["holdId"], 25)
    assert captured.status_code == 201, captured.text
    assert (captured.json()["points"], captured.json()["balance"]) == (25, 75)  # 100 - 25
    assert captured.json()["valueMinor"] == 25  # one point pays for one cent
    # The 15 uncaptured points are free again.
    assert amounts(await balance(client, shop.headers, member)) == (75, 75, 0, 0)
    (lot,) = await lots(client, shop.headers, member)
    assert (lot["remaining"], lot["reserved"]) == (75, 0)
    read = (await client.get(f"/v1/holds/{held['holdId']}", headers=shop.headers)).json()
    assert (read["status"], read["capturedPoints"]) == ("captured", 25)
    assert read["captureTransactionId"] == captured.json()["transactionId"]
    (transaction,) = rows(
        sync_engine,
        "SELECT kind, points, hold_id FROM ledger_transactions WHERE kind = 'capture'",
    )
    assert (transaction.kind, transaction.points, str(transaction.hold_id)) == (
        "capture",
        -25,
        held["holdId"],
    )

    again = await capture(client, shop, held["holdId"])
    assert assert_problem(again, 409, "hold-not-active")["holdStatus"] == "captured"
    assert stored(sync_engine, member) == (75, 0)


async def test_full_capture_by_default(client, shop, member):
    await earned(client, shop, member, 10_000)
    held = (await hold(client, shop, member, 40)).json()
    captured = await capture(client, shop, held["holdId"])
    assert (captured.json()["points"], captured.json()["balance"]) == (40, 60)


async def test_capture_beyond_the_hold_is_refused(client, shop, member):
    await earned(client, shop, member, 10_000)
    held = (await hold(client, shop, member, 40)).json()
    assert_problem(await capture(client, shop, held["holdId"], 41), 422, "invalid-input")
    assert amounts(await balance(client, shop.headers, member)) == (100, 60, 40, 0)


async def test_void_releases_and_a_later_capture_is_refused(client, shop, member, sync_engine):
    await earned(client, shop, member, 10_000)
    held = (await hold(client, shop, member, 40)).json()
    voided = await void(client, shop, held["holdId"])
    assert voided.status_code == 200, voided.text
    assert voided.json()["status"] == "voided"
    assert amounts(await balance(client, shop.headers, member)) == (100, 100, 0, 0)

    late = await capture(client, shop, held["holdId"])
    assert assert_problem(late, 409, "hold-not-active")["holdStatus"] == "voided"
    twice = await void(client, shop, held["holdId"])
    assert assert_problem(twice, 409, "hold-not-active")["holdStatus"] == "voided"
    assert rows(sync_engine, "SELECT 1 FROM ledger_transactions WHERE kind = 'capture'") == []
    assert stored(sync_engine, member) == (100, 0)


async def test_another_merchants_hold_is_not_found(client, shop, other_shop, member):
    await earned(client, shop, member, 10_000)
    held = (await hold(client, shop, member, 40)).json()
    assert_problem(await capture(client, other_shop, held["holdId"]), 404, "not-found")
    assert_problem(await void(client, other_shop, held["holdId"]), 404, "not-found")
    missing = await client.get(f"/v1/holds/{held['holdId']}", headers=other_shop.headers)
    assert_problem(missing, 404, "not-found")


async def test_hold_past_its_ttl_is_released(client, shop, member, sync_engine, async_engine):
    await earned(client, shop, member, 10_000)
    held = (await hold(client, shop, member, 40, ttlSeconds=1)).json()
    created, expires = datetime.fromisoformat(held["createdAt"]), held["expiresAt"]
    assert datetime.fromisoformat(expires) - created == timedelta(seconds=1)
    execute(sync_engine, "UPDATE holds SET expires_at = now() - interval '1 second'")

    # Reads already treat it as released...
    read = (await client.get(f"/v1/holds/{held['holdId']}", headers=shop.headers)).json()
    assert read["status"] == "expired"
    assert amounts(await balance(client, shop.headers, member)) == (100, 100, 0, 0)
    # ...and so does a capture.
    late = await capture(client, shop, held["holdId"])
    assert assert_problem(late, 409, "hold-not-active")["holdStatus"] == "expired"

    # The job writes it down: status expired, reservation gone. Idempotent.
    assert scalar(sync_engine, "SELECT status FROM holds") == "active"
    assert await finalise_expired_holds(async_engine) == 1
    assert scalar(sync_engine, "SELECT status FROM holds") == "expired"
    assert scalar(sync_engine, "SELECT reserved FROM lots") == 0
    assert await finalise_expired_holds(async_engine) == 0
    assert rows(sync_engine, "SELECT 1 FROM ledger_transactions WHERE kind = 'capture'") == []
    # The freed points are spendable.
    assert (await redeem(client, shop, member, 100)).json()["balance"] == 0


async def test_a_redemption_releases_expired_holds_of_the_member(client, shop, member, sync_engine):
    await earned(client, shop, member, 10_000)
    await hold(client, shop, member, 90)
    execute(sync_engine, "UPDATE holds SET expires_at = now() - interval '1 second'")
    spent = await redeem(client, shop, member, 100)  # needs the 90 the expired hold held
    assert spent.status_code == 201, spent.text
    assert scalar(sync_engine, "SELECT status FROM holds") == "expired"


async def test_expiry_never_takes_points_an_active_hold_reserves(
    client, shop, member, sync_engine, async_engine
):
    await earned(client, shop, member, 10_000)  # 100
    held = (await hold(client, shop, member, 40)).json()
    execute(sync_engine, "UPDATE lots SET expires_at = now() - interval '1 day'")
    report = await expire_due_lots(async_engine)
    # Only the 60 free points expire; the 40 the hold reserves stay in the lot.
    assert (report.members, report.lots, report.points) == (1, 1, 60)
    assert rows(sync_engine, "SELECT remaining, reserved FROM lots")[0] == (40, 40)
    assert stored(sync_engine, member) == (40, 0)
    report = await expire_due_lots(async_engine)
    assert (report.members, report.lots, report.points) == (0, 0, 0)

    captured = await capture(client, shop, held["holdId"])
    assert (captured.json()["points"], captured.json()["balance"]) == (40, 0)


async def test_points_a_voided_hold_releases_from_an_expired_lot_expire_next_run(
    client, shop, member, sync_engine, async_engine
):
    await earned(client, shop, member, 10_000)  # 100
    held = (await hold(client, shop, member, 40)).json()
    execute(sync_engine, "UPDATE lots SET expires_at = now() - interval '1 day'")
    assert (await expire_due_lots(async_engine)).points == 60
    await void(client, shop, held["holdId"])
    assert (await expire_due_lots(async_engine)).points == 40
    assert stored(sync_engine, member) == (0, 0)


# --- expiry ----------------------------------------------------------------------------


async def test_expiry_posts_breakage_to_each_issuing_merchant_once(
    client, shop, other_shop, member, sync_engine, async_engine
):
    await earned(client, shop, member, 10_000, occurred_at=now_iso(-timedelta(days=2)))  # 100
    await earned(client, other_shop, member, 5_000, occurred_at=now_iso(-timedelta(days=1)))  # 50
    await redeem(client, other_shop, member, 30)  # from shop's lot, which expires first: 70 left
    execute(sync_engine, "UPDATE lots SET expires_at = now() - interval '1 day'")
    assert amounts(await balance(client, shop.headers, member)) == (0, 0, 0, 0)  # reads: expired

    report = await expire_due_lots(async_engine)
    assert (report.members, report.lots, report.points) == (1, 2, 120)  # 70 + 50

    (expiry,) = rows(
        sync_engine,
        "SELECT transaction_id, points, merchant_id FROM ledger_transactions WHERE kind = 'expiry'",
    )
    assert (expiry.points, expiry.merchant_id) == (-120, None)
    breakage = {
        (row.account, None if row.merchant_id is None else str(row.merchant_id), row.amount)
        for row in rows(
            sync_engine,
            "SELECT account, merchant_id, amount FROM postings WHERE transaction_id = :t",
            t=expiry.transaction_id,
        )
    }
    assert breakage == {
        ("member", None, -120),
        ("breakage", shop.merchant_id, 70),  # 100 earned - 30 redeemed
        ("breakage", other_shop.merchant_id, 50),
    }
    assert [row.remaining for row in rows(sync_engine, "SELECT remaining FROM lots")] == [0, 0]
    allocated = rows(
        sync_engine,
        "SELECT sum(points) FROM allocations WHERE kind = 'expiry' AND transaction_id = :t",
        t=expiry.transaction_id,
    )
    assert allocated[0][0] == 120
    assert stored(sync_engine, member) == (0, 0)

    # A second run finds nothing: no new transaction, a zero report.
    again = await expire_due_lots(async_engine)
    assert (again.members, again.lots, again.points) == (0, 0, 0)
    assert (
        scalar(sync_engine, "SELECT count(*) FROM ledger_transactions WHERE kind = 'expiry'") == 1
    )


async def test_expiry_leaves_unexpired_lots_alone(client, shop, member, sync_engine, async_engine):
    first = await earned(client, shop, member, 10_000)  # 100, backdated below
    await earned(client, shop, member, 2_500)  # 25, still valid
    execute(
        sync_engine,
        "UPDATE lots SET expires_at = now() - interval '1 minute' WHERE transaction_id = :t",
        t=first["transactionId"],
    )
    report = await expire_due_lots(async_engine)
    assert report.points == 100
    assert amounts(await balance(client, shop.headers, member)) == (25, 25, 0, 0)
    assert stored(sync_engine, member) == (25, 0)


async def test_expiring_points_lists_members_with_points_expiring_within_30_days(
    client, shop, member, keys, sync_engine
):
    soon_member = member
    later_member = await enrol(client, shop)
    await earned(client, shop, soon_member, 10_000)  # 100
    await earned(client, shop, later_member, 5_000)  # 50, expires in 12 months
    await redeem(client, shop, soon_member, 30)  # 70 left
    execute(
        sync_engine,
        "UPDATE lots SET expires_at = now() + interval '10 days' WHERE member_id = :m",
        m=soon_member,
    )
    response = await client.get("/v1/hq/expiring-points", headers=keys.hq_analyst)
    assert response.status_code == 200, response.text
    (listed,) = response.json()
    assert (listed["memberId"], listed["points"]) == (soon_member, 70)
    in_days = datetime.fromisoformat(listed["firstExpiryAt"]) - datetime.now(UTC)
    assert timedelta(days=9, hours=23) < in_days <= timedelta(days=10)

    within_a_week = await client.get(
        "/v1/hq/expiring-points", params={"days": 7}, headers=keys.hq_analyst
    )
    assert within_a_week.json() == []
    in_a_year = await client.get(
        "/v1/hq/expiring-points", params={"days": 366}, headers=keys.hq_analyst
    )
    assert [(row["memberId"], row["points"]) for row in in_a_year.json()] == [
        (soon_member, 70),
        (later_member, 50),
    ]
    merchant = await client.get("/v1/hq/expiring-points", headers=shop.headers)
    assert_problem(merchant, 403, "forbidden")


async def test_a_suspended_merchant_cannot_capture_or_void(client, shop, member, keys):
    await earned(client, shop, member, 10_000)
    held = (await hold(client, shop, member, 40)).json()
    suspended = await client.post(
        f"/v1/merchants/{shop.merchant_id}/suspend", headers=keys.hq_admin
    )
    assert suspended.status_code == 200, suspended.text
    assert_problem(await capture(client, shop, held["holdId"]), 403, "merchant-not-active")
    assert_problem(await void(client, shop, held["holdId"]), 403, "merchant-not-active")
    assert amounts(await balance(client, shop.headers, member)) == (100, 60, 40, 0)


async def test_points_and_cash(client, shop, member, sync_engine):
    await earned(client, shop, member, 10_000)  # 100 points, 1 point pays 1 cent
    body = {"member": {"kind": "member_id", "value": member}, "currency": "USD"}
    part = await client.post(
        "/v1/redemptions",
        json={**body, "purchaseAmountMinor": 60},
        headers={**shop.headers, "Idempotency-Key": "pc-1"},
    )
    # 60 cents: floor(60 / 1) = 60 points, no cash
    assert (part.json()["points"], part.json()["cashMinor"], part.json()["balance"]) == (60, 0, 40)
    rest = await client.post(
        "/v1/redemptions",
        json={**body, "purchaseAmountMinor": 250},
        headers={**shop.headers, "Idempotency-Key": "pc-2"},
    )
    # 250 cents: the 40 points left pay 40 cents, 210 in cash
    assert (rest.json()["points"], rest.json()["cashMinor"], rest.json()["valueMinor"]) == (
        40,
        210,
        40,
    )
    assert stored(sync_engine, member) == (0, 0)
