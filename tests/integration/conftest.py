"""API fixtures: the Litestar app on the worker's database, and keys for every role."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from api.app import create_app
from shared import api_keys
from shared.access import SYSTEM, Role
from shared.database.bootstrap import async_url


@pytest.fixture(scope="session")
async def async_engine(database_url) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(async_url(database_url), pool_size=5, max_overflow=30)
    yield engine
    await engine.dispose()


def client_for(app) -> httpx.AsyncClient:
    # httpx on the test's own event loop (Litestar's AsyncTestClient runs the app on a
    # separate loop, which the shared asyncpg pool cannot cross).
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


@pytest.fixture
async def client(async_engine, test_settings, clean_database) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(create_app(test_settings, engine=async_engine)) as test_client:
        yield test_client


@pytest.fixture
def client_with_rules(async_engine, test_settings, clean_database):
    """A client whose program rules differ from the defaults: `client_with_rules(**rules)`."""

    def make(**rules) -> httpx.AsyncClient:
        program = test_settings.program.model_copy(update=rules)
        return client_for(
            create_app(test_settings.model_copy(update={"program": program}), engine=async_engine)
        )

    return make


@dataclass
class Keys:
    """Authorization headers for each role."""

    hq_admin: dict[str, str]
    hq_analyst: dict[str, str]


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
async def keys(async_engine, client) -> Keys:
    async with async_engine.begin() as connection:
        admin = await api_keys.issue_key(connection, SYSTEM, role=Role.HQ_ADMIN, label="test")
        analyst = await api_keys.issue_key(connection, SYSTEM, role=Role.HQ_ANALYST, label="test")
    return Keys(hq_admin=bearer(admin.secret), hq_analyst=bearer(analyst.secret))


MERCHANT_BODY = {
    "name": "Greenleaf Grocers",
    "industry": "grocery",
    "currency": "USD",
    "earnRate": "1.5",
    "issuancePrice": "0.010000",
    "redemptionRate": "0.008000",
}


@dataclass
class MerchantFixture:
    merchant_id: str
    headers: dict[str, str]
    key_id: str
    body: dict


@pytest.fixture
def make_merchant(client, keys):
    """Create a merchant through the API and issue it a key."""

    async def make(**overrides) -> MerchantFixture:
        response = await client.post(
            "/v1/merchants", json={**MERCHANT_BODY, **overrides}, headers=keys.hq_admin
        )
        assert response.status_code == 201, response.text
        merchant = response.json()
        issued = await client.post(
            f"/v1/merchants/{merchant['merchantId']}/api-keys",
            json={"label": "pos"},
            headers=keys.hq_admin,
        )
        assert issued.status_code == 201, issued.text
        body = issued.json()
        return MerchantFixture(
            merchant["merchantId"], bearer(body["secret"]), body["key"]["keyId"], merchant
        )

    return make
