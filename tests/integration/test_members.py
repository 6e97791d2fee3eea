from __future__ import annotations


async def test_enrol_then_lookup_by_phone_in_another_spelling(client, make_merchant):
    merchant = await make_merchant()
    enrolled = await client.post(
        "/v1/members",
        json={
            "identifiers": [{"kind": "phone", "value": "(415) 555-2671"},
                            {"kind": "email", "value": "Ada@Example.COM"}],
            "profile": {"givenName": "Ada"},
        },
        headers=merchant.headers,
    )
    assert enrolled.status_code == 201, enrolled.text
    member = enrolled.json()
    assert member["maskedCard"].startswith("************")
    assert {item["value"] for item in member["identifiers"] if item["kind"] != "card"} == {
        "+14155552671", "ada@example.com"
    }
    found = await client.post(
        "/v1/members/lookup", json={"kind": "phone", "value": "+1 415-555-2671"},
        headers=merchant.headers,
    )
    assert found.status_code == 200
    assert found.json()["memberId"] == member["memberId"]
