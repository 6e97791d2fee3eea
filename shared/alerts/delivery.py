"""`coalition jobs alerts`, second half: send the notifications that are due.

A delivery (one notified event, one destination) is written with its event
(shared/alerts/evaluation.py). This job claims the due ones (`FOR UPDATE SKIP LOCKED`, so
concurrent workers take different rows) and moves their next attempt a lease ahead before
sending, outside any transaction: a worker that dies mid-send leaves the delivery to be
tried again when the lease runs out. Each attempt is logged (alert_delivery_attempts) with
the HTTP status or the error and when the next attempt is due.

Retries back off exponentially with jitter: attempt n failed -> wait base x 2^(n-1), at
most `max_delay`, times a random factor in [1 - jitter, 1 + jitter] (so a fleet of
failures does not retry in lockstep); after `max_attempts` the delivery is `failed`.
Receivers must accept a message more than once (a timeout after the receiver committed
looks like a failure here): the body's `id` and the `X-Coalition-Delivery` header are
stable across attempts.

Webhooks: POST of the JSON payload, signed (shared/alerts/signing.py); any 2xx is
success, anything else (redirects included) a failure. E-mail: one message to the
configured recipients through SMTP (smtplib), STARTTLS and login when configured.
"""

from __future__ import annotations

import json
import random
import smtplib
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage

import httpx
from sqlalchemy import Engine, func, insert, select, update

from shared.alerts import signing
from shared.settings import Settings
from shared.tables import alert_deliveries, alert_delivery_attempts, webhook_endpoints

USER_AGENT = "Coalition-Alerts/1"
_STATE_WORDS = {"firing": "FIRING", "normal": "RESOLVED", "no_data": "NO DATA"}


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_delay: timedelta = timedelta(seconds=30)
    max_delay: timedelta = timedelta(hours=1)
    max_attempts: int = 8  # about 1 h 34 min of retries with the delays above
    jitter: float = 0.2
    timeout: timedelta = timedelta(seconds=10)
    lease: timedelta = timedelta(minutes=2)


def retry_delay(attempt: int, policy: RetryPolicy, draw: float) -> timedelta:
    """The wait after failed attempt `attempt` (1-based); `draw` is uniform in [0, 1)."""
    backoff = min(policy.max_delay, policy.base_delay * 2 ** (attempt - 1))
    return backoff * (1 + policy.jitter * (2 * draw - 1))


@dataclass(frozen=True, slots=True)
class Outcome:
    delivered: bool
    status_code: int | None
    error: str | None


