"""Bad input on the write endpoints: always a 4xx problem, never a 500, and nothing written.

Every rejected request is checked the same way: exact status and problem `type`,
`application/problem+json`, `type`/`title`/`status` in the body, and the members,
member_identifiers, merchants, stores and audit_log tables (and every other table but
api_keys, whose last_used_at moves on use) unchanged, row for row.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from api.app import create_app
from shared import api_keys
from shared.access import SYSTEM, Role
from shared.tables import audit_log, member_identifiers, members, merchants, metadata, stores
from tests.conftest import _truncate_all
from tests.integration.conftest import MERCHANT_BODY, bearer, client_for

PROBLEM = "application/problem+json"
WATCHED = (members, member_identifiers, merchants, stores, audit_log) + tuple(
    table
    for table in metadata.sorted_tables
    if table.name
    not in {"members", "member_identifiers", "merchants", "stores", "audit_log", "api_keys"}
)
TEN_MB = 10 * 1024 * 1024
SENTINEL = "@@TEXT@@"
# Fixed, so that parametrize ids are the same in every xdist worker.
SOME_ID = "5f0c6d1e-2b7a-4c39-9e41-0a8d3b6f2c17"


# --- the world every case runs in ------------------------------------------------------


@dataclass
class World:
    admin: dict[str, str]
    merchant_id: str
    merchant: dict[str, str]


@pytest.fixture(scope="module")
async def client(async_engine, test_settings, sync_engine) -> AsyncIterator[httpx.AsyncClient]:
    """One app and client for the whole module, emptied once at the end: refused requests
    write nothing, and a fresh app and world per case cost far more than the case itself.
    The few tests here that do write use fresh values and never assume empty tables."""
    async with client_for(create_app(test_settings, engine=async_engine)) as client:
        yield client
    _truncate_all(sync_engine)


@pytest.fixture(scope="module")
async def world(client, async_engine) -> World:
    async with async_engine.begin() as connection:
        admin = await api_keys.issue_key(connection, SYSTEM, role=Role.HQ_ADMIN, label="test")
    headers = bearer(admin.secret)
    created = await client.post("/v1/merchants", json=MERCHANT_BODY, headers=headers)
    assert created.status_code == 201, created.text
    merchant_id = created.json()["merchantId"]
    issued = await client.post(
        f"/v1/merchants/{merchant_id}/api-keys", json={"label": "pos"}, headers=headers
    )
    assert issued.status_code == 201, issued.text
    return World(headers, merchant_id, bearer(issued.json()["secret"]))


def snapshot(sync_engine) -> dict[str, Any]:
    """Row counts and full contents of the watched tables."""
    with sync_engine.connect() as connection:
        state: dict[str, Any] = {}
        for table in WATCHED:
            state[f"{table.name}.count"] = connection.scalar(
                select(func.count()).select_from(table)
            )
            rows = connection.execute(select(table)).all()
            state[table.name] = sorted(tuple(map(repr, row)) for row in rows)
        return state


def assert_problem(response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].split(";")[0] == PROBLEM
    body = response.json()
    assert body["type"] == f"/problems/{slug}"
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    return body


# --- the endpoints under test ----------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str
    method: str
    path: str  # "{merchant_id}" is filled in from the world
    as_merchant: bool  # else HQ admin
    valid: dict
    text_field: tuple[str, ...]  # a free-text field to poison
    text_status: int = 400  # what a control character in that field earns
    text_slug: str = "invalid-request"
    required: tuple[tuple[str, ...], ...] = ()
    wrong_types: tuple[tuple[str, dict], ...] = ()
    unknown_fields: tuple[tuple[str, dict], ...] = field(default=())

    def url(self, world: World) -> str:
        return self.path.format(merchant_id=world.merchant_id)

    def headers(self, world: World) -> dict[str, str]:
        return world.merchant if self.as_merchant else world.admin


def with_value(body: dict, path: tuple[str, ...], value: Any) -> dict:
    body = json.loads(json.dumps(body))
    node = body
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return body


def without(body: dict, path: tuple[str, ...]) -> dict:
    body = json.loads(json.dumps(body))
    node = body
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return body


ENROL = Target(
    name="enrol",
    method="POST",
    path="/v1/members",
    as_merchant=True,
    valid={
        "identifiers": [{"kind": "phone", "value": "(415) 555-2671"}],
        "profile": {"givenName": "Ada"},
    },
    text_field=("profile", "givenName"),
    required=(("identifiers", 0, "kind"), ("identifiers", 0, "value")),  # type: ignore[arg-type]
    wrong_types=(
        ("identifiers-not-a-list", {"identifiers": {"kind": "phone", "value": "4155552671"}}),
        ("identifiers-a-string", {"identifiers": "4155552671"}),
        ("identifier-value-a-number", {"identifiers": [{"kind": "phone", "value": 4155552671}]}),
        ("identifier-value-null", {"identifiers": [{"kind": "phone", "value": None}]}),
        ("identifier-value-empty", {"identifiers": [{"kind": "phone", "value": ""}]}),
        ("identifier-unknown-kind", {"identifiers": [{"kind": "fax", "value": "4155552671"}]}),
        ("identifier-not-an-object", {"identifiers": ["4155552671"]}),
        (
            "too-many-identifiers",
            {"identifiers": [{"kind": "merchant_ref", "value": f"R{i}"} for i in range(11)]},
        ),
        ("profile-a-list", {"profile": ["Ada"]}),
        ("given-name-a-number", {"profile": {"givenName": 7}}),
        ("given-name-empty", {"profile": {"givenName": ""}}),
        ("birth-date-not-a-date", {"profile": {"birthDate": "yesterday"}}),
        ("birth-date-impossible", {"profile": {"birthDate": "2001-02-30"}}),
        ("locale-bad", {"profile": {"preferredLocale": "English please"}}),
        ("consent-a-string", {"consents": {"marketingEmail": "yes"}}),
        ("consent-a-number", {"consents": {"marketingSms": 2}}),
        ("consent-null", {"consents": {"marketingSms": None}}),
        ("store-id-not-a-uuid", {"storeId": "store-1"}),
        ("merchant-id-a-number", {"acquiringMerchantId": 42}),
        ("card-number-a-number", {"cardNumber": 4111111111111111}),
        ("card-number-too-long", {"cardNumber": "4" * 33}),
    ),
    unknown_fields=(
        ("top-level", {"identifiers": [], "memberId": SOME_ID}),
        ("snake-case", {"store_id": SOME_ID}),
        ("in-identifier", {"identifiers": [{"kind": "phone", "value": "4155552671", "x": 1}]}),
        ("in-profile", {"profile": {"givenName": "Ada", "nickname": "A"}}),
        ("in-consents", {"consents": {"marketingPost": True}}),
        ("status", {"status": "active"}),
    ),
)

LOOKUP = Target(
    name="lookup",
    method="POST",
    path="/v1/members/lookup",
    as_merchant=True,
    valid={"kind": "phone", "value": "(415) 555-2699"},  # nobody here has it
    text_field=("value",),
    # Identifier values are free text to the schema; the phone parser refuses the garbage.
    text_status=422,
    text_slug="invalid-identifier",
    required=(("kind",), ("value",)),
    wrong_types=(
        ("kind-a-number", {"kind": 1, "value": "4155552671"}),
        ("kind-unknown", {"kind": "passport", "value": "X1234567"}),
        ("kind-upper-case", {"kind": "PHONE", "value": "4155552671"}),
        ("value-a-number", {"kind": "phone", "value": 4155552671}),
        ("value-a-list", {"kind": "phone", "value": ["4155552671"]}),
        ("value-null", {"kind": "phone", "value": None}),
        ("value-empty", {"kind": "phone", "value": ""}),
        ("value-an-object", {"kind": "email", "value": {"$ne": ""}}),
    ),
    unknown_fields=(
        ("extra", {"kind": "phone", "value": "4155552671", "memberId": SOME_ID}),
        ("scope", {"kind": "merchant_ref", "value": "R1", "merchantId": SOME_ID}),
    ),
)

CREATE_MERCHANT = Target(
    name="create-merchant",
    method="POST",
    path="/v1/merchants",
    as_merchant=False,
    valid=dict(MERCHANT_BODY, name="Bean There"),
    text_field=("name",),
    required=tuple((key,) for key in MERCHANT_BODY),
    wrong_types=(
        ("name-a-number", {**MERCHANT_BODY, "name": 12}),
        ("name-null", {**MERCHANT_BODY, "name": None}),
        ("name-empty", {**MERCHANT_BODY, "name": ""}),
        ("industry-unknown", {**MERCHANT_BODY, "industry": "casino"}),
        ("currency-lower-case", {**MERCHANT_BODY, "currency": "usd"}),
        ("currency-a-number", {**MERCHANT_BODY, "currency": 840}),
        ("earn-rate-a-float", {**MERCHANT_BODY, "earnRate": 1.5}),
        ("earn-rate-negative", {**MERCHANT_BODY, "earnRate": "-1"}),
        ("earn-rate-exponent", {**MERCHANT_BODY, "earnRate": "1e3"}),
        ("earn-rate-nan", {**MERCHANT_BODY, "earnRate": "NaN"}),
        ("earn-rate-huge", {**MERCHANT_BODY, "earnRate": "1" * 30}),
        ("price-too-precise", {**MERCHANT_BODY, "issuancePrice": "0.0000001"}),
        ("price-a-bool", {**MERCHANT_BODY, "redemptionRate": True}),
    ),
    unknown_fields=(
        ("merchant-id", {**MERCHANT_BODY, "merchantId": SOME_ID}),
        ("status", {**MERCHANT_BODY, "status": "active"}),
        ("snake-case", {**MERCHANT_BODY, "earn_rate": "2"}),
    ),
)

UPDATE_MERCHANT = Target(
    name="update-merchant",
    method="PATCH",
    path="/v1/merchants/{merchant_id}",
    as_merchant=False,
    valid={"name": "Greenleaf Market", "earnRate": "2"},
    text_field=("name",),
    wrong_types=(
        ("name-null", {"name": None}),
        ("name-a-list", {"name": ["Greenleaf"]}),
        ("earn-rate-a-number", {"earnRate": 2}),
        ("earn-rate-negative", {"earnRate": "-2"}),
        ("currency-bad", {"currency": "dollars"}),
        ("industry-unknown", {"industry": "casino"}),
        ("industry-null", {"industry": None}),
    ),
    unknown_fields=(
        ("status", {"status": "suspended"}),
        ("merchant-id", {"merchantId": SOME_ID}),
        ("created-at", {"createdAt": "2020-01-01T00:00:00Z"}),
    ),
)

CREATE_STORE = Target(
    name="create-store",
    method="POST",
    path="/v1/merchants/{merchant_id}/stores",
    as_merchant=True,
    valid={"code": "NYC-001", "name": "Broadway", "city": "New York", "country": "US"},
    text_field=("name",),
    required=(("code",), ("name",)),
    wrong_types=(
        ("code-a-number", {"code": 1, "name": "Broadway"}),
        ("code-with-space", {"code": "NYC 001", "name": "Broadway"}),
        ("code-with-slash", {"code": "../etc", "name": "Broadway"}),
        ("code-empty", {"code": "", "name": "Broadway"}),
        ("code-too-long", {"code": "C" * 65, "name": "Broadway"}),
        ("country-lower-case", {"code": "N1", "name": "Broadway", "country": "us"}),
        ("country-three-letters", {"code": "N1", "name": "Broadway", "country": "USA"}),
        ("city-too-long", {"code": "N1", "name": "Broadway", "city": "C" * 65}),
        ("city-a-number", {"code": "N1", "name": "Broadway", "city": 10001}),
        ("timezone-with-space", {"code": "N1", "name": "Broadway", "timezone": "New York"}),
        ("timezone-null", {"code": "N1", "name": "Broadway", "timezone": None}),
    ),
    unknown_fields=(
        ("merchant-id", {"code": "N1", "name": "Broadway", "merchantId": SOME_ID}),
        ("status", {"code": "N1", "name": "Broadway", "status": "open"}),
    ),
)

TARGETS = (ENROL, LOOKUP, CREATE_MERCHANT, UPDATE_MERCHANT, CREATE_STORE)


async def send(client, world: World, target: Target, *, json_body=None, content=None):
    headers = dict(target.headers(world))
    if content is not None:
        headers["content-type"] = "application/json"
        return await client.request(
            target.method, target.url(world), content=content, headers=headers
        )
    return await client.request(target.method, target.url(world), json=json_body, headers=headers)


async def assert_refused(client, world, sync_engine, target, status, slug, **payload) -> dict:
    before = snapshot(sync_engine)
    response = await send(client, world, target, **payload)
    body = assert_problem(response, status, slug)
    assert snapshot(sync_engine) == before
    return body


def raw_with_text(target: Target, fragment: bytes) -> bytes:
    """The valid body with its free-text field's JSON string replaced by raw bytes."""
    encoded = json.dumps(with_value(target.valid, target.text_field, SENTINEL)).encode()
    assert encoded.count(f'"{SENTINEL}"'.encode()) == 1
    return encoded.replace(f'"{SENTINEL}"'.encode(), fragment)


