"""The alert state machine, as pure functions: (state, value, condition) -> (state, change).

An instance (one rule, one scope key) is in one of five states:

    normal --breach--> pending --breach x N--> firing --recovered--> recovering --x M--> normal
                          |                      ^                        |
                          +--no breach--> normal +------ not recovered ---+

- *breach*: the value is past the threshold (`gt`, `gte`, `lt` or `lte`);
- *recovered*: the value is back past the recovery threshold (hysteresis; by default the
  threshold itself). A value between the two keeps a firing alert firing and a normal
  instance normal, so a value hovering at the threshold does not flap;
- N = `pending_evaluations`: the breach must hold for N consecutive evaluations before the
  alert fires (N = 1 fires at once, skipping pending); M = `recovery_evaluations` likewise
  for recovering (M = 1 resolves at once);
- no data (the value is None), by the rule's policy: `keep` leaves state and counts as
  they are; `ok` counts as a recovered value; `breach` as a breaching one; `alert` moves
  the instance to its own `no_data` state (which is notified), left at the next value as
  if from normal.

Only three kinds of change are notified: into `firing` (except back from `recovering`,
which never stopped being the same incident), into `normal` from `firing`, `recovering`
or `no_data` (resolved), and into `no_data`. Pending and recovering are recorded as
events, not sent: they are the noise the pending period is there to absorb.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from shared.errors import InvalidInput


class State(StrEnum):
    NORMAL = "normal"
    PENDING = "pending"
    FIRING = "firing"
    RECOVERING = "recovering"
    NO_DATA = "no_data"


class Comparator(StrEnum):
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"

    @property
    def watches_rises(self) -> bool:
        return self in (Comparator.GT, Comparator.GTE)

    def holds(self, value: float, threshold: float) -> bool:
        match self:
            case Comparator.GT:
                return value > threshold
            case Comparator.GTE:
                return value >= threshold
            case Comparator.LT:
                return value < threshold
            case Comparator.LTE:
                return value <= threshold


class NoDataPolicy(StrEnum):
    KEEP = "keep"
    OK = "ok"
    BREACH = "breach"
    ALERT = "alert"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


@dataclass(frozen=True, slots=True)
class Condition:
    """What a rule tests its value against, and how patiently."""

    comparator: Comparator
    threshold: float
    recovery_threshold: float | None = None
    pending_evaluations: int = 1
    recovery_evaluations: int = 1
    no_data: NoDataPolicy = NoDataPolicy.KEEP

    def breaches(self, value: float) -> bool:
        return self.comparator.holds(value, self.threshold)

    def recovered(self, value: float) -> bool:
        recovery = self.threshold if self.recovery_threshold is None else self.recovery_threshold
        return not self.comparator.holds(value, recovery)


@dataclass(frozen=True, slots=True)
class InstanceState:
    state: State = State.NORMAL
    streak: int = 0  # consecutive evaluations counted toward the next change
    since: datetime | None = None  # when the state began (None: never evaluated)


@dataclass(frozen=True, slots=True)
class Change:
    from_state: State
    to_state: State
    notified: bool


@dataclass(frozen=True, slots=True)
class Step:
    instance: InstanceState
    change: Change | None


def check_condition(condition: Condition) -> None:
    """Refuse a condition that cannot work: non-finite numbers, a recovery threshold on the
    breaching side of the threshold (it would resolve while still breaching), counts out
    of range."""
    numbers = {"threshold": condition.threshold, "recoveryThreshold": condition.recovery_threshold}
    for field, number in numbers.items():
        if number is not None and not math.isfinite(number):
            raise InvalidInput(f"{field} must be a finite number.", field=field)
    recovery = condition.recovery_threshold
    if recovery is not None:
        wrong_side = (
            recovery > condition.threshold
            if condition.comparator.watches_rises
            else recovery < condition.threshold
        )
        if wrong_side:
            side = "at or below" if condition.comparator.watches_rises else "at or above"
            raise InvalidInput(
                f"recoveryThreshold must be {side} the threshold for a "
                f"'{condition.comparator}' rule (hysteresis widens the band, never crosses it).",
                field="recoveryThreshold",
            )
    for field, count in (
        ("pendingEvaluations", condition.pending_evaluations),
        ("recoveryEvaluations", condition.recovery_evaluations),
    ):
        if not 1 <= count <= 1000:
            raise InvalidInput(f"{field} must be between 1 and 1000.", field=field)


def _signal(value: float | None, condition: Condition) -> str | None:
    """'breach', 'recovered', 'band' (between the thresholds) or None (keep as is)."""
    if value is None:
        match condition.no_data:
            case NoDataPolicy.KEEP:
                return None
            case NoDataPolicy.OK:
                return "recovered"
            case NoDataPolicy.BREACH:
                return "breach"
            case NoDataPolicy.ALERT:
                return "no_data"
    if condition.breaches(value):
        return "breach"
    return "recovered" if condition.recovered(value) else "band"


def _notified(from_state: State, to_state: State) -> bool:
    if to_state is State.FIRING:
        return from_state is not State.RECOVERING
    if to_state is State.NORMAL:
        return from_state in (State.FIRING, State.RECOVERING, State.NO_DATA)
    return to_state is State.NO_DATA


def step(current: InstanceState, value: float | None, condition: Condition, tick: datetime) -> Step:
    """One evaluation: the instance's next state, and the change if there is one."""
    signal = _signal(value, condition)
    if signal is None:
        return Step(current, None)
    state, streak = current.state, current.streak
    if signal == "no_data":
        new_state, new_streak = State.NO_DATA, 0
    elif state in (State.NORMAL, State.NO_DATA):
        if signal == "breach":
            fires = condition.pending_evaluations <= 1
            new_state, new_streak = (State.FIRING, 0) if fires else (State.PENDING, 1)
        else:
            new_state, new_streak = State.NORMAL, 0
    elif state is State.PENDING:
        if signal == "breach":
            streak += 1
            fires = streak >= condition.pending_evaluations
            new_state, new_streak = (State.FIRING, 0) if fires else (State.PENDING, streak)
        else:
            new_state, new_streak = State.NORMAL, 0
    elif state is State.FIRING:
        if signal == "recovered":
            resolves = condition.recovery_evaluations <= 1
            new_state, new_streak = (State.NORMAL, 0) if resolves else (State.RECOVERING, 1)
        else:
            new_state, new_streak = State.FIRING, 0
    else:  # recovering
        if signal == "recovered":
            streak += 1
            resolves = streak >= condition.recovery_evaluations
            new_state, new_streak = (State.NORMAL, 0) if resolves else (State.RECOVERING, streak)
        else:
            new_state, new_streak = State.FIRING, 0
    if new_state is state:
        return Step(InstanceState(state, new_streak, current.since or tick), None)
    change = Change(state, new_state, _notified(state, new_state))
    return Step(InstanceState(new_state, new_streak, tick), change)


@dataclass(frozen=True, slots=True)
class ReplayedTick:
    tick: datetime
    value: float | None
    state: State
    change: Change | None


def replay(
    ticks: Sequence[datetime],
    values: Sequence[float | None],
    condition: Condition,
) -> list[ReplayedTick]:
    """The state machine run over a series (the backtest), from normal."""
    instance = InstanceState()
    replayed = []
    for tick, value in zip(ticks, values, strict=True):
        result = step(instance, value, condition, tick)
        instance = result.instance
        replayed.append(ReplayedTick(tick, value, instance.state, result.change))
    return replayed


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def tick_of(moment: datetime, every: timedelta) -> datetime:
    """The evaluation time a moment belongs to: the latest multiple of `every` since the
    Unix epoch at or before it (UTC). Evaluating the same tick twice changes nothing."""
    return _EPOCH + ((moment - _EPOCH) // every) * every
