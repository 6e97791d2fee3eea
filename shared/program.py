"""Program rules HQ configures: point value, expiry, holds, behaviour points, tiers.

Read from the environment as JSON (`COALITION_PROGRAM='{"minRedemptionPoints": 50}'`) or
one field at a time (`COALITION_PROGRAM__MIN_REDEMPTION_POINTS=50`). Every ledger function
takes the rules as an argument, so tests and jobs can run with other rules.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# ISO 4217 minor-unit exponents of the currencies the program may settle in.
CURRENCY_EXPONENTS = {
    "USD": 2, "EUR": 2, "GBP": 2, "CNY": 2, "CHF": 2, "CAD": 2, "AUD": 2, "JPY": 0,
    "KRW": 0, "INR": 2, "BRL": 2, "MXN": 2, "SGD": 2, "HKD": 2, "SEK": 2, "NOK": 2, "DKK": 2,
}  # fmt: skip


class Tier(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    threshold: int = Field(ge=0, description="Qualifying points in a rolling 12 months.")
    multiplier: Decimal = Field(
        ge=1, description="Applied to base points; the excess is HQ-funded."
    )


DEFAULT_TIERS = (
    Tier(name="basic", threshold=0, multiplier=Decimal("1")),
    Tier(name="silver", threshold=5_000, multiplier=Decimal("1.25")),
    Tier(name="gold", threshold=15_000, multiplier=Decimal("1.5")),
    Tier(name="platinum", threshold=40_000, multiplier=Decimal("1.75")),
    Tier(name="diamond", threshold=100_000, multiplier=Decimal("2")),
)


class ProgramRules(BaseModel):
    model_config = ConfigDict(frozen=True)

    currency: str = "USD"
    point_value_minor: Decimal = Field(
        default=Decimal("1"),
        gt=0,
        description="What one point pays for at a till, in minor units of `currency`.",
    )
    min_redemption_points: int = Field(default=100, ge=1)
    expiry_months: int = Field(default=12, ge=1, le=120)
    expiry_policy: Literal["fixed", "last_activity"] = "fixed"
    reversal_grace_days: int = Field(
        default=30,
        ge=0,
        description="Validity of lots that had expired when a redemption is reversed.",
    )
    hold_default_ttl_seconds: int = Field(default=900, ge=10)
    hold_max_ttl_seconds: int = Field(default=7 * 86400, ge=10)
    enrolment_bonus_points: int = Field(default=100, ge=0)
    profile_completion_bonus_points: int = Field(default=50, ge=0)
    referral_bonus_points: int = Field(default=200, ge=0)
    referral_share_percent: Decimal = Field(default=Decimal("10"), ge=0, le=100)
    referral_window_days: int = Field(default=90, ge=0)
    transfers_enabled: bool = False
    excluded_categories: tuple[str, ...] = ("tobacco", "gift_card", "lottery")
    tiers: tuple[Tier, ...] = DEFAULT_TIERS
    tier_validity_months: int = Field(default=12, ge=1)
    time_zone: str = Field(
        default="UTC", description="The programme's time zone: settlement periods follow it."
    )
    settlement_period: Literal["daily", "weekly", "monthly"] = "monthly"
    breakage_share_percent: Decimal = Field(
        default=Decimal("0"),
        ge=0,
        le=100,
        description=(
            "Share of the breakage on merchant-funded points that HQ gives back to the funding"
            " merchant, at its issuance price (0: HQ keeps all breakage)."
        ),
    )
    default_breakage_rate: Decimal = Field(
        default=Decimal("0.20"),
        ge=0,
        le=1,
        description="Breakage assumed before expiry history is credible (docs/settlement.md).",
    )
    breakage_full_credibility_points: int = Field(
        default=1_000_000,
        ge=1,
        description="Resolved points at which the observed breakage rate fully replaces the default.",
    )
    global_holdout_bps: int = Field(
        default=200,
        ge=0,
        le=10_000,
        description="Members (in basis points) kept out of every campaign, for good.",
    )

    @field_validator("tiers")
    @classmethod
    def _tiers_ascend_from_zero(cls, tiers: tuple[Tier, ...]) -> tuple[Tier, ...]:
        thresholds = [tier.threshold for tier in tiers]
        if not tiers or thresholds[0] != 0 or thresholds != sorted(set(thresholds)):
            raise ValueError("tiers start at threshold 0 and ascend strictly")
        return tiers

    @field_validator("time_zone")
    @classmethod
    def _known_time_zone(cls, name: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r}") from None
        return name

    @property
    def tier_names(self) -> list[str]:
        return [tier.name for tier in self.tiers]

    def tier(self, name: str) -> Tier:
        for tier in self.tiers:
            if tier.name == name:
                return tier
        return self.tiers[0]

    @property
    def base_tier(self) -> Tier:
        return self.tiers[0]