def by_target(cases: Callable[[Target], list]) -> list:
    return [
        pytest.param(target, *case[1:], id=f"{target.name}-{case[0]}")
        for target in TARGETS
        for case in cases(target)
    ]


# --- the valid bodies really are valid (else every refusal below proves nothing) -------


@pytest.mark.parametrize("target", TARGETS, ids=lambda target: target.name)
async def test_the_baseline_bodies_are_accepted(client, world, target, sync_engine):
    response = await send(client, world, target, json_body=target.valid)
    if target is LOOKUP:
        assert_problem(response, 404, "not-found")  # valid, nobody has the number
    else:
        assert response.status_code in (200, 201), response.text


# --- not JSON, or not a JSON object ----------------------------------------------------


def _syntax_cases(target: Target) -> list:
    valid = json.dumps(target.valid).encode()
    return [
        ("empty", b""),
        ("whitespace", b"   \n"),
        ("truncated", valid[:-1]),
        ("open-brace", b"{"),
        ("not-json", b"hello"),
        ("trailing-comma", valid[:-1] + b",}"),
        ("single-quotes", valid.replace(b'"', b"'")),
        ("trailing-garbage", valid + b" x"),
        ("two-documents", valid + valid),
        ("comment", b"/* hi */" + valid),
        ("byte-order-mark", b"\xef\xbb\xbf" + valid),
        ("nan", b'{"name": NaN}'),
        ("array", b"[]"),
        ("array-of-the-body", b"[" + valid + b"]"),
        ("string", b'"hello"'),
        ("number", b"42"),
        ("null", b"null"),
        ("true", b"true"),
        ("deep-nesting", b"[" * 100_000),
        ("latin-1", raw_with_text(target, '"Café"'.encode("latin-1"))),
        ("utf-16", json.dumps(target.valid).encode("utf-16")),
    ]


