"""A write that waits for a member's lock sees what the write before it committed.

Each test holds one write open in its own transaction (the member locked), sends a second
write of the same member through the API, waits until that one is blocked on the lock,
and only then commits the first. A locking read's snapshot predates the commit: these are
the cases where reading from it would be wrong.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared import members
from shared.access import SYSTEM, Principal, Role
from shared.ledger import earning, redemption
from shared.members import MemberRef
from tests.integration.ledger_support import (
    EXACT_RULES,
    assert_problem,
    balance,
    by_id,
    earned,
    enrol,
    hold,
    now_iso,
    refund,
    stored,
    void,
)

pytestmark = pytest.mark.usefixtures("ledger_stays_consistent")


@pytest.fixture
async def client(client_with_rules):
    async with client_with_rules(**EXACT_RULES) as test_client:
        yield test_client


async def _lock_waiters(async_engine) -> int:
    async with async_engine.connect() as connection:
        return await connection.scalar(
            text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
        )


async def while_blocked(
    async_engine,
    first_write: Callable[[AsyncConnection], Awaitable[object]],
    second_write: Awaitable,
):
    """Run `first_write` in an open transaction, start `second_write`, commit the first once
    the second waits for the member's lock; the second's result."""
    async with async_engine.begin() as connection:
        await first_write(connection)
        second = asyncio.ensure_future(second_write)
        for _ in range(500):
            if await _lock_waiters(async_engine):
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the second write never waited for the lock")
    return await second


def _merchant(shop) -> Principal:
    return Principal(Role.MERCHANT, None, uuid.UUID(shop.merchant_id))


async def test_an_earn_that_waited_counts_the_points_earned_meanwhile_toward_its_tier(
    client, shop, member, async_engine, test_settings
):
    # Silver needs 5,000 qualifying points: 3,000 committed while the second earn waited,
    # and its own 3,000.
    async def first_earn(connection):
        await earning.earn(
            connection, _merchant(shop), merchant_id=uuid.UUID(shop.merchant_id),
            member_ref=MemberRef("member_id", member), default_region="US",
            amount_minor=300_000, currency="USD", occurred_at=datetime.now(UTC),
            store_id=None, line_items=[], external_reference=None,
            rules=test_settings.program.model_copy(update=EXACT_RULES),
        )  # fmt: skip

    second = client.post(
        "/v1/earn",
        json={"member": by_id(member), "amountMinor": 300_000, "currency": "USD",
              "occurredAt": now_iso()},
        headers={**shop.headers, "Idempotency-Key": "second-earn"},
    )  # fmt: skip
    response = await while_blocked(async_engine, first_earn, second)
    assert response.status_code == 201, response.text
    assert (response.json()["points"], response.json()["tier"]) == (3_000, "silver")
    assert response.json()["balance"] == 6_000


async def test_a_redemption_that_waited_for_a_hold_cannot_spend_the_held_points(
    client, shop, member, async_engine, test_settings
):
    await earned(client, shop, member, 10_000)  # 100 points

    async def hold_them_all(connection):
        await redemption.create_hold(
            connection, _merchant(shop), merchant_id=uuid.UUID(shop.merchant_id),
            member_ref=MemberRef("member_id", member), default_region="US", points=100,
            ttl_seconds=600, store_id=None, external_reference=None,
            rules=test_settings.program.model_copy(update=EXACT_RULES),
        )  # fmt: skip

    second = client.post(
        "/v1/redemptions",
        json={"member": by_id(member), "points": 60, "currency": "USD"},
        headers={**shop.headers, "Idempotency-Key": "redeem-while-held"},
    )
    response = await while_blocked(async_engine, hold_them_all, second)
    problem = assert_problem(response, 409, "insufficient-points")
    assert problem["available"] == 0
    after = await balance(client, shop.headers, member)
    assert (after["total"], after["held"], after["available"]) == (100, 100, 0)


async def test_a_void_that_waited_for_the_capture_of_its_hold_is_refused(
    client, shop, member, async_engine, test_settings
):
    await earned(client, shop, member, 10_000)  # 100 points
    held = await hold(client, shop, member, 80)
    assert held.status_code == 201, held.text
    hold_id = held.json()["holdId"]

    async def capture_it(connection):
        await redemption.capture_hold(
            connection, _merchant(shop), merchant_id=uuid.UUID(shop.merchant_id),
            hold_id=uuid.UUID(hold_id), points=50,
            rules=test_settings.program.model_copy(update=EXACT_RULES),
        )  # fmt: skip

    response = await while_blocked(async_engine, capture_it, void(client, shop, hold_id))
    assert assert_problem(response, 409, "hold-not-active")["holdStatus"] == "captured"
    after = await balance(client, shop.headers, member)
    assert (after["total"], after["held"], after["available"]) == (50, 0, 50)


async def test_a_refund_that_waited_for_a_merge_of_its_member_claws_back_from_the_survivor(
    client, shop, member, async_engine, sync_engine
):
    survivor = await enrol(client, shop)
    purchase = await earned(client, shop, member, 10_000)  # 100 points

    async def merge_the_member(connection):
        await members.merge(connection, SYSTEM, uuid.UUID(survivor), uuid.UUID(member), "twins")

    response = await while_blocked(
        async_engine, merge_the_member, refund(client, shop, purchase["transactionId"], 10_000)
    )
    assert response.status_code == 201, response.text
    assert (response.json()["memberId"], response.json()["debtCreated"]) == (survivor, 0)
    assert stored(sync_engine, survivor) == (0, 0)
    assert stored(sync_engine, member) == (0, 0)  # the merged member keeps nothing, owes nothing
