"""Stored reports: what takes seconds to compute is computed by a job and read in one row.

A snapshot is a report (a frozen dataclass such as a campaign's results or the points
liability) encoded as JSON with msgspec, under (report, subject), with when it was
computed and up to when its data go. Jobs `store` them; pages read them with `latest` and
say when the figures were computed.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar

import msgspec
from sqlalchemy import Connection, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.tables import report_snapshots

T = TypeVar("T")


def encode(report: object) -> dict:
    return msgspec.to_builtins(report)


def decode(body: dict, kind: type[T]) -> T:
    return msgspec.convert(body, kind, strict=False)


async def store(
    connection: AsyncConnection,
    report: str,
    subject: str,
    value: object,
    *,
    covers_until: datetime,
    seconds: float,
) -> None:
    values = {
        "computed_at": func.now(),
        "covers_until": covers_until,
        "body": encode(value),
        "seconds": seconds,
    }
    await connection.execute(
        insert(report_snapshots)
        .values(report=report, subject=subject, **values)
        .on_conflict_do_update(index_elements=["report", "subject"], set_=values)
    )


def latest(
    connection: Connection, report: str, subject: str, kind: type[T]
) -> tuple[T, datetime] | None:
    """The stored report and when it was computed; None before the first one."""
    row = connection.execute(
        select(report_snapshots.c.body, report_snapshots.c.computed_at).where(
            report_snapshots.c.report == report, report_snapshots.c.subject == subject
        )
    ).one_or_none()
    return None if row is None else (decode(row.body, kind), row.computed_at)
