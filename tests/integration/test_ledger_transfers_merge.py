"""Points that change owner: member-to-member transfers and member merges, exactly."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import text

from shared.ledger import journal, redemption
from tests.integration.ledger_support import (
    assert_problem,
    balance,
    capture,
    earn,
    earned,
    enrol,
    execute,
    hold,
    now_iso,
    redeem,
    refund,
    row_counts,
    rows,
    stored,
)

NO_BONUSES = {
    "enrolment_bonus_points": 0,
    "profile_completion_bonus_points": 0,
    "min_redemption_points": 10,
}


pytestmark = pytest.mark.usefixtures("ledger_stays_consistent")


@pytest.fixture
async def client(client_with_rules):
    """Transfers on, no behaviour bonuses, a 10-point minimum."""
    async with client_with_rules(transfers_enabled=True, **NO_BONUSES) as test_client:
        yield test_client


@pytest.fixture
async def other_shop(make_merchant):
    return await make_merchant(earnRate="2", name="Shop B")


async def transfer(client, headers, sender: str, receiver: str, points: int, key=None):
    return await client.post(
        "/v1/hq/transfers",
        json={
            "fromMemberId": sender,
            "toMemberId": receiver,
            "points": points,
            "reason": "family pooling request",
        },
        headers={**headers, "Idempotency-Key": key or str(uuid.uuid4())},
    )


def lot_rows(sync_engine, member_id: str) -> list:
    return rows(
        sync_engine,
        "SELECT lot_id, source, issuing_merchant_id, funder_merchant_id, earned_at, "
        "available_at, expires_at, original, remaining, origin_lot_id FROM lots "
        "WHERE member_id = :m ORDER BY expires_at, lot_id",
        m=member_id,
    )


# --- transfers -------------------------------------------------------------------------


async def test_transfers_are_refused_when_the_program_disables_them(
    client_with_rules, make_merchant, keys, sync_engine
):
    async with client_with_rules(**NO_BONUSES) as disabled:  # transfers_enabled=False
        shop = await make_merchant(earnRate="1")
        sender, receiver = await enrol(disabled, shop), await enrol(disabled, shop)
        await earned(disabled, shop, sender, 10_000)
        before = row_counts(sync_engine)
        refused = await transfer(disabled, keys.hq_admin, sender, receiver, 10)
        assert_problem(refused, 403, "feature-disabled")
        assert row_counts(sync_engine) == before
        assert stored(sync_engine, sender) == (100, 0)


async def test_transfer_moves_lots_with_their_identity(client, shop, other_shop, keys, sync_engine):
    sender, receiver = await enrol(client, shop), await enrol(client, shop)
    await earned(client, shop, sender, 10_000, occurred_at=now_iso(-timedelta(days=2)))  # 100
    await earned(client, other_shop, sender, 2_500, occurred_at=now_iso(-timedelta(days=1)))  # 50
    await earned(client, shop, receiver, 1_000)  # the receiver's own 10

    moved = await transfer(client, keys.hq_admin, sender, receiver, 120)
    assert moved.status_code == 201, moved.text
    body = moved.json()
    # 100 from shop's lot (expires first) + 20 from other_shop's; 150 - 120 = 30; 10 + 120
    assert (body["points"], body["senderBalance"], body["receiverBalance"]) == (120, 30, 130)
    assert stored(sync_engine, sender) == (30, 0)
    assert stored(sync_engine, receiver) == (130, 0)

    sender_lots = {row.lot_id: row for row in lot_rows(sync_engine, sender)}
    copies = [row for row in lot_rows(sync_engine, receiver) if row.source == "transfer"]
    assert sorted(row.original for row in copies) == [20, 100]
    for copy in copies:
        origin = sender_lots[copy.origin_lot_id]
        assert (copy.issuing_merchant_id, copy.funder_merchant_id) == (
            origin.issuing_merchant_id,
            origin.funder_merchant_id,
        )
        assert (copy.earned_at, copy.available_at, copy.expires_at) == (
            origin.earned_at,
            origin.available_at,
            origin.expires_at,
        )
        assert copy.remaining == copy.original
    assert {str(copy.issuing_merchant_id): copy.original for copy in copies} == {
        shop.merchant_id: 100,
        other_shop.merchant_id: 20,
    }
    assert sorted((row.original, row.remaining) for row in sender_lots.values()) == [
        (50, 30),
        (100, 0),
    ]
    # Each side is its own balanced transaction through the transfer clearing account.
    sides = rows(
        sync_engine,
        "SELECT t.kind, p.account, p.amount FROM ledger_transactions t JOIN postings p "
        "USING (member_id, transaction_id) WHERE t.kind LIKE 'transfer%' ORDER BY 1, 2",
    )
    assert [tuple(row) for row in sides] == [
        ("transfer_in", "member", 120),
        ("transfer_in", "transfer_clearing", -120),
        ("transfer_out", "member", -120),
        ("transfer_out", "transfer_clearing", 120),
    ]
    # The receiver spends them like its own points.
    assert (await redeem(client, shop, receiver, 130)).json()["balance"] == 0


@pytest.mark.parametrize("first_lots_read", [2, 64])
async def test_transfer_moves_the_first_lots_to_expire_however_many_are_read_first(
    client, shop, keys, sync_engine, monkeypatch, first_lots_read
):
    """A transfer plans from the sender's first lots by expiry, and from all of them when
    it reaches past those (2 read: the third lot is needed)."""
    monkeypatch.setattr(redemption, "FIRST_LOTS_READ", first_lots_read)
    sender, receiver = await enrol(client, shop), await enrol(client, shop)
    for days_ago in (3, 2, 1):  # three lots of 10, oldest first to expire
        await earned(client, shop, sender, 1_000, occurred_at=now_iso(-timedelta(days=days_ago)))
    moved = await transfer(client, keys.hq_admin, sender, receiver, 25)
    assert moved.status_code == 201, moved.text
    assert [(row.original, row.remaining) for row in lot_rows(sync_engine, sender)] == [
        (10, 0),
        (10, 0),
        (10, 5),
    ]
    refused = await transfer(client, keys.hq_admin, sender, receiver, 6)
    body = assert_problem(refused, 409, "insufficient-points")
    assert (body["available"], body["requested"]) == (5, 6)


async def test_transfer_beyond_the_available_points_is_refused(client, shop, keys, sync_engine):
    sender, receiver = await enrol(client, shop), await enrol(client, shop)
    await earned(client, shop, sender, 10_000)  # 100
    await hold(client, shop, sender, 30)  # 70 available
    before = row_counts(sync_engine)
    refused = await transfer(client, keys.hq_admin, sender, receiver, 71)
    body = assert_problem(refused, 409, "insufficient-points")
    assert (body["available"], body["requested"]) == (70, 71)
    assert row_counts(sync_engine) == before
    assert (await transfer(client, keys.hq_admin, sender, receiver, 70)).status_code == 201
    assert stored(sync_engine, sender) == (30, 0)  # the held 30 stay
    assert stored(sync_engine, receiver) == (70, 0)


async def test_transfer_from_a_member_in_debt_is_refused(client, shop, keys, sync_engine):
    sender, receiver = await enrol(client, shop), await enrol(client, shop)
    purchase = await earned(client, shop, sender, 10_000)
    await redeem(client, shop, sender, 100)
    await refund(client, shop, purchase["transactionId"], 5_000)  # 50 clawed back: debt 50
    body = assert_problem(
        await transfer(client, keys.hq_admin, sender, receiver, 10), 409, "insufficient-points"
    )
    assert body["debt"] == 50


async def test_transfer_bad_requests(client, shop, keys, sync_engine):
    sender, receiver = await enrol(client, shop), await enrol(client, shop)
    await earned(client, shop, sender, 10_000)
    before = row_counts(sync_engine)
    assert_problem(await transfer(client, keys.hq_admin, sender, sender, 10), 422, "invalid-input")
    assert_problem(
        await transfer(client, keys.hq_admin, sender, receiver, 0), 400, "invalid-request"
    )
    assert_problem(
        await transfer(client, keys.hq_admin, sender, str(uuid.uuid4()), 10), 404, "not-found"
    )
    assert_problem(await transfer(client, shop.headers, sender, receiver, 10), 403, "forbidden")
    assert_problem(await transfer(client, keys.hq_analyst, sender, receiver, 10), 403, "forbidden")
    assert row_counts(sync_engine) == before


# --- merges ----------------------------------------------------------------------------


async def merge(client, keys, survivor: str, duplicate: str):
    return await client.post(
        f"/v1/members/{survivor}/merge",
        json={"duplicateMemberId": duplicate, "reason": "same person, two cards"},
        headers=keys.hq_admin,
    )


async def test_merge_moves_lots_and_balance_and_voids_the_duplicates_holds(
    client, shop, other_shop, keys, sync_engine
):
    survivor, duplicate = await enrol(client, shop), await enrol(client, shop)
    await earned(client, shop, survivor, 10_000)  # 100
    await earned(client, shop, duplicate, 20_000)  # 200
    await earned(client, other_shop, duplicate, 2_500)  # 2 points per dollar: 50
    held = (await hold(client, shop, duplicate, 40)).json()

    merged = await merge(client, keys, survivor, duplicate)
    assert merged.status_code == 200, merged.text
    assert stored(sync_engine, survivor) == (350, 0)  # 100 + 200 + 50
    assert stored(sync_engine, duplicate) == (0, 0)
    assert (await balance(client, shop.headers, duplicate))["total"] == 0
    survivor_read = await balance(client, shop.headers, survivor)
    assert (survivor_read["total"], survivor_read["available"], survivor_read["held"]) == (
        350,
        350,
        0,
    )
    # Merged lots keep their source (base points still qualify for tiers) and point back.
    moved = [row for row in lot_rows(sync_engine, survivor) if row.origin_lot_id is not None]
    assert {row.source for row in moved} == {"base"}
    assert sorted((str(row.issuing_merchant_id), row.original) for row in moved) == sorted(
        [(shop.merchant_id, 200), (other_shop.merchant_id, 50)]
    )
    assert all(row.origin_lot_id is not None for row in moved)

    read = (await client.get(f"/v1/holds/{held['holdId']}", headers=shop.headers)).json()
    assert read["status"] == "voided"
    late = await capture(client, shop, held["holdId"])
    assert assert_problem(late, 409, "hold-not-active")["holdStatus"] == "voided"

    # The duplicate is closed for business; its id names the survivor.
    refused = await earn(client, shop, duplicate, 1_000)
    body = assert_problem(refused, 409, "member-not-active")
    assert (body["memberStatus"], body["mergedIntoMemberId"]) == ("merged", survivor)
    kinds = rows(
        sync_engine,
        "SELECT kind, points FROM ledger_transactions WHERE kind LIKE 'merge%' ORDER BY kind",
    )
    assert [tuple(row) for row in kinds] == [("merge_in", 350 - 100), ("merge_out", -250)]


async def test_a_refund_after_a_merge_claws_back_from_the_survivor(client, shop, keys, sync_engine):
    """The purchase's points moved to the survivor with the merge, so its refund takes them
    from there: first from the survivor's copy of the purchase's lot, then as the survivor's
    debt, which the survivor's other points repay at once."""
    survivor, duplicate = await enrol(client, shop), await enrol(client, shop)
    await earned(client, shop, survivor, 10_000)  # the survivor's own 100
    purchase = await earned(client, shop, duplicate, 20_000)  # 200
    assert (await redeem(client, shop, duplicate, 50)).status_code == 201  # 150 left
    assert (await merge(client, keys, survivor, duplicate)).status_code == 200
    assert stored(sync_engine, survivor) == (250, 0)
    (original,) = rows(
        sync_engine,
        "SELECT lot_id FROM lots WHERE member_id = :m AND transaction_id = :t",
        m=duplicate,
        t=purchase["transactionId"],
    )

    def copy_of_the_purchase():
        (row,) = rows(
            sync_engine,
            "SELECT original, remaining, clawed_back FROM lots WHERE origin_lot_id = :l",
            l=original.lot_id,
        )
        return tuple(row)

    half = await refund(client, shop, purchase["transactionId"], 10_000)
    assert half.status_code == 201, half.text
    body = half.json()
    assert (body["memberId"], body["points"], body["debtCreated"]) == (survivor, -100, 0)
    assert (body["balance"], body["debt"]) == (150, 0)
    assert copy_of_the_purchase() == (150, 50, 100)  # no longer qualifying: 100

    rest = await refund(client, shop, purchase["transactionId"], 10_000)
    body = rest.json()
    # 100 more: the copy's last 50, and 50 of debt, repaid from the survivor's own points.
    assert (body["memberId"], body["points"], body["debtCreated"]) == (survivor, -100, 50)
    assert (body["balance"], body["debt"]) == (50, 0)
    assert stored(sync_engine, survivor) == (50, 0)
    assert copy_of_the_purchase() == (150, 0, 150)
    clawed_back = rows(
        sync_engine, "SELECT clawed_back FROM lots WHERE lot_id = :l", l=original.lot_id
    )
    assert clawed_back[0].clawed_back == 200  # the whole purchase, on the purchase's own lot
    # The merchant gets back what it paid for: 200 issued points returned to it.
    (returned,) = rows(
        sync_engine,
        "SELECT sum(p.amount) AS points FROM postings p JOIN ledger_transactions t "
        "USING (member_id, transaction_id) WHERE t.kind = 'refund' AND p.account = 'issued'",
    )
    assert returned.points == 200
    over = await refund(client, shop, purchase["transactionId"], 1)
    assert assert_problem(over, 422, "refund-exceeds-purchase")["refundableMinor"] == 0


