from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta

from api.schemas.common import ShortText, WireStruct


class MerchantKeyCreate(WireStruct):
    label: ShortText = "default"


class HqKeyCreate(WireStruct):
    role: Literal["hq_admin", "hq_analyst"]
    label: ShortText = "default"


class KeyRotate(WireStruct):
    grace_seconds: Annotated[
        int,
        Meta(
            ge=0,
            le=30 * 86400,
            description=(
                "How long the old key keeps working, so tills can switch over (max 30 days)."
            ),
        ),
    ] = 0


class ApiKeyOut(WireStruct):
    key_id: uuid.UUID
    prefix: str
    role: str
    merchant_id: uuid.UUID | None
    label: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


class IssuedApiKeyOut(WireStruct):
    """The secret appears here once and is never retrievable again."""

    key: ApiKeyOut
    secret: Annotated[str, Meta(examples=["coal_abcdefghijkl_" + "x" * 43])]
