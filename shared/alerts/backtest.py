"""Backtest: when a rule would have fired and resolved over the last N days.

The rule's value is computed at every tick of the period in one metric query
(shared/alerts/metrics.py), then the state machine is replayed per scope key from normal
(shared/alerts/rules.py), exactly as `coalition jobs alerts` would have run it. Ticks are
the rule's own evaluation period, but at least an hour (a 90-day backtest of a 5-minute
rule would otherwise replay 26,000 ticks); for such a rule pending periods stretch
accordingly, which the result says (`step`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, func, select

from shared.alerts.definitions import Rule, get_rule
from shared.alerts.evaluation import scope_labels
from shared.alerts.metrics import measure
from shared.alerts.rules import ReplayedTick, State, replay, tick_of
from shared.errors import InvalidInput

MIN_STEP = timedelta(hours=1)
MAX_DAYS = 400


@dataclass(frozen=True, slots=True)
class Episode:
    """One firing: from the tick it fired to the tick it resolved (None: still firing at
    the end), with the most extreme value seen meanwhile."""

    scope_key: str
    scope_label: str
    fired_at: datetime
    resolved_at: datetime | None
    worst_value: float | None


@dataclass(frozen=True, slots=True)
class ScopeSeries:
    scope_key: str
    scope_label: str
    points: list[ReplayedTick]


@dataclass(frozen=True, slots=True)
class Backtest:
    rule_id: uuid.UUID | None
    start: datetime
    end: datetime
    step: timedelta
    series: list[ScopeSeries]
    episodes: list[Episode]


def backtest_ticks(end: datetime, days: int, step: timedelta) -> list[datetime]:
    last = tick_of(end, step)
    count = int(timedelta(days=days) / step)
    return [last - step * k for k in range(count - 1, -1, -1)]


def _episodes(
    scope_key: str, label: str, replayed: Sequence[ReplayedTick], rises: bool
) -> list[Episode]:
    episodes, fired_at, worst = [], None, None
    for point in replayed:
        if fired_at is not None and point.value is not None:
            worst = point.value if worst is None else (max if rises else min)(worst, point.value)
        change = point.change
        if change is None:
            continue
        if change.to_state is State.FIRING and change.from_state is not State.RECOVERING:
            fired_at, worst = point.tick, point.value
        elif change.to_state is State.NORMAL and fired_at is not None:
            episodes.append(Episode(scope_key, label, fired_at, point.tick, worst))
            fired_at = None
    if fired_at is not None:
        episodes.append(Episode(scope_key, label, fired_at, None, worst))
    return episodes


def backtest_rule(
    connection: Connection,
    rule: Rule,
    ticks: Sequence[datetime],
    tiers: Sequence[str] = (),
) -> Backtest:
    """Replay a rule (stored or not) over the given ticks."""
    values = measure(connection, rule.measure, ticks, tiers)
    labels = scope_labels(connection, rule.scope, list(values))
    series, episodes = [], []
    for scope_key, scope_values in values.items():
        replayed = replay(ticks, scope_values, rule.condition)
        series.append(ScopeSeries(scope_key, labels[scope_key], replayed))
        episodes += _episodes(scope_key, labels[scope_key], replayed, rule.comparator.watches_rises)
    episodes.sort(key=lambda episode: (episode.fired_at, episode.scope_key))
    step = ticks[1] - ticks[0] if len(ticks) > 1 else rule.evaluate_every
    return Backtest(rule.rule_id, ticks[0], ticks[-1], step, series, episodes)


def backtest(
    connection: Connection,
    rule_id: uuid.UUID,
    *,
    days: int = 90,
    tiers: Sequence[str] = (),
    end: datetime | None = None,
) -> Backtest:
    """A stored rule over the `days` days up to `end` (default: the database's now)."""
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput(f"days must be between 1 and {MAX_DAYS}.", field="days")
    rule = get_rule(connection, rule_id)
    end = end or connection.scalar(select(func.now()))
    step = max(rule.evaluate_every, MIN_STEP)
    return backtest_rule(connection, rule, backtest_ticks(end, days, step), tiers)
