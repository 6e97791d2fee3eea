"""Campaign definitions: HQ (network-funded) and merchants (their own), HQ analysts read."""

from __future__ import annotations

import uuid
from typing import Literal

from litestar import Controller, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody

from api.auth import writer
from api.dependencies import Caller, Config, Transaction
from api.problems import problem_responses
from api.schemas.campaigns import (
    CampaignCreate,
    CampaignOut,
    CampaignPage,
    CampaignResultsOut,
    CampaignStatus,
    CampaignUpdate,
    TargetsIn,
    TargetsOut,
)
from api.schemas.common import Limit, Offset
from api.wire import changes_of, to_wire
from shared.campaigns import definitions

_NOT_DRAFT = {409: ["campaign-not-draft"]}


class CampaignController(Controller):
    path = "/v1/campaigns"
    tags = ["Campaigns"]

    @post(
        guards=[writer],
        summary="Create a draft campaign (HQ admins: network-funded; merchants: their own)",
        responses=problem_responses(400, 401, 403, 413, 422),
    )
    async def create_campaign(
        self,
        data: JSONBody[CampaignCreate],
        transaction: Transaction,
        principal: Caller,
        settings: Config,
    ) -> CampaignOut:
        campaign = await definitions.create_campaign(
            transaction,
            principal,
            name=data.name,
            kind=data.kind,
            starts_at=data.starts_at,
            ends_at=data.ends_at,
            terms=dict(data.terms),
            allowed_tiers=settings.program.tier_names,
            merchant_ids=data.merchant_ids,
            tiers=data.tiers,
            holdout_bps=data.holdout_bps,
            per_member_cap_points=data.per_member_cap_points,
            budget_points=data.budget_points,
            audience=data.audience,
        )
        return to_wire(campaign, CampaignOut)

    @get(
        summary="List campaigns (merchants: their own only)",
        responses=problem_responses(400, 401),
    )
    async def list_campaigns(
        self,
        transaction: Transaction,
        principal: Caller,
        status: FromQuery[CampaignStatus | None] = None,
        owner: FromQuery[Literal["hq", "merchant"] | None] = None,
        owner_merchant_id: FromQuery[uuid.UUID | None] = None,
        limit: FromQuery[Limit] = 100,
        offset: FromQuery[Offset] = 0,
    ) -> CampaignPage:
        items, total = await definitions.list_campaigns(
            transaction,
            principal,
            status=status,
            owner=owner,
            owner_merchant_id=owner_merchant_id,
            limit=limit,
            offset=offset,
        )
        return CampaignPage(
            items=[to_wire(item, CampaignOut) for item in items],
            total=total,
            limit=limit,
            offset=offset,
        )

    @get(
        "/{campaign_id:uuid}",
        summary="Read a campaign (merchants: their own only)",
        responses=problem_responses(401, 404),
    )
    async def get_campaign(
        self, campaign_id: FromPath[uuid.UUID], transaction: Transaction, principal: Caller
    ) -> CampaignOut:
        return to_wire(
            await definitions.get_campaign(transaction, principal, campaign_id), CampaignOut
        )

    @get(
        "/{campaign_id:uuid}/results",
        summary="What the campaign caused: treatment against holdout over its window",
        description=(
            "Visits (CUPED on the pre-period), spend, points and active share per arm, with "
            "95% intervals and p-values; sample-ratio check; bonus cost, incremental revenue "
            "and ROI; for merchant campaigns, spillover onto other partners."
        ),
        responses=problem_responses(401, 404),
    )
    async def campaign_results(
        self,
        campaign_id: FromPath[uuid.UUID],
        transaction: Transaction,
        principal: Caller,
        settings: Config,
    ) -> CampaignResultsOut:
        # Imported here: scipy and statsmodels take seconds to import (2.4 s of the API's
        # start-up), for this one endpoint.
        from shared.campaigns import results

        found = await results.campaign_results(
            transaction, principal, campaign_id, settings.program
        )
        return to_wire(found, CampaignResultsOut)

    @patch(
        "/{campaign_id:uuid}",
        guards=[writer],
        summary="Change a draft campaign",
        responses=problem_responses(400, 401, 403, 404, 409, 413, 422, slugs=_NOT_DRAFT),
    )
    async def update_campaign(
        self,
        campaign_id: FromPath[uuid.UUID],
        data: JSONBody[CampaignUpdate],
        transaction: Transaction,
        principal: Caller,
        settings: Config,
    ) -> CampaignOut:
        changes = changes_of(data)
        if "terms" in changes:
            changes["terms"] = dict(changes["terms"])  # type: ignore[call-overload]
        campaign = await definitions.update_campaign(
            transaction, principal, campaign_id, changes, settings.program.tier_names
        )
        return to_wire(campaign, CampaignOut)

    @post(
        "/{campaign_id:uuid}/schedule",
        guards=[writer],
        status_code=200,
        summary="Schedule a draft: it runs from startsAt (which must still be ahead) to endsAt",
        responses=problem_responses(401, 403, 404, 409, 422, slugs=_NOT_DRAFT),
    )
    async def schedule_campaign(
        self, campaign_id: FromPath[uuid.UUID], transaction: Transaction, principal: Caller
    ) -> CampaignOut:
        return to_wire(
            await definitions.schedule_campaign(transaction, principal, campaign_id), CampaignOut
        )

    @post(
        "/{campaign_id:uuid}/targets",
        guards=[writer],
        status_code=200,
        summary="Add members to a 'listed' draft campaign's target list (idempotent per member)",
        responses=problem_responses(400, 401, 403, 404, 409, 413, 422, slugs=_NOT_DRAFT),
    )
    async def add_targets(
        self,
        campaign_id: FromPath[uuid.UUID],
        data: JSONBody[TargetsIn],
        transaction: Transaction,
        principal: Caller,
    ) -> TargetsOut:
        return to_wire(
            await definitions.add_targets(transaction, principal, campaign_id, data.member_ids),
            TargetsOut,
        )

    @post(
        "/{campaign_id:uuid}/cancel",
        guards=[writer],
        status_code=200,
        summary="Cancel a draft, scheduled or running campaign (an ended one cannot be)",
        responses=problem_responses(401, 403, 404, 409),
    )
    async def cancel_campaign(
        self, campaign_id: FromPath[uuid.UUID], transaction: Transaction, principal: Caller
    ) -> CampaignOut:
        return to_wire(
            await definitions.cancel_campaign(transaction, principal, campaign_id), CampaignOut
        )
