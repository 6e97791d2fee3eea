"""A small seeded network in a database of its own, for the dashboard's tests (AppTest and
the browser): the seed's `test` profile (400 members, 14 months to today, 10 merchants,
three ended campaigns), its analytics rollups and churn model, its closed settlement
periods, a draft campaign an admin may cancel, and one HQ user per role. A few seconds to
build."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine

from seed import bulk
from seed.config import profile
from shared import hq_users
from shared.access import SYSTEM
from shared.analytics.churn_model import fit_and_store
from shared.analytics.refresh import refresh
from shared.campaigns import definitions
from shared.database.bootstrap import async_url
from shared.database.urls import libpq_conninfo
from shared.settings import get_settings
from shared.settlement.closing import close_due_periods
from tests.databases import beside, migrated_database

ADMIN = ("grace", "Grace Hopper", "admin password, long enough")
ANALYST = ("ada", "Ada Lovelace", "analyst password, long enough")
DRAFT_CAMPAIGN = "Winter warm-up (draft)"


async def _close_periods_and_draft_a_campaign(url: URL) -> None:
    settings = get_settings()
    engine = create_async_engine(async_url(url))
    try:
        await close_due_periods(engine, settings.program)
        async with engine.begin() as connection:
            now = await connection.scalar(select(func.now()))
            await definitions.create_campaign(
                connection,
                SYSTEM,
                name=DRAFT_CAMPAIGN,
                kind="fixed_bonus",
                starts_at=now + timedelta(days=30),
                ends_at=now + timedelta(days=44),
                terms={"bonusPoints": 50},
                allowed_tiers=settings.program.tier_names,
                holdout_bps=1000,
            )
    finally:
        await engine.dispose()


def _add_users(url: URL) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        for (username, name, password), role in ((ADMIN, "admin"), (ANALYST, "analyst")):
            hq_users.create_user(
                connection,
                username=username,
                display_name=name,
                role=hq_users.HqRole(role),
                password=password,
            )
    engine.dispose()


@contextmanager
def seeded_network(worker_url: URL, suffix: str) -> Iterator[URL]:
    """A fresh database beside the worker's (whose tables other tests empty), dropped after."""
    with migrated_database(beside(worker_url, suffix)) as url:
        settings = get_settings()
        bulk.run(
            profile("test", workers=1),
            settings.program,
            settings.card_prefix,
            libpq_conninfo(url),
            show_progress=False,
        )
        engine = create_engine(url)
        try:  # as `coalition up` does: the analytics pages read the rollups and the model
            refresh(engine, settings.program, full=True)
            with engine.begin() as connection:
                fit_and_store(connection)
        finally:
            engine.dispose()
        asyncio.run(_close_periods_and_draft_a_campaign(url))
        _add_users(url)
        yield url
