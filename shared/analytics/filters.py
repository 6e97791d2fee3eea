"""What HQ is looking at: the dashboard's global filters, passed to every metric query.

Days are calendar days in the programme's time zone (the one settlement periods follow),
both ends included; a query reads the half-open instant range [starts_at, ends_at).
Empty merchant or tier selections mean every merchant, every tier. Tiers select members
by the tier they hold now.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select

from shared.analytics.query import MetricScope
from shared.tables import merchants


@dataclass(frozen=True, slots=True)
class Filters:
    first_day: date
    last_day: date
    time_zone: str = "UTC"
    merchant_ids: tuple[uuid.UUID, ...] = ()  # empty: every merchant
    tiers: tuple[str, ...] = ()  # empty: every tier

    def __post_init__(self) -> None:
        if self.last_day < self.first_day:
            raise ValueError("the last day comes before the first")

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1

    @property
    def starts_at(self) -> datetime:
        return datetime.combine(self.first_day, time(), ZoneInfo(self.time_zone))

    @property
    def ends_at(self) -> datetime:
        """The first instant after the last day (exclusive end)."""
        return datetime.combine(self.last_day + timedelta(days=1), time(), ZoneInfo(self.time_zone))

    def previous(self) -> Filters:
        """The same number of days just before, everything else unchanged: what the
        dashboard's deltas compare with."""
        return replace(
            self,
            first_day=self.first_day - timedelta(days=self.days),
            last_day=self.first_day - timedelta(days=1),
        )

    def scope(self) -> MetricScope:
        """The half-open window and selection the analytics queries read."""
        return MetricScope(
            start=self.first_day,
            end=self.last_day + timedelta(days=1),
            merchant_ids=self.merchant_ids,
            tiers=self.tiers,
        )

    def covers_merchants(self, merchant_ids: tuple[uuid.UUID, ...] | list[uuid.UUID]) -> bool:
        """Whether something that concerns these merchants (none: every merchant, as for a
        network-wide campaign) is in the selection."""
        if not self.merchant_ids or not merchant_ids:
            return True
        return bool(set(self.merchant_ids) & set(merchant_ids))

    def covers_tiers(self, tiers: tuple[str, ...] | list[str]) -> bool:
        if not self.tiers or not tiers:
            return True
        return bool(set(self.tiers) & set(tiers))


@dataclass(frozen=True, slots=True)
class MerchantOption:
    merchant_id: uuid.UUID
    name: str
    status: str


def merchant_options(connection: Connection) -> list[MerchantOption]:
    """Every merchant, by name: what the merchants filter offers and how ids are named."""
    rows = connection.execute(
        select(merchants.c.merchant_id, merchants.c.name, merchants.c.status).order_by(
            merchants.c.name, merchants.c.merchant_id
        )
    )
    return [MerchantOption(row.merchant_id, row.name, row.status) for row in rows]