@pytest.mark.parametrize(("target", "content"), by_target(_syntax_cases))
async def test_bodies_that_are_not_a_json_object(client, world, sync_engine, target, content):
    await assert_refused(
        client, world, sync_engine, target, 400, "invalid-request", content=content
    )


# --- schema violations -----------------------------------------------------------------


def _wrong_type_cases(target: Target) -> list:
    return [(label, body) for label, body in target.wrong_types]


@pytest.mark.parametrize(("target", "body"), by_target(_wrong_type_cases))
async def test_wrong_types_and_values_outside_the_schema(client, world, sync_engine, target, body):
    problem = await assert_refused(
        client, world, sync_engine, target, 400, "invalid-request", json_body=body
    )
    assert problem["errors"] and all("message" in item for item in problem["errors"])


def _unknown_field_cases(target: Target) -> list:
    return [(label, body) for label, body in target.unknown_fields]


@pytest.mark.parametrize(("target", "body"), by_target(_unknown_field_cases))
async def test_unknown_fields_are_refused(client, world, sync_engine, target, body):
    await assert_refused(client, world, sync_engine, target, 400, "invalid-request", json_body=body)


def _missing_cases(target: Target) -> list:
    cases = [("-".join(map(str, path)), without(target.valid, path)) for path in target.required]
    if target.required:
        cases.append(("empty-object", {} if target is not ENROL else {"identifiers": [{}]}))
    return cases


