"""Settlement periods: calendar days, ISO weeks (from Monday) or calendar months in the
programme's time zone, as half-open UTC intervals [start, end)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta

Length = Literal["daily", "weekly", "monthly"]


def period_start(moment: datetime, length: Length, time_zone: str) -> datetime:
    """The start (UTC) of the period that contains `moment`."""
    local = moment.astimezone(ZoneInfo(time_zone))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if length == "weekly":
        midnight -= timedelta(days=midnight.weekday())
    elif length == "monthly":
        midnight = midnight.replace(day=1)
    # Re-attach the zone: a local midnight after a DST change has another offset.
    return _local_midnight(midnight, time_zone)


def next_period_start(start: datetime, length: Length, time_zone: str) -> datetime:
    local = start.astimezone(ZoneInfo(time_zone)).replace(tzinfo=None)
    step = {
        "daily": relativedelta(days=1),
        "weekly": relativedelta(weeks=1),
        "monthly": relativedelta(months=1),
    }[length]
    return _local_midnight(local + step, time_zone)


def _local_midnight(local: datetime, time_zone: str) -> datetime:
    naive = local.replace(tzinfo=None)
    return naive.replace(tzinfo=ZoneInfo(time_zone)).astimezone(UTC)


def label(start: datetime, length: Length, time_zone: str) -> str:
    """How people name a period: 2026-11-23, 2026-W48, 2026-11."""
    local = start.astimezone(ZoneInfo(time_zone))
    if length == "daily":
        return local.strftime("%Y-%m-%d")
    if length == "weekly":
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    return local.strftime("%Y-%m")
