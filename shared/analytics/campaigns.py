"""Campaigns as HQ's dashboard lists them: every campaign that concerns the selected
merchants and tiers, whatever its dates (a campaign's results cover its own window, so
the date filter does not choose campaigns)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from shared.access import Principal, Role
from shared.analytics.filters import Filters
from shared.campaigns.definitions import Campaign, list_campaigns

HQ_READER = Principal(role=Role.HQ_ANALYST, key_id=None)
STATUSES_WITH_RESULTS = ("running", "ended")  # their window has begun
MAX_LISTED = 500


def concerns(campaign: Campaign, filters: Filters) -> bool:
    """A campaign concerns the merchants it runs at and its owner (none: every partner),
    and the tiers it targets (none: every tier)."""
    merchants = list(campaign.merchant_ids)
    if campaign.owner_merchant_id is not None:
        merchants.append(campaign.owner_merchant_id)
    return filters.covers_merchants(merchants) and filters.covers_tiers(campaign.tiers)


async def campaigns_in_scope(connection: AsyncConnection, filters: Filters) -> list[Campaign]:
    """Newest start first."""
    campaigns, _ = await list_campaigns(connection, HQ_READER, limit=MAX_LISTED)
    return [campaign for campaign in campaigns if concerns(campaign, filters)]


def first_with_results(campaigns: list[Campaign]) -> Campaign | None:
    """The campaign to show first: the newest whose window has begun, else the newest."""
    for campaign in campaigns:
        if campaign.status in STATUSES_WITH_RESULTS:
            return campaign
    return campaigns[0] if campaigns else None
