from __future__ import annotations

from tests.integration.conftest import MERCHANT_BODY


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
