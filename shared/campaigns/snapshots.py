"""Stored campaign results, so a dashboard page shows them at once.

`refresh_snapshots` (part of `coalition jobs campaigns`) computes the results
(shared/campaigns/results.py) of every started, not cancelled campaign whose snapshot is
missing or stale, and stores them as JSON: a running campaign's at most `max_age` old, an
ended campaign's once its window is complete. The API's results endpoint still computes
live; the dashboard reads `latest` and says when the figures were computed.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta

import msgspec
from sqlalchemy import Connection, func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.access import SYSTEM
from shared.campaigns import results
from shared.campaigns.definitions import effective_status_sql
from shared.program import ProgramRules
from shared.tables import campaign_result_snapshots, campaigns

MAX_AGE = timedelta(hours=1)


def encode(result: results.CampaignResults) -> dict:
    return msgspec.to_builtins(result)


def decode(stored: dict) -> results.CampaignResults:
    return msgspec.convert(stored, results.CampaignResults, strict=False)


def _stale(max_age: timedelta):
    snapshot = campaign_result_snapshots.c
    return (
        select(campaigns.c.campaign_id)
        .select_from(campaigns.outerjoin(campaign_result_snapshots))
        .where(
            effective_status_sql.in_(("running", "ended")),
            or_(
                snapshot.campaign_id.is_(None),
                # Ended since the snapshot: the window is complete now.
                snapshot.window_end < func.least(campaigns.c.ends_at, func.now()),
            ),
            or_(
                snapshot.campaign_id.is_(None),
                snapshot.computed_at < func.now() - max_age,
                campaigns.c.ends_at <= func.now(),
            ),
        )
        .order_by(campaigns.c.starts_at)
    )


async def refresh_snapshots(
    engine: AsyncEngine, rules: ProgramRules, max_age: timedelta = MAX_AGE
) -> list[uuid.UUID]:
    """Recompute the stale snapshots, one transaction each; returns their campaigns."""
    async with engine.connect() as connection:
        stale = list((await connection.execute(_stale(max_age))).scalars())
    for campaign_id in stale:
        started = time.perf_counter()
        async with engine.begin() as connection:
            result = await results.campaign_results(connection, SYSTEM, campaign_id, rules)
            values = {
                "computed_at": func.now(),
                "window_end": result.window_end,
                "results": encode(result),
                "seconds": time.perf_counter() - started,
            }
            await connection.execute(
                insert(campaign_result_snapshots)
                .values(campaign_id=campaign_id, **values)
                .on_conflict_do_update(index_elements=["campaign_id"], set_=values)
            )
    return stale


def latest(
    connection: Connection, campaign_id: uuid.UUID
) -> tuple[results.CampaignResults, datetime] | None:
    """The stored results and when they were computed; None before the first snapshot."""
    row = connection.execute(
        select(campaign_result_snapshots.c.results, campaign_result_snapshots.c.computed_at).where(
            campaign_result_snapshots.c.campaign_id == campaign_id
        )
    ).one_or_none()
    return None if row is None else (decode(row.results), row.computed_at)
