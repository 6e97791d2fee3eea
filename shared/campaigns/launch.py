"""Launch of a targeted campaign: every member of its list gets an arm at once.

For a campaign whose audience is 'enrolled_before_start', the list is every member
enrolled before the start (not merged away, in the campaign's tiers, outside the global
holdout). Assigning the whole list at launch, rather than at each member's first purchase,
keeps members who never come back in the analysis, so the effect on visits is measured on
everyone the campaign targeted. The earn path records the same arm (the hash is the same)
if a purchase arrives before this job ran. Batched by member id, one transaction per
batch, and idempotent: a rerun inserts nothing new; launched_at marks a finished launch.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from shared.campaigns.assignment import arm, in_global_holdout
from shared.database.driver import driver

_DUE = """
SELECT campaign_id, starts_at, tiers, holdout_bps, salt FROM campaigns
WHERE audience = 'enrolled_before_start' AND launched_at IS NULL
  AND status NOT IN ('draft', 'cancelled') AND starts_at <= now()
ORDER BY starts_at, campaign_id
"""
_LIST_BATCH = """
SELECT member_id FROM members
WHERE member_id > $1 AND enrolled_at < $2 AND merged_into_member_id IS NULL
  AND (cardinality($3::text[]) = 0 OR tier = ANY($3::text[]))
ORDER BY member_id LIMIT $4
"""
_ASSIGN = """
INSERT INTO campaign_assignments (member_id, campaign_id, arm, assigned_at)
SELECT member_id, $1, arm, now() FROM unnest($2::uuid[], $3::text[]) AS a(member_id, arm)
ON CONFLICT DO NOTHING
"""


@dataclass(frozen=True, slots=True)
class Launch:
    campaign_id: uuid.UUID
    treatment: int
    holdout: int


async def launch_due_campaigns(
    engine: AsyncEngine, global_holdout_bps: int, batch_size: int = 20_000
) -> list[Launch]:
    async with engine.connect() as connection:
        due = await (await driver(connection)).fetch(_DUE)
    return [await _launch(engine, row, global_holdout_bps, batch_size) for row in due]


async def _launch(engine: AsyncEngine, campaign, global_holdout_bps: int, batch_size: int):
    counts = {"treatment": 0, "holdout": 0}
    after = uuid.UUID(int=0)
    while True:
        async with engine.begin() as connection:
            database = await driver(connection)
            members = [
                row["member_id"]
                for row in await database.fetch(
                    _LIST_BATCH, after, campaign["starts_at"], campaign["tiers"], batch_size
                )
            ]
            listed = [m for m in members if not in_global_holdout(m, global_holdout_bps)]
            arms = [arm(m, campaign["salt"], campaign["holdout_bps"]) for m in listed]
            await database.execute(_ASSIGN, campaign["campaign_id"], listed, arms)
            if len(members) < batch_size:
                await database.execute(
                    "UPDATE campaigns SET launched_at = now() WHERE campaign_id = $1",
                    campaign["campaign_id"],
                )
        for assigned in arms:
            counts[assigned] += 1
        if len(members) < batch_size:
            return Launch(campaign["campaign_id"], counts["treatment"], counts["holdout"])
        after = members[-1]
