from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from api.app import create_app
from shared import api_keys
from shared.access import SYSTEM, Role
from shared.tables import audit_log, campaigns
from tests.integration.clock import clock_engine, set_clock
from tests.integration.conftest import bearer, client_for

PROBLEM_JSON = "application/problem+json"
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def future(days: float = 10) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


def body(**overrides) -> dict:
    return {
        "name": "Double points week",
        "kind": "multiplier",
        "startsAt": iso(future(10)),
        "endsAt": iso(future(17)),
        "terms": {"multiplier": "2"},
        "holdoutBps": 1000,
        **overrides,
    }


def assert_problem(response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    problem = response.json()
    assert problem["type"] == f"/problems/{slug}"
    assert problem["status"] == status
    return problem


async def create(client, headers, **overrides) -> dict:
    response = await client.post("/v1/campaigns", json=body(**overrides), headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


# Creating


async def test_hq_admin_creates_an_hq_campaign(client, keys, make_merchant, clean_database):
    merchant = await make_merchant()
    campaign = await create(
        client,
        keys.hq_admin,
        merchantIds=[merchant.merchant_id],
        tiers=["gold", "platinum"],
        terms={"multiplier": "2.50"},
        perMemberCapPoints=500,
        budgetPoints=100_000,
    )
    assert campaign["ownerMerchantId"] is None
    assert campaign["status"] == "draft"
    assert campaign["kind"] == "multiplier"
    assert campaign["terms"] == {"multiplier": "2.5"}
    assert campaign["merchantIds"] == [merchant.merchant_id]
    assert campaign["tiers"] == ["gold", "platinum"]
    assert campaign["holdoutBps"] == 1000
    assert campaign["perMemberCapPoints"] == 500
    assert campaign["budgetPoints"] == 100_000
    assert "salt" not in campaign

    read = await client.get(f"/v1/campaigns/{campaign['campaignId']}", headers=keys.hq_analyst)
    assert read.status_code == 200
    assert read.json() == campaign

    with clean_database.connect() as connection:
        salt = connection.scalar(
            select(campaigns.c.salt).where(campaigns.c.campaign_id == campaign["campaignId"])
        )
        actions = connection.scalars(
            select(audit_log.c.action).where(audit_log.c.subject_id == campaign["campaignId"])
        ).all()
    assert len(salt) == 32
    assert actions == ["campaign.created"]


async def test_salts_differ_between_campaigns(client, keys, clean_database):
    first = await create(client, keys.hq_admin)
    second = await create(client, keys.hq_admin)
    with clean_database.connect() as connection:
        salts = connection.scalars(
            select(campaigns.c.salt).where(
                campaigns.c.campaign_id.in_([first["campaignId"], second["campaignId"]])
            )
        ).all()
    assert len(set(salts)) == 2


async def test_merchant_creates_its_own_campaign(client, make_merchant):
    merchant = await make_merchant()
    campaign = await create(
        client,
        merchant.headers,
        kind="fixed_bonus",
        terms={"bonusPoints": 50, "minSpendMinor": 500},
    )
    assert campaign["ownerMerchantId"] == merchant.merchant_id
    assert campaign["merchantIds"] == [merchant.merchant_id]
    explicit = await create(client, merchant.headers, merchantIds=[merchant.merchant_id])
    assert explicit["merchantIds"] == [merchant.merchant_id]


async def test_merchant_cannot_run_a_campaign_at_another_partner(client, make_merchant):
    merchant = await make_merchant()
    other = await make_merchant(name="Bean There", industry="coffee")
    response = await client.post(
        "/v1/campaigns", json=body(merchantIds=[other.merchant_id]), headers=merchant.headers
    )
    assert_problem(response, 422, "invalid-input")


@pytest.mark.parametrize(
    "overrides, status, slug",
    [
        ({"terms": {"multiplier": "1"}}, 422, "invalid-input"),
        ({"kind": "fixed_bonus", "terms": {"multiplier": "2"}}, 422, "invalid-input"),
        ({"kind": "cross_merchant", "terms": {"distinctPartners": 1, "bonusPoints": 5}}, 422,
         "invalid-input"),
        ({"endsAt": iso(future(5))}, 422, "invalid-input"),
        ({"tiers": ["bronze"]}, 422, "invalid-input"),
        ({"merchantIds": [UNKNOWN_ID]}, 422, "invalid-input"),
        ({"holdoutBps": 10_001}, 400, "invalid-request"),
        ({"kind": "lottery"}, 400, "invalid-request"),
        ({"terms": {"multiplier": 2.5}}, 400, "invalid-request"),
        ({"budgetPoints": 0}, 400, "invalid-request"),
        ({"name": "x" * 201}, 400, "invalid-request"),
        ({"startsAt": "2030-01-01T00:00:00"}, 400, "invalid-request"),  # no time zone
        ({"surprise": 1}, 400, "invalid-request"),
    ],
)  # fmt: skip
async def test_bad_definitions_are_problems_and_write_nothing(
    client, keys, clean_database, overrides, status, slug
):
    response = await client.post("/v1/campaigns", json=body(**overrides), headers=keys.hq_admin)
    assert_problem(response, status, slug)
    with clean_database.connect() as connection:
        assert connection.scalars(select(campaigns.c.campaign_id)).all() == []


# Who sees what


async def test_merchant_cannot_see_another_merchants_or_hq_campaigns(client, keys, make_merchant):
    merchant = await make_merchant()
    other = await make_merchant(name="Bean There", industry="coffee")
    theirs = await create(client, other.headers)
    hq = await create(client, keys.hq_admin)
    for campaign in (theirs, hq):
        url = f"/v1/campaigns/{campaign['campaignId']}"
        assert_problem(await client.get(url, headers=merchant.headers), 404, "not-found")
        assert_problem(
            await client.patch(url, json={"name": "Mine"}, headers=merchant.headers),
            404,
            "not-found",
        )
        for action in ("schedule", "cancel"):
            response = await client.post(f"{url}/{action}", headers=merchant.headers)
            assert_problem(response, 404, "not-found")
    listing = await client.get("/v1/campaigns", headers=merchant.headers)
    assert listing.json()["total"] == 0
    # The owner still sees it, untouched.
    mine = await client.get(f"/v1/campaigns/{theirs['campaignId']}", headers=other.headers)
    assert mine.json() == theirs


async def test_unknown_campaign_is_not_found(client, keys):
    response = await client.get(f"/v1/campaigns/{UNKNOWN_ID}", headers=keys.hq_admin)
    problem = assert_problem(response, 404, "not-found")
    assert UNKNOWN_ID in problem["detail"]


async def test_hq_analyst_reads_but_cannot_write(client, keys, clean_database):
    campaign = await create(client, keys.hq_admin)
    url = f"/v1/campaigns/{campaign['campaignId']}"
    for method, path, payload in (
        ("POST", "/v1/campaigns", body()),
        ("PATCH", url, {"name": "Hijacked"}),
        ("POST", f"{url}/schedule", None),
        ("POST", f"{url}/cancel", None),
    ):
        response = await client.request(method, path, json=payload, headers=keys.hq_analyst)
        assert_problem(response, 403, "forbidden")
    assert (await client.get(url, headers=keys.hq_analyst)).json() == campaign
    assert (await client.get("/v1/campaigns", headers=keys.hq_analyst)).json()["total"] == 1


async def test_no_key_is_unauthenticated(client):
    assert_problem(await client.get("/v1/campaigns"), 401, "unauthenticated")
    assert_problem(await client.post("/v1/campaigns", json=body()), 401, "unauthenticated")


async def test_a_suspended_merchant_reads_but_cannot_write(client, keys, make_merchant):
    merchant = await make_merchant()
    campaign = await create(client, merchant.headers)
    suspended = await client.post(
        f"/v1/merchants/{merchant.merchant_id}/suspend", headers=keys.hq_admin
    )
    assert suspended.status_code == 200
    url = f"/v1/campaigns/{campaign['campaignId']}"
    assert (await client.get(url, headers=merchant.headers)).status_code == 200
    response = await client.post("/v1/campaigns", json=body(), headers=merchant.headers)
    assert_problem(response, 403, "merchant-not-active")
    response = await client.post(f"{url}/cancel", headers=merchant.headers)
    assert_problem(response, 403, "merchant-not-active")


# Lifecycle


async def test_update_while_draft_then_409_once_scheduled(client, keys, clean_database):
    campaign = await create(client, keys.hq_admin)
    url = f"/v1/campaigns/{campaign['campaignId']}"
    updated = await client.patch(
        url,
        json={"name": "Triple points", "terms": {"multiplier": "3"}, "holdoutBps": 500},
        headers=keys.hq_admin,
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["name"] == "Triple points"
    assert updated.json()["terms"] == {"multiplier": "3"}
    assert updated.json()["holdoutBps"] == 500
    assert updated.json()["startsAt"] == campaign["startsAt"]

    # Changing the kind needs terms valid for the new kind.
    response = await client.patch(url, json={"kind": "fixed_bonus"}, headers=keys.hq_admin)
    assert_problem(response, 422, "invalid-input")
    changed = await client.patch(
        url,
        json={"kind": "win_back", "terms": {"lapsedDays": 60, "bonusPoints": 200}},
        headers=keys.hq_admin,
    )
    assert changed.status_code == 200
    assert changed.json()["kind"] == "win_back"
    response = await client.patch(url, json={"endsAt": campaign["startsAt"]}, headers=keys.hq_admin)
    assert_problem(response, 422, "invalid-input")

    scheduled = await client.post(f"{url}/schedule", headers=keys.hq_admin)
    assert scheduled.status_code == 200, scheduled.text
    assert scheduled.json()["status"] == "scheduled"

    response = await client.patch(url, json={"name": "Too late"}, headers=keys.hq_admin)
    problem = assert_problem(response, 409, "campaign-not-draft")
    assert problem["campaignStatus"] == "scheduled"
    response = await client.post(f"{url}/schedule", headers=keys.hq_admin)
    assert_problem(response, 409, "campaign-not-draft")
    assert (await client.get(url, headers=keys.hq_admin)).json() == scheduled.json()

    with clean_database.connect() as connection:
        actions = connection.scalars(
            select(audit_log.c.action)
            .where(audit_log.c.subject_id == campaign["campaignId"])
            .order_by(audit_log.c.audit_id)
        ).all()
    assert actions == [
        "campaign.created", "campaign.updated", "campaign.updated", "campaign.scheduled"
    ]  # fmt: skip


async def test_schedule_needs_a_start_in_the_future(client, keys):
    past = datetime.now(UTC) - timedelta(days=1)
    campaign = await create(
        client, keys.hq_admin, startsAt=iso(past), endsAt=iso(past + timedelta(days=7))
    )
    url = f"/v1/campaigns/{campaign['campaignId']}"
    response = await client.post(f"{url}/schedule", headers=keys.hq_admin)
    problem = assert_problem(response, 422, "invalid-input")
    assert problem["field"] == "startsAt"
    assert (await client.get(url, headers=keys.hq_admin)).json()["status"] == "draft"


async def test_merchant_manages_its_own_campaign(client, make_merchant):
    merchant = await make_merchant()
    campaign = await create(client, merchant.headers)
    url = f"/v1/campaigns/{campaign['campaignId']}"
    updated = await client.patch(url, json={"budgetPoints": 5000}, headers=merchant.headers)
    assert updated.json()["budgetPoints"] == 5000
    scheduled = await client.post(f"{url}/schedule", headers=merchant.headers)
    assert scheduled.json()["status"] == "scheduled"
    cancelled = await client.post(f"{url}/cancel", headers=merchant.headers)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"


async def test_cancel_a_draft_and_not_twice(client, keys, clean_database):
    campaign = await create(client, keys.hq_admin)
    url = f"/v1/campaigns/{campaign['campaignId']}"
    cancelled = await client.post(f"{url}/cancel", headers=keys.hq_admin)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    again = await client.post(f"{url}/cancel", headers=keys.hq_admin)
    assert assert_problem(again, 409, "conflict")["campaignStatus"] == "cancelled"
    response = await client.post(f"{url}/schedule", headers=keys.hq_admin)
    assert_problem(response, 409, "campaign-not-draft")
    response = await client.patch(url, json={"name": "Revived"}, headers=keys.hq_admin)
    assert_problem(response, 409, "campaign-not-draft")


async def test_list_filters_by_status_and_owner(client, keys, make_merchant):
    merchant = await make_merchant()
    other = await make_merchant(name="Bean There", industry="coffee")
    await create(client, keys.hq_admin, name="HQ draft")
    hq_scheduled = await create(client, keys.hq_admin, name="HQ scheduled")
    await client.post(f"/v1/campaigns/{hq_scheduled['campaignId']}/schedule", headers=keys.hq_admin)
    await create(client, merchant.headers, name="Mine")
    await create(client, other.headers, name="Theirs")

    async def names(headers, **params) -> list[str]:
        response = await client.get("/v1/campaigns", params=params, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert page["total"] == len(page["items"])
        return sorted(item["name"] for item in page["items"])

    assert await names(keys.hq_analyst) == ["HQ draft", "HQ scheduled", "Mine", "Theirs"]
    assert await names(keys.hq_admin, status="scheduled") == ["HQ scheduled"]
    assert await names(keys.hq_admin, status="draft") == ["HQ draft", "Mine", "Theirs"]
    assert await names(keys.hq_admin, owner="hq") == ["HQ draft", "HQ scheduled"]
    assert await names(keys.hq_admin, owner="merchant") == ["Mine", "Theirs"]
    assert await names(keys.hq_admin, owner_merchant_id=other.merchant_id) == ["Theirs"]
    assert await names(keys.hq_admin, owner="hq", status="draft") == ["HQ draft"]
    assert await names(merchant.headers) == ["Mine"]
    assert await names(merchant.headers, owner_merchant_id=other.merchant_id) == []
    page = (await client.get("/v1/campaigns", params={"limit": 2}, headers=keys.hq_admin)).json()
    assert len(page["items"]) == 2
    assert page["total"] == 4
    assert_problem(
        await client.get("/v1/campaigns", params={"status": "paused"}, headers=keys.hq_admin),
        400,
        "invalid-request",
    )


# Effective status by time (the database clock)


@pytest.fixture
async def clocked(database_url, test_settings, clean_database):
    """A client whose database `now()` the test moves, and an HQ admin key."""
    async with clock_engine(database_url) as engine:
        async with engine.begin() as connection:
            admin = await api_keys.issue_key(connection, SYSTEM, role=Role.HQ_ADMIN, label="t")
        async with client_for(create_app(test_settings, engine=engine)) as client:
            yield client, engine, bearer(admin.secret)


async def test_scheduled_reads_running_then_ended_by_the_database_clock(clocked):
    client, engine, admin = clocked
    start = datetime(2031, 3, 1, tzinfo=UTC)
    end = datetime(2031, 3, 8, tzinfo=UTC)
    await set_clock(engine, start - timedelta(days=1))
    campaign = await create(client, admin, startsAt=iso(start), endsAt=iso(end))
    url = f"/v1/campaigns/{campaign['campaignId']}"
    assert (await client.post(f"{url}/schedule", headers=admin)).json()["status"] == "scheduled"

    await set_clock(engine, start)
    assert (await client.get(url, headers=admin)).json()["status"] == "running"
    running = await client.get("/v1/campaigns", params={"status": "running"}, headers=admin)
    assert [item["campaignId"] for item in running.json()["items"]] == [campaign["campaignId"]]
    response = await client.patch(url, json={"name": "Late"}, headers=admin)
    assert assert_problem(response, 409, "campaign-not-draft")["campaignStatus"] == "running"

    await set_clock(engine, end)
    assert (await client.get(url, headers=admin)).json()["status"] == "ended"
    ended = await client.get("/v1/campaigns", params={"status": "ended"}, headers=admin)
    assert ended.json()["total"] == 1
    scheduled = await client.get("/v1/campaigns", params={"status": "scheduled"}, headers=admin)
    assert scheduled.json()["total"] == 0
    response = await client.post(f"{url}/cancel", headers=admin)
    assert assert_problem(response, 409, "conflict")["campaignStatus"] == "ended"


async def test_a_running_campaign_can_be_cancelled(clocked):
    client, engine, admin = clocked
    start = datetime(2031, 3, 1, tzinfo=UTC)
    await set_clock(engine, start - timedelta(hours=1))
    campaign = await create(
        client, admin, startsAt=iso(start), endsAt=iso(start + timedelta(days=7))
    )
    url = f"/v1/campaigns/{campaign['campaignId']}"
    await client.post(f"{url}/schedule", headers=admin)
    await set_clock(engine, start + timedelta(days=1))
    cancelled = await client.post(f"{url}/cancel", headers=admin)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    # Cancelled stays cancelled whatever the clock says.
    await set_clock(engine, start + timedelta(days=30))
    assert (await client.get(url, headers=admin)).json()["status"] == "cancelled"


async def test_schedule_is_judged_by_the_database_clock(clocked):
    client, engine, admin = clocked
    start = datetime(2031, 3, 1, tzinfo=UTC)
    campaign = await create(
        client, admin, startsAt=iso(start), endsAt=iso(start + timedelta(days=7))
    )
    await set_clock(engine, start + timedelta(seconds=1))
    response = await client.post(f"/v1/campaigns/{campaign['campaignId']}/schedule", headers=admin)
    assert_problem(response, 422, "invalid-input")