@pytest.mark.parametrize(("target", "body"), by_target(_missing_cases))
async def test_missing_required_fields(client, world, sync_engine, target, body):
    await assert_refused(client, world, sync_engine, target, 400, "invalid-request", json_body=body)


# --- oversized bodies and strings ------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS, ids=lambda target: target.name)
async def test_a_ten_megabyte_string_is_too_large(client, world, sync_engine, target):
    content = raw_with_text(target, b'"' + b"x" * TEN_MB + b'"')
    await assert_refused(
        client, world, sync_engine, target, 413, "payload-too-large", content=content
    )


@pytest.mark.parametrize("target", TARGETS, ids=lambda target: target.name)
async def test_a_streamed_body_without_length_is_cut_off_at_the_limit(
    client, world, sync_engine, target
):
    async def chunks() -> AsyncIterator[bytes]:
        yield raw_with_text(target, b'"').removesuffix(b"}")
        for _ in range(20):
            yield b"x" * (512 * 1024)
        yield b'"}'

    before = snapshot(sync_engine)
    response = await client.request(
        target.method,
        target.url(world),
        content=chunks(),
        headers={**target.headers(world), "content-type": "application/json"},
    )
    assert_problem(response, 413, "payload-too-large")
    assert snapshot(sync_engine) == before


