"""What every analytics query shares: a statement plus a pure function that shapes its
rows, runnable on the dashboard's sync connection and the API's async one; periods and
the filters the dashboard offers.

A metric function returns a `Query`; `run(connection, query)` or
`await run_async(connection, query)` executes it. The statements are SQLAlchemy Core, so
both drivers (psycopg, asyncpg) get the same SQL; the shapers are plain functions of rows,
tested without a database.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Generic, Literal, TypeVar

from sqlalchemy import Connection, Date, Executable, cast, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from shared.merchants import NETWORK
from shared.tables import activity_refresh

T = TypeVar("T")
Grain = Literal["day", "week", "month"]
GRAINS: tuple[Grain, ...] = ("day", "week", "month")

__all__ = ["NETWORK", "MetricScope", "Grain", "Query", "run", "run_async"]


@dataclass(frozen=True, slots=True)
class Query(Generic[T]):
    """Statements to run in order and the function that turns their rows into T."""

    statements: tuple[Executable, ...]
    shape: Callable[..., T]  # one sequence of rows per statement


def run(connection: Connection, query: Query[T]) -> T:
    return query.shape(*(connection.execute(statement).all() for statement in query.statements))


async def run_async(connection: AsyncConnection, query: Query[T]) -> T:
    results = [(await connection.execute(statement)).all() for statement in query.statements]
    return query.shape(*results)


@dataclass(frozen=True, slots=True)
class MetricScope:
    """What a metric query reads: local days in the programme's time zone, `end` exclusive,
    None unbounded; merchants and tiers, empty meaning all. A period-based metric covers
    every period that overlaps [start, end). The dashboard's selection
    (shared/analytics/filters.Filters) turns into one with `Filters.scope()`."""

    start: date | None = None
    end: date | None = None
    merchant_ids: tuple[uuid.UUID, ...] = field(default=())
    tiers: tuple[str, ...] = field(default=())


# --- periods ------------------------------------------------------------------------------


def period_start(day: date, grain: Grain) -> date:
    if grain == "day":
        return day
    if grain == "week":  # weeks start on Monday, like PostgreSQL's date_trunc('week')
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def next_period(start: date, grain: Grain) -> date:
    if grain == "day":
        return start + timedelta(days=1)
    if grain == "week":
        return start + timedelta(days=7)
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def periods(start: date, end: date, grain: Grain) -> list[date]:
    """The starts of the periods that overlap [start, end)."""
    starts, current = [], period_start(start, grain)
    while current < end:
        starts.append(current)
        current = next_period(current, grain)
    return starts


def offset(cohort: date, period: date, grain: Grain) -> int:
    """How many periods after its cohort's period a period is."""
    if grain == "month":
        return (period.year - cohort.year) * 12 + period.month - cohort.month
    return (period - cohort).days // (7 if grain == "week" else 1)


def complete(start: date, grain: Grain, as_of: date) -> bool:
    """A period is complete when it ended on or before `as_of` (the first day whose data
    may still be incomplete, `data_as_of`)."""
    return next_period(start, grain) <= as_of


def truncate(grain: Grain, day: ColumnElement) -> ColumnElement:
    """SQL: the period a day falls in. The grain is rendered inline so that GROUP BY
    matches the selected expression."""
    if grain == "day":
        return day
    if grain not in GRAINS:
        raise ValueError(f"unknown grain {grain!r}")
    return cast(func.date_trunc(literal_column(f"'{grain}'"), day), Date)


def date_range(column: ColumnElement, filters: MetricScope, grain: Grain) -> list[ColumnElement]:
    """Conditions on a day or period-start column for the periods overlapping the filter."""
    conditions = []
    if filters.start is not None:
        conditions.append(column >= period_start(filters.start, grain))
    if filters.end is not None:
        conditions.append(column < filters.end)
    return conditions


def data_as_of() -> Query[date | None]:
    """The first local day whose data may be incomplete: the rollups hold every
    transaction posted before the watermark. None before the first refresh."""
    statement = select(
        cast(
            func.timezone(activity_refresh.c.time_zone, activity_refresh.c.watermark),
            Date,
        )
    )

    def shape(rows: Sequence[Any]) -> date | None:
        return rows[0][0] if rows else None

    return Query((statement,), shape)


def ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None
