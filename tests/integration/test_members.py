from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import func, select

from shared.tables import audit_log, member_identifiers, members

PROBLEM = "application/problem+json"
REASON = "Customer asked at the service desk"


async def test_enrol_then_lookup_by_phone_in_another_spelling(client, make_merchant):
    merchant = await make_merchant()
    enrolled = await client.post(
        "/v1/members",
        json={
            "identifiers": [
                {"kind": "phone", "value": "(415) 555-2671"},
                {"kind": "email", "value": "Ada@Example.COM"},
            ],
            "profile": {"givenName": "Ada"},
        },
        headers=merchant.headers,
    )
    assert enrolled.status_code == 201, enrolled.text
    member = enrolled.json()
    assert member["maskedCard"].startswith("************")
    assert {item["value"] for item in member["identifiers"] if item["kind"] != "card"} == {
        "+14155552671",
        "ada@example.com",
    }
    found = await client.post(
        "/v1/members/lookup",
        json={"kind": "phone", "value": "+1 415-555-2671"},
        headers=merchant.headers,
    )
    assert found.status_code == 200
    assert found.json()["memberId"] == member["memberId"]


# --- helpers ---------------------------------------------------------------------------


def assert_problem(response, status: int, slug: str, **extensions) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["type"] == f"/problems/{slug}"
    assert body["status"] == status
    assert body["title"]
    for key, value in extensions.items():
        assert body[key] == value, body
    return body


async def enrol(client, headers, *identifiers, expect: int = 201, **extra) -> dict:
    response = await client.post(
        "/v1/members",
        json={"identifiers": [{"kind": k, "value": v} for k, v in identifiers], **extra},
        headers=headers,
    )
    assert response.status_code == expect, response.text
    return response.json()


async def attach(client, headers, member_id: str, kind: str, value: str):
    return await client.post(
        f"/v1/members/{member_id}/identifiers",
        json={"kind": kind, "value": value},
        headers=headers,
    )


async def lookup(client, headers, kind: str, value: str):
    return await client.post(
        "/v1/members/lookup", json={"kind": kind, "value": value}, headers=headers
    )


async def read(client, headers, member_id: str) -> dict:
    response = await client.get(f"/v1/members/{member_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def of_kind(member: dict, kind: str) -> list[dict]:
    return [item for item in member["identifiers"] if item["kind"] == kind]


def count(sync_engine, table, *where) -> int:
    with sync_engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(table).where(*where))


def audit_actions(sync_engine, action: str) -> list:
    with sync_engine.connect() as connection:
        return connection.execute(
            select(audit_log).where(audit_log.c.action == action).order_by(audit_log.c.audit_id)
        ).all()


# --- enrolment -------------------------------------------------------------------------


async def test_enrolment_records_the_merchant_and_issues_a_masked_card(
    client, make_merchant, keys, sync_engine, test_settings
):
    merchant = await make_merchant()
    member = await enrol(
        client,
        merchant.headers,
        ("phone", "(415) 555-2671"),
        ("email", "  Ada@Example.COM "),
        ("merchant_ref", "  CUST-001 "),
        profile={
            "givenName": "Ada",
            "familyName": "Lovelace",
            "birthDate": "1815-12-10",
            "preferredLocale": "en_GB",
        },
        consents={"marketingEmail": True},
    )
    uuid.UUID(member["memberId"])
    assert member["status"] == "active"
    assert member["tier"] == "basic"
    assert member["acquiringMerchantId"] == merchant.merchant_id
    assert member["mergedIntoMemberId"] is None
    assert member["profile"] == {
        "givenName": "Ada",
        "familyName": "Lovelace",
        "birthDate": "1815-12-10",
        "preferredLocale": "en_GB",
    }
    assert member["consents"] == {"marketingEmail": True, "marketingSms": False}
    masked = member["maskedCard"]
    assert len(masked) == 16 and masked[:12] == "*" * 12 and masked[12:].isdigit()
    assert [item["value"] for item in of_kind(member, "card")] == [masked]
    assert {(item["kind"], item["value"]) for item in member["identifiers"]} == {
        ("card", masked),
        ("phone", "+14155552671"),
        ("email", "ada@example.com"),
        ("merchant_ref", "CUST-001"),
    }
    assert all(item["addedByMerchantId"] == merchant.merchant_id for item in member["identifiers"])

    # The enrolling merchant reads back everything it submitted.
    assert await read(client, merchant.headers, member["memberId"]) == member

    # HQ sees the full generated card: 16 digits, the program prefix, a valid check digit.
    hq_view = await read(client, keys.hq_admin, member["memberId"])
    (card,) = of_kind(hq_view, "card")
    assert card["value"].startswith(test_settings.card_prefix)
    assert len(card["value"]) == 16 and card["value"].endswith(masked[-4:])
    assert hq_view["maskedCard"] == masked
    assert count(sync_engine, members) == 1
    assert count(sync_engine, member_identifiers) == 4
    (audit,) = audit_actions(sync_engine, "member.enrolled")
    assert audit.subject_id == member["memberId"]
    assert audit.actor_role == "merchant"
    assert audit.details == {"merchantId": merchant.merchant_id}