def _long_text_cases(target: Target) -> list:
    return [
        ("2000-chars", "N" * 2000),
        ("2000-emoji", "😀" * 2000),
        ("900-kb", "x" * 900_000),  # under the body limit: the field's own bound refuses it
    ]


@pytest.mark.parametrize(("target", "text"), by_target(_long_text_cases))
async def test_overlong_strings_are_refused(client, world, sync_engine, target, text):
    body = with_value(target.valid, target.text_field, text)
    await assert_refused(client, world, sync_engine, target, 400, "invalid-request", json_body=body)


# --- characters that are not text ------------------------------------------------------

CONTROL_TEXT = [
    ("nul", "\x00"),
    ("embedded-nul", "Ada\x00Lovelace"),
    ("trailing-nul", "Ada\x00"),
    ("bell", "Ada\x07"),
    ("escape-sequence", "\x1b[31mAda"),
    ("newline", "Ada\nLovelace"),
    ("carriage-return", "Ada\r"),
    ("tab", "Ada\tLovelace"),
    ("delete", "Ada\x7f"),
    ("backspace", "Ada\x08\x08\x08Eve"),
]


def _control_cases(target: Target) -> list:
    return [(label, text, target.text_status, target.text_slug) for label, text in CONTROL_TEXT]


@pytest.mark.parametrize(("target", "text", "status", "slug"), by_target(_control_cases))
async def test_control_characters_in_text_are_refused(
    client, world, sync_engine, target, text, status, slug
):
    body = with_value(target.valid, target.text_field, text)
    await assert_refused(client, world, sync_engine, target, status, slug, json_body=body)


