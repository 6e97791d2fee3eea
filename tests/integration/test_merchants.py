from __future__ import annotations

import uuid
from datetime import datetime

import pytest

from tests.integration.conftest import MERCHANT_BODY

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
STORE_BODY = {"code": "PAR-001", "name": "Paris Bastille", "city": "Paris", "country": "FR"}


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


def assert_problem(response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"] == f"/problems/{slug}"
    assert body["status"] == status
    return body


async def create_merchant(client, keys, **overrides) -> dict:
    response = await client.post(
        "/v1/merchants", json={**MERCHANT_BODY, **overrides}, headers=keys.hq_admin
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_hq_admin_creates_reads_updates_and_lists_merchants(client, keys):
    created = await client.post("/v1/merchants", json=MERCHANT_BODY, headers=keys.hq_admin)
    assert created.status_code == 201
    merchant = created.json()
    assert merchant["earnRate"] == "1.5000"
    assert merchant["issuancePrice"] == "0.010000"
    assert merchant["status"] == "active"

    updated = await client.patch(
        f"/v1/merchants/{merchant['merchantId']}",
        json={"earnRate": "2", "name": "Greenleaf"},
        headers=keys.hq_admin,
    )
    assert updated.status_code == 200
    assert updated.json()["earnRate"] == "2.0000"
    assert updated.json()["name"] == "Greenleaf"
    assert updated.json()["redemptionRate"] == "0.008000"

    listing = await client.get("/v1/merchants", headers=keys.hq_analyst)
    assert listing.status_code == 200
    assert listing.json()["total"] == 1
    assert [item["name"] for item in listing.json()["items"]] == ["Greenleaf"]


# Merchants


async def test_create_returns_every_field_with_exact_decimals(client, keys):
    response = await client.post("/v1/merchants", json=MERCHANT_BODY, headers=keys.hq_admin)
    assert response.status_code == 201
    merchant = response.json()
    assert set(merchant) == {
        "merchantId", "name", "industry", "status", "currency", "earnRate",
        "issuancePrice", "redemptionRate", "pendingDays", "createdAt", "updatedAt",
    }  # fmt: skip
    assert merchant["pendingDays"] == 0
    uuid.UUID(merchant["merchantId"])
    assert merchant["name"] == "Greenleaf Grocers"
    assert merchant["industry"] == "grocery"
    assert merchant["currency"] == "USD"
    assert merchant["status"] == "active"
    # Decimals travel as strings at the column's scale, never as floats.
    assert merchant["earnRate"] == "1.5000"
    assert merchant["issuancePrice"] == "0.010000"
    assert merchant["redemptionRate"] == "0.008000"
    assert merchant["createdAt"] == merchant["updatedAt"]


async def test_read_returns_the_created_merchant(client, keys):
    merchant = await create_merchant(client, keys, name="Bean There", industry="coffee")
    response = await client.get(f"/v1/merchants/{merchant['merchantId']}", headers=keys.hq_admin)
    assert response.status_code == 200
    assert response.json() == merchant


async def test_read_unknown_merchant_is_not_found(client, keys):
    response = await client.get(f"/v1/merchants/{UNKNOWN_ID}", headers=keys.hq_admin)
    body = assert_problem(response, 404, "not-found")
    assert UNKNOWN_ID in body["detail"]
    assert body["instance"] == f"/v1/merchants/{UNKNOWN_ID}"


async def test_patch_changes_only_the_fields_sent(client, keys):
    merchant = await create_merchant(client, keys)
    response = await client.patch(
        f"/v1/merchants/{merchant['merchantId']}",
        json={"redemptionRate": "0.009"},
        headers=keys.hq_admin,
    )
    assert response.status_code == 200
    updated = response.json()
    assert updated["redemptionRate"] == "0.009000"
    assert ts(updated["updatedAt"]) > ts(merchant["updatedAt"])
    unchanged = {key for key in merchant if key not in ("redemptionRate", "updatedAt")}
    assert {key: updated[key] for key in unchanged} == {key: merchant[key] for key in unchanged}

    again = await client.get(f"/v1/merchants/{merchant['merchantId']}", headers=keys.hq_admin)
    assert again.json() == updated


async def test_patch_every_term_at_once(client, keys):
    merchant = await create_merchant(client, keys)
    response = await client.patch(
        f"/v1/merchants/{merchant['merchantId']}",
        json={
            "name": "Greenleaf Europe",
            "industry": "other",
            "currency": "EUR",
            "earnRate": "0.25",
            "issuancePrice": "0.02",
            "redemptionRate": "0.015",
        },
        headers=keys.hq_admin,
    )
    assert response.status_code == 200
    updated = response.json()
    assert (
        updated["name"],
        updated["industry"],
        updated["currency"],
        updated["earnRate"],
        updated["issuancePrice"],
        updated["redemptionRate"],
    ) == ("Greenleaf Europe", "other", "EUR", "0.2500", "0.020000", "0.015000")


async def test_empty_patch_changes_nothing(client, keys):
    merchant = await create_merchant(client, keys)
    response = await client.patch(
        f"/v1/merchants/{merchant['merchantId']}", json={}, headers=keys.hq_admin
    )
    assert response.status_code == 200
    assert response.json() == merchant


async def test_patch_unknown_merchant_is_not_found(client, keys):
    response = await client.patch(
        f"/v1/merchants/{UNKNOWN_ID}", json={"name": "Ghost"}, headers=keys.hq_admin
    )
    assert_problem(response, 404, "not-found")


async def test_unsupported_currency_is_invalid_input(client, keys):
    response = await client.post(
        "/v1/merchants", json={**MERCHANT_BODY, "currency": "XYZ"}, headers=keys.hq_admin
    )
    body = assert_problem(response, 422, "invalid-input")
    assert "XYZ" in body["detail"]
    assert "USD" in body["allowed"]
    listing = await client.get("/v1/merchants", headers=keys.hq_admin)
    assert listing.json()["total"] == 0


async def test_patch_to_unsupported_currency_is_invalid_input_and_changes_nothing(client, keys):
    merchant = await create_merchant(client, keys)
    response = await client.patch(
        f"/v1/merchants/{merchant['merchantId']}",
        json={"currency": "XYZ", "name": "Renamed"},
        headers=keys.hq_admin,
    )
    assert_problem(response, 422, "invalid-input")
    again = await client.get(f"/v1/merchants/{merchant['merchantId']}", headers=keys.hq_admin)
    assert again.json() == merchant


async def test_unknown_industry_is_refused_by_the_schema(client, keys):
    # Industries are an enumeration in the OpenAPI schema, so an unknown one fails schema
    # validation (400 invalid-request naming the field), before the domain's own check.
    response = await client.post(
        "/v1/merchants", json={**MERCHANT_BODY, "industry": "spaceflight"}, headers=keys.hq_admin
    )
    body = assert_problem(response, 400, "invalid-request")
    assert [error["key"] for error in body["errors"]] == ["industry"]

    merchant = await create_merchant(client, keys)
    patched = await client.patch(
        f"/v1/merchants/{merchant['merchantId']}",
        json={"industry": "spaceflight"},
        headers=keys.hq_admin,
    )
    assert_problem(patched, 400, "invalid-request")


@pytest.mark.parametrize(
    "field, value",
    [
        ("currency", "usd"),
        ("earnRate", "1.23456"),
        ("earnRate", "-1"),
        ("earnRate", 1.5),
        ("issuancePrice", "0.0000001"),
        ("name", ""),
    ],
)
async def test_malformed_terms_are_invalid_requests(client, keys, field, value):
    response = await client.post(
        "/v1/merchants", json={**MERCHANT_BODY, field: value}, headers=keys.hq_admin
    )
    body = assert_problem(response, 400, "invalid-request")
    assert body["errors"][0]["key"] == field


async def test_list_filters_by_status_and_pages_with_a_total(client, keys):
    for name in ("Charlie Cinema", "Alpha Apothecary", "Bravo Books"):
        await create_merchant(client, keys, name=name)
    listing = (await client.get("/v1/merchants", headers=keys.hq_admin)).json()
    assert [item["name"] for item in listing["items"]] == [
        "Alpha Apothecary",
        "Bravo Books",
        "Charlie Cinema",
    ]
    assert (listing["total"], listing["limit"], listing["offset"]) == (3, 100, 0)
    bravo = listing["items"][1]["merchantId"]
    suspended = await client.post(f"/v1/merchants/{bravo}/suspend", headers=keys.hq_admin)
    assert suspended.status_code == 200

    active = (await client.get("/v1/merchants?status=active", headers=keys.hq_admin)).json()
    assert [item["name"] for item in active["items"]] == ["Alpha Apothecary", "Charlie Cinema"]
    assert active["total"] == 2

    only_suspended = (
        await client.get("/v1/merchants", params={"status": "suspended"}, headers=keys.hq_admin)
    ).json()
    assert [item["merchantId"] for item in only_suspended["items"]] == [bravo]
    assert only_suspended["total"] == 1

    page = (
        await client.get("/v1/merchants", params={"limit": 1, "offset": 1}, headers=keys.hq_admin)
    ).json()
    assert [item["name"] for item in page["items"]] == ["Bravo Books"]
    assert (page["total"], page["limit"], page["offset"]) == (3, 1, 1)

    past_the_end = (
        await client.get("/v1/merchants", params={"offset": 10}, headers=keys.hq_admin)
    ).json()
    assert past_the_end["items"] == []
    assert past_the_end["total"] == 3

    paged_and_filtered = (
        await client.get(
            "/v1/merchants",
            params={"status": "active", "limit": 1, "offset": 1},
            headers=keys.hq_admin,
        )
    ).json()
    assert [item["name"] for item in paged_and_filtered["items"]] == ["Charlie Cinema"]
    assert paged_and_filtered["total"] == 2


@pytest.mark.parametrize(
    "params",
    [{"status": "closed"}, {"limit": 0}, {"limit": 501}, {"offset": -1}, {"limit": "many"}],
)
async def test_list_rejects_bad_query_parameters(client, keys, params):
    response = await client.get("/v1/merchants", params=params, headers=keys.hq_admin)
    assert_problem(response, 400, "invalid-request")


async def test_suspend_and_reactivate(client, keys):
    merchant = await create_merchant(client, keys)
    merchant_id = merchant["merchantId"]
    suspended = await client.post(f"/v1/merchants/{merchant_id}/suspend", headers=keys.hq_admin)
    assert suspended.status_code == 200
    assert suspended.json()["status"] == "suspended"
    assert ts(suspended.json()["updatedAt"]) > ts(merchant["updatedAt"])
    read = await client.get(f"/v1/merchants/{merchant_id}", headers=keys.hq_analyst)
    assert read.json()["status"] == "suspended"

    again = await client.post(f"/v1/merchants/{merchant_id}/suspend", headers=keys.hq_admin)
    assert again.status_code == 200
    assert again.json()["status"] == "suspended"

    reactivated = await client.post(
        f"/v1/merchants/{merchant_id}/reactivate", headers=keys.hq_admin
    )
    assert reactivated.status_code == 200
    assert reactivated.json()["status"] == "active"
    assert reactivated.json()["earnRate"] == merchant["earnRate"]


@pytest.mark.parametrize("action", ["suspend", "reactivate"])
async def test_suspend_or_reactivate_unknown_merchant_is_not_found(client, keys, action):
    response = await client.post(f"/v1/merchants/{UNKNOWN_ID}/{action}", headers=keys.hq_admin)
    assert_problem(response, 404, "not-found")


async def test_suspended_merchant_keeps_read_access(client, make_merchant, keys):
    merchant = await make_merchant()
    await client.post(f"/v1/merchants/{merchant.merchant_id}/suspend", headers=keys.hq_admin)
    response = await client.get(f"/v1/merchants/{merchant.merchant_id}", headers=merchant.headers)
    assert response.status_code == 200
    assert response.json()["status"] == "suspended"


async def test_hq_analyst_reads_but_cannot_write_merchants(client, keys):
    merchant = await create_merchant(client, keys)
    merchant_id = merchant["merchantId"]
    listing = await client.get("/v1/merchants", headers=keys.hq_analyst)
    assert listing.status_code == 200
    assert listing.json()["total"] == 1
    read = await client.get(f"/v1/merchants/{merchant_id}", headers=keys.hq_analyst)
    assert read.status_code == 200
    assert read.json() == merchant

    created = await client.post("/v1/merchants", json=MERCHANT_BODY, headers=keys.hq_analyst)
    assert_problem(created, 403, "forbidden")
    patched = await client.patch(
        f"/v1/merchants/{merchant_id}", json={"name": "Hijacked"}, headers=keys.hq_analyst
    )
    assert_problem(patched, 403, "forbidden")
    for action in ("suspend", "reactivate"):
        response = await client.post(
            f"/v1/merchants/{merchant_id}/{action}", headers=keys.hq_analyst
        )
        assert_problem(response, 403, "forbidden")

    after = await client.get(f"/v1/merchants/{merchant_id}", headers=keys.hq_admin)
    assert after.json() == merchant
    assert (await client.get("/v1/merchants", headers=keys.hq_admin)).json()["total"] == 1


async def test_merchant_key_cannot_list_create_or_administer_merchants(client, make_merchant):
    merchant = await make_merchant()
    listing = await client.get("/v1/merchants", headers=merchant.headers)
    assert_problem(listing, 403, "forbidden")
    created = await client.post("/v1/merchants", json=MERCHANT_BODY, headers=merchant.headers)
    assert_problem(created, 403, "forbidden")
    patched = await client.patch(
        f"/v1/merchants/{merchant.merchant_id}",
        json={"issuancePrice": "0"},
        headers=merchant.headers,
    )
    assert_problem(patched, 403, "forbidden")
    suspended = await client.post(
        f"/v1/merchants/{merchant.merchant_id}/suspend", headers=merchant.headers
    )
    assert_problem(suspended, 403, "forbidden")
    own = await client.get(f"/v1/merchants/{merchant.merchant_id}", headers=merchant.headers)
    assert own.json()["issuancePrice"] == "0.010000"
    assert own.json()["status"] == "active"


async def test_merchant_reads_its_own_record_but_not_another(client, make_merchant, keys):
    first = await make_merchant(name="First")
    second = await make_merchant(name="Second")
    own = await client.get(f"/v1/merchants/{first.merchant_id}", headers=first.headers)
    assert own.status_code == 200
    assert own.json() == first.body

    other = await client.get(f"/v1/merchants/{second.merchant_id}", headers=first.headers)
    other_body = assert_problem(other, 404, "not-found")
    # Indistinguishable from a merchant that does not exist: no existence leak.
    unknown = await client.get(f"/v1/merchants/{UNKNOWN_ID}", headers=first.headers)
    unknown_body = assert_problem(unknown, 404, "not-found")
    assert other_body["title"] == unknown_body["title"]
    assert other_body["detail"] == unknown_body["detail"].replace(UNKNOWN_ID, second.merchant_id)
    assert "Second" not in other.text


# Stores


async def test_create_store(client, make_merchant, keys):
    merchant = await make_merchant()
    response = await client.post(
        f"/v1/merchants/{merchant.merchant_id}/stores", json=STORE_BODY, headers=keys.hq_admin
    )
    assert response.status_code == 201
    store = response.json()
    uuid.UUID(store["storeId"])
    assert {key: value for key, value in store.items() if key not in ("storeId", "createdAt")} == {
        "merchantId": merchant.merchant_id,
        "code": "PAR-001",
        "name": "Paris Bastille",
        "city": "Paris",
        "country": "FR",
        "timezone": "UTC",
        "status": "open",
    }


async def test_create_store_with_only_the_required_fields(client, make_merchant, keys):
    merchant = await make_merchant()
    response = await client.post(
        f"/v1/merchants/{merchant.merchant_id}/stores",
        json={"code": "NYC_1", "name": "Manhattan", "timezone": "America/New_York"},
        headers=keys.hq_admin,
    )
    assert response.status_code == 201
    store = response.json()
    assert (store["city"], store["country"], store["timezone"]) == (
        None,
        None,
        "America/New_York",
    )


async def test_duplicate_store_code_is_a_conflict_for_the_same_merchant_only(
    client, make_merchant, keys
):
    first = await make_merchant(name="First")
    second = await make_merchant(name="Second")
    url = f"/v1/merchants/{first.merchant_id}/stores"
    created = await client.post(url, json=STORE_BODY, headers=keys.hq_admin)
    assert created.status_code == 201

    duplicate = await client.post(
        url, json={**STORE_BODY, "name": "Another name"}, headers=keys.hq_admin
    )
    body = assert_problem(duplicate, 409, "conflict")
    assert "PAR-001" in body["detail"]

    elsewhere = await client.post(
        f"/v1/merchants/{second.merchant_id}/stores", json=STORE_BODY, headers=keys.hq_admin
    )
    assert elsewhere.status_code == 201
    assert elsewhere.json()["merchantId"] == second.merchant_id

    stores = (await client.get(url, headers=keys.hq_admin)).json()
    assert [(store["code"], store["name"]) for store in stores] == [("PAR-001", "Paris Bastille")]


async def test_list_stores_is_ordered_by_code(client, make_merchant, keys):
    merchant = await make_merchant()
    other = await make_merchant(name="Other")
    url = f"/v1/merchants/{merchant.merchant_id}/stores"
    empty = await client.get(url, headers=keys.hq_admin)
    assert empty.status_code == 200
    assert empty.json() == []
    for code in ("C-3", "A-1", "B-2"):
        response = await client.post(
            url, json={"code": code, "name": f"Store {code}"}, headers=keys.hq_admin
        )
        assert response.status_code == 201
    await client.post(
        f"/v1/merchants/{other.merchant_id}/stores",
        json={"code": "Z-9", "name": "Not mine"},
        headers=keys.hq_admin,
    )
    for headers in (keys.hq_admin, keys.hq_analyst, merchant.headers):
        stores = await client.get(url, headers=headers)
        assert stores.status_code == 200
        assert [store["code"] for store in stores.json()] == ["A-1", "B-2", "C-3"]


async def test_list_stores_of_unknown_merchant_is_not_found(client, keys):
    response = await client.get(f"/v1/merchants/{UNKNOWN_ID}/stores", headers=keys.hq_admin)
    assert_problem(response, 404, "not-found")


async def test_patch_closes_a_store_and_changes_only_the_fields_sent(client, make_merchant, keys):
    merchant = await make_merchant()
    url = f"/v1/merchants/{merchant.merchant_id}/stores"
    store = (await client.post(url, json=STORE_BODY, headers=keys.hq_admin)).json()

    closed = await client.patch(
        f"{url}/{store['storeId']}", json={"status": "closed"}, headers=keys.hq_admin
    )
    assert closed.status_code == 200
    assert closed.json() == {**store, "status": "closed"}

    moved = await client.patch(
        f"{url}/{store['storeId']}",
        json={"city": None, "timezone": "Europe/Paris", "name": "Paris Nation"},
        headers=keys.hq_admin,
    )
    assert moved.status_code == 200
    assert moved.json() == {
        **store,
        "status": "closed",
        "city": None,
        "timezone": "Europe/Paris",
        "name": "Paris Nation",
    }
    listed = (await client.get(url, headers=keys.hq_admin)).json()
    assert listed == [moved.json()]

    reopened = await client.patch(
        f"{url}/{store['storeId']}", json={"status": "open"}, headers=keys.hq_admin
    )
    assert reopened.json()["status"] == "open"


async def test_patch_store_with_a_bad_status_is_an_invalid_request(client, make_merchant, keys):
    merchant = await make_merchant()
    url = f"/v1/merchants/{merchant.merchant_id}/stores"
    store = (await client.post(url, json=STORE_BODY, headers=keys.hq_admin)).json()
    response = await client.patch(
        f"{url}/{store['storeId']}", json={"status": "demolished"}, headers=keys.hq_admin
    )
    assert_problem(response, 400, "invalid-request")


async def test_patch_unknown_store_or_store_of_another_merchant_is_not_found(
    client, make_merchant, keys
):
    first = await make_merchant(name="First")
    second = await make_merchant(name="Second")
    store = (
        await client.post(
            f"/v1/merchants/{first.merchant_id}/stores", json=STORE_BODY, headers=keys.hq_admin
        )
    ).json()
    unknown = await client.patch(
        f"/v1/merchants/{first.merchant_id}/stores/{UNKNOWN_ID}",
        json={"status": "closed"},
        headers=keys.hq_admin,
    )
    assert_problem(unknown, 404, "not-found")
    # The store exists, but not under this merchant's path.
    wrong_parent = await client.patch(
        f"/v1/merchants/{second.merchant_id}/stores/{store['storeId']}",
        json={"status": "closed"},
        headers=keys.hq_admin,
    )
    assert_problem(wrong_parent, 404, "not-found")
    stores = (
        await client.get(f"/v1/merchants/{first.merchant_id}/stores", headers=keys.hq_admin)
    ).json()
    assert [store["status"] for store in stores] == ["open"]


@pytest.mark.parametrize("timezone", ["Mars/Olympus_Mons", "Europe", "Etc", "leapseconds"])
async def test_unknown_timezone_is_invalid_input(client, make_merchant, keys, timezone):
    merchant = await make_merchant()
    url = f"/v1/merchants/{merchant.merchant_id}/stores"
    response = await client.post(
        url, json={**STORE_BODY, "timezone": timezone}, headers=keys.hq_admin
    )
    body = assert_problem(response, 422, "invalid-input")
    assert timezone in body["detail"]

    store = (await client.post(url, json=STORE_BODY, headers=keys.hq_admin)).json()
    patched = await client.patch(
        f"{url}/{store['storeId']}", json={"timezone": timezone}, headers=keys.hq_admin
    )
    assert_problem(patched, 422, "invalid-input")
    listed = (await client.get(url, headers=keys.hq_admin)).json()
    assert [store["timezone"] for store in listed] == ["UTC"]


async def test_malformed_timezone_is_an_invalid_request(client, make_merchant, keys):
    merchant = await make_merchant()
    response = await client.post(
        f"/v1/merchants/{merchant.merchant_id}/stores",
        json={**STORE_BODY, "timezone": "../../etc/passwd"},
        headers=keys.hq_admin,
    )
    body = assert_problem(response, 400, "invalid-request")
    assert body["errors"][0]["key"] == "timezone"


async def test_store_for_unknown_merchant_is_not_found(client, keys):
    response = await client.post(
        f"/v1/merchants/{UNKNOWN_ID}/stores", json=STORE_BODY, headers=keys.hq_admin
    )
    assert_problem(response, 404, "not-found")


async def test_merchant_manages_its_own_stores(client, make_merchant):
    merchant = await make_merchant()
    url = f"/v1/merchants/{merchant.merchant_id}/stores"
    created = await client.post(url, json=STORE_BODY, headers=merchant.headers)
    assert created.status_code == 201
    store = created.json()
    assert store["merchantId"] == merchant.merchant_id

    closed = await client.patch(
        f"{url}/{store['storeId']}", json={"status": "closed"}, headers=merchant.headers
    )
    assert closed.status_code == 200
    assert closed.json()["status"] == "closed"
    listed = await client.get(url, headers=merchant.headers)
    assert [item["storeId"] for item in listed.json()] == [store["storeId"]]


async def test_merchant_cannot_touch_another_merchants_stores(client, make_merchant, keys):
    mine = await make_merchant(name="Mine")
    theirs = await make_merchant(name="Theirs")
    url = f"/v1/merchants/{theirs.merchant_id}/stores"
    their_store = (await client.post(url, json=STORE_BODY, headers=keys.hq_admin)).json()

    created = await client.post(url, json={**STORE_BODY, "code": "SNEAKY"}, headers=mine.headers)
    assert_problem(created, 404, "not-found")
    listed = await client.get(url, headers=mine.headers)
    assert_problem(listed, 404, "not-found")
    patched = await client.patch(
        f"{url}/{their_store['storeId']}", json={"status": "closed"}, headers=mine.headers
    )
    assert_problem(patched, 404, "not-found")
    # Through its own merchant path, the other merchant's store id does not resolve either.
    via_own_path = await client.patch(
        f"/v1/merchants/{mine.merchant_id}/stores/{their_store['storeId']}",
        json={"status": "closed"},
        headers=mine.headers,
    )
    assert_problem(via_own_path, 404, "not-found")

    stores = (await client.get(url, headers=keys.hq_admin)).json()
    assert stores == [their_store]


async def test_hq_analyst_lists_stores_but_cannot_create_or_change_them(
    client, make_merchant, keys
):
    merchant = await make_merchant()
    url = f"/v1/merchants/{merchant.merchant_id}/stores"
    store = (await client.post(url, json=STORE_BODY, headers=keys.hq_admin)).json()

    created = await client.post(url, json={**STORE_BODY, "code": "NEW"}, headers=keys.hq_analyst)
    assert_problem(created, 403, "forbidden")
    patched = await client.patch(
        f"{url}/{store['storeId']}", json={"status": "closed"}, headers=keys.hq_analyst
    )
    assert_problem(patched, 403, "forbidden")
    listed = await client.get(url, headers=keys.hq_analyst)
    assert listed.status_code == 200
    assert listed.json() == [store]