async def test_a_physical_card_number_is_validated_and_stored_without_separators(
    client, make_merchant, keys
):
    merchant = await make_merchant()
    member = await enrol(client, merchant.headers, cardNumber="4111-1111 1111-1111")
    assert member["maskedCard"] == "************1111"
    assert [item["value"] for item in of_kind(member, "card")] == ["************1111"]
    hq_view = await read(client, keys.hq_admin, member["memberId"])
    assert [item["value"] for item in of_kind(hq_view, "card")] == ["4111111111111111"]


async def test_a_physical_card_with_a_bad_check_digit_is_refused(
    client, make_merchant, sync_engine
):
    merchant = await make_merchant()
    response = await client.post(
        "/v1/members",
        json={
            "cardNumber": "4111 1111 1111 1112",
            "identifiers": [{"kind": "phone", "value": "(415) 555-2671"}],
        },
        headers=merchant.headers,
    )
    assert_problem(response, 422, "invalid-identifier", identifierKind="card")
    assert count(sync_engine, members) == 0
    assert count(sync_engine, member_identifiers) == 0


async def test_a_card_number_already_issued_is_in_use(client, make_merchant):
    first, second = await make_merchant(), await make_merchant(name="Bean There")
    await enrol(client, first.headers, cardNumber="4111111111111111")
    response = await client.post(
        "/v1/members", json={"cardNumber": "4111 1111 1111 1111"}, headers=second.headers
    )
    assert_problem(response, 409, "identifier-in-use", identifierKind="card")


async def test_the_same_identifier_twice_in_one_enrolment_is_refused(client, make_merchant):
    merchant = await make_merchant()
    response = await client.post(
        "/v1/members",
        json={
            "identifiers": [
                {"kind": "phone", "value": "(415) 555-2671"},
                {"kind": "phone", "value": "+1 415 555 2671"},
            ]
        },
        headers=merchant.headers,
    )
    assert_problem(response, 422, "invalid-input")


async def test_a_merchant_enrols_for_itself_only(client, make_merchant, sync_engine):
    merchant, other = await make_merchant(), await make_merchant(name="Bean There")
    response = await client.post(
        "/v1/members", json={"acquiringMerchantId": other.merchant_id}, headers=merchant.headers
    )
    assert_problem(response, 422, "invalid-input")
    assert count(sync_engine, members) == 0
    own = await enrol(client, merchant.headers, acquiringMerchantId=merchant.merchant_id)
    assert own["acquiringMerchantId"] == merchant.merchant_id


async def test_enrolment_at_a_store_of_another_merchant_is_not_found(client, make_merchant, keys):
    merchant, other = await make_merchant(), await make_merchant(name="Bean There")
    store = await client.post(
        f"/v1/merchants/{other.merchant_id}/stores",
        json={"code": "NYC-1", "name": "Broadway"},
        headers=keys.hq_admin,
    )
    assert store.status_code == 201, store.text
    store_id = store.json()["storeId"]
    response = await client.post(
        "/v1/members", json={"storeId": store_id}, headers=merchant.headers
    )
    assert_problem(response, 404, "not-found")
    at_own = await enrol(client, other.headers, storeId=store_id)
    assert at_own["acquiringMerchantId"] == other.merchant_id


async def test_hq_enrolment_names_the_acquiring_merchant(client, make_merchant, keys, sync_engine):
    merchant = await make_merchant()
    missing = await client.post(
        "/v1/members",
        json={"identifiers": [{"kind": "phone", "value": "(415) 555-2671"}]},
        headers=keys.hq_admin,
    )
    assert_problem(missing, 422, "invalid-input")
    unknown = await client.post(
        "/v1/members", json={"acquiringMerchantId": str(uuid.uuid4())}, headers=keys.hq_admin
    )
    assert_problem(unknown, 404, "not-found")
    assert count(sync_engine, members) == 0

    member = await enrol(
        client,
        keys.hq_admin,
        ("phone", "(415) 555-2671"),
        acquiringMerchantId=merchant.merchant_id,
        profile={"givenName": "Grace"},
    )
    assert member["acquiringMerchantId"] == merchant.merchant_id
    (card,) = of_kind(member, "card")
    assert card["value"].isdigit()  # HQ sees the full number
    # The acquiring merchant sees the profile as if it had enrolled the member.
    seen = await read(client, merchant.headers, member["memberId"])
    assert seen["profile"]["givenName"] == "Grace"
    assert seen["acquiringMerchantId"] == merchant.merchant_id


