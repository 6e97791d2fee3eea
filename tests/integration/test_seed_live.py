"""Live traffic mode (seed/live.py): the real API served over real HTTP on this event loop,
a small network built through the services, and a few seconds of POS traffic."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import pytest
import uvicorn
from rich.console import Console
from sqlalchemy import select

from api.app import create_app
from seed.demo import create_demo_network
from seed.live import (
    LIVE_KEY_LABEL,
    WRITES,
    LiveConfig,
    LiveCredentials,
    LiveMember,
    LiveMerchant,
    Operation,
    exit_code,
    plan_operations,
    play,
    prepare_credentials,
    render_report,
    retire_credentials,
)
from shared import members, merchants
from shared.access import SYSTEM
from shared.ledger import corrections
from shared.tables import members as members_table
from shared.tables import merchants as merchants_table
from tests.integration.ledger_support import assert_ledger_consistent, rows, scalar


@pytest.fixture
async def api_url(async_engine, test_settings, clean_database) -> AsyncIterator[str]:
    """The API app behind uvicorn on a free port, served by this test's event loop (the
    shared asyncpg pool cannot cross loops)."""
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(test_settings, engine=async_engine),
            host="127.0.0.1",
            port=0,
            log_level="warning",
            access_log=False,
            lifespan="on",
        )
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        assert not serving.done(), "uvicorn stopped while starting"
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await serving


@pytest.fixture
async def network(async_engine, test_settings, clean_database) -> dict:
    """The demo network (six merchants, a dozen members) with an opening balance for every
    member, one merchant suspended and one member closed."""
    async with async_engine.begin() as connection:
        await create_demo_network(connection, test_settings, members_count=12, seed=3)
        member_ids = list(await connection.scalars(select(members_table.c.member_id)))
        for member_id in member_ids:
            await corrections.adjust(
                connection,
                SYSTEM,
                member_id=member_id,
                points=2_000,
                reason="opening balance for live traffic",
                rules=test_settings.program,
            )
        merchant_ids = list(
            await connection.scalars(
                select(merchants_table.c.merchant_id).order_by(merchants_table.c.name)
            )
        )
        await merchants.set_merchant_status(connection, SYSTEM, merchant_ids[0], "suspended")
        await members.set_status(connection, SYSTEM, member_ids[0], "closed", "left the program")
    return {
        "suspended_merchant": merchant_ids[0],
        "closed_member": member_ids[0],
        "active_merchants": len(merchant_ids) - 1,
        "active_members": len(member_ids) - 1,
    }


async def credentials_for(async_engine, **limits) -> LiveCredentials:
    async with async_engine.begin() as connection:
        return await prepare_credentials(connection, **limits)


def ledger_count(sync_engine, kind: str) -> int:
    return scalar(sync_engine, "SELECT count(*) FROM ledger_transactions WHERE kind = :k", k=kind)


async def test_prepare_credentials_samples_active_accounts_and_issues_live_keys(
    async_engine, network, sync_engine
):
    credentials = await credentials_for(async_engine, merchants_limit=4, members_limit=8, seed=5)
    again = await credentials_for(async_engine, merchants_limit=4, members_limit=8, seed=5)
    everyone = await credentials_for(async_engine, merchants_limit=50, members_limit=50, seed=5)

    assert len(credentials.merchants) == 4 and len(credentials.members) == 8
    assert [m.merchant_id for m in again.merchants] == [
        m.merchant_id for m in credentials.merchants
    ]
    assert [m.member_id for m in again.members] == [m.member_id for m in credentials.members]
    assert len(everyone.merchants) == network["active_merchants"]
    assert len(everyone.members) == network["active_members"]
    assert network["suspended_merchant"] not in {m.merchant_id for m in everyone.merchants}
    assert network["closed_member"] not in {m.member_id for m in everyone.members}
    assert all(member.card and member.email for member in everyone.members)
    assert {member.points for member in everyone.members} == {2_000}  # the opening balance
    assert all(merchant.store_ids for merchant in everyone.merchants)
    assert "coal_" not in repr(credentials)  # secrets stay out of logs

    issued = rows(
        sync_engine,
        "SELECT merchant_id, role, revoked_at FROM api_keys WHERE label = :label",
        label=LIVE_KEY_LABEL,
    )
    assert len(issued) == 4 + 4 + network["active_merchants"]  # fresh keys at every call
    assert {row.role for row in issued} == {"merchant"}

    async with async_engine.begin() as connection:
        await retire_credentials(connection, credentials)
    revoked = scalar(
        sync_engine,
        "SELECT count(*) FROM api_keys WHERE label = :label AND revoked_at IS NOT NULL",
        label=LIVE_KEY_LABEL,
    )
    assert revoked == 4


async def test_live_traffic_runs_without_errors_and_keeps_the_ledger_exact(
    async_engine, network, api_url, sync_engine
):
    sampled = await credentials_for(async_engine, merchants_limit=5, members_limit=8, seed=5)
    # Ids are random at every run, and so is the sample's order: put it in a stable order
    # (names and e-mails come from seeded Faker) so that seed 11 always plans the same run.
    credentials = LiveCredentials(
        merchants=tuple(sorted(sampled.merchants, key=lambda merchant: merchant.name)),
        members=tuple(sorted(sampled.members, key=lambda member: member.email)),
    )
    assert len(credentials.merchants) == network["active_merchants"]
    config = LiveConfig(
        base_url=api_url, rate=40, duration=3, seed=11, timeout_probability=0.25, concurrency=16
    )

    report = await play(config, credentials)

    output = io.StringIO()
    render_report(report, Console(file=output, width=160))
    assert report.errors == 0, output.getvalue()
    assert exit_code(report) == 0
    # Every planned operation reached an outcome, and most of them went through.
    assert report.planned > 0.6 * config.rate * config.duration
    assert report.operations == report.planned
    succeeded = {kind: report.succeeded(kind) for kind in Operation}
    assert sum(succeeded.values()) > 0.6 * report.planned, output.getvalue()
    for kind in (
        Operation.EARN,
        Operation.BALANCE,
        Operation.REDEEM,
        Operation.HOLD,
        Operation.CAPTURE,
        Operation.REFUND,
    ):
        assert succeeded[kind] > 0, (kind, output.getvalue())
    # Simulated timeouts were retried with the same key and body, and replayed identically.
    assert report.retries > 5
    assert report.replays_compared > 0
    assert report.replay_mismatches == 0
    assert report.requests == report.planned + report.retries - sum(
        stats.outcomes["skipped"] for stats in report.by_kind.values()
    )

    # Exactly once: each successful write is one ledger effect, retries included.
    assert ledger_count(sync_engine, "earn") == succeeded[Operation.EARN]
    assert ledger_count(sync_engine, "redeem") == succeeded[Operation.REDEEM]
    assert ledger_count(sync_engine, "capture") == succeeded[Operation.CAPTURE]
    assert ledger_count(sync_engine, "refund") == succeeded[Operation.REFUND]
    assert ledger_count(sync_engine, "reversal") == succeeded[Operation.REVERSAL]
    holds = dict(rows(sync_engine, "SELECT status, count(*) FROM holds GROUP BY status"))
    assert sum(holds.values()) == succeeded[Operation.HOLD]
    assert holds.get("captured", 0) == succeeded[Operation.CAPTURE]
    assert holds.get("voided", 0) == succeeded[Operation.VOID]
    stored_responses = scalar(sync_engine, "SELECT count(*) FROM idempotency_records")
    assert stored_responses == sum(succeeded[kind] for kind in WRITES)
    closed_member_activity = scalar(
        sync_engine,
        "SELECT count(*) FROM ledger_transactions WHERE member_id = :m AND kind <> 'adjustment'",
        m=network["closed_member"],
    )
    assert closed_member_activity == 0  # only sampled (active) members were played

    # `coalition audit`'s checks.
    assert_ledger_consistent(sync_engine)


async def test_errors_are_counted_and_make_the_exit_code_nonzero(
    async_engine, network, api_url, sync_engine
):
    credentials = await credentials_for(async_engine, merchants_limit=2, members_limit=3, seed=1)
    async with async_engine.begin() as connection:
        await retire_credentials(connection, credentials)  # every request now gets a 401
    config = LiveConfig(base_url=api_url, rate=30, duration=1, seed=2, concurrency=4)

    report = await play(config, credentials)

    assert report.errors > 0
    assert report.errors_by_category["unexpected 4xx"] == report.statuses["401"] > 0
    assert exit_code(report) == 1
    output = io.StringIO()
    render_report(report, Console(file=output, width=200))
    assert f"{report.errors} errors" in output.getvalue()
    assert "401" in output.getvalue()
    assert ledger_count(sync_engine, "earn") == 0


def fabricated_credentials(merchants_count: int = 4, members_count: int = 10) -> LiveCredentials:
    return LiveCredentials(
        merchants=tuple(
            LiveMerchant(
                merchant_id=uuid.UUID(int=index + 1),
                name=f"Merchant {index}",
                industry=("grocery", "coffee", "fuel", "cinema")[index % 4],
                currency="EUR" if index == 3 else "USD",
                store_ids=(uuid.UUID(int=100 + index),),
                key_id=uuid.UUID(int=200 + index),
                api_key="unused",
            )
            for index in range(merchants_count)
        ),
        members=tuple(
            LiveMember(
                uuid.UUID(int=1000 + index),
                f"73000000000{index:05d}",
                None,
                None,
                points=5_000 if index % 3 == 0 else 40,
            )
            for index in range(members_count)
        ),
    )


def test_the_same_seed_plans_the_same_operations():
    credentials = fabricated_credentials()
    config = LiveConfig(rate=200, duration=10, seed=7, timeout_probability=0.05, run_tag="t")

    first = list(plan_operations(config, credentials))
    second = list(plan_operations(config, credentials))
    other = list(plan_operations(dataclasses.replace(config, seed=8), credentials))

    assert first == second
    assert [op.kind for op in first] != [op.kind for op in other]
    assert 1_700 < len(first) < 2_300  # Poisson arrivals: 2,000 expected
    assert len({op.idempotency_key for op in first if op.kind in WRITES}) == sum(
        op.kind in WRITES for op in first
    )
    assert all(op.idempotency_key.startswith("live-t-") for op in first if op.kind in WRITES)
    kinds = Counter(op.kind for op in first)
    assert set(kinds) == set(Operation)
    assert 0.02 < sum(op.retry is not None for op in first) / len(first) < 0.08


def test_follow_ups_stay_with_their_merchant_and_refunds_never_exceed_the_purchase():
    credentials = fabricated_credentials()
    config = LiveConfig(rate=300, duration=20, seed=3, run_tag="t")
    plan = list(plan_operations(config, credentials))
    by_step = {op.step: op for op in plan}
    refunded: Counter[int] = Counter()
    followed: Counter[int] = Counter()
    expected_target = {
        Operation.CAPTURE: {Operation.HOLD},
        Operation.VOID: {Operation.HOLD},
        Operation.REFUND: {Operation.EARN},
        Operation.REVERSAL: {Operation.REDEEM, Operation.CAPTURE},
    }
    for op in plan:
        if op.depends_on is None:
            continue
        target = by_step[op.depends_on]
        assert target.step < op.step
        assert target.kind in expected_target[op.kind]
        assert (target.merchant, target.member) == (op.merchant, op.member)
        if op.kind is Operation.REFUND:
            refunded[target.step] += op.amount_minor
        else:
            followed[target.step] += 1
    assert all(refunded[step] <= by_step[step].amount_minor for step in refunded)
    assert any(refunded[step] == by_step[step].amount_minor for step in refunded)
    assert max(followed.values()) == 1  # a hold closes once, a redemption reverses once
    # Points are spent only where the points currency is the merchant's currency, by
    # members who had enough points to spend when they were sampled.
    euro_merchant = 3
    spending = [op for op in plan if op.kind in (Operation.REDEEM, Operation.HOLD)]
    assert all(op.merchant != euro_merchant for op in spending)
    assert {op.member for op in spending} == {0, 3, 6, 9}
    assert len({op.member for op in plan if op.kind is Operation.EARN}) == 10
    assert any(op.merchant == euro_merchant for op in plan if op.kind is Operation.EARN)
