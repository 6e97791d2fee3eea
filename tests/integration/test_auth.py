from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from shared.api_keys import new_secret
from shared.tables import audit_log
from tests.integration.conftest import MERCHANT_BODY, bearer

PROBLEM_JSON = "application/problem+json"
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
SECRET_START = len("coal_") + 12 + 1  # where the secret part of `coal_<prefix>_<secret>` starts
PUBLIC_PATHS = ("/health", "/ready", "/schema", "/schema/openapi.json", "/problems")


def assert_problem(response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body = response.json()
    assert body["type"] == f"/problems/{slug}"
    assert body["status"] == status
    return body


def secret_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


# Who is calling


async def test_no_key_is_unauthenticated(client):
    response = await client.get("/v1/merchants")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body = response.json()
    assert body["type"] == "/problems/unauthenticated"
    assert body["title"] == "A valid API key is required"
    assert body["status"] == 401
    assert body["instance"] == "/v1/merchants"
    assert "X-API-Key" in body["detail"]


async def test_no_key_is_unauthenticated_before_any_validation(client):
    response = await client.post("/v1/merchants", content=b"{not json")
    assert_problem(response, 401, "unauthenticated")


# Header sets that must all be refused, built from (a live key, a revoked key, an unknown key).
BAD_CREDENTIALS = {
    "malformed": lambda live, revoked, unknown: bearer("abc"),
    "empty bearer": lambda live, revoked, unknown: {"Authorization": "Bearer "},
    "wrong scheme": lambda live, revoked, unknown: {"Authorization": "Basic xyz"},
    "wrong scheme, valid key": lambda live, revoked, unknown: {"Authorization": f"Token {live}"},
    "well-formed but unknown": lambda live, revoked, unknown: bearer(unknown),
    "right prefix, wrong secret": lambda live, revoked, unknown: bearer(
        live[:SECRET_START] + "A" * 43
    ),
    "truncated": lambda live, revoked, unknown: bearer(live[:-1]),
    "trailing garbage": lambda live, revoked, unknown: bearer(live + "x"),
    "malformed X-API-Key": lambda live, revoked, unknown: {"X-API-Key": "abc"},
    "unknown X-API-Key": lambda live, revoked, unknown: {"X-API-Key": unknown},
    "revoked": lambda live, revoked, unknown: bearer(revoked),
    "revoked X-API-Key": lambda live, revoked, unknown: {"X-API-Key": revoked},
}


@pytest.mark.parametrize("case", list(BAD_CREDENTIALS))
async def test_bad_credentials_are_unauthenticated(client, keys, make_merchant, case):
    merchant = await make_merchant()
    spare = await client.post(
        f"/v1/merchants/{merchant.merchant_id}/api-keys", json={}, headers=keys.hq_admin
    )
    revoke = await client.post(
        f"/v1/api-keys/{spare.json()['key']['keyId']}/revoke", headers=keys.hq_admin
    )
    assert revoke.status_code == 200
    headers = BAD_CREDENTIALS[case](
        secret_of(merchant.headers), spare.json()["secret"], new_secret()[1]
    )

    response = await client.get(f"/v1/merchants/{merchant.merchant_id}", headers=headers)
    body = assert_problem(response, 401, "unauthenticated")
    assert body["instance"] == f"/v1/merchants/{merchant.merchant_id}"
    # The problem never echoes what was presented.
    for value in headers.values():
        credential = value.removeprefix("Bearer ").strip()
        if len(credential) > 5:
            assert credential not in response.text


async def test_bearer_and_x_api_key_headers_both_work(client, make_merchant):
    merchant = await make_merchant()
    secret = secret_of(merchant.headers)
    url = f"/v1/merchants/{merchant.merchant_id}"
    for headers in (
        {"Authorization": f"Bearer {secret}"},
        {"Authorization": f"bearer {secret}"},
        {"Authorization": f"BEARER  {secret} "},
        {"X-API-Key": secret},
        {"x-api-key": secret},
    ):
        response = await client.get(url, headers=headers)
        assert response.status_code == 200, headers
        assert response.json()["merchantId"] == merchant.merchant_id


async def test_a_bad_authorization_header_is_not_rescued_by_a_good_x_api_key(client, make_merchant):
    merchant = await make_merchant()
    response = await client.get(
        f"/v1/merchants/{merchant.merchant_id}",
        headers={"Authorization": "Bearer abc", "X-API-Key": secret_of(merchant.headers)},
    )
    assert_problem(response, 401, "unauthenticated")


async def test_a_rotated_key_past_its_grace_is_unauthenticated(client, keys, make_merchant):
    merchant = await make_merchant()
    rotated = await client.post(
        f"/v1/api-keys/{merchant.key_id}/rotate", json={"graceSeconds": 0}, headers=keys.hq_admin
    )
    assert rotated.status_code == 201
    response = await client.get(f"/v1/merchants/{merchant.merchant_id}", headers=merchant.headers)
    body = assert_problem(response, 401, "unauthenticated")
    assert "expired" in body["detail"]


# What needs no key


@pytest.mark.parametrize("path", PUBLIC_PATHS)
async def test_public_paths_need_no_key(client, path):
    response = await client.get(path)
    assert response.status_code == 200, response.text
    # Even a bad key does not get in the way of a public path.
    with_bad_key = await client.get(path, headers=bearer("abc"))
    assert with_bad_key.status_code == 200


async def test_health_and_ready_report_ok(client):
    assert (await client.get("/health")).json() == {"status": "ok"}
    ready = await client.get("/ready")
    assert ready.json() == {"status": "ok"}
    assert ready.headers["content-type"].startswith("application/json")


async def test_problem_catalogue_is_public_and_describes_every_slug(client):
    catalogue = (await client.get("/problems")).json()
    by_type = {entry["type"]: entry for entry in catalogue}
    for slug, status in (
        ("unauthenticated", 401),
        ("forbidden", 403),
        ("not-found", 404),
        ("conflict", 409),
        ("invalid-input", 422),
        ("invalid-request", 400),
        ("payload-too-large", 413),
    ):
        assert by_type[f"/problems/{slug}"]["status"] == status
    one = await client.get("/problems/unauthenticated")
    assert one.status_code == 200
    assert one.json() == by_type["/problems/unauthenticated"]
    missing = await client.get("/problems/no-such-problem")
    assert_problem(missing, 404, "not-found")


async def test_openapi_document_is_public_json(client):
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/")
    document = response.json()
    assert document["info"]["title"] == "Coalition API"
    assert "/v1/merchants" in document["paths"]


async def test_unknown_route_and_wrong_method_are_problems(client, keys):
    missing = await client.get("/v1/nothing-here", headers=keys.hq_admin)
    assert_problem(missing, 404, "not-found")
    wrong_method = await client.delete("/v1/merchants", headers=keys.hq_admin)
    assert_problem(wrong_method, 405, "method-not-allowed")


# HQ analysts are read-only

CAMPAIGN_BODY = {
    "name": "Double points",
    "kind": "multiplier",
    "startsAt": "2030-01-01T00:00:00Z",
    "endsAt": "2030-02-01T00:00:00Z",
    "terms": {"multiplier": "2"},
}
ALERT_RULE_BODY = {
    "name": "Quiet partner", "metric": "purchases", "scope": "merchant", "comparator": "lt",
    "threshold": 0.2, "window": "P1D", "evaluateEvery": "PT1H", "severity": "warning",
    "owner": "HQ",
}  # fmt: skip
WEBHOOK_BODY = {"url": "https://hooks.example.com/coalition", "minSeverity": "warning"}
WRITE_ROUTES = [
    ("POST", "/v1/merchants", MERCHANT_BODY),
    ("PATCH", "/v1/merchants/{merchant_id}", {"name": "Hijacked"}),
    ("POST", "/v1/merchants/{merchant_id}/suspend", None),
    ("POST", "/v1/merchants/{merchant_id}/reactivate", None),
    ("POST", "/v1/merchants/{merchant_id}/stores", {"code": "NEW", "name": "New store"}),
    ("PATCH", "/v1/merchants/{merchant_id}/stores/{store_id}", {"status": "closed"}),
    ("POST", "/v1/merchants/{merchant_id}/api-keys", {"label": "sneaky"}),
    ("POST", "/v1/hq/api-keys", {"role": "hq_admin"}),
    ("POST", "/v1/api-keys/{key_id}/rotate", {"graceSeconds": 0}),
    ("POST", "/v1/api-keys/{key_id}/revoke", None),
    ("POST", "/v1/members", {"acquiringMerchantId": "{merchant_id}"}),
    ("POST", "/v1/members/{member_id}/identifiers", {"kind": "email", "value": "a@b.example"}),
    ("DELETE", "/v1/members/{member_id}/identifiers/{identifier_id}", None),
    ("POST", "/v1/members/{member_id}/status", {"status": "suspended", "reason": "testing"}),
    ("POST", "/v1/members/{member_id}/merge", {"duplicateMemberId": "{member_id}", "reason": "x"}),
    ("POST", "/v1/earn", {"member": {"kind": "member_id", "value": "{member_id}"}}),
    ("POST", "/v1/redemptions", {"member": {"kind": "member_id", "value": "{member_id}"}}),
    ("POST", "/v1/holds", {"member": {"kind": "member_id", "value": "{member_id}"}}),
    ("POST", "/v1/holds/{member_id}/capture", {}),
    ("POST", "/v1/holds/{member_id}/void", {}),
    ("POST", "/v1/transactions/{member_id}/refunds", {"amountMinor": 100}),
    ("POST", "/v1/transactions/{member_id}/reversal", {}),
    ("POST", "/v1/members/{member_id}/adjustments", {"points": 5, "reason": "testing"}),
    ("POST", "/v1/hq/transfers", {"points": 5, "reason": "testing"}),
    ("POST", "/v1/campaigns", CAMPAIGN_BODY),
    ("PATCH", "/v1/campaigns/{campaign_id}", {"name": "Hijacked"}),
    ("POST", "/v1/campaigns/{campaign_id}/schedule", None),
    ("POST", "/v1/campaigns/{campaign_id}/cancel", None),
    ("POST", "/v1/campaigns/{campaign_id}/targets", {"memberIds": [str(uuid.uuid4())]}),
    ("POST", "/v1/hq/alerts/rules", ALERT_RULE_BODY),
    ("PATCH", "/v1/hq/alerts/rules/{rule_id}", {"threshold": 0.5}),
    ("DELETE", "/v1/hq/alerts/rules/{rule_id}", None),
    ("POST", "/v1/hq/alerts/webhooks", WEBHOOK_BODY),
    ("PATCH", "/v1/hq/alerts/webhooks/{endpoint_id}", {"enabled": False}),
    ("POST", "/v1/hq/alerts/webhooks/{endpoint_id}/rotate-secret", None),
    ("DELETE", "/v1/hq/alerts/webhooks/{endpoint_id}", None),
]
# POST routes that only read.
READ_ONLY_POSTS = {"/v1/members/lookup"}


@pytest.fixture
async def world(client, keys, make_merchant) -> dict[str, str]:
    """One of every resource a write route can name."""
    merchant = await make_merchant()
    store = await client.post(
        f"/v1/merchants/{merchant.merchant_id}/stores",
        json={"code": "S1", "name": "Store"},
        headers=keys.hq_admin,
    )
    assert store.status_code == 201, store.text
    member = await client.post(
        "/v1/members",
        json={"identifiers": [{"kind": "email", "value": "ada@example.com"}]},
        headers=merchant.headers,
    )
    assert member.status_code == 201, member.text
    campaign = await client.post("/v1/campaigns", json=CAMPAIGN_BODY, headers=keys.hq_admin)
    assert campaign.status_code == 201, campaign.text
    rule = await client.post("/v1/hq/alerts/rules", json=ALERT_RULE_BODY, headers=keys.hq_admin)
    assert rule.status_code == 201, rule.text
    hook = await client.post("/v1/hq/alerts/webhooks", json=WEBHOOK_BODY, headers=keys.hq_admin)
    assert hook.status_code == 201, hook.text
    return {
        "rule_id": rule.json()["ruleId"],
        "endpoint_id": hook.json()["endpoint"]["endpointId"],
        "campaign_id": campaign.json()["campaignId"],
        "merchant_id": merchant.merchant_id,
        "store_id": store.json()["storeId"],
        "key_id": merchant.key_id,
        "member_id": member.json()["memberId"],
        "identifier_id": member.json()["identifiers"][0]["identifierId"],
    }


def _fill(value, ids: dict[str, str]):
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, dict):
        return {key: _fill(item, ids) for key, item in value.items()}
    return value


