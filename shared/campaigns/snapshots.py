"""Campaign results stored for the dashboard (shared/snapshots.py).

`refresh_snapshots` (part of `coalition jobs campaigns`) computes the results
(shared/campaigns/results.py) of every started, not cancelled campaign whose snapshot is
missing or stale: a running campaign's at most `max_age` old, an ended campaign's once its
window is complete. The API's results endpoint still computes live.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta

from sqlalchemy import Connection, String, and_, cast, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import snapshots
from shared.access import SYSTEM
from shared.campaigns import results
from shared.campaigns.definitions import effective_status_sql
from shared.program import ProgramRules
from shared.tables import campaigns, report_snapshots

REPORT = "campaign_results"
MAX_AGE = timedelta(hours=1)


def _stale(max_age: timedelta):
    snapshot = report_snapshots.c
    joined = campaigns.outerjoin(
        report_snapshots,
        and_(snapshot.report == REPORT, snapshot.subject == cast(campaigns.c.campaign_id, String)),
    )
    return (
        select(campaigns.c.campaign_id)
        .select_from(joined)
        .where(
            effective_status_sql.in_(("running", "ended")),
            or_(
                snapshot.subject.is_(None),
                # Ended since the snapshot: the window is complete now.
                snapshot.covers_until < func.least(campaigns.c.ends_at, func.now()),
            ),
            or_(
                snapshot.subject.is_(None),
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
            await snapshots.store(
                connection,
                REPORT,
                str(campaign_id),
                result,
                covers_until=result.window_end,
                seconds=time.perf_counter() - started,
            )
    return stale


def latest(
    connection: Connection, campaign_id: uuid.UUID
) -> tuple[results.CampaignResults, datetime] | None:
    return snapshots.latest(connection, REPORT, str(campaign_id), results.CampaignResults)
