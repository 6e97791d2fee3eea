from __future__ import annotations

import uuid
from datetime import datetime
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
    created_at: datetime
    updated_at: datetime


class CampaignPage(WireStruct):
    items: list[CampaignOut]
    total: int
    limit: int
    offset: int