def _encoding_cases(target: Target) -> list:
    return [
        ("lone-high-surrogate", b'"\\ud800"'),
        ("lone-low-surrogate", b'"\\udc00"'),
        ("surrogate-in-text", b'"Ada\\ud800Lovelace"'),
        ("reversed-surrogate-pair", b'"\\ude00\\ud83d"'),
        ("high-surrogate-then-letter", b'"\\ud83dA"'),
        ("bad-escape", b'"\\x41"'),
        ("short-unicode-escape", b'"\\u12"'),
        ("raw-control-character", b'"Ada\x01"'),
        ("raw-newline", b'"Ada\nLovelace"'),
        ("invalid-utf8-ff", b'"\xff"'),
        ("invalid-utf8-continuation", b'"\x80abc"'),
        ("overlong-utf8-slash", b'"\xc0\xaf"'),
        ("utf8-encoded-surrogate", b'"\xed\xa0\x80"'),
        ("truncated-utf8", b'"\xe2\x82"'),
        ("unterminated-string", b'"Ada'),
    ]


@pytest.mark.parametrize(("target", "fragment"), by_target(_encoding_cases))
async def test_strings_that_are_not_valid_unicode(client, world, sync_engine, target, fragment):
    content = raw_with_text(target, fragment)
    await assert_refused(
        client, world, sync_engine, target, 400, "invalid-request", content=content
    )


async def test_the_raw_invalid_utf8_lookup_body(client, world, sync_engine):
    before = snapshot(sync_engine)
    response = await client.post(
        "/v1/members/lookup",
        content=b'{"kind":"phone","value":"\xff"}',
        headers={**world.merchant, "content-type": "application/json"},
    )
    body = assert_problem(response, 400, "invalid-request")
    assert body["instance"] == "/v1/members/lookup"
    assert body["detail"] == "The request body is not valid UTF-8."
    assert snapshot(sync_engine) == before


async def test_deeply_nested_json_is_a_400_not_a_500(client, world, sync_engine):
    before = snapshot(sync_engine)
    response = await client.post(
        "/v1/members",
        content=b'{"identifiers":' + b"[" * 5000 + b"]" * 5000 + b"}",
        headers={**world.merchant, "content-type": "application/json"},
    )
    body = assert_problem(response, 400, "invalid-request")
    assert body["detail"] == "The request body's JSON nests too deeply."
    assert snapshot(sync_engine) == before


# --- identifiers the schema lets through but the program refuses -----------------------

BAD_IDENTIFIERS = [
    ("phone", "123"),
    ("phone", "not a phone"),
    ("phone", "+1 555 555 5555"),
    ("phone", "+999 1234567"),
    ("phone", "4155552671\x00"),
    ("phone", "\x004155552671"),
    ("phone", "4155552671\x1b"),
    ("phone", "1" * 65),
    ("email", "not-an-email"),
    ("email", "ada@"),
    ("email", "ada@example"),
    ("email", "a b@example.com"),
    ("email", "ada\x00@example.com"),
    ("email", "ada@example.com\x00"),
    ("email", "a" * 64 + "@" + "b" * 250 + ".com"),
    ("card", "4111 1111 1111 1112"),
    ("card", "************1111"),
    ("card", "4111\x001111\x0011111111"),
    ("card", "1234"),
    ("merchant_ref", "   "),
    ("merchant_ref", "REF\x00"),
    ("merchant_ref", "R\u0085F"),
    ("merchant_ref", "R" * 129),
]


@pytest.mark.parametrize(
    ("kind", "value"), BAD_IDENTIFIERS, ids=[f"{k}-{i}" for i, (k, _) in enumerate(BAD_IDENTIFIERS)]
)
async def test_invalid_identifiers_at_enrolment_and_lookup(client, world, sync_engine, kind, value):
    for target, body in (
        (ENROL, {"identifiers": [{"kind": kind, "value": value}]}),
        (LOOKUP, {"kind": kind, "value": value}),
    ):
        problem = await assert_refused(
            client, world, sync_engine, target, 422, "invalid-identifier", json_body=body
        )
        assert problem["identifierKind"] == kind