async def test_a_merge_takes_the_duplicates_lots_in_an_order_of_the_ledger_alone(
    client, shop, async_engine, sync_engine
):
    """The merge copies lots in the order it reads them, and the copies' ids are drawn in
    that order: reading them by expiry, whatever order the rows lie in, lets the same ledger
    merge to the same copies (the stateful test replays merges and relies on it)."""
    member = await enrol(client, shop)
    for days_ago in (3, 2, 1):
        await earned(client, shop, member, 1_000, occurred_at=now_iso(-timedelta(days=days_ago)))
    by_expiry = [
        row.lot_id
        for row in rows(
            sync_engine,
            "SELECT lot_id FROM lots WHERE member_id = :m ORDER BY expires_at",
            m=member,
        )
    ]
    # An update writes the row's new version after the others: the first lot now lies last.
    execute(sync_engine, "UPDATE lots SET remaining = remaining WHERE lot_id = :l", l=by_expiry[0])
    async with async_engine.connect() as connection:
        # Read the table as it lies, as a sequential scan would, not through an index.
        await connection.execute(text("SET LOCAL enable_indexscan = off"))
        await connection.execute(text("SET LOCAL enable_bitmapscan = off"))
        as_they_lie = (
            await connection.scalars(
                text("SELECT lot_id FROM lots WHERE member_id = :m"), {"m": member}
            )
        ).all()
        assert as_they_lie == [*by_expiry[1:], by_expiry[0]]
        locked = await journal.lock_member(connection, uuid.UUID(member))
        read = await journal.open_lots(connection, locked, spendable_only=False)
    assert [lot.lot_id for lot in read] == by_expiry


