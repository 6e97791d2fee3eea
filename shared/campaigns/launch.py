"""Launch of a targeted campaign: every member of its list gets an arm at once.

The list of an 'enrolled_before_start' campaign is every member enrolled before the start;
of a 'listed' campaign, the members uploaded to campaign_targets; in both cases not merged
away, in the campaign's tiers and outside the global holdout. Assigning the whole list at launch, rather than at each member's first purchase,
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
SELECT campaign_id, audience, starts_at, tiers, holdout_bps, salt FROM campaigns
WHERE audience IN ('enrolled_before_start', 'listed') AND launched_at IS NULL
  AND status NOT IN ('draft', 'cancelled') AND starts_at <= now()
ORDER BY starts_at, campaign_id
"""
# Batches of the list after member $1, at most $2 members, in tiers $3 (empty: any).
_ENROLLED_BEFORE_BATCH = """
SELECT member_id FROM members
WHERE member_id > $1 AND merged_into_member_id IS NULL
  AND (cardinality($3::text[]) = 0 OR tier = ANY($3::text[])) AND enrolled_at < $4
ORDER BY member_id LIMIT $2
"""
_TARGETS_BATCH = """
SELECT m.member_id FROM campaign_targets t JOIN members m USING (member_id)
WHERE m.member_id > $1 AND m.merged_into_member_id IS NULL
  AND (cardinality($3::text[]) = 0 OR m.tier = ANY($3::text[])) AND t.campaign_id = $4
ORDER BY m.member_id LIMIT $2
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
    batch_sql, audience_key = (
        (_TARGETS_BATCH, campaign["campaign_id"])
        if campaign["audience"] == "listed"
        else (_ENROLLED_BEFORE_BATCH, campaign["starts_at"])
    )
    while True:
        async with engine.begin() as connection:
            database = await driver(connection)
            members = [
                row["member_id"]
                for row in await database.fetch(
                    batch_sql, after, batch_size, campaign["tiers"], audience_key
                )
            ]
            kept = [m for m in members if not in_global_holdout(m, global_holdout_bps)]
            arms = [arm(m, campaign["salt"], campaign["holdout_bps"]) for m in kept]
            await database.execute(_ASSIGN, campaign["campaign_id"], kept, arms)
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
