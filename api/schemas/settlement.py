from __future__ import annotations

import uuid
from datetime import date, datetime
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
    issuance_spread_minor: int
    net_cash_minor: int
    breakage_revenue_minor: int
    network_funded_points: dict[str, int]
    network_funded_cost_minor: int
    expired_points: dict[str, int]


class CohortOut(WireStruct):
    month: date
    issued: int
    redeemed: int
    expired: int
    outstanding: int
    resolved: bool


class BreakageOut(WireStruct):
    rate: Decimal
    default_rate: Decimal
    observed_rate: Decimal | None
    credibility: Decimal
    full_credibility_points: int
    resolved_points: int
    resolved_breakage_points: int
    expected_breakage_points: Decimal


class RollForwardLineOut(WireStruct):
    month: date
    opening_points: int
    issued_points: int
    redeemed_points: int
    expired_points: int
    other_points: int
    closing_points: int
    opening_rate: Decimal
    closing_rate: Decimal
    opening_minor: int
    issued_minor: int
    redeemed_minor: int
    expired_minor: int
    other_minor: int
    change_in_estimate_minor: int
    closing_minor: int


class LiabilityOut(WireStruct):
    """Outstanding points, their value net of expected breakage, and an IFRS 15 style
    roll-forward: opening + issued - redeemed - expired + other + change in estimate =
    closing, in points and in minor units."""

    as_of: datetime
    currency: str
    point_value_minor: Decimal
    outstanding_points: int
    gross_value_minor: int
    breakage_rate: Decimal
    liability_minor: int
    expected_breakage_points: Decimal
    expected_breakage_minor: int
    method: str
    breakage: BreakageOut
    cohorts: list[CohortOut]
    roll_forward: list[RollForwardLineOut]
