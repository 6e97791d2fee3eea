"""What a campaign caused: its arms' outcomes over the window, compared with
shared/campaigns/effect.py.

Outcomes per assigned member, over the campaign window so far ([start, min(end, now))):
visits (earn transactions at the participating partners, or anywhere for a network-wide
campaign), spend (their purchase amounts), points earned (base and bonus), and active
(at least one visit). The pre-period of the same length before the start gives each
member's covariate for CUPED. Bonus cost is the campaign's bonus points at the
programme's point value; spillover is the visits at the other partners (merchant
campaigns only), and their visits at every partner.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import numpy as np
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.access import Principal
from shared.campaigns import definitions, effect
from shared.program import CURRENCY_EXPONENTS, ProgramRules
from shared.settlement.rules import money_minor

# Per member: the arm, then visits/spend/points in the window at the campaign's partners,
# visits elsewhere (spillover), and visits in the pre-period.
_OUTCOMES_SQL = """
SELECT a.member_id, a.arm,
  count(t.transaction_id) FILTER (WHERE t.occurred_at >= :start AND here) AS visits,
  coalesce(sum(t.amount_minor) FILTER (WHERE t.occurred_at >= :start AND here), 0) AS spend,
  coalesce(sum(t.points) FILTER (WHERE t.occurred_at >= :start AND here), 0) AS points,
  count(t.transaction_id) FILTER (WHERE t.occurred_at >= :start AND NOT here) AS elsewhere,
  count(t.transaction_id) FILTER (WHERE t.occurred_at < :start AND here) AS pre_visits
FROM campaign_assignments a
LEFT JOIN LATERAL (
  SELECT t.transaction_id, t.occurred_at, t.amount_minor, t.points,
         (cardinality(CAST(:merchants AS uuid[])) = 0
          OR t.merchant_id = ANY(CAST(:merchants AS uuid[]))) AS here
  FROM ledger_transactions t
  WHERE t.member_id = a.member_id AND t.kind = 'earn'
    AND t.occurred_at >= :pre_start AND t.occurred_at < :until
) t ON true
WHERE a.campaign_id = :campaign_id
GROUP BY a.member_id, a.arm
"""
_BONUS_SQL = "SELECT coalesce(sum(original), 0) FROM lots WHERE campaign_id = :campaign_id"


@dataclass(frozen=True, slots=True)
class CampaignResults:
    campaign: definitions.Campaign
    window_start: datetime
    window_end: datetime  # the end, or now while the campaign runs
    treatment_members: int
    holdout_members: int
    sample_ratio: effect.SrmCheck | None
    visits: effect.CupedEstimate | None  # CUPED on the pre-period's visits
    spend_minor: effect.LiftEstimate | None
    points: effect.LiftEstimate | None
    active: effect.LiftEstimate | None
    spillover_visits: effect.LiftEstimate | None  # merchant campaigns: other partners
    # Merchant campaigns: visits at every partner, the campaign's partners included (the
    # whole effect on the member's shopping, where `visits` is the effect at its partners).
    network_visits: effect.LiftEstimate | None
    bonus_points: int
    bonus_cost_minor: int
    incremental_revenue: effect.IncrementalRevenue | None
    roi: effect.Roi | None


async def campaign_results(
    connection: AsyncConnection,
    viewer: Principal,
    campaign_id: uuid.UUID,
    rules: ProgramRules,
) -> CampaignResults:
    campaign = await definitions.get_campaign(connection, viewer, campaign_id)
    now = await connection.scalar(text("SELECT now()"))
    until = min(campaign.ends_at, max(now, campaign.starts_at))
    pre_start = campaign.starts_at - (until - campaign.starts_at)
    rows = (
        await connection.execute(
            text(_OUTCOMES_SQL),
            {
                "campaign_id": campaign_id, "start": campaign.starts_at, "until": until,
                "pre_start": pre_start, "merchants": list(campaign.merchant_ids),
            },
        )
    ).all()  # fmt: skip
    arms = {arm: [row for row in rows if row.arm == arm] for arm in ("treatment", "holdout")}
    treated, held = arms["treatment"], arms["holdout"]
    bonus_points = int(await connection.scalar(text(_BONUS_SQL), {"campaign_id": campaign_id}))
    exponent = CURRENCY_EXPONENTS.get(rules.currency, 2)
    point_value = rules.point_value_minor / (Decimal(10) ** exponent)  # major units per point
    bonus_cost = money_minor(bonus_points, point_value, exponent)
    comparable = len(treated) >= 2 and len(held) >= 2 and until > campaign.starts_at

    def column(members, name):
        return np.array([getattr(row, name) for row in members], dtype=float)

    visits = spend = points = active = spill = network = revenue = roi = None
    if comparable:
        visits = effect.cuped_lift(
            column(treated, "visits"), column(treated, "pre_visits"),
            column(held, "visits"), column(held, "pre_visits"),
        )  # fmt: skip
        spend = effect.welch_lift(column(treated, "spend"), column(held, "spend"))
        points = effect.welch_lift(column(treated, "points"), column(held, "points"))
        active = effect.proportion_lift(
            int((column(treated, "visits") > 0).sum()), len(treated),
            int((column(held, "visits") > 0).sum()), len(held),
        )  # fmt: skip
        if campaign.merchant_ids:
            spill = effect.spillover(column(treated, "elsewhere"), column(held, "elsewhere"))
            network = effect.welch_lift(
                column(treated, "visits") + column(treated, "elsewhere"),
                column(held, "visits") + column(held, "elsewhere"),
            )
        revenue = effect.incremental_revenue(spend, len(treated))
        if bonus_cost > 0:
            roi = effect.return_on_investment(revenue.amount_minor, bonus_cost)
    return CampaignResults(
        campaign=campaign,
        window_start=campaign.starts_at,
        window_end=until,
        treatment_members=len(treated),
        holdout_members=len(held),
        sample_ratio=(
            effect.sample_ratio_mismatch(len(treated), len(held), campaign.holdout_bps / 10_000)
            if treated and held and 0 < campaign.holdout_bps < 10_000
            else None
        ),
        visits=visits,
        spend_minor=spend,
        points=points,
        active=active,
        spillover_visits=spill,
        network_visits=network,
        bonus_points=bonus_points,
        bonus_cost_minor=bonus_cost,
        incremental_revenue=revenue,
        roi=roi,
    )
