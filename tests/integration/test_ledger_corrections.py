"""Refunds (proportional clawback, debt), reversals and HQ adjustments, with exact numbers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from shared.ledger.expiry import expire_due_lots
from shared.ledger.redemption import finalise_expired_holds
from shared.program import Tier
from tests.integration.ledger_support import (
    EXACT_RULES,
    assert_problem,
    balance,
    earn,
    earned,
    execute,
    hold,
    lots,
    now_iso,
    redeem,
    refund,
    reverse,
    rows,
    stored,
    void,
)

# Silver is out of reach of every test but the one that aims for it.
TIERS = (
    Tier(name="basic", threshold=0, multiplier=Decimal("1")),
    Tier(name="silver", threshold=1_000, multiplier=Decimal("1.5")),
)


pytestmark = pytest.mark.usefixtures("ledger_stays_consistent")


@pytest.fixture
async def client(client_with_rules):
    """No behaviour bonuses and a 10-point minimum: every balance below is exact."""
    async with client_with_rules(**EXACT_RULES, tiers=TIERS) as test_client:
        yield test_client


def postings_of(sync_engine, transaction_id: str) -> list[tuple[str, str | None, int]]:
    return [
        (row.account, None if row.merchant_id is None else str(row.merchant_id), row.amount)
        for row in rows(
            sync_engine,
            "SELECT account, merchant_id, amount FROM postings WHERE transaction_id = :t "
            "ORDER BY line",
            t=transaction_id,
        )
    ]


# --- refunds ---------------------------------------------------------------------------


async def test_partial_refunds_add_up_to_exactly_the_original_points(
    client, shop, member, sync_engine
):
    purchase = await earned(client, shop, member, 10_001)  # floor(100.01 x 1) = 100 points
    assert purchase["points"] == 100

    # Clawback on the cumulative refunded amount, minus what was already clawed back:
    first = await refund(client, shop, purchase["transactionId"], 3_333)
    assert first.status_code == 201, first.text
    # floor(100 x 3333 / 10001) = floor(33.33) = 33
    assert (first.json()["points"], first.json()["balance"]) == (-33, 67)
    second = await refund(client, shop, purchase["transactionId"], 3_334)
    # floor(100 x 6667 / 10001) = floor(66.66) = 66; 66 - 33 = 33
    assert (second.json()["points"], second.json()["balance"]) == (-33, 34)
    third = await refund(client, shop, purchase["transactionId"], 3_334)
    # cumulative 10001 = the whole purchase: 100 - 66 = 34, total 33 + 33 + 34 = 100
    assert (third.json()["points"], third.json()["balance"]) == (-34, 0)
    assert third.json()["debtCreated"] == 0
    assert third.json()["originalTransactionId"] == purchase["transactionId"]

    # The merchant that funded the points gets them back (issued +), the member loses them.
    assert postings_of(sync_engine, first.json()["transactionId"]) == [
        ("member", None, -33),
        ("issued", shop.merchant_id, 33),
    ]
    assert await lots(client, shop.headers, member) == []  # the lot is empty
    (clawed,) = rows(sync_engine, "SELECT original, remaining, clawed_back FROM lots")
    assert tuple(clawed) == (100, 0, 100)
    assert stored(sync_engine, member) == (0, 0)


async def test_thirty_then_seventy_dollars_of_a_hundred(client, shop, member):
    purchase = await earned(client, shop, member, 10_000)  # $100.00 x 1 = 100 points
    first = await refund(client, shop, purchase["transactionId"], 3_000)
    assert first.json()["points"] == -30  # 100 x 3000 / 10000
    second = await refund(client, shop, purchase["transactionId"], 7_000)
    assert second.json()["points"] == -70  # 100 x 10000 / 10000 - 30
    assert second.json()["balance"] == 0


async def test_refund_claws_back_the_tier_bonus_from_hq(client, shop, member, sync_engine):
    await earned(client, shop, member, 100_000)  # 1000 base points: silver (x1.5) at once
    purchase = await earned(client, shop, member, 10_001)
    # base floor(100.01) = 100; bonus floor(100 x 0.5) = 50 (funded by HQ)
    assert (purchase["breakdown"]["basePoints"], purchase["breakdown"]["tierBonusPoints"]) == (
        100,
        50,
    )
    partial = await refund(client, shop, purchase["transactionId"], 3_333)
    # base: floor(100 x 3333 / 10001) = 33; bonus: floor(50 x 3333 / 10001) = floor(16.66) = 16
    assert partial.json()["points"] == -49
    assert sorted(postings_of(sync_engine, partial.json()["transactionId"]), key=str) == sorted(
        [("member", None, -49), ("issued", shop.merchant_id, 33), ("issued", None, 16)], key=str
    )
    rest = await refund(client, shop, purchase["transactionId"], 6_668)
    # base: 100 - 33 = 67; bonus: 50 - 16 = 34; 49 + 101 = 150 = 100 + 50
    assert rest.json()["points"] == -101
    assert rest.json()["balance"] == 1_000  # only the first purchase is left


async def test_refunds_beyond_the_purchase_are_refused(client, shop, member, sync_engine):
    purchase = await earned(client, shop, member, 10_000)
    too_much = await refund(client, shop, purchase["transactionId"], 10_001)
    body = assert_problem(too_much, 422, "refund-exceeds-purchase")
    assert body["refundableMinor"] == 10_000

    assert (await refund(client, shop, purchase["transactionId"], 6_000)).status_code == 201
    cumulative = await refund(client, shop, purchase["transactionId"], 4_001)
    body = assert_problem(cumulative, 422, "refund-exceeds-purchase")
    assert body["refundableMinor"] == 4_000  # 10000 - 6000

    refunds = rows(sync_engine, "SELECT points FROM ledger_transactions WHERE kind = 'refund'")
    assert [row.points for row in refunds] == [-60]
    assert stored(sync_engine, member) == (40, 0)


async def test_refund_of_spent_points_leaves_a_debt_repaid_by_later_earnings(
    client, shop, member, sync_engine
):
    purchase = await earned(client, shop, member, 10_000)  # 100 points
    assert (await redeem(client, shop, member, 80)).status_code == 201  # 20 left

    clawback = await refund(client, shop, purchase["transactionId"], 10_000)
    assert clawback.status_code == 201, clawback.text
    # 100 clawed back: the 20 left in the lot now, 80 as debt; balance 20 - 100 = -80
    assert clawback.json() == {
        **clawback.json(),
        "points": -100,
        "debtCreated": 80,
        "balance": -80,
        "debt": 80,
    }
    read = await balance(client, shop.headers, member)
    assert (read["total"], read["available"], read["debt"]) == (0, 0, 80)

    blocked = await redeem(client, shop, member, 10)
    body = assert_problem(blocked, 409, "insufficient-points")
    assert (body["debt"], body["available"], body["requested"]) == (80, 0, 10)

    repaying = await earned(client, shop, member, 5_000)  # 50 points, all to the debt
    assert (repaying["points"], repaying["debtRepaid"], repaying["balance"]) == (50, 50, -30)
    read = await balance(client, shop.headers, member)
    assert (read["total"], read["available"], read["debt"]) == (0, 0, 30)  # 80 - 50

    repaid = await earned(client, shop, member, 10_000)  # 100 points: 30 repay, 70 free
    assert (repaid["debtRepaid"], repaid["balance"]) == (30, 70)
    read = await balance(client, shop.headers, member)
    assert (read["total"], read["available"], read["debt"]) == (70, 70, 0)
    assert stored(sync_engine, member) == (70, 0)
    assert (await redeem(client, shop, member, 70)).json()["balance"] == 0


async def test_debt_is_repaid_at_once_from_other_free_points(client, shop, member, sync_engine):
    first = await earned(
        client, shop, member, 10_000, occurred_at=now_iso(-timedelta(days=2))
    )  # lot A: 100, expires first
    await earned(client, shop, member, 5_000, occurred_at=now_iso(-timedelta(days=1)))  # B: 50
    await redeem(client, shop, member, 120)  # A gives 100, B gives 20: B has 30 left

    clawback = await refund(client, shop, first["transactionId"], 10_000)
    # 100 clawed back from the empty lot A: debt 100, repaid at once by B's 30 -> debt 70
    body = clawback.json()
    assert (body["points"], body["debtCreated"], body["debt"], body["balance"]) == (
        -100,
        100,
        70,
        -70,  # 150 - 120 - 100
    )
    assert await lots(client, shop.headers, member) == []
    assert stored(sync_engine, member) == (-70, 70)


async def test_released_hold_points_repay_a_debt(client, shop, member, sync_engine):
    purchase = await earned(client, shop, member, 10_000)  # 100 points
    held = (await hold(client, shop, member, 60)).json()
    clawback = await refund(client, shop, purchase["transactionId"], 10_000)
    # 40 free points are clawed back now; the 60 reserved by the hold become debt
    body = clawback.json()
    assert (body["points"], body["debtCreated"], body["balance"], body["debt"]) == (
        -100,
        60,
        0,  # 60 in the lot - 60 debt
        60,
    )
    assert (await void(client, shop, held["holdId"])).status_code == 200
    # The 60 points the hold gave back repay the debt straight away.
    assert stored(sync_engine, member) == (0, 0)
    read = await balance(client, shop.headers, member)
    assert (read["total"], read["available"], read["held"], read["debt"]) == (0, 0, 0, 0)


async def test_refunds_of_other_merchants_earns_or_of_redemptions_are_not_found(
    client, shop, other_shop, member, sync_engine
):
    purchase = await earned(client, shop, member, 10_000)
    spent = (await redeem(client, shop, member, 10)).json()
    assert_problem(
        await refund(client, other_shop, purchase["transactionId"], 100), 404, "not-found"
    )
    assert_problem(await refund(client, shop, spent["transactionId"], 100), 404, "not-found")
    assert rows(sync_engine, "SELECT 1 FROM ledger_transactions WHERE kind = 'refund'") == []
    assert stored(sync_engine, member) == (90, 0)


# --- reversals -------------------------------------------------------------------------


async def test_reversal_returns_points_to_their_original_lots_once(
    client, shop, other_shop, member, sync_engine
):
    await earned(client, shop, member, 6_000, occurred_at=now_iso(-timedelta(days=1)))  # 60
    # Lot 2 is dated a day earlier, so it expires first: first-to-expire takes it first.
    await earned(client, shop, member, 5_000, occurred_at=now_iso(-timedelta(days=2)))  # 50
    spent = (await redeem(client, other_shop, member, 80)).json()  # lot 2: 50, lot 1: 30
    assert spent["balance"] == 30
    remaining = sorted(lot["remaining"] for lot in await lots(client, shop.headers, member))
    assert remaining == [30]

    assert_problem(await reverse(client, shop, spent["transactionId"]), 404, "not-found")
    reversal = await reverse(client, other_shop, spent["transactionId"])
    assert reversal.status_code == 201, reversal.text
    assert (reversal.json()["points"], reversal.json()["balance"]) == (80, 110)
    assert sorted(
        (lot["original"], lot["remaining"]) for lot in await lots(client, shop.headers, member)
    ) == [(50, 50), (60, 60)]
    # The redeeming merchant's redeemed account gives the points back.
    assert postings_of(sync_engine, reversal.json()["transactionId"]) == [
        ("member", None, 80),
        ("redeemed", other_shop.merchant_id, -80),
    ]

    again = await reverse(client, other_shop, spent["transactionId"])
    body = assert_problem(again, 409, "already-reversed")
    assert body["reversalTransactionId"] == reversal.json()["transactionId"]
    assert stored(sync_engine, member) == (110, 0)


async def test_reversal_of_an_earn_is_not_found(client, shop, member):
    purchase = await earned(client, shop, member, 6_000)
    assert_problem(await reverse(client, shop, purchase["transactionId"]), 404, "not-found")


async def test_reversal_after_the_lot_expired_gives_a_grace_period(
    client, shop, member, sync_engine, async_engine
):
    await earned(client, shop, member, 10_000)  # 100
    spent = (await redeem(client, shop, member, 60)).json()  # 40 left
    execute(sync_engine, "UPDATE lots SET expires_at = now() - interval '1 day'")
    report = await expire_due_lots(async_engine)
    assert (report.members, report.lots, report.points) == (1, 1, 40)
    assert stored(sync_engine, member) == (0, 0)

    reversal = await reverse(client, shop, spent["transactionId"])
    assert (reversal.json()["points"], reversal.json()["balance"]) == (60, 60)
    (lot,) = await lots(client, shop.headers, member)
    assert (lot["original"], lot["remaining"]) == (100, 60)
    # reversal_grace_days = 30: the lot lives 30 more days from the reversal
    grace = datetime.fromisoformat(lot["expiresAt"]) - datetime.now(UTC)
    assert timedelta(days=30) - timedelta(minutes=1) < grace <= timedelta(days=30)
    # Nothing left to expire: the revived lot is not swept again.
    report = await expire_due_lots(async_engine)
    assert (report.members, report.lots, report.points) == (0, 0, 0)
    assert stored(sync_engine, member) == (60, 0)


async def test_reversal_of_a_capture(client, shop, member):
    await earned(client, shop, member, 10_000)
    held = (await hold(client, shop, member, 40)).json()
    captured = await client.post(
        f"/v1/holds/{held['holdId']}/capture",
        json={"points": 25},
        headers={**shop.headers, "Idempotency-Key": "capture-1"},
    )
    assert captured.json()["balance"] == 75  # 100 - 25; the other 15 are released
    reversal = await reverse(client, shop, captured.json()["transactionId"])
    assert (reversal.json()["points"], reversal.json()["balance"]) == (25, 100)


# --- HQ adjustments --------------------------------------------------------------------


async def test_adjustments_credit_an_hq_lot_and_never_debit_into_debt(
    client, shop, member, keys, sync_engine
):
    await earned(client, shop, member, 3_000)  # 30
    credit = await client.post(
        f"/v1/members/{member}/adjustments",
        json={"points": 25, "reason": "goodwill after a complaint"},
        headers={**keys.hq_admin, "Idempotency-Key": "adj-1"},
    )
    assert credit.status_code == 201, credit.text
    assert credit.json()["balance"] == 55  # 30 + 25
    hq_lot = [
        lot for lot in await lots(client, shop.headers, member) if lot["source"] == "adjustment"
    ]
    assert [(lot["remaining"], lot["funderMerchantId"]) for lot in hq_lot] == [(25, None)]

    too_much = await client.post(
        f"/v1/members/{member}/adjustments",
        json={"points": -56, "reason": "correction of a duplicate"},
        headers={**keys.hq_admin, "Idempotency-Key": "adj-2"},
    )
    body = assert_problem(too_much, 409, "insufficient-points")
    assert body["available"] == 55
    debit = await client.post(
        f"/v1/members/{member}/adjustments",
        json={"points": -55, "reason": "correction of a duplicate"},
        headers={**keys.hq_admin, "Idempotency-Key": "adj-3"},
    )
    assert debit.json()["balance"] == 0
    assert stored(sync_engine, member) == (0, 0)
    forbidden = await client.post(
        f"/v1/members/{member}/adjustments",
        json={"points": 5, "reason": "merchants cannot"},
        headers={**shop.headers, "Idempotency-Key": "adj-4"},
    )
    assert_problem(forbidden, 403, "forbidden")


async def test_reversal_does_not_revive_points_that_expired_before_the_job_ran(
    client, shop, member, sync_engine
):
    await earned(client, shop, member, 10_000)  # 100
    spent = (await redeem(client, shop, member, 60)).json()  # 40 left in the lot
    execute(sync_engine, "UPDATE lots SET expires_at = now() - interval '1 minute'")
    # The 40 are expired for every read, though the expiry job has not posted them yet.
    assert (await balance(client, shop.headers, member))["total"] == 0

    reversal = await reverse(client, shop, spent["transactionId"])
    assert reversal.status_code == 201, reversal.text
    # Only the 60 reversed points come back (with the grace period); the 40 stay expired.
    assert (reversal.json()["points"], reversal.json()["balance"]) == (60, 60)
    (lot,) = await lots(client, shop.headers, member)
    assert lot["remaining"] == 60
    assert stored(sync_engine, member) == (60, 0)
    (expiry,) = rows(sync_engine, "SELECT points FROM ledger_transactions WHERE kind = 'expiry'")
    assert expiry.points == -40


async def test_concurrent_refunds_never_exceed_the_purchase(client, shop, member, sync_engine):
    purchase = await earned(client, shop, member, 10_000)  # 100
    responses = await asyncio.gather(
        *(refund(client, shop, purchase["transactionId"], 3_000) for _ in range(5))
    )
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201, 201, 201, 422, 422]  # 3 x 3000 fit in 10000, a 4th does not
    refused = [response.json() for response in responses if response.status_code == 422]
    assert {body["refundableMinor"] for body in refused} == {1_000}
    assert stored(sync_engine, member) == (10, 0)  # 100 - 30 - 30 - 30


async def test_concurrent_reversals_reverse_once(client, shop, member, sync_engine):
    await earned(client, shop, member, 10_000)
    spent = (await redeem(client, shop, member, 50)).json()
    responses = await asyncio.gather(
        *(reverse(client, shop, spent["transactionId"]) for _ in range(5))
    )
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201, 409, 409, 409, 409]
    assert stored(sync_engine, member) == (100, 0)


async def test_a_suspended_merchant_cannot_refund_or_reverse(client, shop, member, keys):
    purchase = await earned(client, shop, member, 10_000)
    spent = (await redeem(client, shop, member, 50)).json()
    suspended = await client.post(
        f"/v1/merchants/{shop.merchant_id}/suspend", headers=keys.hq_admin
    )
    assert suspended.status_code == 200, suspended.text
    assert_problem(
        await refund(client, shop, purchase["transactionId"], 1_000), 403, "merchant-not-active"
    )
    assert_problem(await reverse(client, shop, spent["transactionId"]), 403, "merchant-not-active")


async def test_the_uncaptured_remainder_of_a_hold_repays_a_debt(client, shop, member, sync_engine):
    purchase = await earned(client, shop, member, 10_000)  # 100
    held = (await hold(client, shop, member, 60)).json()
    await refund(client, shop, purchase["transactionId"], 10_000)  # 40 clawed now, 60 debt
    captured = await client.post(
        f"/v1/holds/{held['holdId']}/capture",
        json={"points": 20},
        headers={**shop.headers, "Idempotency-Key": "capture-in-debt"},
    )
    assert captured.status_code == 201, captured.text
    # The capture spends 20 of the 60 reserved: 0 - 20 = -20. The 40 released repay the
    # debt: 60 - 40 = 20 still owed, and the lot is empty.
    assert captured.json()["balance"] == -20
    assert stored(sync_engine, member) == (-20, 20)
    assert await lots(client, shop.headers, member) == []


async def test_an_expired_hold_repays_a_debt_when_finalised(
    client, shop, member, sync_engine, async_engine
):
    purchase = await earned(client, shop, member, 10_000)  # 100
    await hold(client, shop, member, 60)
    await refund(client, shop, purchase["transactionId"], 10_000)  # 40 clawed now, 60 debt
    execute(sync_engine, "UPDATE holds SET expires_at = now() - interval '1 second'")
    assert await finalise_expired_holds(async_engine) == 1
    assert stored(sync_engine, member) == (0, 0)  # the 60 released points repaid the 60 owed


async def test_concurrent_earns_repay_a_debt_exactly(client, shop, member, sync_engine):
    purchase = await earned(client, shop, member, 10_000)  # 100
    await redeem(client, shop, member, 100)
    await refund(client, shop, purchase["transactionId"], 10_000)  # debt 100
    responses = await asyncio.gather(*(earn(client, shop, member, 1_000) for _ in range(20)))
    assert [response.status_code for response in responses] == [201] * 20
    # 20 x 10 points: the member lock serialises them, so exactly 100 go to the debt
    assert sum(response.json()["debtRepaid"] for response in responses) == 100
    assert stored(sync_engine, member) == (100, 0)  # -100 + 200
    assert sum(lot["remaining"] for lot in await lots(client, shop.headers, member)) == 100