def _audit_rows(clean_database) -> int:
    with clean_database.connect() as connection:
        return connection.scalar(select(func.count()).select_from(audit_log))


@pytest.mark.parametrize(
    "method, path, body", WRITE_ROUTES, ids=[f"{m} {p}" for m, p, _ in WRITE_ROUTES]
)
async def test_hq_analyst_is_forbidden_on_every_write_route(
    client, keys, world, clean_database, method, path, body
):
    before = _audit_rows(clean_database)
    response = await client.request(
        method,
        _fill(path, world),
        json=_fill(body, world) if body is not None else None,
        headers=keys.hq_analyst,
    )
    body = assert_problem(response, 403, "forbidden")
    assert body["title"] == "The API key's role does not allow this operation"
    assert _audit_rows(clean_database) == before


async def test_write_route_list_covers_every_write_operation(client):
    document = (await client.get("/schema/openapi.json")).json()
    declared = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
        if method in ("post", "put", "patch", "delete") and path not in READ_ONLY_POSTS
    }
    listed = {
        (
            method,
            path.replace("{member_id}", "{hold_id}")
            if "/holds/" in path
            else path.replace("{member_id}", "{transaction_id}")
            if "/transactions/" in path
            else path,
        )
        for method, path, _ in WRITE_ROUTES
    }
    assert declared == listed


