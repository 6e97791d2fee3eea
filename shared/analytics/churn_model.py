"""The churn model behind the dashboard: BG/NBD fitted to every member's purchase history,
stored with its summary, and applied to the at-risk list.

`fit_and_store` (run by `coalition jobs models`, nightly in the worker) reads the member
summaries the rollups keep (first and last purchase day, purchases), fits BG/NBD
(shared/analytics/bgnbd.py; identical histories grouped, so a million members are a few
hundred thousand rows), and stores the parameters, the expected active base (the sum of
P(alive)) and the P(alive) distribution. Pages read `latest_fit`; the at-risk list scores
only the high-balance members it lists. Definitions: docs/metrics.md.

Histories are at day resolution in the programme's time zone: a purchase sits at the start
of its local day, `as_of` (the rollups' first incomplete day) is the exclusive end, and
every purchase counts (x = purchases - 1), as the model and the seed count them.
"""

from __future__ import annotations

import csv
import io
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import date, datetime

import numpy as np
from sqlalchemy import Connection, insert, select

from shared.analytics import members as member_queries
from shared.analytics.bgnbd import (
    BgNbdParameters,
    Histories,
    fit_bgnbd,
    group_identical,
    histories_from_purchases,
    probability_alive,
)
from shared.analytics.filters import Filters
from shared.analytics.query import data_as_of, run
from shared.tables import churn_model_fits

SECONDS_PER_DAY = 86_400
P_ALIVE_BINS = tuple(round(0.1 * edge, 1) for edge in range(1, 11))


@dataclass(frozen=True, slots=True)
class ModelFit:
    fitted_at: datetime
    as_of: date
    parameters: BgNbdParameters  # alpha per week
    log_likelihood: float
    converged: bool
    members: int  # members with at least one purchase (all of them fitted)
    expected_active: float  # sum of P(alive)
    p_alive_bins: tuple[float, ...]  # upper edges of the bins: 0.1, 0.2, ..., 1.0
    p_alive_counts: tuple[int, ...]  # members per bin
    seconds: float


def histories(
    first_purchase_day: np.ndarray,
    last_purchase_day: np.ndarray,
    purchases: np.ndarray,
    as_of: date,
) -> Histories:
    """(x, t_x, T) in weeks from local purchase days (datetime64[D] arrays)."""

    def seconds(days) -> np.ndarray:
        return np.asarray(days, dtype="datetime64[D]").astype(np.int64) * SECONDS_PER_DAY

    return histories_from_purchases(
        seconds(first_purchase_day),
        seconds(last_purchase_day),
        purchases,
        seconds(np.datetime64(as_of, "D")),
    )


def p_alive_distribution(p_alive: np.ndarray) -> tuple[int, ...]:
    """Members per bin (0, 0.1], (0.1, 0.2], ..., (0.9, 1.0]; P(alive) = 0 joins the first."""
    bins = np.clip(np.ceil(np.asarray(p_alive) * 10).astype(np.int64) - 1, 0, 9)
    return tuple(int(count) for count in np.bincount(bins, minlength=10))


def fit_and_store(
    connection: Connection, *, as_of: date | None = None, force: bool = False
) -> ModelFit | None:
    """Fit on the rollups' current state and store the result, once per day of data (a
    fit for the same as-of day exists: nothing to do unless `force`). `as_of` ends the
    observation (default: the rollups' first incomplete day; a network seeded up to a
    past date is observed up to that date). None: nothing new, no purchase yet, or no
    member with a repeat purchase, which the model needs."""
    started = time.perf_counter()
    as_of = as_of or run(connection, data_as_of())
    if as_of is None:
        return None
    latest = latest_fit(connection)
    if latest is not None and latest.as_of >= as_of and not force:
        return None
    summaries = run(connection, member_queries.summaries(as_of))
    bought = ~np.isnat(summaries.first_purchase_day)
    if not bought.any() or not (summaries.purchases[bought] > 1).any():
        return None
    every = histories(
        summaries.first_purchase_day[bought],
        summaries.last_purchase_day[bought],
        summaries.purchases[bought],
        as_of,
    )
    grouped = group_identical(every)
    fit = fit_bgnbd(grouped.frequency, grouped.recency, grouped.age, grouped.members)
    p_alive = probability_alive(fit.parameters, every.frequency, every.recency, every.age)
    result = ModelFit(
        fitted_at=datetime.now().astimezone(),
        as_of=as_of,
        parameters=fit.parameters,
        log_likelihood=fit.log_likelihood,
        converged=fit.converged,
        members=int(bought.sum()),
        expected_active=float(p_alive.sum()),
        p_alive_bins=P_ALIVE_BINS,
        p_alive_counts=p_alive_distribution(p_alive),
        seconds=time.perf_counter() - started,
    )
    values = asdict(result)
    parameters = values.pop("parameters")
    connection.execute(insert(churn_model_fits).values(fit_id=uuid.uuid4(), **values, **parameters))
    return result


