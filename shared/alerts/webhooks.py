"""Webhook endpoints HQ subscribes to alerts: create (the secret is shown once), change,
rotate the secret, delete (archived: the delivery log stays), and the delivery log."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, func, insert, select, update

from shared import audit
from shared.access import Principal
from shared.alerts import signing
from shared.alerts.rules import Severity
from shared.errors import InvalidInput, NotFound
from shared.tables import alert_deliveries, alert_delivery_attempts, webhook_endpoints

MAX_URL_LENGTH = 2000


@dataclass(frozen=True, slots=True)
class Endpoint:
    endpoint_id: uuid.UUID
    url: str
    description: str
    min_severity: Severity
    enabled: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class CreatedEndpoint:
    endpoint: Endpoint
    secret: str  # shown once


def _endpoint(row: Any) -> Endpoint:
    return Endpoint(
        endpoint_id=row.endpoint_id,
        url=row.url,
        description=row.description,
        min_severity=Severity(row.min_severity),
        enabled=row.enabled,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("url must be an http or https URL with a host.", field="url")
    if len(url) > MAX_URL_LENGTH or parts.username or parts.password:
        raise InvalidInput(
            "url must be at most 2000 characters, without credentials (the signature "
            "authenticates the sender).",
            field="url",
        )
    return url


def create_endpoint(
    connection: Connection,
    actor: Principal,
    *,
    url: str,
    description: str = "",
    min_severity: Severity = Severity.WARNING,
    enabled: bool = True,
) -> CreatedEndpoint:
    secret = signing.new_secret()
    row = connection.execute(
        insert(webhook_endpoints)
        .values(
            endpoint_id=uuid.uuid4(),
            url=check_url(url),
            description=description,
            min_severity=Severity(min_severity).value,
            enabled=enabled,
            secret=secret,
        )
        .returning(webhook_endpoints)
    ).one()
    audit.record_sync(
        connection, actor, "webhook.created", "webhook_endpoint", row.endpoint_id, {"url": url}
    )
    return CreatedEndpoint(_endpoint(row), secret)


def _live(endpoint_id: uuid.UUID):
    return (webhook_endpoints.c.endpoint_id == endpoint_id) & webhook_endpoints.c.archived_at.is_(
        None
    )


def get_endpoint(connection: Connection, endpoint_id: uuid.UUID) -> Endpoint:
    row = connection.execute(select(webhook_endpoints).where(_live(endpoint_id))).first()
    if row is None:
        raise NotFound("No such webhook endpoint.")
    return _endpoint(row)


def list_endpoints(connection: Connection) -> list[Endpoint]:
    rows = connection.execute(
        select(webhook_endpoints)
        .where(webhook_endpoints.c.archived_at.is_(None))
        .order_by(webhook_endpoints.c.created_at)
    )
    return [_endpoint(row) for row in rows]


def update_endpoint(
    connection: Connection, actor: Principal, endpoint_id: uuid.UUID, changes: Mapping[str, Any]
) -> Endpoint:
    allowed = {"url", "description", "min_severity", "enabled"}
    if set(changes) - allowed:
        raise InvalidInput(f"Unknown fields: {', '.join(sorted(set(changes) - allowed))}.")
    values = dict(changes)
    if "url" in values:
        values["url"] = check_url(values["url"])
    if "min_severity" in values:
        values["min_severity"] = Severity(values["min_severity"]).value
    row = connection.execute(
        update(webhook_endpoints)
        .where(_live(endpoint_id))
        .values(**values, updated_at=func.now())
        .returning(webhook_endpoints)
    ).first()
    if row is None:
        raise NotFound("No such webhook endpoint.")
    audit.record_sync(
        connection,
        actor,
        "webhook.updated",
        "webhook_endpoint",
        endpoint_id,
        {"changed": sorted(values)},
    )
    return _endpoint(row)


def rotate_secret(
    connection: Connection, actor: Principal, endpoint_id: uuid.UUID
) -> CreatedEndpoint:
    """A new secret at once: deliveries from now on are signed with it."""
    secret = signing.new_secret()
    row = connection.execute(
        update(webhook_endpoints)
        .where(_live(endpoint_id))
        .values(secret=secret, updated_at=func.now())
        .returning(webhook_endpoints)
    ).first()
    if row is None:
        raise NotFound("No such webhook endpoint.")
    audit.record_sync(connection, actor, "webhook.secret_rotated", "webhook_endpoint", endpoint_id)
    return CreatedEndpoint(_endpoint(row), secret)


def archive_endpoint(connection: Connection, actor: Principal, endpoint_id: uuid.UUID) -> None:
    """Deleted for good: pending deliveries to it fail at their next attempt."""
    found = connection.execute(
        update(webhook_endpoints)
        .where(_live(endpoint_id))
        .values(archived_at=func.now(), enabled=False, updated_at=func.now())
        .returning(webhook_endpoints.c.endpoint_id)
    ).first()
    if found is None:
        raise NotFound("No such webhook endpoint.")
    audit.record_sync(connection, actor, "webhook.deleted", "webhook_endpoint", endpoint_id)


@dataclass(frozen=True, slots=True)
class Attempt:
    attempt: int
    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int
    next_attempt_at: datetime | None


@dataclass(frozen=True, slots=True)
class Delivery:
    delivery_id: uuid.UUID
    event_id: uuid.UUID
    channel: str
    endpoint_id: uuid.UUID | None
    status: str
    attempts: int
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime
    event_type: str
    log: list[Attempt]


def list_deliveries(
    connection: Connection,
    *,
    endpoint_id: uuid.UUID,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[Delivery], int]:
    """An endpoint's delivery log, newest first, each delivery with its attempts."""
    conditions = [alert_deliveries.c.endpoint_id == endpoint_id]
    total = connection.scalar(select(func.count()).select_from(alert_deliveries).where(*conditions))
    rows = connection.execute(
        select(alert_deliveries)
        .where(*conditions)
        .order_by(alert_deliveries.c.created_at.desc(), alert_deliveries.c.delivery_id)
        .limit(limit)
        .offset(offset)
    ).all()
    attempts: dict[uuid.UUID, list[Attempt]] = {row.delivery_id: [] for row in rows}
    for attempt in connection.execute(
        select(alert_delivery_attempts)
        .where(alert_delivery_attempts.c.delivery_id.in_(list(attempts)))
        .order_by(alert_delivery_attempts.c.attempt)
    ):
        attempts[attempt.delivery_id].append(
            Attempt(
                attempt.attempt,
                attempt.attempted_at,
                attempt.status_code,
                attempt.error,
                attempt.duration_ms,
                attempt.next_attempt_at,
            )
        )
    return [
        Delivery(
            delivery_id=row.delivery_id,
            event_id=row.event_id,
            channel=row.channel,
            endpoint_id=row.endpoint_id,
            status=row.status,
            attempts=row.attempts,
            next_attempt_at=row.next_attempt_at if row.status == "pending" else None,
            delivered_at=row.delivered_at,
            created_at=row.created_at,
            event_type=row.payload["type"],
            log=attempts[row.delivery_id],
        )
        for row in rows
    ], total


def endpoint_deliveries(
    connection: Connection, endpoint_id: uuid.UUID, *, limit: int = 100, offset: int = 0
) -> tuple[list[Delivery], int]:
    get_endpoint(connection, endpoint_id)  # a 404 for an unknown or deleted endpoint
    return list_deliveries(connection, endpoint_id=endpoint_id, limit=limit, offset=offset)