async def test_analysts_cannot_enrol(client, make_merchant, keys):
    merchant = await make_merchant()
    response = await client.post(
        "/v1/members", json={"acquiringMerchantId": merchant.merchant_id}, headers=keys.hq_analyst
    )
    assert_problem(response, 403, "forbidden")


async def test_a_suspended_merchant_cannot_enrol(client, make_merchant, keys, sync_engine):
    merchant = await make_merchant()
    suspended = await client.post(
        f"/v1/merchants/{merchant.merchant_id}/suspend", headers=keys.hq_admin
    )
    assert suspended.status_code == 200, suspended.text
    response = await client.post(
        "/v1/members",
        json={"identifiers": [{"kind": "phone", "value": "(415) 555-2671"}]},
        headers=merchant.headers,
    )
    assert_problem(response, 403, "merchant-not-active")
    by_hq = await client.post(
        "/v1/members", json={"acquiringMerchantId": merchant.merchant_id}, headers=keys.hq_admin
    )
    assert_problem(by_hq, 403, "merchant-not-active")
    assert count(sync_engine, members) == 0
    assert count(sync_engine, member_identifiers) == 0


async def test_a_suspended_merchant_cannot_change_identifiers(client, make_merchant, keys):
    merchant = await make_merchant()
    member = await enrol(client, merchant.headers, ("phone", "(415) 555-2671"))
    (phone,) = of_kind(member, "phone")
    suspended = await client.post(
        f"/v1/merchants/{merchant.merchant_id}/suspend", headers=keys.hq_admin
    )
    assert suspended.status_code == 200
    # Reads still work ...
    assert (await read(client, merchant.headers, member["memberId"]))["memberId"]
    found = await lookup(client, merchant.headers, "phone", "4155552671")
    assert found.status_code == 200
    # ... writes do not.
    attached = await attach(client, merchant.headers, member["memberId"], "email", "a@example.com")
    assert_problem(attached, 403, "merchant-not-active")
    detached = await client.delete(
        f"/v1/members/{member['memberId']}/identifiers/{phone['identifierId']}",
        headers=merchant.headers,
    )
    assert_problem(detached, 403, "merchant-not-active")
    assert len(of_kind(await read(client, keys.hq_admin, member["memberId"]), "phone")) == 1


# --- lookup ----------------------------------------------------------------------------


async def test_lookup_by_card_phone_and_email_in_other_spellings(client, make_merchant, keys):
    merchant, other = await make_merchant(), await make_merchant(name="Bean There")
    member = await enrol(
        client, merchant.headers, ("phone", "(415) 555-2671"), ("email", "Ada@Example.com")
    )
    hq_view = await read(client, keys.hq_admin, member["memberId"])
    (card,) = of_kind(hq_view, "card")
    spaced = " ".join(card["value"][i : i + 4] for i in range(0, 16, 4))
    for headers in (merchant.headers, other.headers, keys.hq_admin, keys.hq_analyst):
        for kind, value in [
            ("card", card["value"]),
            ("card", spaced),
            ("card", spaced.replace(" ", "-")),
            ("phone", "+1 (415) 555 2671"),
            ("phone", "415.555.2671"),
            ("email", "ADA@EXAMPLE.COM"),
            ("email", " ada@example.com "),
        ]:
            found = await lookup(client, headers, kind, value)
            assert found.status_code == 200, (kind, value, found.text)
            assert found.json()["memberId"] == member["memberId"]


async def test_lookup_by_a_masked_card_is_invalid_and_unknown_values_are_not_found(
    client, make_merchant
):
    merchant = await make_merchant()
    member = await enrol(client, merchant.headers, ("phone", "(415) 555-2671"))
    masked = await lookup(client, merchant.headers, "card", member["maskedCard"])
    assert_problem(masked, 422, "invalid-identifier", identifierKind="card")
    for kind, value in [
        ("card", "4111111111111111"),
        ("phone", "(415) 555-2672"),
        ("email", "nobody@example.com"),
        ("merchant_ref", "CUST-404"),
    ]:
        assert_problem(await lookup(client, merchant.headers, kind, value), 404, "not-found")