async def test_hq_analyst_may_still_look_members_up(client, keys, world):
    response = await client.post(
        "/v1/members/lookup",
        json={"kind": "email", "value": "ada@example.com"},
        headers=keys.hq_analyst,
    )
    assert response.status_code == 200
    assert response.json()["memberId"] == world["member_id"]


# The OpenAPI document


async def test_openapi_declares_both_security_schemes(client):
    document = (await client.get("/schema/openapi.json")).json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["BearerApiKey"]["type"] == "http"
    assert schemes["BearerApiKey"]["scheme"] == "bearer"
    assert schemes["HeaderApiKey"] == {
        "type": "apiKey",
        "name": "X-API-Key",
        "in": "header",
        "description": "The same API key in the X-API-Key header.",
    }
    assert document["security"] == [{"BearerApiKey": []}, {"HeaderApiKey": []}]


def _operations(document):
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            yield method, path, operation


async def test_every_route_with_a_body_declares_its_problem_responses(client):
    document = (await client.get("/schema/openapi.json")).json()
    with_body = [item for item in _operations(document) if "requestBody" in item[2]]
    assert len(with_body) >= 10
    for method, path, operation in with_body:
        for status in ("400", "401", "413"):
            response = operation["responses"].get(status)
            assert response is not None, f"{method} {path} does not declare {status}"
            assert PROBLEM_JSON in response["content"], f"{method} {path} {status}"


async def test_every_authenticated_route_declares_401(client):
    document = (await client.get("/schema/openapi.json")).json()
    authenticated = [
        item
        for item in _operations(document)
        if not item[1].startswith(("/health", "/ready", "/schema", "/problems"))
    ]
    assert authenticated
    for method, path, operation in authenticated:
        response = operation["responses"].get("401")
        assert response is not None, f"{method} {path} does not declare 401"
        assert PROBLEM_JSON in response["content"]
        assert "/problems/unauthenticated" in response["description"]
