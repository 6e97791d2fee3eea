"""Churn and lifecycle: inactivity-based lapse with a threshold of T days, the members in
each lifecycle state at the end of each complete period, the period churn rate, and the
gaps between consecutive active days (from which a default T is derived). Definitions:
docs/metrics.md.

Everything here comes from activity_spells: a member's timeline is cut into spells
(from_day, to_day] between consecutive anchors (its enrolment, then its active days).
Every member enrolled before a period's first day s has exactly one spell with
from_day < s <= to_day: it says when the member was last active before the period (from_day)
and when next (to_day, 'infinity' while inactive), which decides its state:

- to_day within the period: it came back in the period, after to_day - from_day days;
  more than T days means it had lapsed: *reactivated*, otherwise *active*;
- to_day after the period: inactive through the period, *lapsed* when the period's last
  day is T or more days after from_day, else *at risk*;
- members enrolled during the period are *new*, whatever they did.

So any threshold T is answered from the same small table.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Date, Integer, case, column, func, select, values

from shared.analytics.query import (
    Query,
    complete,
    next_period,
    period_start,
    periods,
    ratio,
)
from shared.analytics.retention import CohortGrain
from shared.analytics.segments import DEFAULT_LAPSE_DAYS
from shared.tables import (
    activity_enrolments,
    activity_member_days,
    activity_members,
    activity_spells,
)


@dataclass(frozen=True, slots=True)
class LifecyclePeriod:
    period_start: date
    new: int  # enrolled in the period
    active: int  # enrolled before, active in the period, not lapsed before it
    reactivated: int  # enrolled before, active in the period after a lapse
    at_risk: int  # enrolled before, inactive in the period, not (yet) lapsed
    lapsed: int  # enrolled before, inactive for T days or more at the period's end
    not_lapsed_at_start: int  # enrolled before the period and not lapsed at its start
    newly_lapsed: int  # of those, lapsed at the period's end

    @property
    def members(self) -> int:
        return self.new + self.active + self.reactivated + self.at_risk + self.lapsed

    @property
    def churn_rate(self) -> float | None:
        """Share of the members not lapsed at the period's start who lapsed during it."""
        return ratio(self.newly_lapsed, self.not_lapsed_at_start)


def states(
    grain: CohortGrain,
    start: date,
    end: date,
    as_of: date,
    lapse_days: int = DEFAULT_LAPSE_DAYS,
) -> Query[list[LifecyclePeriod]]:
    """Lifecycle counts and churn for the complete weeks or months overlapping
    [start, end); a period that has not ended by `as_of` is left out."""
    if lapse_days < 1:
        raise ValueError("the lapse threshold is at least one day")
    starts = [p for p in periods(start, end, grain) if complete(p, grain, as_of)]
    if not starts:
        return Query((), lambda: [])
    table = values(column("period_start", Date), column("period_end", Date), name="periods").data(
        [(p, next_period(p, grain)) for p in starts]
    )
    s = activity_spells.c
    first, after = table.c.period_start, table.c.period_end
    lapse_day = s.from_day + lapse_days  # the first day on which the member counts lapsed
    returned = s.to_day < after
    inactive = s.to_day >= after

    def members(*conditions) -> Any:
        return func.coalesce(func.sum(s.members).filter(*conditions), 0)

    spells = (
        select(
            first.label("period_start"),
            members(returned, s.to_day <= lapse_day).label("active"),
            members(returned, s.to_day > lapse_day).label("reactivated"),
            members(inactive, lapse_day >= after).label("at_risk"),
            members(inactive, lapse_day < after).label("lapsed"),
            members(lapse_day >= first).label("not_lapsed_at_start"),
            members(inactive, lapse_day < after, lapse_day >= first).label("newly_lapsed"),
        )
        .select_from(table.join(activity_spells, (s.from_day < first) & (s.to_day >= first)))
        .group_by(first)
    )
    e = activity_enrolments.c
    new = (
        select(first.label("period_start"), func.sum(e.members).label("new"))
        .select_from(table.join(activity_enrolments, (e.day >= first) & (e.day < after)))
        .group_by(first)
    )

    def shape(spell_rows: Sequence[Any], new_rows: Sequence[Any]) -> list[LifecyclePeriod]:
        by_period = {row.period_start: row for row in spell_rows}
        new_by_period = {row.period_start: int(row.new) for row in new_rows}
        result = []
        for period in starts:
            row = by_period.get(period)
            counts = {
                name: int(getattr(row, name)) if row else 0
                for name in (
                    "active", "reactivated", "at_risk", "lapsed", "not_lapsed_at_start",
                    "newly_lapsed",
                )
            }  # fmt: skip
            result.append(LifecyclePeriod(period, new_by_period.get(period, 0), **counts))
        return result

    return Query((spells, new), shape)