async def test_merchant_refs_are_namespaced_per_merchant(client, make_merchant, keys):
    first, second = await make_merchant(), await make_merchant(name="Bean There")
    ada = await enrol(client, first.headers, ("merchant_ref", "CUST-001"))
    found = await lookup(client, first.headers, "merchant_ref", "  CUST-001 ")
    assert found.status_code == 200
    assert found.json()["memberId"] == ada["memberId"]

    # Another merchant neither finds nor collides with the first merchant's reference.
    assert_problem(
        await lookup(client, second.headers, "merchant_ref", "CUST-001"), 404, "not-found"
    )
    grace = await enrol(client, second.headers, ("merchant_ref", "CUST-001"))
    assert grace["memberId"] != ada["memberId"]
    for headers, expected in ((first.headers, ada), (second.headers, grace)):
        found = await lookup(client, headers, "merchant_ref", "CUST-001")
        assert found.status_code == 200
        assert found.json()["memberId"] == expected["memberId"]

    # A merchant can also put its own reference on a member enrolled elsewhere.
    attached = await attach(client, second.headers, ada["memberId"], "merchant_ref", "B-77")
    assert attached.status_code == 201, attached.text
    found = await lookup(client, second.headers, "merchant_ref", "B-77")
    assert found.json()["memberId"] == ada["memberId"]
    assert_problem(await lookup(client, first.headers, "merchant_ref", "B-77"), 404, "not-found")

    # A merchant's reference is unique within that merchant.
    taken = await attach(client, first.headers, grace["memberId"], "merchant_ref", "CUST-001")
    assert_problem(taken, 409, "identifier-in-use", identifierKind="merchant_ref")

    # HQ has no namespace of its own to look in.
    by_hq = await lookup(client, keys.hq_admin, "merchant_ref", "CUST-001")
    assert_problem(by_hq, 422, "invalid-input")


async def test_merchant_refs_are_nfc_normalised(client, make_merchant):
    merchant = await make_merchant()
    member = await enrol(client, merchant.headers, ("merchant_ref", "Cafe\u0301-1"))
    assert of_kind(member, "merchant_ref")[0]["value"] == "Caf\u00e9-1"
    found = await lookup(client, merchant.headers, "merchant_ref", "Caf\u00e9-1")
    assert found.json()["memberId"] == member["memberId"]


# --- attaching and detaching -----------------------------------------------------------


async def test_a_phone_held_by_another_member_is_in_use_without_saying_by_whom(
    client, make_merchant, sync_engine
):
    first, second = await make_merchant(), await make_merchant(name="Bean There")
    holder = await enrol(client, first.headers, ("phone", "(415) 555-2671"))
    other = await enrol(client, second.headers, ("email", "grace@example.com"))
    audit_before = count(sync_engine, audit_log)

    for headers in (first.headers, second.headers):
        response = await attach(client, headers, other["memberId"], "phone", "+1 415 555 2671")
        body = assert_problem(response, 409, "identifier-in-use", identifierKind="phone")
        assert holder["memberId"] not in response.text
        for item in holder["identifiers"]:
            assert item["identifierId"] not in response.text
        assert set(body) <= {"type", "title", "status", "detail", "instance", "identifierKind"}

    in_use = await client.post(
        "/v1/members",
        json={"identifiers": [{"kind": "phone", "value": "415-555-2671"}]},
        headers=second.headers,
    )
    assert_problem(in_use, 409, "identifier-in-use", identifierKind="phone")
    assert holder["memberId"] not in in_use.text

    assert count(sync_engine, members) == 2
    assert count(sync_engine, member_identifiers, member_identifiers.c.kind == "phone") == 1
    assert count(sync_engine, audit_log) == audit_before


async def test_a_phone_another_merchant_attached_to_the_same_member_reads_as_in_use(
    client, make_merchant
):
    first, second = await make_merchant(), await make_merchant(name="Bean There")
    member = await enrol(client, first.headers, ("phone", "(415) 555-2671"))
    response = await attach(client, second.headers, member["memberId"], "phone", "4155552671")
    assert_problem(response, 409, "identifier-in-use", identifierKind="phone")


async def test_attaching_an_identifier_the_member_already_has_is_idempotent(
    client, make_merchant, sync_engine
):
    merchant = await make_merchant()
    member = await enrol(client, merchant.headers, ("phone", "(415) 555-2671"))
    (phone,) = of_kind(member, "phone")
    again = await attach(client, merchant.headers, member["memberId"], "phone", "+14155552671")
    assert again.status_code == 201, again.text
    assert again.json() == phone

    first = await attach(client, merchant.headers, member["memberId"], "email", "Ada@Example.com")
    assert first.status_code == 201, first.text
    email = first.json()
    assert email["kind"] == "email"
    assert email["value"] == "ada@example.com"
    assert email["addedByMerchantId"] == merchant.merchant_id
    second = await attach(client, merchant.headers, member["memberId"], "email", "ADA@example.COM")
    assert second.status_code == 201
    assert second.json() == email

    # The generated card can be presented again too; merchants only ever see it masked.
    (card,) = of_kind(member, "card")
    with sync_engine.connect() as connection:
        number = connection.scalar(
            select(member_identifiers.c.value).where(
                member_identifiers.c.identifier_id == uuid.UUID(card["identifierId"])
            )
        )
    card_again = await attach(client, merchant.headers, member["memberId"], "card", number)
    assert card_again.status_code == 201
    assert card_again.json() == card

    assert count(sync_engine, member_identifiers) == 3
    assert len(audit_actions(sync_engine, "member.identifier_attached")) == 1