def body_of(payload: dict) -> bytes:
    """The exact bytes sent and signed: compact, keys sorted, the same at every attempt."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def send_webhook(
    client: httpx.Client, url: str, secret: str, delivery_id: uuid.UUID, payload: dict
) -> Outcome:
    body = body_of(payload)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Coalition-Event": payload["type"],
        "X-Coalition-Delivery": str(delivery_id),
        signing.HEADER: signing.signature_header(secret, int(time.time()), body),
    }
    try:
        response = client.post(url, content=body, headers=headers)
    except httpx.HTTPError as error:
        return Outcome(False, None, f"{type(error).__name__}: {error}"[:500])
    if 200 <= response.status_code < 300:
        return Outcome(True, response.status_code, None)
    return Outcome(False, response.status_code, f"HTTP {response.status_code}")


def email_message(payload: dict, sender: str, recipients: list[str]) -> EmailMessage:
    rule = payload["rule"]
    state = _STATE_WORDS.get(payload["toState"], payload["toState"].upper())
    message = EmailMessage()
    message["Subject"] = (
        f"[Coalition {rule['severity']}] {state}: {rule['name']} ({payload['scopeLabel']})"
    )
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Message-ID"] = f"<{payload['id']}@coalition-alerts>"
    value = "no data" if payload["value"] is None else f"{payload['value']:.6g}"
    message.set_content(
        f"{rule['name']} is {state.lower()} for {payload['scopeLabel']} "
        f"({payload['fromState']} -> {payload['toState']}) at {payload['occurredAt']}.\n\n"
        f"{rule['description']}\n\n"
        f"Metric: {rule['metric']} per {rule['scope']}, window {rule['window']}\n"
        f"Value: {value}; threshold: {rule['comparator']} {rule['threshold']}"
        + (
            f", recovers at {rule['recoveryThreshold']}"
            if rule["recoveryThreshold"] is not None
            else ""
        )
        + f"\nOwner: {rule['owner']}\nEvent: {payload['id']}\n"
    )
    return message


def send_email(settings: Settings, payload: dict, timeout: timedelta) -> Outcome:
    message = email_message(payload, settings.smtp_sender, settings.alert_email_to)
    try:
        with smtplib.SMTP(
            settings.smtp_host, settings.smtp_port, timeout=timeout.total_seconds()
        ) as smtp:
            if settings.smtp_starttls:
                smtp.starttls()
            if settings.smtp_username and settings.smtp_password:
                smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
            smtp.send_message(message)
    except smtplib.SMTPResponseException as error:
        return Outcome(False, None, f"SMTP {error.smtp_code}: {error.smtp_error!r}"[:500])
    except (smtplib.SMTPException, OSError) as error:
        return Outcome(False, None, f"{type(error).__name__}: {error}"[:500])
    return Outcome(True, None, None)


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    delivery_id: uuid.UUID
    channel: str
    attempt: int
    outcome: Outcome
    next_attempt_at: datetime | None


def _claim(engine: Engine, now: datetime, policy: RetryPolicy, limit: int) -> list:
    with engine.begin() as connection:
        due = (
            select(alert_deliveries.c.delivery_id)
            .where(
                alert_deliveries.c.status == "pending", alert_deliveries.c.next_attempt_at <= now
            )
            .order_by(alert_deliveries.c.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        claimed = connection.execute(
            update(alert_deliveries)
            .where(alert_deliveries.c.delivery_id.in_(due))
            .values(next_attempt_at=now + policy.lease)
            .returning(alert_deliveries.c.delivery_id)
        ).scalars()
        return list(
            connection.execute(
                select(
                    alert_deliveries,
                    webhook_endpoints.c.url,
                    webhook_endpoints.c.secret,
                    webhook_endpoints.c.enabled.label("endpoint_enabled"),
                    webhook_endpoints.c.archived_at.label("endpoint_archived_at"),
                )
                .select_from(alert_deliveries.outerjoin(webhook_endpoints))
                .where(alert_deliveries.c.delivery_id.in_(list(claimed)))
                .order_by(alert_deliveries.c.next_attempt_at, alert_deliveries.c.created_at)
            )
        )


def _record(
    engine: Engine,
    delivery,
    outcome: Outcome,
    attempted_at: datetime,
    duration_ms: int,
    policy: RetryPolicy,
    draw: float,
    *,
    final: bool = False,
) -> DeliveryReport:
    attempt = delivery.attempts + 1
    gives_up = final or attempt >= policy.max_attempts
    next_attempt_at = (
        None if outcome.delivered or gives_up else attempted_at + retry_delay(attempt, policy, draw)
    )
    status = "delivered" if outcome.delivered else ("failed" if gives_up else "pending")
    with engine.begin() as connection:
        connection.execute(
            insert(alert_delivery_attempts).values(
                delivery_id=delivery.delivery_id,
                attempt=attempt,
                attempted_at=attempted_at,
                status_code=outcome.status_code,
                error=outcome.error,
                duration_ms=duration_ms,
                next_attempt_at=next_attempt_at,
            )
        )
        connection.execute(
            update(alert_deliveries)
            .where(alert_deliveries.c.delivery_id == delivery.delivery_id)
            .values(
                attempts=attempt,
                status=status,
                next_attempt_at=next_attempt_at or attempted_at,
                delivered_at=attempted_at if outcome.delivered else None,
            )
        )
    return DeliveryReport(delivery.delivery_id, delivery.channel, attempt, outcome, next_attempt_at)


def deliver_due(
    engine: Engine,
    settings: Settings,
    *,
    now: datetime | None = None,
    policy: RetryPolicy | None = None,
    rng: random.Random | None = None,
    limit: int = 100,
) -> list[DeliveryReport]:
    """Send every delivery due at `now` (default: the database's clock), once each."""
    policy = policy or RetryPolicy()
    rng = rng or random.Random()
    if now is None:
        with engine.connect() as connection:
            now = connection.scalar(select(func.now()))
    reports = []
    job_started = time.monotonic()
    with httpx.Client(timeout=policy.timeout.total_seconds(), follow_redirects=False) as client:
        for delivery in _claim(engine, now, policy, limit):
            started = time.monotonic()
            # `now` is the job's start; attempts later in the batch are stamped later.
            attempted_at = now + timedelta(seconds=started - job_started)
            final = False
            if delivery.channel == "webhook":
                if not delivery.endpoint_enabled or delivery.endpoint_archived_at is not None:
                    outcome, final = Outcome(False, None, "endpoint disabled or deleted"), True
                else:
                    outcome = send_webhook(
                        client,
                        delivery.url,
                        delivery.secret,
                        delivery.delivery_id,
                        delivery.payload,
                    )
            elif settings.alert_email_enabled:
                outcome = send_email(settings, delivery.payload, policy.timeout)
            else:
                outcome, final = Outcome(False, None, "e-mail is no longer configured"), True
            duration_ms = int((time.monotonic() - started) * 1000)
            reports.append(
                _record(
                    engine, delivery, outcome, attempted_at, duration_ms, policy, rng.random(),
                    final=final,
                )
            )  # fmt: skip
    return reports
