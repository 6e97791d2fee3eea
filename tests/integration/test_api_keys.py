from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from shared.api_keys import KEY_PATTERN
from tests.integration.conftest import bearer

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
SECRET_START = len("coal_") + 12 + 1  # where the secret part of `coal_<prefix>_<secret>` starts
KEY_FIELDS = {
    "keyId", "prefix", "role", "merchantId", "label", "createdAt", "lastUsedAt",
    "expiresAt", "revokedAt",
}  # fmt: skip


def assert_problem(response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"] == f"/problems/{slug}"
    assert body["status"] == status
    return body


async def works(client, headers) -> bool:
    """Whether a key authenticates: any valid key gets a 404 for an unknown merchant."""
    response = await client.get(f"/v1/merchants/{UNKNOWN_ID}", headers=headers)
    assert response.status_code in (401, 404), response.text
    return response.status_code == 404


async def issue(client, keys, merchant_id: str, label: str = "till") -> dict:
    response = await client.post(
        f"/v1/merchants/{merchant_id}/api-keys", json={"label": label}, headers=keys.hq_admin
    )
    assert response.status_code == 201, response.text
    return response.json()


async def merchant_keys(client, keys, merchant_id: str) -> list[dict]:
    response = await client.get(f"/v1/merchants/{merchant_id}/api-keys", headers=keys.hq_admin)
    assert response.status_code == 200, response.text
    return response.json()


# Issuing


async def test_hq_admin_issues_a_merchant_key_whose_secret_is_shown_once(
    client, keys, make_merchant
):
    merchant = await make_merchant()
    response = await client.post(
        f"/v1/merchants/{merchant.merchant_id}/api-keys",
        json={"label": "web shop"},
        headers=keys.hq_admin,
    )
    assert response.status_code == 201
    issued = response.json()
    assert set(issued) == {"key", "secret"}
    secret, key = issued["secret"], issued["key"]
    assert secret.startswith("coal_")
    assert KEY_PATTERN.match(secret)
    assert secret.startswith(f"coal_{key['prefix']}_")
    assert set(key) == KEY_FIELDS
    assert key["role"] == "merchant"
    assert key["merchantId"] == merchant.merchant_id
    assert key["label"] == "web shop"
    assert (key["lastUsedAt"], key["expiresAt"], key["revokedAt"]) == (None, None, None)

    own = await client.get(f"/v1/merchants/{merchant.merchant_id}", headers=bearer(secret))
    assert own.status_code == 200

    listing = await client.get(
        f"/v1/merchants/{merchant.merchant_id}/api-keys", headers=keys.hq_admin
    )
    assert listing.status_code == 200
    assert secret not in listing.text
    assert secret[SECRET_START:] not in listing.text
    assert all("secret" not in item for item in listing.json())
    assert key["keyId"] in [item["keyId"] for item in listing.json()]


async def test_label_defaults_to_default(client, keys, make_merchant):
    merchant = await make_merchant()
    response = await client.post(
        f"/v1/merchants/{merchant.merchant_id}/api-keys", json={}, headers=keys.hq_admin
    )
    assert response.status_code == 201
    assert response.json()["key"]["label"] == "default"


async def test_every_issued_secret_is_unique(client, keys, make_merchant):
    merchant = await make_merchant()
    issued = [await issue(client, keys, merchant.merchant_id) for _ in range(5)]
    assert len({item["secret"] for item in issued}) == 5
    assert len({item["key"]["prefix"] for item in issued}) == 5


async def test_list_of_a_merchant_shows_its_keys_only(client, keys, make_merchant):
    first = await make_merchant(name="First")
    second = await make_merchant(name="Second")
    extra = await issue(client, keys, first.merchant_id, label="back office")

    listed = await merchant_keys(client, keys, first.merchant_id)
    assert [(item["keyId"], item["label"]) for item in listed] == [
        (first.key_id, "pos"),
        (extra["key"]["keyId"], "back office"),
    ]
    assert all(set(item) == KEY_FIELDS for item in listed)
    assert {item["merchantId"] for item in listed} == {first.merchant_id}
    assert second.key_id not in [item["keyId"] for item in listed]

    # The merchant itself and HQ analysts may list them too.
    for headers in (first.headers, keys.hq_analyst):
        response = await client.get(f"/v1/merchants/{first.merchant_id}/api-keys", headers=headers)
        assert response.status_code == 200
        assert [item["keyId"] for item in response.json()] == [item["keyId"] for item in listed]


async def test_merchant_cannot_list_another_merchants_keys(client, make_merchant):
    first = await make_merchant(name="First")
    second = await make_merchant(name="Second")
    response = await client.get(
        f"/v1/merchants/{second.merchant_id}/api-keys", headers=first.headers
    )
    assert_problem(response, 404, "not-found")
    assert second.key_id not in response.text


async def test_listing_keys_of_an_unknown_merchant_is_not_found(client, keys):
    response = await client.get(f"/v1/merchants/{UNKNOWN_ID}/api-keys", headers=keys.hq_admin)
    assert_problem(response, 404, "not-found")


async def test_issuing_a_key_for_an_unknown_merchant_is_not_found(client, keys):
    response = await client.post(
        f"/v1/merchants/{UNKNOWN_ID}/api-keys", json={"label": "x"}, headers=keys.hq_admin
    )
    body = assert_problem(response, 404, "not-found")
    assert UNKNOWN_ID in body["detail"]


async def test_only_hq_admins_issue_merchant_keys(client, keys, make_merchant):
    merchant = await make_merchant()
    for headers in (keys.hq_analyst, merchant.headers):
        response = await client.post(
            f"/v1/merchants/{merchant.merchant_id}/api-keys",
            json={"label": "self-service"},
            headers=headers,
        )
        assert_problem(response, 403, "forbidden")
    assert [item["keyId"] for item in await merchant_keys(client, keys, merchant.merchant_id)] == [
        merchant.key_id
    ]


@pytest.mark.parametrize("role", ["hq_admin", "hq_analyst"])
async def test_hq_admin_issues_hq_keys(client, keys, role):
    response = await client.post(
        "/v1/hq/api-keys", json={"role": role, "label": "finance"}, headers=keys.hq_admin
    )
    assert response.status_code == 201
    issued = response.json()
    assert KEY_PATTERN.match(issued["secret"])
    assert issued["key"]["role"] == role
    assert issued["key"]["merchantId"] is None
    assert issued["key"]["label"] == "finance"

    new_key = bearer(issued["secret"])
    reads = await client.get("/v1/merchants", headers=new_key)
    assert reads.status_code == 200
    writes = await client.post(
        "/v1/merchants",
        json={
            "name": "Made by a new key",
            "industry": "books",
            "currency": "EUR",
            "earnRate": "1",
            "issuancePrice": "0.01",
            "redemptionRate": "0.01",
        },
        headers=new_key,
    )
    assert writes.status_code == (201 if role == "hq_admin" else 403)


async def test_hq_key_list_shows_hq_keys_only_and_never_secrets(client, keys, make_merchant):
    merchant = await make_merchant()
    issued = await client.post(
        "/v1/hq/api-keys", json={"role": "hq_analyst", "label": "bi"}, headers=keys.hq_admin
    )
    secret = issued.json()["secret"]

    response = await client.get("/v1/hq/api-keys", headers=keys.hq_admin)
    assert response.status_code == 200
    listed = response.json()
    # The two fixture keys ("test") and the new one; no merchant key.
    assert sorted((item["role"], item["label"]) for item in listed) == [
        ("hq_admin", "test"),
        ("hq_analyst", "bi"),
        ("hq_analyst", "test"),
    ]
    assert all(item["merchantId"] is None for item in listed)
    assert merchant.key_id not in response.text
    assert secret not in response.text
    assert all(set(item) == KEY_FIELDS for item in listed)


@pytest.mark.parametrize(
    "body",
    [{"role": "merchant"}, {"role": "root"}, {"label": "no role"}, {"role": "hq_admin", "x": 1}],
)
async def test_hq_key_with_a_bad_body_is_an_invalid_request(client, keys, body):
    response = await client.post("/v1/hq/api-keys", json=body, headers=keys.hq_admin)
    assert_problem(response, 400, "invalid-request")


async def test_only_hq_admins_issue_or_list_hq_keys(client, keys, make_merchant):
    merchant = await make_merchant()
    for headers in (keys.hq_analyst, merchant.headers):
        issued = await client.post("/v1/hq/api-keys", json={"role": "hq_admin"}, headers=headers)
        assert_problem(issued, 403, "forbidden")
        listed = await client.get("/v1/hq/api-keys", headers=headers)
        assert_problem(listed, 403, "forbidden")
    hq_keys = (await client.get("/v1/hq/api-keys", headers=keys.hq_admin)).json()
    assert len(hq_keys) == 2


# Rotation


async def test_rotate_without_grace_retires_the_old_key_at_once(client, keys, make_merchant):
    merchant = await make_merchant()
    response = await client.post(
        f"/v1/api-keys/{merchant.key_id}/rotate", json={"graceSeconds": 0}, headers=keys.hq_admin
    )
    assert response.status_code == 201
    rotated = response.json()
    new_secret, new_key = rotated["secret"], rotated["key"]
    assert KEY_PATTERN.match(new_secret)
    assert new_key["keyId"] != merchant.key_id
    assert (new_key["role"], new_key["merchantId"], new_key["label"]) == (
        "merchant",
        merchant.merchant_id,
        "pos",
    )
    assert new_key["expiresAt"] is None

    old = await client.get(f"/v1/merchants/{merchant.merchant_id}", headers=merchant.headers)
    assert_problem(old, 401, "unauthenticated")
    new = await client.get(f"/v1/merchants/{merchant.merchant_id}", headers=bearer(new_secret))
    assert new.status_code == 200

    listed = {
        item["keyId"]: item for item in await merchant_keys(client, keys, merchant.merchant_id)
    }
    assert set(listed) == {merchant.key_id, new_key["keyId"]}
    assert listed[merchant.key_id]["expiresAt"] is not None
    assert listed[merchant.key_id]["revokedAt"] is None


async def test_rotate_defaults_to_no_grace(client, keys, make_merchant):
    merchant = await make_merchant()
    response = await client.post(
        f"/v1/api-keys/{merchant.key_id}/rotate", json={}, headers=keys.hq_admin
    )
    assert response.status_code == 201
    assert not await works(client, merchant.headers)
    assert await works(client, bearer(response.json()["secret"]))


async def test_rotate_with_grace_keeps_both_keys_working(client, keys, make_merchant):
    merchant = await make_merchant()
    response = await client.post(
        f"/v1/api-keys/{merchant.key_id}/rotate",
        json={"graceSeconds": 3600},
        headers=keys.hq_admin,
    )
    assert response.status_code == 201
    new_headers = bearer(response.json()["secret"])
    for headers in (merchant.headers, new_headers):
        own = await client.get(f"/v1/merchants/{merchant.merchant_id}", headers=headers)
        assert own.status_code == 200

    listed = {
        item["keyId"]: item for item in await merchant_keys(client, keys, merchant.merchant_id)
    }
    old_key = listed[merchant.key_id]
    assert old_key["expiresAt"] is not None
    grace = datetime.fromisoformat(old_key["expiresAt"]) - datetime.fromisoformat(
        response.json()["key"]["createdAt"]
    )
    assert grace == timedelta(hours=1)

    # Revoking the old key ends its grace at once; the replacement is unaffected.
    revoked = await client.post(f"/v1/api-keys/{merchant.key_id}/revoke", headers=keys.hq_admin)
    assert revoked.status_code == 200
    assert not await works(client, merchant.headers)
    assert await works(client, new_headers)


async def test_a_key_is_rotated_once_then_its_replacement_is(client, keys, make_merchant):
    merchant = await make_merchant()
    url = f"/v1/api-keys/{merchant.key_id}/rotate"
    first = await client.post(url, json={"graceSeconds": 3600}, headers=keys.hq_admin)
    assert first.status_code == 201

    second = await client.post(url, json={"graceSeconds": 3600}, headers=keys.hq_admin)
    body = assert_problem(second, 422, "invalid-input")
    assert "already rotated" in body["detail"]
    assert len(await merchant_keys(client, keys, merchant.merchant_id)) == 2

    replacement = first.json()["key"]["keyId"]
    third = await client.post(
        f"/v1/api-keys/{replacement}/rotate", json={"graceSeconds": 0}, headers=keys.hq_admin
    )
    assert third.status_code == 201
    assert not await works(client, bearer(first.json()["secret"]))
    assert await works(client, bearer(third.json()["secret"]))
    # The first key's grace period is untouched by rotating its replacement.
    assert await works(client, merchant.headers)


async def test_a_revoked_key_cannot_be_rotated(client, keys, make_merchant):
    merchant = await make_merchant()
    await client.post(f"/v1/api-keys/{merchant.key_id}/revoke", headers=keys.hq_admin)
    response = await client.post(
        f"/v1/api-keys/{merchant.key_id}/rotate", json={}, headers=keys.hq_admin
    )
    body = assert_problem(response, 422, "invalid-input")
    assert "revoked" in body["detail"]
    assert len(await merchant_keys(client, keys, merchant.merchant_id)) == 1


@pytest.mark.parametrize("grace", [-1, 30 * 86400 + 1, "soon", 1.5])
async def test_rotate_with_an_out_of_range_grace_is_an_invalid_request(
    client, keys, make_merchant, grace
):
    merchant = await make_merchant()
    response = await client.post(
        f"/v1/api-keys/{merchant.key_id}/rotate",
        json={"graceSeconds": grace},
        headers=keys.hq_admin,
    )
    body = assert_problem(response, 400, "invalid-request")
    assert body["errors"][0]["key"] == "graceSeconds"
    assert await works(client, merchant.headers)


async def test_hq_admin_rotates_an_hq_key(client, keys):
    issued = await client.post(
        "/v1/hq/api-keys", json={"role": "hq_analyst", "label": "bi"}, headers=keys.hq_admin
    )
    key_id = issued.json()["key"]["keyId"]
    response = await client.post(
        f"/v1/api-keys/{key_id}/rotate", json={"graceSeconds": 0}, headers=keys.hq_admin
    )
    assert response.status_code == 201
    assert (response.json()["key"]["role"], response.json()["key"]["label"]) == ("hq_analyst", "bi")
    assert response.json()["key"]["merchantId"] is None
    assert not await works(client, bearer(issued.json()["secret"]))
    assert await works(client, bearer(response.json()["secret"]))


@pytest.mark.parametrize("action", ["rotate", "revoke"])
async def test_unknown_key_is_not_found(client, keys, action):
    response = await client.post(
        f"/v1/api-keys/{UNKNOWN_ID}/{action}", json={}, headers=keys.hq_admin
    )
    body = assert_problem(response, 404, "not-found")
    assert UNKNOWN_ID in body["detail"]


# Revocation


async def test_revoke_stops_the_key_at_once_and_is_idempotent(client, keys, make_merchant):
    merchant = await make_merchant()
    first = await client.post(f"/v1/api-keys/{merchant.key_id}/revoke", headers=keys.hq_admin)
    assert first.status_code == 200
    revoked = first.json()
    assert set(revoked) == KEY_FIELDS
    assert revoked["keyId"] == merchant.key_id
    assert revoked["revokedAt"] is not None

    denied = await client.get(f"/v1/merchants/{merchant.merchant_id}", headers=merchant.headers)
    assert_problem(denied, 401, "unauthenticated")

    second = await client.post(f"/v1/api-keys/{merchant.key_id}/revoke", headers=keys.hq_admin)
    assert second.status_code == 200
    assert second.json()["revokedAt"] == revoked["revokedAt"]
    assert second.json() == revoked

    listed = await merchant_keys(client, keys, merchant.merchant_id)
    assert [item["revokedAt"] for item in listed] == [revoked["revokedAt"]]


async def test_revoking_one_key_leaves_the_merchants_other_keys_working(
    client, keys, make_merchant
):
    merchant = await make_merchant()
    other = await issue(client, keys, merchant.merchant_id, label="web")
    await client.post(f"/v1/api-keys/{merchant.key_id}/revoke", headers=keys.hq_admin)
    assert not await works(client, merchant.headers)
    own = await client.get(f"/v1/merchants/{merchant.merchant_id}", headers=bearer(other["secret"]))
    assert own.status_code == 200


async def test_hq_analyst_can_neither_rotate_nor_revoke(client, keys, make_merchant):
    merchant = await make_merchant()
    rotated = await client.post(
        f"/v1/api-keys/{merchant.key_id}/rotate", json={}, headers=keys.hq_analyst
    )
    assert_problem(rotated, 403, "forbidden")
    revoked = await client.post(f"/v1/api-keys/{merchant.key_id}/revoke", headers=keys.hq_analyst)
    assert_problem(revoked, 403, "forbidden")
    listed = await merchant_keys(client, keys, merchant.merchant_id)
    assert [(item["expiresAt"], item["revokedAt"]) for item in listed] == [(None, None)]
    assert await works(client, merchant.headers)


# A merchant manages its own keys


async def test_merchant_rotates_its_own_key(client, make_merchant):
    merchant = await make_merchant()
    response = await client.post(
        f"/v1/api-keys/{merchant.key_id}/rotate",
        json={"graceSeconds": 0},
        headers=merchant.headers,
    )
    assert response.status_code == 201
    assert response.json()["key"]["merchantId"] == merchant.merchant_id
    assert not await works(client, merchant.headers)
    new_headers = bearer(response.json()["secret"])
    own = await client.get(f"/v1/merchants/{merchant.merchant_id}", headers=new_headers)
    assert own.status_code == 200


async def test_merchant_revokes_its_own_keys(client, keys, make_merchant):
    merchant = await make_merchant()
    spare = await issue(client, keys, merchant.merchant_id, label="spare")
    response = await client.post(
        f"/v1/api-keys/{spare['key']['keyId']}/revoke", headers=merchant.headers
    )
    assert response.status_code == 200
    assert response.json()["revokedAt"] is not None
    assert not await works(client, bearer(spare["secret"]))

    # Revoking the very key that makes the call is allowed; the next call is refused.
    itself = await client.post(f"/v1/api-keys/{merchant.key_id}/revoke", headers=merchant.headers)
    assert itself.status_code == 200
    after = await client.get(f"/v1/merchants/{merchant.merchant_id}", headers=merchant.headers)
    assert_problem(after, 401, "unauthenticated")


async def test_merchant_cannot_rotate_or_revoke_keys_it_does_not_own(client, keys, make_merchant):
    mine = await make_merchant(name="Mine")
    theirs = await make_merchant(name="Theirs")
    hq_keys = (await client.get("/v1/hq/api-keys", headers=keys.hq_admin)).json()
    hq_admin_key = next(item["keyId"] for item in hq_keys if item["role"] == "hq_admin")

    for key_id in (theirs.key_id, hq_admin_key):
        rotated = await client.post(
            f"/v1/api-keys/{key_id}/rotate", json={"graceSeconds": 0}, headers=mine.headers
        )
        body = assert_problem(rotated, 404, "not-found")
        # The same answer as for a key that does not exist.
        assert body["detail"] == f"API key {key_id} does not exist."
        revoked = await client.post(f"/v1/api-keys/{key_id}/revoke", headers=mine.headers)
        assert_problem(revoked, 404, "not-found")

    assert await works(client, theirs.headers)
    assert await works(client, keys.hq_admin)
    theirs_listed = await merchant_keys(client, keys, theirs.merchant_id)
    assert [(item["expiresAt"], item["revokedAt"]) for item in theirs_listed] == [(None, None)]


# Usage tracking


async def test_last_used_at_is_set_once_the_key_is_used(client, keys, make_merchant):
    merchant = await make_merchant()
    before = await merchant_keys(client, keys, merchant.merchant_id)
    assert [item["lastUsedAt"] for item in before] == [None]

    used = await client.get(f"/v1/merchants/{merchant.merchant_id}", headers=merchant.headers)
    assert used.status_code == 200
    after = await merchant_keys(client, keys, merchant.merchant_id)
    last_used = after[0]["lastUsedAt"]
    assert last_used is not None
    assert datetime.fromisoformat(last_used) >= datetime.fromisoformat(after[0]["createdAt"])

    # Within the resolution window, further use does not rewrite the row.
    await client.get(f"/v1/merchants/{merchant.merchant_id}", headers=merchant.headers)
    again = await merchant_keys(client, keys, merchant.merchant_id)
    assert again[0]["lastUsedAt"] == last_used


async def test_failed_authentication_does_not_touch_last_used_at(client, keys, make_merchant):
    merchant = await make_merchant()
    secret = merchant.headers["Authorization"].removeprefix("Bearer ")
    wrong = secret[:SECRET_START] + "A" * 43
    response = await client.get(f"/v1/merchants/{merchant.merchant_id}", headers=bearer(wrong))
    assert_problem(response, 401, "unauthenticated")
    listed = await merchant_keys(client, keys, merchant.merchant_id)
    assert [item["lastUsedAt"] for item in listed] == [None]