async def test_attached_cards_are_masked_for_merchants_and_full_for_hq(client, make_merchant, keys):
    merchant = await make_merchant()
    member = await enrol(client, merchant.headers)
    response = await attach(
        client, merchant.headers, member["memberId"], "card", "5555 5555 5555 4444"
    )
    assert response.status_code == 201, response.text
    assert response.json()["value"] == "************4444"
    by_hq = await attach(client, keys.hq_admin, member["memberId"], "card", "4111111111111111")
    assert by_hq.status_code == 201
    assert by_hq.json()["value"] == "4111111111111111"
    assert by_hq.json()["addedByMerchantId"] is None
    seen = await read(client, merchant.headers, member["memberId"])
    assert [item["value"][-4:] for item in of_kind(seen, "card")][1:] == ["4444", "1111"]
    assert all(item["value"].startswith("*" * 12) for item in of_kind(seen, "card"))
    assert seen["maskedCard"] == "************1111"


async def test_attach_to_an_unknown_member_is_not_found(client, make_merchant):
    merchant = await make_merchant()
    response = await attach(client, merchant.headers, str(uuid.uuid4()), "phone", "4155552671")
    assert_problem(response, 404, "not-found")


async def test_detach_by_the_attaching_merchant_only(client, make_merchant, keys, sync_engine):
    first, second = await make_merchant(), await make_merchant(name="Bean There")
    member = await enrol(client, first.headers, ("phone", "(415) 555-2671"))
    (phone,) = of_kind(member, "phone")
    path = f"/v1/members/{member['memberId']}/identifiers/{phone['identifierId']}"

    assert_problem(await client.delete(path, headers=second.headers), 404, "not-found")
    assert_problem(await client.delete(path, headers=keys.hq_analyst), 403, "forbidden")
    assert count(sync_engine, member_identifiers, member_identifiers.c.kind == "phone") == 1

    removed = await client.delete(path, headers=first.headers)
    assert removed.status_code == 204, removed.text
    assert of_kind(await read(client, keys.hq_admin, member["memberId"]), "phone") == []
    assert_problem(await client.delete(path, headers=first.headers), 404, "not-found")
    (audit,) = audit_actions(sync_engine, "member.identifier_detached")
    assert audit.details == {"kind": "phone", "identifierId": phone["identifierId"]}

    # The number is free again, for anyone.
    reused = await enrol(client, second.headers, ("phone", "415 555 2671"))
    assert of_kind(reused, "phone")[0]["value"] == "+14155552671"


async def test_hq_detaches_what_a_merchant_attached(client, make_merchant, keys):
    merchant = await make_merchant()
    member = await enrol(client, merchant.headers, ("email", "ada@example.com"))
    (email,) = of_kind(member, "email")
    removed = await client.delete(
        f"/v1/members/{member['memberId']}/identifiers/{email['identifierId']}",
        headers=keys.hq_admin,
    )
    assert removed.status_code == 204


async def test_detach_with_unknown_or_mismatched_ids_is_not_found(client, make_merchant):
    merchant = await make_merchant()
    ada = await enrol(client, merchant.headers, ("phone", "(415) 555-2671"))
    grace = await enrol(client, merchant.headers, ("phone", "(415) 555-2672"))
    (phone,) = of_kind(ada, "phone")
    for member_id, identifier_id in [
        (str(uuid.uuid4()), phone["identifierId"]),
        (ada["memberId"], str(uuid.uuid4())),
        (grace["memberId"], phone["identifierId"]),
    ]:
        response = await client.delete(
            f"/v1/members/{member_id}/identifiers/{identifier_id}", headers=merchant.headers
        )
        assert_problem(response, 404, "not-found")


async def test_the_last_card_cannot_be_detached(client, make_merchant, keys, sync_engine):
    merchant = await make_merchant()
    member = await enrol(client, merchant.headers)
    (card,) = of_kind(member, "card")
    path = f"/v1/members/{member['memberId']}/identifiers/{card['identifierId']}"
    assert_problem(await client.delete(path, headers=merchant.headers), 409, "conflict")
    assert_problem(await client.delete(path, headers=keys.hq_admin), 409, "conflict")

    replacement = await attach(
        client, merchant.headers, member["memberId"], "card", "4111 1111 1111 1111"
    )
    assert replacement.status_code == 201
    removed = await client.delete(path, headers=merchant.headers)
    assert removed.status_code == 204, removed.text
    seen = await read(client, merchant.headers, member["memberId"])
    assert seen["maskedCard"] == "************1111"
    assert [item["identifierId"] for item in of_kind(seen, "card")] == [
        replacement.json()["identifierId"]
    ]
    assert count(sync_engine, member_identifiers) == 1


