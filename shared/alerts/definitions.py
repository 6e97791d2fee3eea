"""Alert rules: create, change, archive, read (HQ admins write, HQ analysts read).

Sync functions on a SQLAlchemy Connection: the dashboard calls them on its psycopg
connection, the API through `AsyncConnection.run_sync`, so there is one implementation.

A change of what a rule measures (metric or scope) starts its instances afresh: their
states described another quantity. Any other change (thresholds, periods, severity)
applies from the next evaluation, to the instances as they are. Deleting a rule archives
it: never evaluated again, its instances removed, its events kept for the history.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from shared import audit
from shared.access import Principal
from shared.alerts.metrics import METRICS, Measure
from shared.alerts.rules import Comparator, Condition, NoDataPolicy, Severity, check_condition
from shared.errors import Conflict, InvalidInput, NotFound
from shared.tables import alert_instances, alert_rules

MAX_WINDOW = timedelta(days=400)
MIN_EVALUATE_EVERY = timedelta(minutes=1)
MAX_EVALUATE_EVERY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Rule:
    rule_id: uuid.UUID
    name: str
    description: str
    metric: str
    scope: str
    comparator: Comparator
    threshold: float
    recovery_threshold: float | None
    window: timedelta
    evaluate_every: timedelta
    baseline_offset: timedelta | None
    min_baseline: float | None
    pending_evaluations: int
    recovery_evaluations: int
    severity: Severity
    no_data: NoDataPolicy
    owner: str
    enabled: bool
    archived_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def condition(self) -> Condition:
        return Condition(
            comparator=self.comparator,
            threshold=self.threshold,
            recovery_threshold=self.recovery_threshold,
            pending_evaluations=self.pending_evaluations,
            recovery_evaluations=self.recovery_evaluations,
            no_data=self.no_data,
        )

    @property
    def measure(self) -> Measure:
        return Measure(
            metric=self.metric,
            scope=self.scope,
            window=self.window,
            baseline_offset=self.baseline_offset,
            min_baseline=self.min_baseline,
        )


# Column names differ from the dataclass's only where `window` would be an SQL keyword.
_COLUMNS = {field.name: field.name for field in fields(Rule)} | {"window": "window_length"}
_DEFINITION = tuple(
    name for name in _COLUMNS if name not in ("rule_id", "archived_at", "created_at", "updated_at")
)
_MEASURED = ("metric", "scope")


def rule_from_row(row: Any) -> Rule:
    values = {name: getattr(row, column) for name, column in _COLUMNS.items()}
    values["comparator"] = Comparator(values["comparator"])
    values["severity"] = Severity(values["severity"])
    values["no_data"] = NoDataPolicy(values["no_data"])
    return Rule(**values)


def check_rule(rule: Rule) -> None:
    """Every rule the store accepts can be evaluated: a known metric in a scope it has,
    windows and periods in range, a coherent condition."""
    metric = METRICS.get(rule.metric)
    if metric is None:
        raise InvalidInput(
            f"Unknown metric {rule.metric!r}; one of: {', '.join(sorted(METRICS))}.",
            field="metric",
        )
    if rule.scope not in metric.scopes:
        raise InvalidInput(
            f"The metric {rule.metric!r} is measured per {' or '.join(metric.scopes)} only.",
            field="scope",
        )
    if not timedelta(0) < rule.window <= MAX_WINDOW:
        raise InvalidInput("window must be positive and at most 400 days.", field="window")
    if not MIN_EVALUATE_EVERY <= rule.evaluate_every <= MAX_EVALUATE_EVERY:
        raise InvalidInput(
            "evaluateEvery must be between one minute and one day.", field="evaluateEvery"
        )
    if rule.evaluate_every % MIN_EVALUATE_EVERY:
        raise InvalidInput("evaluateEvery must be whole minutes.", field="evaluateEvery")
    if rule.baseline_offset is not None and not timedelta(0) < rule.baseline_offset <= MAX_WINDOW:
        raise InvalidInput(
            "baselineOffset must be positive and at most 400 days.", field="baselineOffset"
        )
    if rule.min_baseline is not None and rule.baseline_offset is None:
        raise InvalidInput("minBaseline needs a baselineOffset.", field="minBaseline")
    if not rule.owner.strip():
        raise InvalidInput("owner must say who answers the alert.", field="owner")
    check_condition(rule.condition)


_ENUMS = {"comparator": Comparator, "severity": Severity, "no_data": NoDataPolicy}


def _typed(values: Mapping[str, Any]) -> dict[str, Any]:
    """Wire strings ('gt', 'warning') as the enums the rule holds."""
    return {
        name: _ENUMS[name](value) if name in _ENUMS else value for name, value in values.items()
    }


def _stored(values: Mapping[str, Any]) -> dict[str, Any]:
    return {_COLUMNS[name]: value for name, value in values.items()}


def _unique_name(connection: Connection, statement) -> Any:
    try:
        with connection.begin_nested():
            return connection.execute(statement).one()
    except IntegrityError as error:
        if "uq_alert_rules_name" in str(error.orig):
            raise Conflict("Another alert rule has this name.", field="name") from None
        raise


def create_rule(connection: Connection, actor: Principal, **definition: Any) -> Rule:
    rule = Rule(rule_id=uuid.uuid4(), **_typed(definition))
    check_rule(rule)
    values = {name: getattr(rule, name) for name in ("rule_id", *_DEFINITION)}
    row = _unique_name(
        connection, insert(alert_rules).values(**_stored(values)).returning(alert_rules)
    )
    created = rule_from_row(row)
    audit.record_sync(
        connection, actor, "alert_rule.created", "alert_rule", created.rule_id, {"name": rule.name}
    )
    return created


def _live(rule_id: uuid.UUID):
    return (alert_rules.c.rule_id == rule_id) & alert_rules.c.archived_at.is_(None)


def get_rule(connection: Connection, rule_id: uuid.UUID, *, for_update: bool = False) -> Rule:
    statement = select(alert_rules).where(_live(rule_id))
    row = connection.execute(statement.with_for_update() if for_update else statement).first()
    if row is None:
        raise NotFound("No such alert rule.")
    return rule_from_row(row)


def live_rules():
    """The rules that are evaluated and whose alerts count: enabled, not deleted."""
    return alert_rules.c.enabled & alert_rules.c.archived_at.is_(None)


def list_rules(connection: Connection) -> list[Rule]:
    """Every rule not deleted, the disabled ones included."""
    statement = select(alert_rules).where(alert_rules.c.archived_at.is_(None))
    return [rule_from_row(row) for row in connection.execute(statement.order_by("name"))]


def update_rule(
    connection: Connection, actor: Principal, rule_id: uuid.UUID, changes: Mapping[str, Any]
) -> Rule:
    """Only the fields given change; the result is checked as a whole."""
    unknown = set(changes) - set(_DEFINITION)
    if unknown:
        raise InvalidInput(f"Unknown fields: {', '.join(sorted(unknown))}.")
    changes = _typed(changes)
    current = get_rule(connection, rule_id, for_update=True)
    proposed = Rule(
        **{field.name: getattr(current, field.name) for field in fields(Rule)} | dict(changes)
    )
    check_rule(proposed)
    row = _unique_name(
        connection,
        update(alert_rules)
        .where(alert_rules.c.rule_id == rule_id)
        .values(**_stored(changes), updated_at=func.now())
        .returning(alert_rules),
    )
    if any(getattr(proposed, name) != getattr(current, name) for name in _MEASURED):
        connection.execute(delete(alert_instances).where(alert_instances.c.rule_id == rule_id))
    audit.record_sync(
        connection,
        actor,
        "alert_rule.updated",
        "alert_rule",
        rule_id,
        {"changed": sorted(changes)},
    )
    return rule_from_row(row)


def archive_rule(connection: Connection, actor: Principal, rule_id: uuid.UUID) -> None:
    get_rule(connection, rule_id, for_update=True)
    connection.execute(
        update(alert_rules)
        .where(alert_rules.c.rule_id == rule_id)
        .values(archived_at=func.now(), enabled=False, updated_at=func.now())
    )
    connection.execute(delete(alert_instances).where(alert_instances.c.rule_id == rule_id))
    audit.record_sync(connection, actor, "alert_rule.archived", "alert_rule", rule_id)
