"""`coalition jobs alerts`, first half: evaluate every enabled rule at its current tick.

For each rule, in one transaction: lock the rule row (two evaluators of one rule queue),
compute its value for every scope key at the tick (one metric query), run the state
machine per instance, upsert the instances, record the changes as events and, for the
notified ones, a delivery per destination (an outbox: shared/alerts/delivery.py sends them).

Idempotent: the tick is the rule's evaluation period containing `at` (UTC, aligned to the
epoch), an instance already evaluated at that tick is left alone, and an event is unique
per (rule, scope key, tick). Running the job twice in one period changes nothing; a period
the job missed is not caught up (pending counts count evaluations that happened).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import msgspec
from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.dialects.postgresql import insert

from shared.alerts.definitions import Rule, get_rule, live_rules
from shared.alerts.metrics import measure
from shared.alerts.rules import Change, InstanceState, Severity, State, step, tick_of
from shared.tables import (
    alert_deliveries,
    alert_events,
    alert_instances,
    alert_rules,
    merchants,
    webhook_endpoints,
)

logger = logging.getLogger("coalition.alerts")

EVENT_TYPES = {State.FIRING: "alert.firing", State.NORMAL: "alert.resolved"}
NO_DATA_EVENT = "alert.no_data"


@dataclass(frozen=True, slots=True)
class RecordedChange:
    event_id: uuid.UUID
    scope_key: str
    change: Change
    value: float | None


@dataclass(frozen=True, slots=True)
class RuleEvaluation:
    rule_id: uuid.UUID
    name: str
    tick: datetime
    evaluated: int  # instances evaluated at this tick (0: the tick was already done)
    changes: list[RecordedChange]
    deliveries: int


def event_type(change: Change) -> str:
    return EVENT_TYPES.get(change.to_state, NO_DATA_EVENT)


def scope_labels(connection: Connection, scope: str, keys: Sequence[str]) -> dict[str, str]:
    """Readable names of scope keys: merchants by name, the network and tiers as is."""
    if scope != "merchant" or not keys:
        return {key: key for key in keys}
    ids = [uuid.UUID(key) for key in keys]
    rows = connection.execute(
        select(merchants.c.merchant_id, merchants.c.name).where(merchants.c.merchant_id.in_(ids))
    )
    names = {str(merchant_id): name for merchant_id, name in rows}
    return {key: names.get(key, key) for key in keys}


def _payload(rule: Rule, change: RecordedChange, tick: datetime, label: str) -> dict:
    """The message webhooks and e-mails carry, fixed when the event happens."""
    return msgspec.to_builtins(
        {
            "id": change.event_id,
            "type": event_type(change.change),
            "occurredAt": tick,
            "rule": {
                "id": rule.rule_id,
                "name": rule.name,
                "description": rule.description,
                "metric": rule.metric,
                "scope": rule.scope,
                "severity": rule.severity.value,
                "owner": rule.owner,
                "comparator": rule.comparator.value,
                "threshold": rule.threshold,
                "recoveryThreshold": rule.recovery_threshold,
                "window": rule.window,
                "baselineOffset": rule.baseline_offset,
            },
            "scopeKey": change.scope_key,
            "scopeLabel": label,
            "fromState": change.change.from_state.value,
            "toState": change.change.to_state.value,
            "value": change.value,
        }
    )


def _queue_deliveries(
    connection: Connection,
    rule: Rule,
    changes: Sequence[RecordedChange],
    tick: datetime,
    email_min_severity: Severity | None,
) -> int:
    notified = [change for change in changes if change.change.notified]
    if not notified:
        return 0
    endpoints = [
        endpoint_id
        for endpoint_id, min_severity in connection.execute(
            select(webhook_endpoints.c.endpoint_id, webhook_endpoints.c.min_severity).where(
                webhook_endpoints.c.enabled, webhook_endpoints.c.archived_at.is_(None)
            )
        )
        if Severity(min_severity).rank <= rule.severity.rank
    ]
    destinations: list[tuple[str, uuid.UUID | None]] = [("webhook", e) for e in endpoints]
    if email_min_severity is not None and email_min_severity.rank <= rule.severity.rank:
        destinations.append(("email", None))
    if not destinations:
        return 0
    labels = scope_labels(connection, rule.scope, [change.scope_key for change in notified])
    rows = [
        {
            "delivery_id": uuid.uuid4(),
            "event_id": change.event_id,
            "channel": channel,
            "endpoint_id": endpoint_id,
            "payload": _payload(rule, change, tick, labels[change.scope_key]),
            "next_attempt_at": tick,  # due at once: the tick is never after the job's clock
        }
        for change in notified
        for channel, endpoint_id in destinations
    ]
    connection.execute(insert(alert_deliveries).on_conflict_do_nothing(), rows)
    return len(rows)


def evaluate_rule(
    connection: Connection,
    rule_id: uuid.UUID,
    at: datetime,
    tiers: Sequence[str] = (),
    email_min_severity: Severity | None = None,
) -> RuleEvaluation:
    """Evaluate one rule at the tick containing `at`, in the caller's transaction."""
    rule = get_rule(connection, rule_id, for_update=True)
    tick = tick_of(at, rule.evaluate_every)
    instances = {
        row.scope_key: row
        for row in connection.execute(
            select(alert_instances).where(alert_instances.c.rule_id == rule_id)
        )
    }
    if not rule.enabled or (instances and all(r.evaluated_at >= tick for r in instances.values())):
        return RuleEvaluation(rule_id, rule.name, tick, 0, [], 0)
    values = measure(connection, rule.measure, [tick], tiers)
    upserts, changes = [], []
    for scope_key in sorted(set(values) | set(instances)):
        stored = instances.get(scope_key)
        if stored is not None and stored.evaluated_at >= tick:
            continue
        current = (
            InstanceState(State(stored.state), stored.streak, stored.since)
            if stored is not None
            else InstanceState()
        )
        value = values[scope_key][0] if scope_key in values else None
        result = step(current, value, rule.condition, tick)
        upserts.append(
            {
                "rule_id": rule_id,
                "scope_key": scope_key,
                "state": result.instance.state.value,
                "streak": result.instance.streak,
                "value": value,
                "evaluated_at": tick,
                "since": result.instance.since or tick,
            }
        )
        if result.change is not None:
            changes.append(RecordedChange(uuid.uuid4(), scope_key, result.change, value))
    if upserts:
        statement = insert(alert_instances)
        connection.execute(
            statement.on_conflict_do_update(
                index_elements=["rule_id", "scope_key"],
                set_={
                    column: statement.excluded[column]
                    for column in ("state", "streak", "value", "evaluated_at", "since")
                },
            ),
            upserts,
        )
    recorded = []
    if changes:
        inserted = set(
            connection.execute(
                insert(alert_events)
                .on_conflict_do_nothing(index_elements=["rule_id", "scope_key", "tick"])
                .returning(alert_events.c.event_id),
                [
                    {
                        "event_id": change.event_id,
                        "rule_id": rule_id,
                        "scope_key": change.scope_key,
                        "tick": tick,
                        "from_state": change.change.from_state.value,
                        "to_state": change.change.to_state.value,
                        "value": change.value,
                        "threshold": rule.threshold,
                        "severity": rule.severity.value,
                        "notified": change.change.notified,
                    }
                    for change in changes
                ],
            ).scalars()
        )
        recorded = [change for change in changes if change.event_id in inserted]
    deliveries = _queue_deliveries(connection, rule, recorded, tick, email_min_severity)
    return RuleEvaluation(rule_id, rule.name, tick, len(upserts), recorded, deliveries)


@dataclass(frozen=True, slots=True)
class RuleFailure:
    rule_id: uuid.UUID
    error: str


def evaluate_all(
    engine: Engine,
    at: datetime | None = None,
    tiers: Sequence[str] = (),
    email_min_severity: Severity | None = None,
) -> tuple[list[RuleEvaluation], list[RuleFailure]]:
    """Every enabled rule, one transaction each: a rule whose query fails is reported and
    the others still run. `at` defaults to the database's clock."""
    with engine.connect() as connection:
        at = at or connection.scalar(select(func.now()))
        rule_ids = list(
            connection.execute(
                select(alert_rules.c.rule_id).where(live_rules()).order_by(alert_rules.c.name)
            ).scalars()
        )
    evaluations, failures = [], []
    for rule_id in rule_ids:
        try:
            with engine.begin() as connection:
                evaluations.append(
                    evaluate_rule(connection, rule_id, at, tiers, email_min_severity)
                )
        except Exception as error:  # one broken rule must not silence the others
            logger.exception("alert rule %s failed to evaluate", rule_id)
            failures.append(RuleFailure(rule_id, f"{type(error).__name__}: {error}"))
    return evaluations, failures
