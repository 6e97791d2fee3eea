"""Exactly-once ledger writes: concurrent duplicates, `reference` as the key, failed
requests that leave the key free, keys scoped per merchant."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import text

from shared import idempotency
from tests.integration.ledger_support import (
    EXACT_RULES,
    assert_problem,
    by_id,
    earn,
    earned,
    now_iso,
    row_counts,
    rows,
    scalar,
    stored,
)

pytestmark = pytest.mark.usefixtures("ledger_stays_consistent")


@pytest.fixture
async def client(client_with_rules):
    """No behaviour bonuses and a 10-point minimum: every balance below is exact."""
    async with client_with_rules(**EXACT_RULES) as test_client:
        yield test_client


def transactions(sync_engine, kind: str) -> int:
    return scalar(sync_engine, "SELECT count(*) FROM ledger_transactions WHERE kind = :k", k=kind)


async def test_twenty_concurrent_identical_earns_post_once(client, shop, member, sync_engine):
    body = {
        "member": by_id(member),
        "amountMinor": 4_599,
        "currency": "USD",
        "occurredAt": now_iso(),
    }
    headers = {**shop.headers, "Idempotency-Key": "till-3-000042"}
    responses = await asyncio.gather(
        *(client.post("/v1/earn", json=body, headers=headers) for _ in range(20))
    )
    assert [response.status_code for response in responses] == [201] * 20
    first = responses[0].json()
    assert all(response.json() == first for response in responses)
    assert first["points"] == 45  # floor(45.99 x 1)
    assert first["balance"] == 45
    replayed = [response.headers.get("idempotent-replayed") for response in responses]
    assert replayed.count(None) == 1  # one request ran; 19 replayed its stored response
    assert transactions(sync_engine, "earn") == 1
    assert scalar(sync_engine, "SELECT count(*) FROM postings") == 2
    assert scalar(sync_engine, "SELECT count(*) FROM lots") == 1
    assert scalar(sync_engine, "SELECT count(*) FROM idempotency_records") == 1
    assert stored(sync_engine, member) == (45, 0)


async def test_concurrent_identical_redemptions_and_refunds_post_once(
    client, shop, member, sync_engine
):
    purchase = await earned(client, shop, member, 10_000)  # 100
    redeem_body = {"member": by_id(member), "points": 30, "currency": "USD"}
    redeem_headers = {**shop.headers, "Idempotency-Key": "redeem-1"}
    refund_headers = {**shop.headers, "Idempotency-Key": "refund-1"}
    responses = await asyncio.gather(
        *(
            client.post("/v1/redemptions", json=redeem_body, headers=redeem_headers)
            for _ in range(8)
        ),
        *(
            client.post(
                f"/v1/transactions/{purchase['transactionId']}/refunds",
                json={"amountMinor": 5_000},
                headers=refund_headers,
            )
            for _ in range(8)
        ),
    )
    assert {response.status_code for response in responses} == {201}
    assert len({response.text for response in responses[:8]}) == 1
    assert len({response.text for response in responses[8:]}) == 1
    assert transactions(sync_engine, "redeem") == 1
    assert transactions(sync_engine, "refund") == 1
    # 100 - 30 redeemed - floor(100 x 5000 / 10000) = 50 clawed back
    assert stored(sync_engine, member) == (20, 0)


async def test_reference_is_the_key_when_no_header_is_sent(client, shop, member, sync_engine):
    body = {
        "member": by_id(member),
        "amountMinor": 2_000,
        "currency": "USD",
        "occurredAt": now_iso(),
        "reference": "POS-0042-20261123-0007",
    }
    first = await client.post("/v1/earn", json=body, headers=shop.headers)
    assert first.status_code == 201, first.text
    again = await client.post("/v1/earn", json=body, headers=shop.headers)
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert transactions(sync_engine, "earn") == 1
    (record,) = rows(sync_engine, "SELECT idempotency_key, status_code FROM idempotency_records")
    # A body reference is namespaced by the route: a basket number may serve earn and redeem.
    assert tuple(record) == ("/v1/earn:POS-0042-20261123-0007", 201)
    (transaction,) = rows(sync_engine, "SELECT external_reference FROM ledger_transactions")
    assert transaction.external_reference == "POS-0042-20261123-0007"

    # The same reference with another amount is another request under a used key.
    reused = await client.post(
        "/v1/earn", json={**body, "amountMinor": 2_001}, headers=shop.headers
    )
    assert_problem(reused, 409, "idempotency-key-reused")
    # A header key takes precedence over the reference.
    keyed = await client.post(
        "/v1/earn", json=body, headers={**shop.headers, "Idempotency-Key": "header-key"}
    )
    assert keyed.status_code == 201
    assert keyed.headers.get("idempotent-replayed") is None
    assert transactions(sync_engine, "earn") == 2
    assert stored(sync_engine, member) == (40, 0)  # 20 + 20


async def test_a_write_without_key_or_reference_is_refused(client, shop, member, sync_engine):
    before = row_counts(sync_engine)
    response = await client.post(
        "/v1/earn",
        json={
            "member": by_id(member),
            "amountMinor": 2_000,
            "currency": "USD",
            "occurredAt": now_iso(),
        },
        headers=shop.headers,
    )
    assert_problem(response, 400, "idempotency-key-required")
    empty = await client.post(
        "/v1/redemptions",
        json={"member": by_id(member), "points": 10, "currency": "USD"},
        headers={**shop.headers, "Idempotency-Key": ""},
    )
    assert_problem(empty, 400, "idempotency-key-required")
    too_long = await earn(client, shop, member, 2_000, key="k" * 256)
    assert_problem(too_long, 422, "invalid-input")
    assert row_counts(sync_engine) == before


async def test_a_failed_request_does_not_burn_its_key(client, shop, member, sync_engine):
    body = {"member": by_id(member), "points": 50, "currency": "USD"}
    headers = {**shop.headers, "Idempotency-Key": "redeem-after-earn"}
    refused = await client.post("/v1/redemptions", json=body, headers=headers)
    assert_problem(refused, 409, "insufficient-points")
    assert scalar(sync_engine, "SELECT count(*) FROM idempotency_records") == 0

    await earned(client, shop, member, 10_000)  # 100
    retried = await client.post("/v1/redemptions", json=body, headers=headers)
    assert retried.status_code == 201, retried.text
    assert retried.headers.get("idempotent-replayed") is None
    assert retried.json()["balance"] == 50  # 100 - 50
    replay = await client.post("/v1/redemptions", json=body, headers=headers)
    assert replay.json() == retried.json()
    assert transactions(sync_engine, "redeem") == 1
    assert stored(sync_engine, member) == (50, 0)


async def test_replay_returns_the_original_response_after_the_balance_moved(
    client, shop, member, sync_engine
):
    at = now_iso()
    first = await earn(client, shop, member, 1_000, key="k-1", occurred_at=at)
    await earned(client, shop, member, 5_000)
    replay = await earn(client, shop, member, 1_000, key="k-1", occurred_at=at)
    assert replay.json() == first.json()
    assert replay.json()["balance"] == 10  # the balance when it ran, not the 60 of now
    assert stored(sync_engine, member) == (60, 0)


async def test_a_key_used_on_another_endpoint_is_refused(client, shop, member, sync_engine):
    await earn(client, shop, member, 10_000, key="shared-key")
    redeem = await client.post(
        "/v1/redemptions",
        json={"member": by_id(member), "points": 10, "currency": "USD"},
        headers={**shop.headers, "Idempotency-Key": "shared-key"},
    )
    assert_problem(redeem, 409, "idempotency-key-reused")
    assert transactions(sync_engine, "redeem") == 0


async def test_keys_are_scoped_per_merchant(client, shop, other_shop, member, sync_engine):
    at = now_iso()
    mine = await earn(client, shop, member, 1_000, key="till-1", occurred_at=at)
    theirs = await earn(client, other_shop, member, 1_000, key="till-1", occurred_at=at)
    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert theirs.headers.get("idempotent-replayed") is None
    assert mine.json()["transactionId"] != theirs.json()["transactionId"]
    assert transactions(sync_engine, "earn") == 2
    assert stored(sync_engine, member) == (20, 0)


async def test_hq_writes_are_idempotent_too(client, shop, member, keys, sync_engine):
    body = {"points": 25, "reason": "goodwill after a complaint"}
    headers = {**keys.hq_admin, "Idempotency-Key": "adj-1"}
    responses = await asyncio.gather(
        *(
            client.post(f"/v1/members/{member}/adjustments", json=body, headers=headers)
            for _ in range(5)
        )
    )
    assert {response.status_code for response in responses} == {201}
    assert len({response.text for response in responses}) == 1
    assert transactions(sync_engine, "adjustment") == 1
    assert stored(sync_engine, member) == (25, 0)


async def test_a_retry_that_would_now_fail_replays_the_original_success(
    client, shop, member, sync_engine
):
    """The key is recorded at the end of the write, so a retry runs the operation again
    before it finds the key: a redemption retried after the points were spent elsewhere,
    a hold retried after it reserved them, a reversal retried after it reversed, each get
    their original answer and write nothing."""
    await earned(client, shop, member, 10_000)  # 100
    spend = {"member": by_id(member), "points": 80, "currency": "USD"}
    spend_headers = {**shop.headers, "Idempotency-Key": "spend-80"}
    first = await client.post("/v1/redemptions", json=spend, headers=spend_headers)
    assert first.status_code == 201, first.text
    reserve = {"member": by_id(member), "points": 20}
    reserve_headers = {**shop.headers, "Idempotency-Key": "hold-20"}
    held = await client.post("/v1/holds", json=reserve, headers=reserve_headers)
    assert held.status_code == 201, held.text
    reversal_headers = {**shop.headers, "Idempotency-Key": "reverse-spend-80"}
    reversal_path = f"/v1/transactions/{first.json()['transactionId']}/reversal"
    reversed_ = await client.post(reversal_path, json={}, headers=reversal_headers)
    assert reversed_.status_code == 201, reversed_.text
    await client.post(  # spend the 80 that came back, so a second redemption of 80 fails
        "/v1/redemptions",
        json=spend,
        headers={**shop.headers, "Idempotency-Key": "spend-80-again"},
    )
    before = row_counts(sync_engine)

    for path, body, headers, original in [
        ("/v1/redemptions", spend, spend_headers, first),
        ("/v1/holds", reserve, reserve_headers, held),
        (reversal_path, {}, reversal_headers, reversed_),
    ]:
        retry = await client.post(path, json=body, headers=headers)
        assert retry.status_code == 201, (path, retry.text)
        assert retry.headers["idempotent-replayed"] == "true"
        assert retry.content == original.content
    assert row_counts(sync_engine) == before
    assert transactions(sync_engine, "redeem") == 2
    assert transactions(sync_engine, "reversal") == 1


async def test_a_reused_key_is_refused_even_when_the_new_request_would_fail(
    client, shop, member, sync_engine
):
    await earn(client, shop, member, 10_000, key="basket-7")  # 100 points
    before = row_counts(sync_engine)
    too_much = await client.post(
        "/v1/redemptions",
        json={"member": by_id(member), "points": 5_000, "currency": "USD"},
        headers={**shop.headers, "Idempotency-Key": "basket-7"},
    )
    assert_problem(too_much, 409, "idempotency-key-reused")
    assert row_counts(sync_engine) == before


async def test_a_key_purged_between_the_conflict_and_the_lookup_runs_the_write_again(
    client, shop, member, sync_engine, monkeypatch
):
    """Taken, then gone: only a purge of old keys could do it (there is none today). The key
    is free again, so the retry runs as a new request instead of replaying nothing."""
    at = now_iso()
    first = await earn(client, shop, member, 1_000, key="k-purged", occurred_at=at)
    assert first.status_code == 201, first.text

    real_lookup = idempotency.stored_response
    lookups = []

    async def lookup_after_a_purge(connection, scope_id, key, fingerprint):
        if not lookups:  # the purge lands between the retry's conflict and its lookup
            await connection.execute(text("DELETE FROM idempotency_records"))
            await connection.commit()
        lookups.append(key)
        return await real_lookup(connection, scope_id, key, fingerprint)

    monkeypatch.setattr(idempotency, "stored_response", lookup_after_a_purge)
    retry = await earn(client, shop, member, 1_000, key="k-purged", occurred_at=at)
    assert retry.status_code == 201, retry.text
    assert retry.headers.get("idempotent-replayed") is None
    assert retry.json()["transactionId"] != first.json()["transactionId"]
    assert lookups == ["k-purged"]  # looked once, found nothing, ran again and recorded
    assert transactions(sync_engine, "earn") == 2
    assert stored(sync_engine, member) == (20, 0)
    recorded = scalar(
        sync_engine,
        "SELECT response_body FROM idempotency_records WHERE idempotency_key = :k",
        k="k-purged",
    )
    assert json.loads(recorded) == retry.json()