# --- what each caller sees -------------------------------------------------------------


async def test_a_merchant_sees_only_what_it_submitted(client, make_merchant, keys):
    first, second = await make_merchant(), await make_merchant(name="Bean There")
    member = await enrol(
        client,
        first.headers,
        ("phone", "(415) 555-2671"),
        ("email", "ada@example.com"),
        ("merchant_ref", "CUST-001"),
        profile={"givenName": "Ada", "familyName": "Lovelace"},
        consents={"marketingSms": True},
    )
    attached = await attach(client, second.headers, member["memberId"], "email", "a@b.example")
    assert attached.status_code == 201
    own_email = attached.json()

    seen = await read(client, second.headers, member["memberId"])
    assert seen["memberId"] == member["memberId"]
    assert seen["status"] == "active"
    assert seen["tier"] == "basic"
    assert seen["maskedCard"] == member["maskedCard"]
    assert seen["profile"] is None
    assert seen["consents"] is None
    assert seen["acquiringMerchantId"] is None
    assert [item["kind"] for item in seen["identifiers"]] == ["card", "email"]
    (card,) = of_kind(seen, "card")
    assert card["value"] == member["maskedCard"]
    assert of_kind(seen, "email") == [own_email]
    raw = (await client.get(f"/v1/members/{member['memberId']}", headers=second.headers)).text
    for secret in ("+14155552671", "ada@example.com", "CUST-001", "Ada", "Lovelace"):
        assert secret not in raw

    # The same view comes back from a lookup by a network-wide identifier.
    found = await lookup(client, second.headers, "phone", "4155552671")
    assert found.json() == seen

    # The enrolling merchant does not see the second merchant's e-mail either.
    first_view = await read(client, first.headers, member["memberId"])
    assert "a@b.example" not in {item["value"] for item in first_view["identifiers"]}
    assert first_view["profile"]["givenName"] == "Ada"

    # HQ (admin or analyst) sees everything, full card included.
    for headers in (keys.hq_admin, keys.hq_analyst):
        everything = await read(client, headers, member["memberId"])
        assert len(everything["identifiers"]) == 5
        assert everything["profile"]["familyName"] == "Lovelace"
        assert everything["consents"] == {"marketingEmail": False, "marketingSms": True}
        assert everything["acquiringMerchantId"] == first.merchant_id
        assert of_kind(everything, "card")[0]["value"].isdigit()


async def test_reading_an_unknown_member_is_not_found(client, make_merchant):
    merchant = await make_merchant()
    response = await client.get(f"/v1/members/{uuid.uuid4()}", headers=merchant.headers)
    assert_problem(response, 404, "not-found")


# --- status (HQ) -----------------------------------------------------------------------


async def set_status(client, headers, member_id, status, reason=REASON):
    return await client.post(
        f"/v1/members/{member_id}/status",
        json={"status": status, "reason": reason},
        headers=headers,
    )


async def test_hq_admin_changes_a_members_status(client, make_merchant, keys, sync_engine):
    merchant = await make_merchant()
    member = await enrol(client, merchant.headers, ("phone", "(415) 555-2671"))
    member_id = member["memberId"]
    for status in ("suspended", "active", "closed"):
        response = await set_status(client, keys.hq_admin, member_id, status)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == status
        assert (await read(client, merchant.headers, member_id))["status"] == status

    assert_problem(await set_status(client, keys.hq_admin, member_id, "active"), 409, "conflict")
    assert_problem(await set_status(client, keys.hq_admin, member_id, "suspended"), 409, "conflict")
    # Asking for the current status changes nothing and records nothing.
    unchanged = await set_status(client, keys.hq_admin, member_id, "closed")
    assert unchanged.status_code == 200
    changes = audit_actions(sync_engine, "member.status_changed")
    assert [(row.details["from"], row.details["to"]) for row in changes] == [
        ("active", "suspended"),
        ("suspended", "active"),
        ("active", "closed"),
    ]
    assert {row.details["reason"] for row in changes} == {REASON}

    # A closed member takes no new identifiers.
    closed = await attach(client, merchant.headers, member_id, "email", "ada@example.com")
    assert_problem(closed, 409, "member-not-active")


async def test_suspended_straight_to_closed(client, make_merchant, keys):
    merchant = await make_merchant()
    member = await enrol(client, merchant.headers)
    assert (
        await set_status(client, keys.hq_admin, member["memberId"], "suspended")
    ).status_code == 200
    closed = await set_status(client, keys.hq_admin, member["memberId"], "closed")
    assert closed.json()["status"] == "closed"


