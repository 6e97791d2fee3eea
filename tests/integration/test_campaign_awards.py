"""Campaign bonuses at earn time, through the API: arms recorded at first eligibility (or at
launch for a targeted list), holdout members never rewarded, bonus lots funded by the
campaign's owner, per-member caps, and budgets that never overshoot under concurrent earns.

Purchases are $20.00 at an earn rate of 1.5: 30 base points each."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import text

from shared.campaigns.assignment import arm, in_global_holdout
from shared.campaigns.launch import launch_due_campaigns
from tests.integration.ledger_support import by_id, earn, earned, enrol, keyed, now_iso
from tests.integration.test_campaigns_api import body, future, iso

BASE = 30  # points for PURCHASE at earn rate 1.5
PURCHASE = 2000


@pytest.fixture
def client(client_with_rules):
    """Without the programme's global holdout (2% of members by default), so that a test
    following one member never loses them to it by chance; it has its own test below."""
    return client_with_rules(global_holdout_bps=0)


@pytest.fixture
def running_campaign(client, async_engine):
    """Create a campaign, schedule it, then open its window an hour ago (scheduling needs a
    start in the future)."""

    async def make(headers, **overrides) -> dict:
        created = await client.post(
            "/v1/campaigns",
            json=body(startsAt=iso(future(1)), endsAt=iso(future(30)), **overrides),
            headers=headers,
        )
        assert created.status_code == 201, created.text
        campaign_id = created.json()["campaignId"]
        scheduled = await client.post(f"/v1/campaigns/{campaign_id}/schedule", headers=headers)
        assert scheduled.status_code == 200, scheduled.text
        await start_now(async_engine, campaign_id, timedelta(hours=1))
        return (await client.get(f"/v1/campaigns/{campaign_id}", headers=headers)).json()

    return make


async def start_now(async_engine, campaign_id: str, ago: timedelta = timedelta(0)) -> None:
    async with async_engine.begin() as connection:
        await connection.execute(
            text(
                "UPDATE campaigns SET starts_at = now() - CAST(:ago AS interval) WHERE campaign_id = :id"
            ),
            {"ago": ago, "id": campaign_id},
        )


async def rows(async_engine, sql: str, **parameters) -> list:
    async with async_engine.connect() as connection:
        return list((await connection.execute(text(sql), parameters)).all())


async def salt_of(async_engine, campaign_id: str) -> str:
    (row,) = await rows(
        async_engine, "SELECT salt FROM campaigns WHERE campaign_id = :id", id=campaign_id
    )
    return row.salt


async def campaign_lot_points(async_engine, campaign_id: str) -> int:
    (row,) = await rows(
        async_engine,
        "SELECT coalesce(sum(original), 0) AS points FROM lots WHERE campaign_id = :id",
        id=campaign_id,
    )
    return int(row.points)


async def test_treated_members_get_a_campaign_lot_and_holdout_members_never_do(
    client, keys, make_merchant, running_campaign, async_engine, test_settings
):
    shop = await make_merchant()
    campaign = await running_campaign(keys.hq_admin, holdoutBps=5000)
    salt = await salt_of(async_engine, campaign["campaignId"])
    members = [await enrol(client, shop) for _ in range(40)]
    results = {m: await earned(client, shop, m, PURCHASE) for m in members}

    assigned = dict(
        await rows(
            async_engine,
            "SELECT member_id::text, arm FROM campaign_assignments WHERE campaign_id = :id",
            id=campaign["campaignId"],
        )
    )
    expected = {m: arm(uuid.UUID(m), salt, 5000) for m in members}
    assert assigned == expected
    assert set(expected.values()) == {"treatment", "holdout"}
    for member, result in results.items():
        if expected.get(member) == "treatment":
            assert result["campaigns"] == [
                {
                    "campaignId": campaign["campaignId"],
                    "name": campaign["name"],
                    "points": BASE,  # multiplier 2: floor(30 x (2 - 1))
                    "funderMerchantId": None,
                }
            ]
            assert result["points"] == 2 * BASE
            assert {(lot["source"], lot["points"]) for lot in result["lots"]} == {
                ("base", BASE),
                ("campaign", BASE),
            }
        else:
            assert result["campaigns"] == []
            assert result["points"] == BASE
    holdout_lots = await rows(
        async_engine,
        "SELECT l.member_id FROM lots l JOIN campaign_assignments a"
        " ON a.member_id = l.member_id AND a.campaign_id = l.campaign_id"
        " WHERE a.arm = 'holdout'",
    )
    assert holdout_lots == []
    treated = sum(1 for value in expected.values() if value == "treatment")
    assert await campaign_lot_points(async_engine, campaign["campaignId"]) == treated * BASE
    # HQ funds the bonus: it is issued from the network's account, not the merchant's.
    (network,) = await rows(
        async_engine,
        "SELECT coalesce(sum(-p.amount), 0) AS points FROM postings p"
        " JOIN ledger_transactions t USING (member_id, transaction_id)"
        " WHERE p.account = 'issued' AND p.merchant_id IS NULL AND t.kind = 'earn'",
    )
    assert network.points == treated * BASE


async def test_the_global_holdout_receives_no_campaign(
    client_with_rules, keys, make_merchant, running_campaign, async_engine
):
    shop = await make_merchant()
    campaign = await running_campaign(keys.hq_admin, holdoutBps=0)
    everyone_held_out = client_with_rules(global_holdout_bps=10_000)
    member = await enrol(everyone_held_out, shop)
    result = await earned(everyone_held_out, shop, member, PURCHASE)
    assert result["campaigns"] == [] and result["points"] == BASE
    assert await rows(async_engine, "SELECT * FROM campaign_assignments") == []
    assert await campaign_lot_points(async_engine, campaign["campaignId"]) == 0


async def test_a_merchant_campaign_is_funded_by_the_merchant_at_its_own_tills(
    client, make_merchant, running_campaign, async_engine
):
    shop, other = await make_merchant(), await make_merchant(name="Other")
    campaign = await running_campaign(
        shop.headers,
        kind="fixed_bonus",
        terms={"bonusPoints": 50, "minSpendMinor": 1000},
        holdoutBps=0,
    )
    member = await enrol(client, shop)
    at_shop = await earned(client, shop, member, PURCHASE)
    assert at_shop["campaigns"] == [
        {
            "campaignId": campaign["campaignId"],
            "name": campaign["name"],
            "points": 50,
            "funderMerchantId": shop.merchant_id,
        }
    ]
    assert (await earned(client, other, member, PURCHASE))["campaigns"] == []
    assert (await earned(client, shop, member, 999))["campaigns"] == []  # below minSpendMinor
    (issued,) = await rows(
        async_engine,
        "SELECT coalesce(sum(-amount), 0) AS points FROM postings"
        " WHERE account = 'issued' AND merchant_id = :shop",
        shop=shop.merchant_id,
    )
    assert issued.points == BASE + 50 + 14  # 999 minor units earn floor(9.99 x 1.5) = 14


async def test_spend_threshold_rewards_once_when_spend_in_the_window_reaches_it(
    client, keys, make_merchant, running_campaign
):
    shop = await make_merchant()
    await running_campaign(
        keys.hq_admin,
        kind="spend_threshold",
        terms={"thresholdMinor": 5000, "bonusPoints": 200},
        holdoutBps=0,
    )
    member = await enrol(client, shop)
    bonuses = [
        [c["points"] for c in (await earned(client, shop, member, PURCHASE))["campaigns"]]
        for _ in range(4)
    ]
    assert bonuses == [[], [], [200], []]  # 2000, 4000, 6000 >= 5000, then once only


async def test_cross_merchant_rewards_the_member_at_the_nth_distinct_partner(
    client, keys, make_merchant, running_campaign
):
    partners = [await make_merchant(name=f"Partner {n}") for n in range(4)]
    await running_campaign(
        keys.hq_admin,
        kind="cross_merchant",
        terms={"distinctPartners": 3, "bonusPoints": 300},
        holdoutBps=0,
    )
    member = await enrol(client, partners[0])
    visits = [partners[0], partners[0], partners[1], partners[2], partners[3]]
    bonuses = [
        [c["points"] for c in (await earned(client, shop, member, PURCHASE))["campaigns"]]
        for shop in visits
    ]
    assert bonuses == [[], [], [], [300], []]


async def test_win_back_rewards_a_return_after_a_lapse_and_only_then(
    client, keys, make_merchant, running_campaign, async_engine
):
    shop = await make_merchant()
    campaign = await running_campaign(
        keys.hq_admin,
        kind="win_back",
        terms={"lapsedDays": 60, "multiplier": "3"},
        holdoutBps=0,
    )
    lapsed, regular = await enrol(client, shop), await enrol(client, shop)
    async with async_engine.begin() as connection:
        await connection.execute(
            text("UPDATE members SET enrolled_at = now() - interval '90 days'")
        )
    # The regular member bought 20 days ago (within the 60 days).
    await earned(client, shop, regular, PURCHASE, occurredAt=now_iso(-timedelta(days=20)))
    assert (await earned(client, shop, regular, PURCHASE))["campaigns"] == []
    back = await earned(client, shop, lapsed, PURCHASE)
    assert [c["points"] for c in back["campaigns"]] == [2 * BASE]  # multiplier 3
    assert (await earned(client, shop, lapsed, PURCHASE))["campaigns"] == []
    # Only the member who came back after a lapse became eligible (and got an arm).
    assigned = await rows(
        async_engine,
        "SELECT member_id::text FROM campaign_assignments WHERE campaign_id = :id",
        id=campaign["campaignId"],
    )
    assert [row[0] for row in assigned] == [lapsed]


async def test_per_member_cap_limits_what_one_member_receives(
    client, keys, make_merchant, running_campaign
):
    shop = await make_merchant()
    await running_campaign(keys.hq_admin, holdoutBps=0, perMemberCapPoints=50)
    member = await enrol(client, shop)
    bonuses = [
        sum(c["points"] for c in (await earned(client, shop, member, PURCHASE))["campaigns"])
        for _ in range(3)
    ]
    assert bonuses == [30, 20, 0]


async def test_the_budget_never_overshoots_under_concurrent_earns(
    client, keys, make_merchant, running_campaign, async_engine
):
    shop = await make_merchant()
    campaign = await running_campaign(
        keys.hq_admin,
        kind="fixed_bonus",
        terms={"bonusPoints": 30},
        holdoutBps=0,
        budgetPoints=1000,
    )
    members = [await enrol(client, shop) for _ in range(50)]
    responses = await asyncio.gather(
        *(earn(client, shop, member, PURCHASE) for member in members for _ in range(2))
    )
    assert [response.status_code for response in responses] == [201] * 100
    awarded = [c["points"] for r in responses for c in r.json()["campaigns"]]
    assert all(0 < points <= 30 for points in awarded)
    assert sum(awarded) <= 1000
    # Near the end an award can come up short while other shares are locked; what is left
    # goes to later purchases, until the budget is spent to the point.
    for member in members:
        if await campaign_lot_points(async_engine, campaign["campaignId"]) == 1000:
            break
        await earned(client, shop, member, PURCHASE)
    assert await campaign_lot_points(async_engine, campaign["campaignId"]) == 1000
    (left,) = await rows(
        async_engine,
        "SELECT sum(remaining) AS remaining, sum(allotted) AS allotted"
        " FROM campaign_budget_shares WHERE campaign_id = :id",
        id=campaign["campaignId"],
    )
    assert (left.remaining, left.allotted) == (0, 1000)
    assert (await earned(client, shop, members[0], PURCHASE))["campaigns"] == []


async def test_a_cancelled_campaign_stops_awarding(client, keys, make_merchant, running_campaign):
    shop = await make_merchant()
    campaign = await running_campaign(keys.hq_admin, holdoutBps=0)
    member = await enrol(client, shop)
    assert len((await earned(client, shop, member, PURCHASE))["campaigns"]) == 1
    cancelled = await client.post(
        f"/v1/campaigns/{campaign['campaignId']}/cancel", headers=keys.hq_admin
    )
    assert cancelled.status_code == 200
    assert (await earned(client, shop, member, PURCHASE))["campaigns"] == []


async def test_an_idempotent_replay_does_not_award_twice(
    client, keys, make_merchant, running_campaign, async_engine
):
    shop = await make_merchant()
    campaign = await running_campaign(keys.hq_admin, holdoutBps=0, budgetPoints=500)
    member = await enrol(client, shop)
    payload = {"member": by_id(member), "amountMinor": PURCHASE, "currency": "USD",
               "occurredAt": now_iso()}  # fmt: skip
    headers = keyed(shop.headers, "till-1")
    first = await client.post("/v1/earn", json=payload, headers=headers)
    again = await client.post("/v1/earn", json=payload, headers=headers)
    assert first.json() == again.json()
    assert await campaign_lot_points(async_engine, campaign["campaignId"]) == BASE
    (left,) = await rows(
        async_engine,
        "SELECT sum(remaining) AS remaining FROM campaign_budget_shares WHERE campaign_id = :id",
        id=campaign["campaignId"],
    )
    assert left.remaining == 500 - BASE


async def test_launch_assigns_the_targeted_list_once(
    client, keys, make_merchant, running_campaign, async_engine, test_settings
):
    shop = await make_merchant()
    campaign = await running_campaign(
        keys.hq_admin, holdoutBps=3000, audience="enrolled_before_start"
    )
    listed = [await enrol(client, shop) for _ in range(12)]
    await start_now(async_engine, campaign["campaignId"])  # the list: enrolled before now
    late = await enrol(client, shop)
    rules = test_settings.program

    launched = await launch_due_campaigns(async_engine, rules.global_holdout_bps, batch_size=5)
    salt = await salt_of(async_engine, campaign["campaignId"])
    expected = {
        m: arm(uuid.UUID(m), salt, 3000)
        for m in listed
        if not in_global_holdout(uuid.UUID(m), rules.global_holdout_bps)
    }
    assert [(x.treatment, x.holdout) for x in launched] == [
        (
            sum(a == "treatment" for a in expected.values()),
            sum(a == "holdout" for a in expected.values()),
        )
    ]
    assigned = await rows(
        async_engine,
        "SELECT member_id::text, arm FROM campaign_assignments WHERE campaign_id = :id",
        id=campaign["campaignId"],
    )
    assert dict(assigned) == expected
    assert await launch_due_campaigns(async_engine, rules.global_holdout_bps) == []

    # A member enrolled after the start is not on the list: no arm, no bonus.
    assert (await earned(client, shop, late, PURCHASE))["campaigns"] == []
    treated = next(m for m, a in expected.items() if a == "treatment")
    assert [c["points"] for c in (await earned(client, shop, treated, PURCHASE))["campaigns"]] == [
        BASE
    ]
    assert len(await rows(async_engine, "SELECT 1 FROM campaign_assignments")) == len(expected)


async def test_a_listed_campaign_rewards_only_its_target_list(
    client_with_rules, keys, make_merchant, async_engine
):
    client = client_with_rules(global_holdout_bps=0)  # no member is held out by chance
    shop = await make_merchant()
    created = await client.post(
        "/v1/campaigns",
        json=body(
            startsAt=iso(future(1)), endsAt=iso(future(30)), holdoutBps=0, audience="listed"
        ),  # fmt: skip
        headers=keys.hq_admin,
    )
    campaign_id = created.json()["campaignId"]
    on_list, off_list = await enrol(client, shop), await enrol(client, shop)
    stranger = str(uuid.uuid4())
    path = f"/v1/campaigns/{campaign_id}/targets"
    first = await client.post(path, json={"memberIds": [on_list, stranger]}, headers=keys.hq_admin)
    assert first.status_code == 200, first.text
    assert first.json() == {"added": 1, "listed": 1, "unknownMemberIds": [stranger]}
    again = await client.post(path, json={"memberIds": [on_list]}, headers=keys.hq_admin)
    assert again.json() == {"added": 0, "listed": 1, "unknownMemberIds": []}

    scheduled = await client.post(f"/v1/campaigns/{campaign_id}/schedule", headers=keys.hq_admin)
    assert scheduled.status_code == 200
    late = await client.post(path, json={"memberIds": [off_list]}, headers=keys.hq_admin)
    assert late.status_code == 409 and late.json()["type"] == "/problems/campaign-not-draft"
    await start_now(async_engine, campaign_id, timedelta(hours=1))

    assert [c["points"] for c in (await earned(client, shop, on_list, PURCHASE))["campaigns"]] == [
        BASE
    ]
    assert (await earned(client, shop, off_list, PURCHASE))["campaigns"] == []
    launched = await launch_due_campaigns(async_engine, global_holdout_bps=0)
    assert [(x.treatment, x.holdout) for x in launched] == [(1, 0)]


async def test_only_a_listed_draft_takes_a_target_list(client, keys, make_merchant):
    shop = await make_merchant()
    member = await enrol(client, shop)
    created = await client.post("/v1/campaigns", json=body(), headers=keys.hq_admin)
    response = await client.post(
        f"/v1/campaigns/{created.json()['campaignId']}/targets",
        json={"memberIds": [member]},
        headers=keys.hq_admin,
    )
    assert response.status_code == 422
    assert response.json()["field"] == "audience"