@dataclass(frozen=True, slots=True)
class MemberState:
    member_id: uuid.UUID
    state: str  # new | active | reactivated | at_risk | lapsed
    last_active_day: date | None  # on or before the period's last day


STATES = ("new", "active", "reactivated", "at_risk", "lapsed")


def member_states(
    grain: CohortGrain,
    period: date,
    as_of: date,
    lapse_days: int = DEFAULT_LAPSE_DAYS,
    *,
    states: tuple[str, ...] = STATES,
    limit: int | None = None,
) -> Query[list[MemberState]]:
    """Each member's state at the end of one complete week or month (the rules of
    `states`, member by member), optionally only some states: lists for campaigns.

    Reads the summary rows, and a member's days only when it was active on or after the
    period's first day (index lookups). At a million members: 0.2 s for 10,000 lapsed
    members, 10 s for everyone's state (an export, not a page)."""
    if not complete(period_start(period, grain), grain, as_of):
        raise ValueError("the period has not ended")
    first = period_start(period, grain)
    after = next_period(first, grain)
    m, d = activity_members.c, activity_member_days.c
    active = (d.purchases > 0) | (d.redemptions > 0)

    def day_of(aggregate, *window) -> Any:
        return (
            select(aggregate(d.day))
            .where(d.member_id == m.member_id, active, *window)
            .scalar_subquery()
        )

    recent = m.last_active_day >= first  # only then do its days matter
    previous = func.coalesce(
        case((recent, day_of(func.max, d.day < first)), else_=m.last_active_day),
        m.enrolled_day,
    )
    came_back = case((recent, day_of(func.min, d.day >= first, d.day < after)))
    last_active = case((recent, day_of(func.max, d.day < after)), else_=m.last_active_day)
    lapse_day = previous + lapse_days
    state = case(
        (m.enrolled_day >= first, "new"),
        (came_back.is_(None), case((lapse_day < after, "lapsed"), else_="at_risk")),
        (came_back > lapse_day, "reactivated"),
        else_="active",
    ).label("state")
    inner = (
        select(m.member_id, state, last_active.label("last_active_day"))
        .where(m.enrolled_day < after)
        .subquery()
    )
    statement = (
        select(inner).where(inner.c.state.in_(states)).order_by(inner.c.member_id).limit(limit)
    )
    return Query(
        (statement,),
        lambda rows: [MemberState(r.member_id, r.state, r.last_active_day) for r in rows],
    )


@dataclass(frozen=True, slots=True)
class GapHistogram:
    """Days between consecutive active days of the same member, over every member."""

    counts: tuple[tuple[int, int], ...]  # (gap in days, gaps), gap ascending

    @property
    def gaps(self) -> int:
        return sum(n for _, n in self.counts)


def active_day_gaps(start: date | None = None, end: date | None = None) -> Query[GapHistogram]:
    """Inter-purchase gaps (between active days) that ended in [start, end)."""
    s = activity_spells.c
    gap = (s.to_day - s.from_day).cast(Integer).label("gap")
    conditions = [~s.from_enrolment, s.to_day < date.max]
    if start is not None:
        conditions.append(s.to_day >= start)
    if end is not None:
        conditions.append(s.to_day < end)
    statement = (
        select(gap, func.sum(s.members).label("gaps"))
        .where(*conditions)
        .group_by(gap)
        .order_by(gap)
    )
    return Query(
        (statement,),
        lambda rows: GapHistogram(tuple((int(row.gap), int(row.gaps)) for row in rows)),
    )
