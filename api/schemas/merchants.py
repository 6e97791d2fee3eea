from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from msgspec import UNSET, Meta, UnsetType

from api.schemas.common import Currency, EarnRate, Name, PricePerPoint, ShortText, WireStruct

Industry = Literal[
    "grocery", "coffee", "fuel", "pharmacy", "cinema", "restaurant", "fashion", "travel",
    "electronics", "home", "beauty", "books", "other",
]  # fmt: skip
Timezone = Annotated[
    str,
    Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+\-/]+$", examples=["Europe/Paris"]),
]
StoreCode = Annotated[
    str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$", examples=["PAR-001"])
]


class MerchantCreate(WireStruct):
    name: Name
    industry: Industry
    currency: Currency
    earn_rate: EarnRate
    issuance_price: PricePerPoint
    redemption_rate: PricePerPoint
    pending_days: Annotated[
        int,
        Meta(
            ge=0,
            le=365,
            description=(
                "Points earned here become spendable this many days later (returns window)."
            ),
        ),
    ] = 0


class MerchantUpdate(WireStruct):
    """Only the fields present change. Terms apply to transactions posted afterwards."""

    name: Name | UnsetType = UNSET
    industry: Industry | UnsetType = UNSET
    currency: Currency | UnsetType = UNSET
    earn_rate: EarnRate | UnsetType = UNSET
    issuance_price: PricePerPoint | UnsetType = UNSET
    redemption_rate: PricePerPoint | UnsetType = UNSET
    pending_days: Annotated[int, Meta(ge=0, le=365)] | UnsetType = UNSET


class MerchantOut(WireStruct):
    merchant_id: uuid.UUID
    name: str
    industry: str
    status: Literal["active", "suspended"]
    currency: str
    earn_rate: Decimal
    issuance_price: Decimal
    redemption_rate: Decimal
    pending_days: int
    created_at: datetime
    updated_at: datetime


class MerchantPage(WireStruct):
    items: list[MerchantOut]
    total: int
    limit: int
    offset: int


class StoreCreate(WireStruct):
    code: StoreCode
    name: Name
    city: ShortText | None = None
    country: Annotated[str, Meta(pattern=r"^[A-Z]{2}$", examples=["FR"])] | None = None
    timezone: Timezone = "UTC"


class StoreUpdate(WireStruct):
    name: Name | UnsetType = UNSET
    city: ShortText | None | UnsetType = UNSET
    country: Annotated[str, Meta(pattern=r"^[A-Z]{2}$")] | None | UnsetType = UNSET
    timezone: Timezone | UnsetType = UNSET
    status: Literal["open", "closed"] | UnsetType = UNSET


class StoreOut(WireStruct):
    store_id: uuid.UUID
    merchant_id: uuid.UUID
    code: str
    name: str
    city: str | None
    country: str | None
    timezone: str
    status: Literal["open", "closed"]
    created_at: datetime