async def test_merge_moves_debt_to_the_survivor(client, shop, keys, sync_engine):
    survivor, duplicate = await enrol(client, shop), await enrol(client, shop)
    await earned(client, shop, survivor, 10_000)  # survivor: 100
    purchase = await earned(client, shop, duplicate, 20_000)  # duplicate: 200
    await hold(client, shop, duplicate, 150)  # 150 reserved
    await redeem(client, shop, duplicate, 50)  # the other 50 spent
    clawback = await refund(client, shop, purchase["transactionId"], 20_000)
    # 200 clawed back; the lot has 150, all reserved: all 200 become debt; 150 - 200 = -50
    assert (clawback.json()["debtCreated"], clawback.json()["balance"]) == (200, -50)
    assert stored(sync_engine, duplicate) == (-50, 200)

    assert (await merge(client, keys, survivor, duplicate)).status_code == 200
    # The hold is voided, its 150 move with the 200 debt: the survivor's 100 + 150 = 250 in
    # lots repay the 200 at once: 50 left, no debt.
    assert stored(sync_engine, duplicate) == (0, 0)
    assert stored(sync_engine, survivor) == (50, 0)
    read = await balance(client, shop.headers, survivor)
    assert (read["total"], read["available"], read["debt"]) == (50, 50, 0)


