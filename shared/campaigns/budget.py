"""Campaign budgets that never overshoot, without a hot row.

A budget of B points is split into SHARES rows (campaign_budget_shares). An award draws on
the member's own share first (chosen by a hash of the member), waiting for its lock, so
concurrent earns of different members mostly lock different rows. When that share cannot
cover the award, the rest comes from other shares that are free right now (SKIP LOCKED):
waiting only ever happens for a transaction's first share of a campaign, and campaigns are
drawn in id order, so two earns cannot wait for each other. A share never goes below zero,
so the points handed out never exceed the budget. Near the end an award may come up short
while every other share is locked by an earn in flight; what it could not take stays in
the budget for the next purchase.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncConnection

from shared.campaigns.assignment import bucket
from shared.database.driver import driver

SHARES = 16
_SHARE_SALT = "coalition-budget-share"


def allotments(budget_points: int, shares: int = SHARES) -> list[int]:
    """Budget split as evenly as integers allow; the parts add up to the budget."""
    whole, extra = divmod(budget_points, shares)
    return [whole + (1 if share < extra else 0) for share in range(shares)]


def home_share(member_id: uuid.UUID, shares: int = SHARES) -> int:
    return bucket(member_id, _SHARE_SALT) % shares


async def open_budget(
    connection: AsyncConnection, campaign_id: uuid.UUID, budget_points: int | None
) -> None:
    """Write the shares of a campaign being scheduled (once: a re-run changes nothing)."""
    if budget_points is None:
        return
    database = await driver(connection)
    await database.executemany(
        "INSERT INTO campaign_budget_shares (campaign_id, share, allotted, remaining)"
        " VALUES ($1, $2, $3, $3) ON CONFLICT DO NOTHING",
        [(campaign_id, share, points) for share, points in enumerate(allotments(budget_points))],
    )


_DRAW = """
WITH chosen AS (
  SELECT share, remaining FROM campaign_budget_shares
  WHERE campaign_id = $1 AND remaining > 0 AND {which}
  ORDER BY share LIMIT 1
  FOR UPDATE {skip}
)
UPDATE campaign_budget_shares s
SET remaining = s.remaining - least(chosen.remaining, $2)
FROM chosen
WHERE s.campaign_id = $1 AND s.share = chosen.share
RETURNING s.share, least(chosen.remaining, $2) AS granted
"""
_DRAW_HOME = _DRAW.format(which="share = $3", skip="")
_DRAW_ELSEWHERE = _DRAW.format(which="share <> ALL($3::smallint[])", skip="SKIP LOCKED")


async def draw(
    connection: AsyncConnection, campaign_id: uuid.UUID, member_id: uuid.UUID, points: int
) -> int:
    """Take up to `points` from the campaign's budget for this member; return what was
    granted (0 when the budget is spent)."""
    if points <= 0:
        return 0
    database = await driver(connection)
    home = home_share(member_id)
    row = await database.fetchrow(_DRAW_HOME, campaign_id, points, home)
    granted = row["granted"] if row else 0
    tried = [home]
    while granted < points:
        row = await database.fetchrow(_DRAW_ELSEWHERE, campaign_id, points - granted, tried)
        if row is None:
            break
        granted += row["granted"]
        tried.append(row["share"])
    return granted
