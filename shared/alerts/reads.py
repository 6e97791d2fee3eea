"""What HQ reads about alerts: the current ones, the history, the sidebar badge."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, select

from shared.alerts.definitions import live_rules
from shared.alerts.evaluation import scope_labels
from shared.alerts.rules import State
from shared.tables import alert_events, alert_instances, alert_rules

ACTIVE_STATES = (State.PENDING, State.FIRING, State.RECOVERING, State.NO_DATA)


def firing_count(connection: Connection) -> int:
    """Alerts firing now, for the dashboard's sidebar badge (disabled rules' left out)."""
    return connection.scalar(
        select(func.count())
        .select_from(alert_instances.join(alert_rules))
        .where(alert_instances.c.state == State.FIRING.value, live_rules())
    )


@dataclass(frozen=True, slots=True)
class Alert:
    rule_id: uuid.UUID
    rule_name: str
    metric: str
    scope: str
    scope_key: str
    scope_label: str
    severity: str
    owner: str
    comparator: str
    threshold: float
    state: str
    value: float | None
    since: datetime
    evaluated_at: datetime


def _labelled(connection: Connection, rows: Sequence, build) -> list:
    by_scope: dict[str, set[str]] = {}
    for row in rows:
        by_scope.setdefault(row.scope, set()).add(row.scope_key)
    labels = {
        (scope, key): label
        for scope, keys in by_scope.items()
        for key, label in scope_labels(connection, scope, sorted(keys)).items()
    }
    return [build(row, labels[(row.scope, row.scope_key)]) for row in rows]


_SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
_STATE_ORDER = {"firing": 0, "no_data": 1, "recovering": 2, "pending": 3, "normal": 4}


def current_alerts(connection: Connection, states: Sequence[State] = ACTIVE_STATES) -> list[Alert]:
    """Instances of enabled rules in the given states: firing first, then by severity."""
    rows = connection.execute(
        select(
            alert_instances,
            alert_rules.c.name.label("rule_name"),
            alert_rules.c.metric,
            alert_rules.c.scope,
            alert_rules.c.severity,
            alert_rules.c.owner,
            alert_rules.c.comparator,
            alert_rules.c.threshold,
        )
        .select_from(alert_instances.join(alert_rules))
        .where(alert_instances.c.state.in_([state.value for state in states]), live_rules())
    ).all()
    alerts = _labelled(
        connection,
        rows,
        lambda row, label: Alert(
            rule_id=row.rule_id,
            rule_name=row.rule_name,
            metric=row.metric,
            scope=row.scope,
            scope_key=row.scope_key,
            scope_label=label,
            severity=row.severity,
            owner=row.owner,
            comparator=row.comparator,
            threshold=row.threshold,
            state=row.state,
            value=row.value,
            since=row.since,
            evaluated_at=row.evaluated_at,
        ),
    )
    alerts.sort(
        key=lambda alert: (
            _STATE_ORDER[alert.state],
            _SEVERITY_ORDER[alert.severity],
            alert.rule_name,
            alert.scope_label,
        )
    )
    return alerts


@dataclass(frozen=True, slots=True)
class Event:
    event_id: uuid.UUID
    rule_id: uuid.UUID
    rule_name: str
    scope_key: str
    scope_label: str
    tick: datetime
    from_state: str
    to_state: str
    value: float | None
    threshold: float
    severity: str
    notified: bool


def list_events(
    connection: Connection,
    *,
    rule_id: uuid.UUID | None = None,
    scope_key: str | None = None,
    since: datetime | None = None,
    notified_only: bool = False,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[Event], int]:
    """State changes, newest first (archived rules' included: history is history)."""
    conditions = []
    if rule_id is not None:
        conditions.append(alert_events.c.rule_id == rule_id)
    if scope_key is not None:
        conditions.append(alert_events.c.scope_key == scope_key)
    if since is not None:
        conditions.append(alert_events.c.tick >= since)
    if notified_only:
        conditions.append(alert_events.c.notified)
    total = connection.scalar(select(func.count()).select_from(alert_events).where(*conditions))
    rows = connection.execute(
        select(alert_events, alert_rules.c.name.label("rule_name"), alert_rules.c.scope)
        .select_from(alert_events.join(alert_rules))
        .where(*conditions)
        .order_by(alert_events.c.tick.desc(), alert_events.c.recorded_at.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    events = _labelled(
        connection,
        rows,
        lambda row, label: Event(
            event_id=row.event_id,
            rule_id=row.rule_id,
            rule_name=row.rule_name,
            scope_key=row.scope_key,
            scope_label=label,
            tick=row.tick,
            from_state=row.from_state,
            to_state=row.to_state,
            value=row.value,
            threshold=row.threshold,
            severity=row.severity,
            notified=row.notified,
        ),
    )
    return events, total