async def test_merge_of_a_debt_larger_than_the_survivors_points(client, shop, keys, sync_engine):
    survivor, duplicate = await enrol(client, shop), await enrol(client, shop)
    await earned(client, shop, survivor, 3_000)  # survivor: 30
    purchase = await earned(client, shop, duplicate, 10_000)  # duplicate: 100
    await redeem(client, shop, duplicate, 100)
    await refund(client, shop, purchase["transactionId"], 10_000)  # debt 100
    assert stored(sync_engine, duplicate) == (-100, 100)

    assert (await merge(client, keys, survivor, duplicate)).status_code == 200
    # 30 - 100: the survivor's 30 repay part of the debt, 70 is still owed
    assert stored(sync_engine, survivor) == (-70, 70)
    assert stored(sync_engine, duplicate) == (0, 0)
    repaid = await earned(client, shop, survivor, 10_000)  # 100: 70 repay, 30 free
    assert (repaid["debtRepaid"], repaid["balance"]) == (70, 30)


async def test_the_duplicates_card_finds_the_survivor_after_a_merge(
    client, shop, keys, sync_engine
):
    survivor, duplicate = await enrol(client, shop), await enrol(client, shop)
    as_hq = (await client.get(f"/v1/members/{duplicate}", headers=keys.hq_admin)).json()
    card = next(item["value"] for item in as_hq["identifiers"] if item["kind"] == "card")
    assert (await merge(client, keys, survivor, duplicate)).status_code == 200
    response = await client.post(
        "/v1/earn",
        json={
            "member": {"kind": "card", "value": card},
            "amountMinor": 1_000,
            "currency": "USD",
            "occurredAt": now_iso(),
        },
        headers={**shop.headers, "Idempotency-Key": "by-card"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["memberId"] == survivor
    assert stored(sync_engine, survivor) == (10, 0)