def latest_fit(connection: Connection) -> ModelFit | None:
    row = connection.execute(
        select(churn_model_fits).order_by(churn_model_fits.c.fitted_at.desc()).limit(1)
    ).one_or_none()
    if row is None:
        return None
    return ModelFit(
        fitted_at=row.fitted_at,
        as_of=row.as_of,
        parameters=BgNbdParameters(row.r, row.alpha, row.a, row.b),
        log_likelihood=row.log_likelihood,
        converged=row.converged,
        members=row.members,
        expected_active=row.expected_active,
        p_alive_bins=tuple(row.p_alive_bins),
        p_alive_counts=tuple(row.p_alive_counts),
        seconds=row.seconds,
    )


@dataclass(frozen=True, slots=True)
class AtRiskMember:
    member_id: uuid.UUID
    tier: str
    balance: int
    last_purchase_day: date | None
    purchases: int
    net_spend_minor: int
    p_alive: float


# How many of the highest balances are scored: the list is for a campaign's target list,
# and scoring stays a fraction of a second on any network.
SCORED_BALANCES = 50_000


def at_risk(
    connection: Connection,
    fit: ModelFit,
    *,
    min_balance: int,
    max_p_alive: float,
    limit: int,
    filters: Filters | None = None,
) -> list[AtRiskMember]:
    """Members holding at least `min_balance` points whose P(alive) at the fit's as-of day
    is at most `max_p_alive`, highest balance first. The merchant filter selects members
    by acquiring merchant; the tier filter by current tier."""
    candidates = run(
        connection,
        member_queries.at_risk(
            fit.as_of,
            min_balance=min_balance,
            limit=SCORED_BALANCES,
            acquiring_merchant_ids=filters.merchant_ids if filters else (),
            tiers=filters.tiers if filters else (),
        ),
    )
    bought = [m for m in candidates if m.first_purchase_day is not None]
    if not bought:
        return []
    scored = histories(
        np.array([m.first_purchase_day for m in bought], dtype="datetime64[D]"),
        np.array([m.last_purchase_day for m in bought], dtype="datetime64[D]"),
        np.array([m.purchases for m in bought], dtype=np.int64),
        fit.as_of,
    )
    p_alive = probability_alive(fit.parameters, scored.frequency, scored.recency, scored.age)
    listed = [
        AtRiskMember(
            member_id=member.member_id,
            tier=member.tier,
            balance=int(member.balance),
            last_purchase_day=member.last_purchase_day,
            purchases=int(member.purchases),
            net_spend_minor=int(member.net_spend_minor),
            p_alive=float(p),
        )
        for member, p in zip(bought, p_alive, strict=True)
        if p <= max_p_alive
    ]
    return listed[:limit]


def at_risk_csv(members: list[AtRiskMember]) -> str:
    """The win-back list: one row per member, the ids ready for a listed campaign
    (POST /v1/campaigns/{id}/targets)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        ["member_id", "tier", "balance_points", "last_purchase_day", "purchases",
         "net_spend_minor", "p_alive"]
    )  # fmt: skip
    for member in members:
        writer.writerow(
            [member.member_id, member.tier, member.balance, member.last_purchase_day or "",
             member.purchases, member.net_spend_minor, f"{member.p_alive:.4f}"]
        )  # fmt: skip
    return out.getvalue()
