"""Per-member summaries: the inputs of the BG/NBD, RFM and P(alive) models
(shared/analytics/bgnbd.py, segments.py), and the at-risk list for win-back campaigns
(high balance; the caller keeps the members whose P(alive) is low) with its CSV export.
Definitions: docs/metrics.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import date
from typing import Any

import numpy as np
from sqlalchemy import Integer, func, literal, select

from shared.analytics.query import Query
from shared.tables import activity_members, member_balances


@dataclass(frozen=True, slots=True)
class MemberSummaries:
    """One entry per member, as columns (NaT / 0 where a member never purchased).

    Days are local days; BG/NBD's inputs for a member with at least one purchase are
    x = purchases - 1, t_x = last - first purchase day, T = as_of - first purchase day.
    (The balance is on the at-risk list: joining it here would double the query's cost.)
    """

    member_id: np.ndarray  # the ids' 16 bytes (dtype V16): uuids() makes UUIDs of them
    enrolled_day: np.ndarray  # datetime64[D]
    first_purchase_day: np.ndarray  # datetime64[D], NaT: no purchase
    last_purchase_day: np.ndarray
    purchase_days: np.ndarray  # int64: distinct days with a purchase
    purchases: np.ndarray
    net_spend_minor: np.ndarray  # purchase amounts less refunds
    points_earned_net: np.ndarray
    points_redeemed_net: np.ndarray

    def __len__(self) -> int:
        return len(self.member_id)

    def uuids(self) -> list[uuid.UUID]:
        """The member ids as UUIDs (about a second per million: only when needed)."""
        return [uuid.UUID(bytes=bytes(raw)) for raw in self.member_id]


def enrolled_member_conditions(
    acquiring_merchant_ids: tuple[uuid.UUID, ...], tiers: tuple[str, ...], enrolled_before: date
) -> list:
    """Members enrolled before `enrolled_before`, acquired by one of the merchants and in
    one of the tiers (no merchants or tiers: any)."""
    m = activity_members.c
    conditions = [m.enrolled_day < enrolled_before]
    if acquiring_merchant_ids:
        conditions.append(m.acquiring_merchant_id.in_(acquiring_merchant_ids))
    if tiers:
        conditions.append(m.tier.in_(tiers))
    return conditions


_EPOCH = date(1970, 1, 1)
_NAT = np.iinfo(np.int64).min  # numpy's NaT as an integer


def _packed(value) -> Any:
    """A whole column as one bytea of big-endian int64s (string_agg skips NULLs, so a NULL
    becomes NaT's integer): a million values cross the wire and reach numpy without a
    Python object each."""
    return func.string_agg(func.int8send(func.coalesce(value, _NAT)), literal(b""))


def summaries(
    as_of: date,
    *,
    acquiring_merchant_ids: tuple[uuid.UUID, ...] = (),
    tiers: tuple[str, ...] = (),
) -> Query[MemberSummaries]:
    """Every member enrolled before `as_of`, in the rollups' latest state."""
    m = activity_members.c
    days = {
        "enrolled_day": m.enrolled_day,
        "first_purchase_day": m.first_purchase_day,
        "last_purchase_day": m.last_purchase_day,
    }
    numbers = {
        "purchase_days": m.purchase_days,
        "purchases": m.purchases,
        "net_spend_minor": m.spend_minor - m.refunded_minor,
        "points_earned_net": m.points_earned - m.points_clawed_back,
        "points_redeemed_net": m.points_redeemed - m.points_reversed,
    }
    statement = select(
        func.string_agg(func.uuid_send(m.member_id), literal(b"")).label("member_id"),
        *(_packed(day - _EPOCH).label(name) for name, day in days.items()),
        *(_packed(value).label(name) for name, value in numbers.items()),
    ).where(*enrolled_member_conditions(acquiring_merchant_ids, tiers, as_of))
    return Query((statement,), shape_summaries)


def shape_summaries(rows: Sequence[Any]) -> MemberSummaries:
    columns = rows[0]._mapping
    arrays = {"member_id": np.frombuffer(bytes(columns["member_id"] or b""), dtype="V16")}
    for field in fields(MemberSummaries)[1:]:
        values = np.frombuffer(bytes(columns[field.name] or b""), dtype=">i8").astype(np.int64)
        arrays[field.name] = (
            values.astype("datetime64[D]") if field.name.endswith("_day") else values
        )
    return MemberSummaries(**arrays)


@dataclass(frozen=True, slots=True)
class AtRiskCandidate:
    """A member the at-risk query found (balance and inactivity), before the churn model
    scores them (shared/analytics/churn_model.at_risk)."""

    member_id: uuid.UUID
    tier: str
    balance: int
    last_active_day: date | None
    days_inactive: int | None  # days from the last active day to as_of
    first_purchase_day: date | None
    last_purchase_day: date | None
    purchase_days: int
    purchases: int
    net_spend_minor: int


def at_risk(
    as_of: date,
    *,
    min_balance: int,
    min_days_inactive: int = 0,
    limit: int = 10_000,
    acquiring_merchant_ids: tuple[uuid.UUID, ...] = (),
    tiers: tuple[str, ...] = (),
) -> Query[list[AtRiskCandidate]]:
    """Members holding at least `min_balance` points and inactive for at least
    `min_days_inactive` days at `as_of`, highest balance first, at most `limit`. Apply the
    P(alive) model to the result (shared/analytics/churn_model.py does, and exports it)."""
    m, b = activity_members.c, member_balances.c
    days_inactive = (as_of - func.coalesce(m.last_active_day, m.enrolled_day)).cast(Integer)
    statement = (
        select(
            m.member_id,
            m.tier,
            b.balance,
            m.last_active_day,
            days_inactive.label("days_inactive"),
            m.first_purchase_day,
            m.last_purchase_day,
            m.purchase_days,
            m.purchases,
            (m.spend_minor - m.refunded_minor).label("net_spend_minor"),
        )
        .select_from(member_balances.join(activity_members, m.member_id == b.member_id))
        .where(
            b.balance >= min_balance,
            days_inactive >= min_days_inactive,
            *enrolled_member_conditions(acquiring_merchant_ids, tiers, as_of),
        )
        .order_by(b.balance.desc(), m.member_id)
        .limit(limit)
    )
    return Query(
        (statement,),
        lambda rows: [
            AtRiskCandidate(**{k: row._mapping[k] for k in row._mapping}) for row in rows
        ],
    )


@dataclass(frozen=True, slots=True)
class RecencyFrequency:
    """Members with a purchase, counted per (days since the last purchase day at `as_of`,
    distinct purchase days): the RFM segments' inputs, grouped (segments.segment_sizes),
    so a million members are a few thousand rows."""

    recency_days: np.ndarray  # int64
    purchase_days: np.ndarray  # int64
    members: np.ndarray  # int64


def recency_frequency(
    as_of: date,
    *,
    acquiring_merchant_ids: tuple[uuid.UUID, ...] = (),
    tiers: tuple[str, ...] = (),
) -> Query[RecencyFrequency]:
    """Every member enrolled before `as_of` with a purchase, in the rollups' latest state."""
    m = activity_members.c
    recency = (as_of - m.last_purchase_day).cast(Integer).label("recency")
    statement = (
        select(recency, m.purchase_days, func.count().label("members"))
        .where(
            m.last_purchase_day.is_not(None),
            *enrolled_member_conditions(acquiring_merchant_ids, tiers, as_of),
        )
        .group_by(recency, m.purchase_days)
    )

    def shape(rows: Sequence[Any]) -> RecencyFrequency:
        columns = np.array([tuple(row) for row in rows], dtype=np.int64).reshape(-1, 3)
        return RecencyFrequency(columns[:, 0], columns[:, 1], columns[:, 2])

    return Query((statement,), shape)


def balance_quantile(quantile: float) -> Query[int]:
    """The balance that this share of members do not exceed (every member; 0 for none)."""
    statement = select(func.percentile_disc(quantile).within_group(member_balances.c.balance))
    return Query((statement,), lambda rows: int(rows[0][0] or 0))