async def test_status_changes_need_a_reason_and_a_known_status(
    client, make_merchant, keys, sync_engine
):
    merchant = await make_merchant()
    member = await enrol(client, merchant.headers)
    path = f"/v1/members/{member['memberId']}/status"
    for body in (
        {"status": "suspended"},
        {"status": "suspended", "reason": ""},
        {"status": "suspended", "reason": "no"},
        {"status": "suspended", "reason": "x" * 501},
        {"status": "suspended", "reason": "bad\x00reason"},
        {"status": "merged", "reason": REASON},
        {"status": "deleted", "reason": REASON},
        {"reason": REASON},
    ):
        response = await client.post(path, json=body, headers=keys.hq_admin)
        assert_problem(response, 400, "invalid-request")
    assert (await read(client, keys.hq_admin, member["memberId"]))["status"] == "active"
    assert audit_actions(sync_engine, "member.status_changed") == []


async def test_only_hq_admins_change_status(client, make_merchant, keys):
    merchant = await make_merchant()
    member = await enrol(client, merchant.headers)
    for headers in (keys.hq_analyst, merchant.headers):
        response = await set_status(client, headers, member["memberId"], "suspended")
        assert_problem(response, 403, "forbidden")
    unknown = await set_status(client, keys.hq_admin, str(uuid.uuid4()), "suspended")
    assert_problem(unknown, 404, "not-found")


# --- merge (HQ) ------------------------------------------------------------------------


async def merge(client, headers, survivor_id, duplicate_id, reason=REASON):
    return await client.post(
        f"/v1/members/{survivor_id}/merge",
        json={"duplicateMemberId": duplicate_id, "reason": reason},
        headers=headers,
    )


async def test_merging_moves_identifiers_to_the_survivor(client, make_merchant, keys, sync_engine):
    first, second = await make_merchant(), await make_merchant(name="Bean There")
    survivor = await enrol(client, first.headers, ("phone", "(415) 555-2671"))
    duplicate = await enrol(
        client,
        second.headers,
        ("phone", "(415) 555-2672"),
        ("email", "ada@example.com"),
        ("merchant_ref", "B-1"),
    )
    duplicate_hq = await read(client, keys.hq_admin, duplicate["memberId"])

    merged = await merge(client, keys.hq_admin, survivor["memberId"], duplicate["memberId"])
    assert merged.status_code == 200, merged.text
    body = merged.json()
    assert body["memberId"] == survivor["memberId"]
    assert body["status"] == "active"
    assert {item["identifierId"] for item in body["identifiers"]} == {
        item["identifierId"] for item in survivor["identifiers"] + duplicate["identifiers"]
    }
    assert len(of_kind(body, "card")) == 2

    gone = await read(client, keys.hq_admin, duplicate["memberId"])
    assert gone["status"] == "merged"
    assert gone["mergedIntoMemberId"] == survivor["memberId"]
    assert gone["identifiers"] == []
    assert gone["maskedCard"] is None
    assert (await read(client, second.headers, duplicate["memberId"]))["status"] == "merged"

    for headers, kind, value in [
        (first.headers, "phone", "415-555-2672"),
        (second.headers, "email", "ADA@example.com"),
        (second.headers, "merchant_ref", "B-1"),
        (keys.hq_admin, "card", of_kind(duplicate_hq, "card")[0]["value"]),
    ]:
        found = await lookup(client, headers, kind, value)
        assert found.status_code == 200, found.text
        assert found.json()["memberId"] == survivor["memberId"]

    # The second merchant still sees what it submitted, now on the survivor.
    seen = await read(client, second.headers, survivor["memberId"])
    assert {item["kind"] for item in seen["identifiers"]} == {
        "card",
        "phone",
        "email",
        "merchant_ref",
    }
    assert "+14155552671" not in {item["value"] for item in seen["identifiers"]}

    assert count(sync_engine, members) == 2
    (audit,) = audit_actions(sync_engine, "member.merged")
    assert audit.subject_type == "member"
    assert audit.subject_id == survivor["memberId"]
    assert audit.actor_role == "hq_admin"
    assert audit.details["duplicateMemberId"] == duplicate["memberId"]
    assert audit.details["duplicateStatus"] == "active"
    assert audit.details["reason"] == REASON
    assert {item["identifierId"] for item in audit.details["movedIdentifiers"]} == {
        item["identifierId"] for item in duplicate["identifiers"]
    }


