"""Bad input on the ledger endpoints: the right problem type, and nothing written.

Every case checks the exact status and problem `type`, then that the ledger tables
(transactions, postings, lots, allocations, holds, reservations, idempotency records) and
every member's stored balance, lot and hold are exactly as before.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest

from api.app import create_app
from shared import api_keys
from shared.access import SYSTEM, Role
from shared.identifiers import generate_card_number
from tests.conftest import _truncate_all
from tests.integration.conftest import MERCHANT_BODY, bearer, client_for
from tests.integration.ledger_support import (
    assert_ledger_consistent,
    assert_problem,
    by_id,
    now_iso,
    row_counts,
    rows,
)


@dataclass
class World:
    admin: dict[str, str]
    analyst: dict[str, str]
    shop: dict[str, str]
    shop_id: str
    other_shop: dict[str, str]
    other_store_id: str
    suspended_shop: dict[str, str]
    greedy_shop: dict[str, str]  # the largest earn rate the API accepts
    member: str  # active, 100 points
    card: str
    suspended: str
    closed: str
    merged: str
    survivor: str
    earn_id: str  # the member's $100.00 earn at shop
    redemption_id: str
    hold_id: str  # the member's active 20-point hold at shop


@pytest.fixture(scope="module")
async def client(async_engine, test_settings, sync_engine) -> AsyncIterator[httpx.AsyncClient]:
    """One app for the module: refused requests write nothing, so every case shares one
    world (built once), and the tables are emptied when the module ends."""
    program = test_settings.program.model_copy(
        update={
            "enrolment_bonus_points": 0,
            "profile_completion_bonus_points": 0,
            "min_redemption_points": 10,
        }
    )
    settings = test_settings.model_copy(update={"program": program})
    async with client_for(create_app(settings, engine=async_engine)) as test_client:
        yield test_client
    _truncate_all(sync_engine)


async def _ok(response: httpx.Response, status: int = 201) -> dict:
    assert response.status_code == status, response.text
    return response.json()


def _key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


@pytest.fixture(scope="module")
async def world(client, async_engine) -> World:
    async with async_engine.begin() as connection:
        admin = bearer(
            (await api_keys.issue_key(connection, SYSTEM, role=Role.HQ_ADMIN, label="t")).secret
        )
        analyst = bearer(
            (await api_keys.issue_key(connection, SYSTEM, role=Role.HQ_ANALYST, label="t")).secret
        )

    async def merchant(name: str, earn_rate: str = "1") -> tuple[str, dict[str, str]]:
        body = {**MERCHANT_BODY, "name": name, "earnRate": earn_rate}
        merchant_id = (await _ok(await client.post("/v1/merchants", json=body, headers=admin)))[
            "merchantId"
        ]
        issued = await client.post(
            f"/v1/merchants/{merchant_id}/api-keys", json={"label": "pos"}, headers=admin
        )
        return merchant_id, bearer((await _ok(issued))["secret"])

    shop_id, shop = await merchant("Shop A")
    other_id, other_shop = await merchant("Shop B")
    suspended_id, suspended_shop = await merchant("Shop C")
    _, greedy_shop = await merchant("Shop D", earn_rate="99999999.9999")
    store = await client.post(
        f"/v1/merchants/{other_id}/stores",
        json={"code": "B-001", "name": "Shop B High Street"},
        headers=admin,
    )
    other_store_id = (await _ok(store))["storeId"]

    async def member() -> dict:
        return await _ok(await client.post("/v1/members", json={}, headers=shop))

    async def earn(member_id: str) -> dict:
        body = {
            "member": by_id(member_id),
            "amountMinor": 10_000,
            "currency": "USD",
            "occurredAt": now_iso(),
        }
        return await _ok(await client.post("/v1/earn", json=body, headers={**shop, **_key()}))

    active, suspended, closed, merged, survivor = [await member() for _ in range(5)]
    earn_id = (await earn(active["memberId"]))["transactionId"]
    spent = await client.post(
        "/v1/redemptions",
        json={"member": by_id(active["memberId"]), "points": 10, "currency": "USD"},
        headers={**shop, **_key()},
    )
    reversal_target = (await _ok(spent))["transactionId"]
    await earn(active["memberId"])  # 100 - 10 + 100 = 190
    held = await client.post(
        "/v1/holds",
        json={"member": by_id(active["memberId"]), "points": 20},
        headers={**shop, **_key()},
    )
    hold_id = (await _ok(held))["holdId"]
    for target in (suspended, closed, merged, survivor):
        await earn(target["memberId"])
    for target, status in ((suspended, "suspended"), (closed, "closed")):
        changed = await client.post(
            f"/v1/members/{target['memberId']}/status",
            json={"status": status, "reason": "test of a refused write"},
            headers=admin,
        )
        await _ok(changed, 200)
    merging = await client.post(
        f"/v1/members/{survivor['memberId']}/merge",
        json={"duplicateMemberId": merged["memberId"], "reason": "same person"},
        headers=admin,
    )
    await _ok(merging, 200)
    await _ok(await client.post(f"/v1/merchants/{suspended_id}/suspend", headers=admin), 200)
    card = next(item["value"] for item in active["identifiers"] if item["kind"] == "card")
    return World(
        admin=admin,
        analyst=analyst,
        shop=shop,
        shop_id=shop_id,
        other_shop=other_shop,
        other_store_id=other_store_id,
        suspended_shop=suspended_shop,
        greedy_shop=greedy_shop,
        member=active["memberId"],
        card=card,
        suspended=suspended["memberId"],
        closed=closed["memberId"],
        merged=merged["memberId"],
        survivor=survivor["memberId"],
        earn_id=earn_id,
        redemption_id=reversal_target,
        hold_id=hold_id,
    )


def snapshot(sync_engine) -> dict[str, Any]:
    return {
        **row_counts(sync_engine),
        "balances": sorted(
            tuple(row)
            for row in rows(
                sync_engine,
                "SELECT member_id, balance, debt, lifetime_earned, lifetime_redeemed "
                "FROM member_balances",
            )
        ),
        "lots": sorted(
            tuple(row)
            for row in rows(sync_engine, "SELECT lot_id, remaining, reserved, expires_at FROM lots")
        ),
        "holds": sorted(
            tuple(row) for row in rows(sync_engine, "SELECT hold_id, status FROM holds")
        ),
        "members": sorted(
            tuple(row) for row in rows(sync_engine, "SELECT member_id, status, tier FROM members")
        ),
    }


@pytest.fixture
def unchanged(world, sync_engine):
    """The state before the request; the test asserts it is the same after."""
    before = snapshot(sync_engine)
    yield lambda: snapshot(sync_engine) == before
    assert_ledger_consistent(sync_engine)


# --- the cases -------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    path: str  # formatted with the world's fields
    body: Callable[[World], dict]
    status: int
    slug: str
    who: str = "shop"  # which World header set calls
    keyed: bool = True
    extensions: Callable[[World], dict] = lambda world: {}


def earn_body(world: World, **changes: Any) -> dict:
    return {
        "member": by_id(world.member),
        "amountMinor": 10_000,
        "currency": "USD",
        "occurredAt": now_iso(),
        **changes,
    }


def redeem_body(world: World, **changes: Any) -> dict:
    return {"member": by_id(world.member), "points": 10, "currency": "USD", **changes}


def hold_body(world: World, **changes: Any) -> dict:
    return {"member": by_id(world.member), "points": 10, **changes}


EARN = "/v1/earn"
UNKNOWN_CARD = generate_card_number("7300", random.Random(1))  # valid check digit, no owner
REDEEM = "/v1/redemptions"
HOLD = "/v1/holds"
CASES = [
    # amounts
    Case("earn-zero", EARN, lambda w: earn_body(w, amountMinor=0), 400, "invalid-request"),
    Case("earn-negative", EARN, lambda w: earn_body(w, amountMinor=-100), 400, "invalid-request"),
    Case(
        "earn-over-limit",
        EARN,
        lambda w: earn_body(w, amountMinor=10**12 + 1),
        400,
        "invalid-request",
    ),
    Case("earn-huge", EARN, lambda w: earn_body(w, amountMinor=10**30), 400, "invalid-request"),
    Case(
        # floor(10^10 dollars x 99999999.9999) = 999999999999000000 points > 10^12 per earn:
        # five such earns used to overflow the BIGINT balance (a 500)
        "earn-too-many-points",
        EARN,
        lambda w: earn_body(w, amountMinor=10**12),
        422,
        "invalid-input",
        who="greedy_shop",
    ),
    Case("earn-float", EARN, lambda w: earn_body(w, amountMinor=100.5), 400, "invalid-request"),
    Case(
        "earn-line-items-exceed",
        EARN,
        lambda w: earn_body(w, lineItems=[{"amountMinor": 10_001, "category": "groceries"}]),
        422,
        "invalid-input",
    ),
    # currency
    Case("earn-eur", EARN, lambda w: earn_body(w, currency="EUR"), 422, "currency-mismatch"),
    Case("earn-lowercase", EARN, lambda w: earn_body(w, currency="usd"), 400, "invalid-request"),
    Case("redeem-eur", REDEEM, lambda w: redeem_body(w, currency="EUR"), 422, "currency-mismatch"),
    # members
    Case(
        "earn-unknown-member",
        EARN,
        lambda w: earn_body(w, member=by_id(str(uuid.uuid4()))),
        404,
        "not-found",
    ),
    Case(
        "earn-unknown-card",
        EARN,
        lambda w: earn_body(w, member={"kind": "card", "value": UNKNOWN_CARD}),
        404,
        "not-found",
    ),
    Case(
        "earn-member-id-not-uuid",
        EARN,
        lambda w: earn_body(w, member=by_id("not-a-uuid")),
        422,
        "invalid-input",
    ),
    Case(
        "earn-suspended",
        EARN,
        lambda w: earn_body(w, member=by_id(w.suspended)),
        409,
        "member-not-active",
        extensions=lambda w: {"memberStatus": "suspended"},
    ),
    Case(
        "earn-closed",
        EARN,
        lambda w: earn_body(w, member=by_id(w.closed)),
        409,
        "member-not-active",
        extensions=lambda w: {"memberStatus": "closed"},
    ),
    Case(
        "earn-merged",
        EARN,
        lambda w: earn_body(w, member=by_id(w.merged)),
        409,
        "member-not-active",
        extensions=lambda w: {"memberStatus": "merged", "mergedIntoMemberId": w.survivor},
    ),
    Case(
        "redeem-suspended",
        REDEEM,
        lambda w: redeem_body(w, member=by_id(w.suspended)),
        409,
        "member-not-active",
    ),
    Case(
        "redeem-merged",
        REDEEM,
        lambda w: redeem_body(w, member=by_id(w.merged)),
        409,
        "member-not-active",
        extensions=lambda w: {"mergedIntoMemberId": w.survivor},
    ),
    Case(
        "hold-closed",
        HOLD,
        lambda w: hold_body(w, member=by_id(w.closed)),
        409,
        "member-not-active",
    ),
    # time
    Case(
        "earn-future",
        EARN,
        lambda w: earn_body(w, occurredAt=now_iso(timedelta(hours=1))),
        422,
        "invalid-input",
    ),
    Case(
        "earn-31-days-ago",
        EARN,
        lambda w: earn_body(w, occurredAt=now_iso(-timedelta(days=31))),
        422,
        "invalid-input",
    ),
    Case(
        "earn-no-timezone",
        EARN,
        lambda w: earn_body(w, occurredAt=now_iso()[:19]),
        400,
        "invalid-request",
    ),
    Case(
        "earn-not-a-date",
        EARN,
        lambda w: earn_body(w, occurredAt="yesterday"),
        400,
        "invalid-request",
    ),
    # redemption rules
    Case(
        "redeem-below-minimum",
        REDEEM,
        lambda w: redeem_body(w, points=9),
        422,
        "below-minimum-redemption",
        extensions=lambda w: {"minimum": 10},
    ),
    Case("redeem-zero", REDEEM, lambda w: redeem_body(w, points=0), 400, "invalid-request"),
    Case(
        "redeem-over-limit",
        REDEEM,
        lambda w: redeem_body(w, points=10**9 + 1),
        400,
        "invalid-request",
    ),
    Case(
        "redeem-points-and-cash",
        REDEEM,
        lambda w: redeem_body(w, purchaseAmountMinor=5_000),
        422,
        "invalid-input",
    ),
    Case(
        "redeem-neither",
        REDEEM,
        lambda w: {"member": by_id(w.member), "currency": "USD"},
        422,
        "invalid-input",
    ),
    Case(
        "redeem-more-than-available",
        REDEEM,
        lambda w: redeem_body(w, points=171),  # 190 - 20 held = 170 available
        409,
        "insufficient-points",
        extensions=lambda w: {"available": 170, "requested": 171},
    ),
    Case(
        "hold-below-minimum",
        HOLD,
        lambda w: hold_body(w, points=9),
        422,
        "below-minimum-redemption",
    ),
    Case("hold-ttl-zero", HOLD, lambda w: hold_body(w, ttlSeconds=0), 400, "invalid-request"),
    Case(
        "hold-ttl-beyond-max",
        HOLD,
        lambda w: hold_body(w, ttlSeconds=8 * 86400),  # the program's maximum is 7 days
        422,
        "invalid-input",
    ),
    Case(
        "capture-beyond-hold",
        "/v1/holds/{hold_id}/capture",
        lambda w: {"points": 21},
        422,
        "invalid-input",
    ),
    Case(
        "capture-zero",
        "/v1/holds/{hold_id}/capture",
        lambda w: {"points": 0},
        400,
        "invalid-request",
    ),
    Case(
        "capture-other-merchant",
        "/v1/holds/{hold_id}/capture",
        lambda w: {},
        404,
        "not-found",
        who="other_shop",
    ),
    Case(
        "capture-unknown-hold",
        f"/v1/holds/{uuid.uuid4()}/capture",
        lambda w: {},
        404,
        "not-found",
    ),
    # stores, corrections
    Case(
        "earn-other-merchants-store",
        EARN,
        lambda w: earn_body(w, storeId=w.other_store_id),
        404,
        "not-found",
    ),
    Case(
        "redeem-other-merchants-store",
        REDEEM,
        lambda w: redeem_body(w, storeId=w.other_store_id),
        404,
        "not-found",
    ),
    Case(
        "hold-other-merchants-store",
        HOLD,
        lambda w: hold_body(w, storeId=w.other_store_id),
        404,
        "not-found",
    ),
    Case(
        "refund-zero",
        "/v1/transactions/{earn_id}/refunds",
        lambda w: {"amountMinor": 0},
        400,
        "invalid-request",
    ),
    Case(
        "refund-beyond-purchase",
        "/v1/transactions/{earn_id}/refunds",
        lambda w: {"amountMinor": 10_001},
        422,
        "refund-exceeds-purchase",
        extensions=lambda w: {"refundableMinor": 10_000},
    ),
    Case(
        "refund-of-a-redemption",
        "/v1/transactions/{redemption_id}/refunds",
        lambda w: {"amountMinor": 100},
        404,
        "not-found",
    ),
    Case(
        "refund-other-merchant",
        "/v1/transactions/{earn_id}/refunds",
        lambda w: {"amountMinor": 100},
        404,
        "not-found",
        who="other_shop",
    ),
    Case(
        "reversal-of-an-earn",
        "/v1/transactions/{earn_id}/reversal",
        lambda w: {},
        404,
        "not-found",
    ),
    Case(
        "reversal-other-merchant",
        "/v1/transactions/{redemption_id}/reversal",
        lambda w: {},
        404,
        "not-found",
        who="other_shop",
    ),
    # who may call
    Case("earn-hq-admin", EARN, earn_body, 403, "forbidden", who="admin"),
    Case("earn-analyst", EARN, earn_body, 403, "forbidden", who="analyst"),
    Case("redeem-analyst", REDEEM, redeem_body, 403, "forbidden", who="analyst"),
    Case("earn-no-key", EARN, earn_body, 401, "unauthenticated", who="nobody"),
    Case(
        "earn-suspended-merchant", EARN, earn_body, 403, "merchant-not-active", who="suspended_shop"
    ),
    Case(
        "redeem-suspended-merchant",
        REDEEM,
        redeem_body,
        403,
        "merchant-not-active",
        who="suspended_shop",
    ),
    # shape
    Case("earn-unknown-field", EARN, lambda w: earn_body(w, points=5), 400, "invalid-request"),
    Case("earn-no-key-no-reference", EARN, earn_body, 400, "idempotency-key-required", keyed=False),
    Case(
        "adjust-zero",
        "/v1/members/{member}/adjustments",
        lambda w: {"points": 0, "reason": "nothing at all"},
        422,
        "invalid-input",
        who="admin",
    ),
    Case(
        "adjust-by-merchant",
        "/v1/members/{member}/adjustments",
        lambda w: {"points": 5, "reason": "a merchant cannot"},
        403,
        "forbidden",
    ),
    Case(
        "adjust-merged",
        "/v1/members/{merged}/adjustments",
        lambda w: {"points": 5, "reason": "goodwill"},
        409,
        "member-not-active",
        who="admin",
        extensions=lambda w: {"mergedIntoMemberId": w.survivor},
    ),
]


def headers_for(world: World, case: Case) -> dict[str, str]:
    headers = {
        "shop": world.shop,
        "other_shop": world.other_shop,
        "suspended_shop": world.suspended_shop,
        "greedy_shop": world.greedy_shop,
        "admin": world.admin,
        "analyst": world.analyst,
        "nobody": {},
    }[case.who]
    return {**headers, **_key()} if case.keyed else dict(headers)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_refused_and_nothing_written(client, world, unchanged, case):
    path = case.path.format(**vars(world))
    response = await client.post(path, json=case.body(world), headers=headers_for(world, case))
    body = assert_problem(response, case.status, case.slug)
    for name, value in case.extensions(world).items():
        assert body[name] == value, body
    assert unchanged()


async def test_malformed_json_is_refused(client, world, unchanged):
    response = await client.post(
        EARN,
        content=b'{"member": {"kind": "member_id", "value": ',
        headers={**world.shop, **_key(), "Content-Type": "application/json"},
    )
    assert_problem(response, 400, "invalid-request")
    assert unchanged()


async def test_the_world_is_as_built(client, world, unchanged):
    """The shared world's numbers, so that the cases above start from a known state."""
    read = (await client.get(f"/v1/members/{world.member}/balance", headers=world.shop)).json()
    # 100 - 10 + 100 = 190 in lots, 20 held
    assert (read["total"], read["available"], read["held"], read["debt"]) == (190, 170, 20, 0)
    survivor = (
        await client.get(f"/v1/members/{world.survivor}/balance", headers=world.shop)
    ).json()
    assert survivor["total"] == 200  # its own 100 + the merged member's 100
    assert unchanged()
