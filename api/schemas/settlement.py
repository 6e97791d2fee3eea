from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Literal

from api.schemas.common import WireStruct


class PeriodOut(WireStruct):
    period_id: uuid.UUID
    label: str
    starts_at: datetime
    ends_at: datetime
    closed_at: datetime
    transactions: int


class StatementLineOut(WireStruct):
    line: Literal[
        "points_issued", "campaign_points", "refund_clawbacks", "points_redeemed",
        "redemption_reversals", "breakage_share",
    ]  # fmt: skip
    points: int
    rate: Decimal
    amount_minor: int
    corrects: dict[str, int]


class StatementOut(WireStruct):
    """Positive amounts are owed by the merchant to HQ, negative ones by HQ to the merchant."""

    statement_id: uuid.UUID
    period: PeriodOut
    merchant_id: uuid.UUID
    merchant_name: str
    currency: str
    net_minor: int
    direction: Literal["merchant_pays", "hq_pays", "nothing_due"]
    issuance_price: Decimal
    redemption_rate: Decimal
    lines: list[StatementLineOut]


class ClearingCellOut(WireStruct):
    issuing_merchant_id: uuid.UUID | None
    redeeming_merchant_id: uuid.UUID
    points: int
    amount_minor: int


class ClearingOut(WireStruct):
    period_id: uuid.UUID
    cells: list[ClearingCellOut]


class NetworkOut(WireStruct):
    period: PeriodOut
    currency: str
    issuance_fees_minor: int
    redemption_payments_minor: int
    breakage_shared_minor: int
    net_cash_minor: int
    breakage_revenue_minor: int
    network_funded_points: dict[str, int]
    network_funded_cost_minor: int
    expired_points: dict[str, int]