async def test_merge_refusals(client, make_merchant, keys, sync_engine):
    merchant = await make_merchant()
    survivor = await enrol(client, merchant.headers, ("phone", "(415) 555-2671"))
    duplicate = await enrol(client, merchant.headers, ("phone", "(415) 555-2672"))
    third = await enrol(client, merchant.headers, ("phone", "(415) 555-2673"))
    s, d, t = survivor["memberId"], duplicate["memberId"], third["memberId"]

    assert_problem(await merge(client, keys.hq_admin, s, s), 422, "invalid-input")
    assert_problem(await merge(client, keys.hq_admin, s, str(uuid.uuid4())), 404, "not-found")
    assert_problem(await merge(client, keys.hq_admin, str(uuid.uuid4()), d), 404, "not-found")
    assert_problem(await merge(client, keys.hq_analyst, s, d), 403, "forbidden")
    assert_problem(await merge(client, merchant.headers, s, d), 403, "forbidden")
    assert_problem(await merge(client, keys.hq_admin, s, d, reason="no"), 400, "invalid-request")
    no_reason = await client.post(
        f"/v1/members/{s}/merge", json={"duplicateMemberId": d}, headers=keys.hq_admin
    )
    assert_problem(no_reason, 400, "invalid-request")
    assert audit_actions(sync_engine, "member.merged") == []

    assert (await merge(client, keys.hq_admin, s, d)).status_code == 200
    # Already merged, whichever side asks.
    assert_problem(await merge(client, keys.hq_admin, s, d), 409, "conflict")
    assert_problem(await merge(client, keys.hq_admin, t, d), 409, "conflict")
    assert_problem(await merge(client, keys.hq_admin, d, t), 409, "member-not-active")
    # A merged member stays merged.
    for status in ("active", "suspended", "closed"):
        assert_problem(await set_status(client, keys.hq_admin, d, status), 409, "conflict")

    # A closed member cannot survive a merge, but can be folded into one.
    assert (await set_status(client, keys.hq_admin, t, "closed")).status_code == 200
    assert_problem(await merge(client, keys.hq_admin, t, s), 409, "member-not-active")
    folded = await merge(client, keys.hq_admin, s, t)
    assert folded.status_code == 200
    assert [
        row.details["duplicateStatus"] for row in audit_actions(sync_engine, "member.merged")
    ] == [
        "active",
        "closed",
    ]
    assert len(of_kind(folded.json(), "phone")) == 3

    # A merged member takes no new identifiers.
    late = await attach(client, merchant.headers, d, "email", "late@example.com")
    assert_problem(late, 409, "member-not-active")


# --- concurrency -----------------------------------------------------------------------


async def test_concurrent_enrolments_of_one_phone_make_one_member(
    client, make_merchant, sync_engine
):
    first, second = await make_merchant(), await make_merchant(name="Bean There")
    in_flight, overlapped = set(), []

    async def started(request):
        in_flight.add(request)
        overlapped.append(len(in_flight) > 1)

    async def finished(response):
        in_flight.discard(response.request)

    client.event_hooks = {"request": [started], "response": [finished]}
    rounds = 5
    for round_ in range(rounds):
        number = f"+1415555261{round_}"
        responses = await asyncio.gather(
            *(
                client.post(
                    "/v1/members",
                    json={"identifiers": [{"kind": "phone", "value": spelling}]},
                    headers=merchant.headers,
                )
                for merchant, spelling in (
                    (first, f"(415) 555-261{round_}"),
                    (second, f"+1 415 555 261{round_}"),
                )
            )
        )
        assert sorted(response.status_code for response in responses) == [201, 409]
        (loser,) = [response for response in responses if response.status_code == 409]
        assert_problem(loser, 409, "identifier-in-use", identifierKind="phone")
        (winner,) = [response for response in responses if response.status_code == 201]
        assert winner.json()["memberId"] not in loser.text
        held_by = count(
            sync_engine,
            member_identifiers,
            member_identifiers.c.kind == "phone",
            member_identifiers.c.value == number,
        )
        assert held_by == 1
    # The two requests of a round really were in flight together.
    assert overlapped.count(True) == rounds
    assert count(sync_engine, members) == rounds
    assert count(sync_engine, member_identifiers, member_identifiers.c.kind == "card") == rounds
    assert len(audit_actions(sync_engine, "member.enrolled")) == rounds


async def test_concurrent_attachments_of_one_email_to_two_members(
    client, make_merchant, sync_engine
):
    merchant = await make_merchant()
    ada = await enrol(client, merchant.headers)
    grace = await enrol(client, merchant.headers)
    responses = await asyncio.gather(
        *(
            attach(client, merchant.headers, member["memberId"], "email", "shared@example.com")
            for member in (ada, grace)
        )
    )
    assert sorted(response.status_code for response in responses) == [201, 409]
    assert count(sync_engine, member_identifiers, member_identifiers.c.kind == "email") == 1