async def test_an_invalid_identifier_after_a_valid_one_leaves_nothing_behind(
    client, world, sync_engine
):
    body = {
        "identifiers": [
            {"kind": "phone", "value": "(415) 555-2681"},
            {"kind": "merchant_ref", "value": "CUST-1"},
            {"kind": "email", "value": "not-an-email"},
        ],
        "profile": {"givenName": "Ada"},
    }
    problem = await assert_refused(
        client, world, sync_engine, ENROL, 422, "invalid-identifier", json_body=body
    )
    assert problem["identifierKind"] == "email"


async def test_an_identifier_in_use_leaves_no_half_enrolled_member(client, world, sync_engine):
    first = await send(client, world, ENROL, json_body={"cardNumber": "5555555555554444"})
    assert first.status_code == 201
    body = {
        "identifiers": [
            {"kind": "phone", "value": "(415) 555-2682"},
            {"kind": "card", "value": "5555-5555-5555-4444"},
        ],
        "profile": {"givenName": "Eve"},
    }
    problem = await assert_refused(
        client, world, sync_engine, ENROL, 409, "identifier-in-use", json_body=body
    )
    assert problem["identifierKind"] == "card"


# --- text that is unusual but legitimate -----------------------------------------------

UNICODE_NAMES = [
    ("accents", "Crème Brûlée Café"),
    ("emoji", "Smile 😀 Store"),
    ("zwj-emoji", "👩‍👩‍👧‍👦 Family Mart"),
    ("flag", "🇫🇷 Boulangerie"),
    ("hebrew", "שלום חנות"),
    ("arabic", "مقهى السلام"),
    ("mixed-direction", "Café שלום 42"),
    ("combining", "Cafe\u0301 e\u0301tude"),  # kept as sent, not recomposed
    ("cjk", "北京烤鸭店"),
    ("astral", "𝔊𝔯𝔢𝔢𝔫𝔩𝔢𝔞𝔣"),
    ("exactly-200", "é" * 200),
]


