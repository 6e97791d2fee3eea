from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from msgspec import Meta

from api.schemas.common import Currency, Reason, WireStruct

Points = Annotated[int, Meta(ge=1, le=1_000_000_000, examples=[500])]
AmountMinor = Annotated[
    int,
    Meta(
        ge=1,
        le=1_000_000_000_000,
        examples=[4599],
        description="Integer minor units (cents) of `currency`.",
    ),
]
Reference = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        examples=["POS-0042-20261123-0007"],
        description="Your own transaction id. Used as the idempotency "
        "key when no Idempotency-Key header is sent.",
    ),
]
Category = Annotated[
    str,
    Meta(min_length=1, max_length=64, pattern=r"^[a-z0-9_\-]+$", examples=["groceries", "tobacco"]),
]


class MemberRefIn(WireStruct):
    kind: Literal["member_id", "card", "phone", "email", "merchant_ref"]
    value: Annotated[str, Meta(min_length=1, max_length=320, examples=["7300123456789012"])]


class LineItemIn(WireStruct):
    amount_minor: Annotated[int, Meta(ge=0, le=1_000_000_000_000)]
    category: Category | None = None


class EarnIn(WireStruct):
    member: MemberRefIn
    amount_minor: AmountMinor
    currency: Currency
    occurred_at: Annotated[datetime, Meta(tz=True, examples=["2026-11-23T10:15:00+01:00"])]
    store_id: uuid.UUID | None = None
    line_items: Annotated[list[LineItemIn], Meta(max_length=500)] = []
    reference: Reference | None = None


class BreakdownOut(WireStruct):
    purchase_amount_minor: int
    excluded_amount_minor: int
    eligible_amount_minor: int
    earn_rate: Decimal
    base_points: int
    tier: str
    tier_multiplier: Decimal
    tier_bonus_points: int


class LotSummaryOut(WireStruct):
    lot_id: uuid.UUID
    source: str
    points: int
    funder_merchant_id: uuid.UUID | None
    available_at: datetime
    expires_at: datetime


class CampaignBonusOut(WireStruct):
    """A campaign's bonus on this purchase, as a separate lot funded by its owner."""

    campaign_id: uuid.UUID
    name: str
    points: int
    funder_merchant_id: uuid.UUID | None  # null: HQ


class EarnOut(WireStruct):
    transaction_id: uuid.UUID
    member_id: uuid.UUID
    points: int
    breakdown: BreakdownOut
    campaigns: list[CampaignBonusOut]
    lots: list[LotSummaryOut]
    debt_repaid: int
    tier: str
    balance: int


class RedeemIn(WireStruct):
    """Points as tender (`points`) or points + cash (`purchaseAmountMinor`): exactly one."""

    member: MemberRefIn
    currency: Currency
    points: Points | None = None
    purchase_amount_minor: AmountMinor | None = None
    store_id: uuid.UUID | None = None
    reference: Reference | None = None


class RedemptionOut(WireStruct):
    transaction_id: uuid.UUID
    member_id: uuid.UUID
    points: int
    value_minor: int
    cash_minor: int
    currency: str
    balance: int


class HoldIn(WireStruct):
    member: MemberRefIn
    points: Points
    ttl_seconds: Annotated[int, Meta(ge=1, le=30 * 86400)] | None = None
    store_id: uuid.UUID | None = None
    reference: Reference | None = None


class HoldOut(WireStruct):
    hold_id: uuid.UUID
    member_id: uuid.UUID
    merchant_id: uuid.UUID
    points: int
    status: Literal["active", "captured", "voided", "expired"]
    created_at: datetime
    expires_at: datetime
    captured_points: int | None
    capture_transaction_id: uuid.UUID | None


class CaptureIn(WireStruct):
    points: Points | None = None
    reference: Reference | None = None


class EmptyIn(WireStruct):
    reference: Reference | None = None


class RefundIn(WireStruct):
    amount_minor: AmountMinor
    reference: Reference | None = None


class CorrectionOut(WireStruct):
    transaction_id: uuid.UUID
    member_id: uuid.UUID
    original_transaction_id: uuid.UUID
    points: int
    debt_created: int
    balance: int
    debt: int


class AdjustmentIn(WireStruct):
    points: Annotated[int, Meta(ge=-1_000_000_000, le=1_000_000_000)]
    reason: Reason


class BalanceOut(WireStruct):
    member_id: uuid.UUID
    total: int
    available: int
    pending: int
    held: int
    debt: int
    next_expiry_at: datetime | None
    next_expiry_points: int
    tier: str
    as_of: datetime


class HistoryEntryOut(WireStruct):
    transaction_id: uuid.UUID
    kind: str
    points: int
    merchant_id: uuid.UUID | None
    store_id: uuid.UUID | None
    occurred_at: datetime
    posted_at: datetime
    amount_minor: int | None
    currency: str | None
    original_transaction_id: uuid.UUID | None
    external_reference: str | None
    reason: str | None
    details: dict


class HistoryPage(WireStruct):
    items: list[HistoryEntryOut]
    total: int
    limit: int
    offset: int
    network_balance: BalanceOut


class LotOut(WireStruct):
    lot_id: uuid.UUID
    source: str
    issuing_merchant_id: uuid.UUID | None
    funder_merchant_id: uuid.UUID | None
    earned_at: datetime
    available_at: datetime
    expires_at: datetime
    original: int
    remaining: int
    reserved: int


class TierProgressOut(WireStruct):
    tier: str
    multiplier: str
    valid_until: datetime | None
    qualifying_points: int
    window_start: datetime
    reason: str
    next_tier: str | None
    next_tier_threshold: int | None
    points_to_next_tier: int | None
    keeps_tier_at_renewal: bool


class ExpiringOut(WireStruct):
    member_id: uuid.UUID
    points: int
    first_expiry_at: datetime


class TransferIn(WireStruct):
    from_member_id: uuid.UUID
    to_member_id: uuid.UUID
    points: Points
    reason: Reason


class TransferOut(WireStruct):
    outgoing_transaction_id: uuid.UUID
    incoming_transaction_id: uuid.UUID
    points: int
    sender_balance: int
    receiver_balance: int
