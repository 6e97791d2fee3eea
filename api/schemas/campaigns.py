from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from msgspec import UNSET, Meta, UnsetType

from api.schemas.common import Name, WireStruct

CampaignKind = Literal["multiplier", "fixed_bonus", "spend_threshold", "cross_merchant", "win_back"]
CampaignStatus = Literal["draft", "scheduled", "running", "ended", "cancelled"]

TermKey = Annotated[str, Meta(min_length=1, max_length=32, pattern=r"^[A-Za-z]+$")]
TermValue = int | Annotated[str, Meta(max_length=16)]
Terms = Annotated[
    dict[TermKey, TermValue],
    Meta(
        max_length=8,
        description=(
            'Kind-specific terms. multiplier: {"multiplier": "2"} (decimal string > 1); '
            'fixed_bonus: {"bonusPoints": 50, "minSpendMinor": 500}; spend_threshold: '
            '{"thresholdMinor": 10000, "bonusPoints": 500}; cross_merchant: '
            '{"distinctPartners": 3, "bonusPoints": 300}; win_back: '
            '{"lapsedDays": 90, "multiplier": "2"} or {"lapsedDays": 90, "bonusPoints": 200}.'
        ),
        examples=[{"multiplier": "2"}],
    ),
]
MerchantIds = Annotated[
    list[uuid.UUID],
    Meta(
        max_length=1000,
        description="Participating merchants; empty: every partner (HQ campaigns only).",
    ),
]
TierNames = Annotated[
    list[Annotated[str, Meta(min_length=1, max_length=64)]],
    Meta(max_length=32, description="Eligible tiers; empty: every tier.", examples=[["gold"]]),
]
HoldoutBps = Annotated[
    int,
    Meta(
        ge=0, le=10_000, description="Holdout share in basis points (1000 = 10%).", examples=[1000]
    ),
]
PositivePoints = Annotated[int, Meta(ge=1, le=1_000_000_000_000)]
Audience = Annotated[
    Literal["triggered", "enrolled_before_start", "listed"],
    Meta(
        description=(
            "triggered: a member is assigned an arm at their first eligible purchase in the "
            "window; enrolled_before_start: a targeted list of every member enrolled before "
            "the start, assigned at launch; listed: the members added with POST "
            "/v1/campaigns/{id}/targets, assigned at launch."
        ),
        examples=["triggered"],
    ),
]


class CampaignCreate(WireStruct):
    """A new campaign starts as a draft. A merchant key creates a campaign owned and
    funded by its merchant, running at that merchant only."""

    name: Name
    kind: CampaignKind
    starts_at: Annotated[datetime, Meta(tz=True, examples=["2030-01-01T00:00:00Z"])]
    ends_at: Annotated[datetime, Meta(tz=True, examples=["2030-02-01T00:00:00Z"])]
    terms: Terms
    merchant_ids: MerchantIds = []
    tiers: TierNames = []
    holdout_bps: HoldoutBps = 1000
    per_member_cap_points: PositivePoints | None = None
    budget_points: PositivePoints | None = None
    audience: Audience = "triggered"


class CampaignUpdate(WireStruct):
    """Only the fields present change; only a draft changes (409 campaign-not-draft)."""

    name: Name | UnsetType = UNSET
    kind: CampaignKind | UnsetType = UNSET
    starts_at: Annotated[datetime, Meta(tz=True)] | UnsetType = UNSET
    ends_at: Annotated[datetime, Meta(tz=True)] | UnsetType = UNSET
    terms: Terms | UnsetType = UNSET
    merchant_ids: MerchantIds | UnsetType = UNSET
    tiers: TierNames | UnsetType = UNSET
    holdout_bps: HoldoutBps | UnsetType = UNSET
    per_member_cap_points: PositivePoints | None | UnsetType = UNSET
    budget_points: PositivePoints | None | UnsetType = UNSET
    audience: Audience | UnsetType = UNSET


class CampaignOut(WireStruct):
    campaign_id: uuid.UUID
    name: str
    owner_merchant_id: uuid.UUID | None
    kind: CampaignKind
    status: Annotated[
        CampaignStatus,
        Meta(
            description=(
                "Effective status: a scheduled campaign reads as running once startsAt has "
                "passed and as ended once endsAt has passed."
            )
        ),
    ]
    starts_at: datetime
    ends_at: datetime
    terms: dict[str, int | str]
    merchant_ids: list[uuid.UUID]
    tiers: list[str]
    holdout_bps: int
    per_member_cap_points: int | None
    budget_points: int | None
    audience: Audience
    launched_at: datetime | None
    created_at: datetime
    updated_at: datetime


class CampaignPage(WireStruct):
    items: list[CampaignOut]
    total: int
    limit: int
    offset: int


class ArmSummaryOut(WireStruct):
    n: int
    mean: float
    variance: float
    standard_error: float


class LiftOut(WireStruct):
    """difference = treatment - holdout; relative lift = difference / holdout mean."""

    method: str
    confidence: float
    treatment: ArmSummaryOut
    holdout: ArmSummaryOut
    difference: float
    standard_error: float
    ci_low: float
    ci_high: float
    p_value: float
    degrees_of_freedom: float | None
    relative_lift: float | None
    relative_ci_low: float | None
    relative_ci_high: float | None


class CupedOut(WireStruct):
    lift: LiftOut
    unadjusted: LiftOut
    theta: float
    pre_post_correlation: float
    variance_reduction: float


class SampleRatioOut(WireStruct):
    treatment_n: int
    holdout_n: int
    expected_holdout_share: float
    observed_holdout_share: float
    chi_square: float
    p_value: float
    threshold: float
    mismatch: bool


class IncrementalRevenueOut(WireStruct):
    treated_members: int
    amount_minor: int
    ci_low_minor: int
    ci_high_minor: int
    confidence: float


class RoiOut(WireStruct):
    incremental_revenue_minor: int
    cost_minor: int
    net_return_minor: int
    roi: Decimal
    revenue_per_cost: Decimal


class CampaignResultsOut(WireStruct):
    """Treatment against holdout over the window so far (docs/campaigns.md). Statistics are
    null until both arms have two members and the window has begun."""

    campaign: CampaignOut
    window_start: datetime
    window_end: datetime
    treatment_members: int
    holdout_members: int
    sample_ratio: SampleRatioOut | None
    visits: CupedOut | None
    spend_minor: LiftOut | None
    points: LiftOut | None
    active: LiftOut | None
    spillover_visits: LiftOut | None
    network_visits: LiftOut | None
    bonus_points: int
    bonus_cost_minor: int
    incremental_revenue: IncrementalRevenueOut | None
    roi: RoiOut | None


class TargetsIn(WireStruct):
    """Members to add to a 'listed' draft campaign's target list (a segment)."""

    member_ids: Annotated[
        list[uuid.UUID],
        Meta(
            min_length=1,
            max_length=10_000,
            examples=[["6f1c2d4e-8a9b-4c3d-9e8f-7a6b5c4d3e2f"]],
        ),
    ]


class TargetsOut(WireStruct):
    added: int
    listed: Annotated[int, Meta(description="Members on the list now.")]
    unknown_member_ids: Annotated[
        list[uuid.UUID], Meta(description="Ids that are no member (or merged away): not added.")
    ]