@pytest.mark.parametrize(
    ("name"), [name for _, name in UNICODE_NAMES], ids=[i for i, _ in UNICODE_NAMES]
)
async def test_unicode_names_are_stored_and_returned_intact(client, world, sync_engine, name):
    created = await client.post(
        "/v1/merchants", json={**MERCHANT_BODY, "name": name}, headers=world.admin
    )
    assert created.status_code == 201, created.text
    merchant_id = created.json()["merchantId"]
    assert created.json()["name"] == name
    fetched = await client.get(f"/v1/merchants/{merchant_id}", headers=world.admin)
    assert fetched.json()["name"] == name

    renamed = await client.patch(
        f"/v1/merchants/{world.merchant_id}", json={"name": name[::-1]}, headers=world.admin
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == name[::-1]

    store = await client.post(
        f"/v1/merchants/{world.merchant_id}/stores",
        json={"code": uuid.uuid4().hex, "name": name, "city": name[:64]},
        headers=world.merchant,
    )
    assert store.status_code == 201, store.text
    assert store.json()["name"] == name
    assert store.json()["city"] == name[:64]

    enrolled = await client.post(
        "/v1/members",
        json={"profile": {"givenName": name, "familyName": name[:1]}},
        headers=world.merchant,
    )
    assert enrolled.status_code == 201, enrolled.text
    assert enrolled.json()["profile"]["givenName"] == name
    member_id = enrolled.json()["memberId"]
    read = await client.get(f"/v1/members/{member_id}", headers=world.merchant)
    assert read.json()["profile"]["givenName"] == name
    assert read.json()["profile"]["familyName"] == name[:1]

    with sync_engine.connect() as connection:
        assert (
            connection.scalar(
                select(merchants.c.name).where(merchants.c.merchant_id == uuid.UUID(merchant_id))
            )
            == name
        )
        assert (
            connection.scalar(
                select(members.c.given_name).where(members.c.member_id == uuid.UUID(member_id))
            )
            == name
        )
        store_id = uuid.UUID(store.json()["storeId"])
        assert connection.scalar(select(stores.c.name).where(stores.c.store_id == store_id)) == name


async def test_json_unicode_escapes_decode_to_the_same_name(client, world):
    content = b'{"profile":{"givenName":"Caf\\u00e9 \\ud83d\\ude00 \\u05e9"}}'
    response = await client.post(
        "/v1/members",
        content=content,
        headers={**world.merchant, "content-type": "application/json"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["profile"]["givenName"] == "Café 😀 ש"


# --- path and query parameters ---------------------------------------------------------

BAD_IDS = [
    "not-a-uuid",
    "123",
    "00000000-0000-0000-0000-00000000000g",
    "00000000-0000-0000-0000-0000000000000",
    "%00",
    "%F0%9F%98%80",
    "..%2F..%2Fetc",
    "x" * 500,
    "'%20OR%201=1--",
    "%FF%FE",
]


def _path_cases() -> list:
    member = SOME_ID
    cases = []
    for bad in BAD_IDS:
        cases += [
            ("GET", f"/v1/members/{bad}", None),
            ("POST", f"/v1/members/{bad}/identifiers", {"kind": "phone", "value": "4155552671"}),
            ("DELETE", f"/v1/members/{bad}/identifiers/{SOME_ID}", None),
            ("DELETE", f"/v1/members/{member}/identifiers/{bad}", None),
            ("POST", f"/v1/members/{bad}/status", {"status": "closed", "reason": "Test reason"}),
            ("POST", f"/v1/members/{bad}/merge", {"duplicateMemberId": member, "reason": "Dup"}),
            ("GET", f"/v1/merchants/{bad}", None),
            ("PATCH", f"/v1/merchants/{bad}", {"name": "Renamed"}),
            ("POST", f"/v1/merchants/{bad}/stores", {"code": "S1", "name": "Store"}),
            ("POST", f"/v1/merchants/{bad}/suspend", None),
        ]
    return [
        pytest.param(method, path, body, id=f"{method}-{path[:60]}") for method, path, body in cases
    ]


@pytest.mark.parametrize(("method", "path", "body"), _path_cases())
async def test_non_uuid_path_ids_are_not_found(client, world, sync_engine, method, path, body):
    before = snapshot(sync_engine)
    response = await client.request(method, path, json=body, headers=world.admin)
    assert_problem(response, 404, "not-found")
    assert snapshot(sync_engine) == before


@pytest.mark.parametrize(
    "query",
    [
        "limit=-1",
        "limit=0",
        "limit=501",
        "limit=99999999999999999999999999",
        "limit=abc",
        "limit=1.5",
        "limit=",
        "limit=1e3",
        "offset=-1",
        "offset=10000001",
        "offset=-99999999999999999999999999",
        "offset=99999999999999999999999999",
        "offset=zero",
        "status=closed",
        "status=",
        "status=%FF",
        "limit=%FF",
        "limit=%00",
        "limit=1%00",
    ],
)
async def test_bad_paging_parameters(client, world, sync_engine, query):
    before = snapshot(sync_engine)
    response = await client.get(f"/v1/merchants?{query}", headers=world.admin)
    assert_problem(response, 400, "invalid-request")
    assert snapshot(sync_engine) == before


@pytest.mark.parametrize("query", ["limit=1", "limit=500&offset=0", "offset=10000000"])
async def test_paging_bounds_are_inclusive(client, world, query):
    response = await client.get(f"/v1/merchants?{query}", headers=world.admin)
    assert response.status_code == 200, response.text
    page = response.json()
    expected = {"limit=1": 1, "limit=500&offset=0": page["total"], "offset=10000000": 0}[query]
    assert page["total"] >= 1
    assert len(page["items"]) == expected
