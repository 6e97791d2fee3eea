"""Notifications against real local servers: a webhook receiver that fails twice and then
accepts (signature, retries with backoff, the delivery log), and an SMTP server."""

from __future__ import annotations

import http.server
import json
import random
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from sqlalchemy import select

from shared.access import SYSTEM
from shared.alerts import definitions, webhooks
from shared.alerts.delivery import RetryPolicy, deliver_due, retry_delay
from shared.alerts.evaluation import evaluate_all
from shared.alerts.rules import Comparator, Severity
from shared.alerts.signing import HEADER, verify
from shared.tables import alert_deliveries
from tests.integration.alerts_support import HOUR, T0, Ledger

POLICY = RetryPolicy(
    base_delay=timedelta(seconds=30), max_delay=timedelta(minutes=10), max_attempts=4
)


@dataclass
class Receiver:
    """An HTTP endpoint answering the statuses it is given, in order (then 200)."""

    statuses: list[int]
    received: list[dict] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(statuses=[])

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.received.append({"headers": dict(self.headers), "body": body})
            status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.end_headers()

        def log_message(self, *_):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/coalition"
    yield state
    server.shutdown()
    server.server_close()


def _firing_alert(engine, **endpoint) -> webhooks.CreatedEndpoint | None:
    """A network rule that fires at T0 (one purchase when at most 0 are expected)."""
    ledger = Ledger(engine)
    shop = ledger.merchant("North")
    ledger.purchases(ledger.member(shop), shop, [T0 - HOUR])
    with engine.begin() as connection:
        definitions.create_rule(
            connection, SYSTEM, name="Any purchase", description="test", metric="purchases",
            scope="network", comparator=Comparator.GT, threshold=0, recovery_threshold=None,
            window=timedelta(days=1), evaluate_every=HOUR, baseline_offset=None,
            min_baseline=None, pending_evaluations=1, recovery_evaluations=1,
            severity=Severity.CRITICAL, no_data="keep", owner="ops", enabled=True,
        )  # fmt: skip
        created = webhooks.create_endpoint(connection, SYSTEM, **endpoint) if endpoint else None
    return created


def test_a_webhook_that_fails_twice_is_retried_with_backoff_and_logged(
    clean_database, receiver, test_settings
):
    created = _firing_alert(clean_database, url=receiver.url, min_severity=Severity.WARNING)
    evaluate_all(clean_database, at=T0)
    receiver.statuses = [500, 503]
    draws = random.Random(4)
    expected_draws = random.Random(4)
    [first] = deliver_due(clean_database, test_settings, now=T0, policy=POLICY, rng=draws)
    reports = [first]
    for _ in range(2):
        due = reports[-1].next_attempt_at
        # nothing is sent before the next attempt is due, everything once it is
        assert deliver_due(clean_database, test_settings, now=due - timedelta(seconds=1), policy=POLICY, rng=draws) == []  # fmt: skip
        reports += deliver_due(clean_database, test_settings, now=due, policy=POLICY, rng=draws)
    assert [(r.attempt, r.outcome.delivered, r.outcome.status_code) for r in reports] == [
        (1, False, 500), (2, False, 503), (3, True, 200),
    ]  # fmt: skip
    # the log, through the read the API serves, and the backoff schedule: 30 s then 60 s,
    # each with at most 20% jitter
    with clean_database.connect() as connection:
        [delivery], total = webhooks.endpoint_deliveries(connection, created.endpoint.endpoint_id)
    assert total == 1 and delivery.status == "delivered" and delivery.attempts == 3
    assert [(a.attempt, a.status_code, a.error) for a in delivery.log] == [
        (1, 500, "HTTP 500"), (2, 503, "HTTP 503"), (3, 200, None),
    ]  # fmt: skip
    waits = [a.next_attempt_at - a.attempted_at for a in delivery.log[:2]]
    assert waits == [retry_delay(n, POLICY, expected_draws.random()) for n in (1, 2)]
    assert timedelta(seconds=24) <= waits[0] <= timedelta(seconds=36)
    assert timedelta(seconds=48) <= waits[1] <= timedelta(seconds=72)
    assert [a.next_attempt_at for a in delivery.log] == [
        reports[0].next_attempt_at, reports[1].next_attempt_at, None,
    ]  # fmt: skip
    now = reports[-1].next_attempt_at or delivery.log[-1].attempted_at
    assert deliver_due(clean_database, test_settings, now=now + timedelta(days=1)) == []
    # three identical, signed requests
    bodies = {request["body"] for request in receiver.received}
    assert len(receiver.received) == 3 and len(bodies) == 1
    body = bodies.pop()
    for request in receiver.received:
        assert verify(created.secret, request["headers"][HEADER], body, now=int(time.time()))
        assert not verify("whsec_wrong", request["headers"][HEADER], body, now=int(time.time()))
        assert request["headers"]["X-Coalition-Event"] == "alert.firing"
        assert request["headers"]["X-Coalition-Delivery"] == str(delivery.delivery_id)
    message = json.loads(body)
    assert message["type"] == "alert.firing" and message["toState"] == "firing"
    assert message["rule"]["name"] == "Any purchase" and message["value"] == 1.0


def test_a_webhook_that_never_answers_well_gives_up_after_the_last_attempt(
    clean_database, receiver, test_settings
):
    _firing_alert(clean_database, url=receiver.url)
    evaluate_all(clean_database, at=T0)
    receiver.statuses = [500] * 10
    now = T0
    for _ in range(POLICY.max_attempts):
        [report] = deliver_due(clean_database, test_settings, now=now, policy=POLICY)
        now = report.next_attempt_at or now
    assert report.next_attempt_at is None and report.attempt == POLICY.max_attempts
    with clean_database.connect() as connection:
        assert connection.scalar(select(alert_deliveries.c.status)) == "failed"
    assert deliver_due(clean_database, test_settings, now=now + timedelta(days=1)) == []


def test_an_unreachable_endpoint_is_an_error_in_the_log(clean_database, test_settings):
    created = _firing_alert(clean_database, url="http://127.0.0.1:9/nothing-listens-here")
    evaluate_all(clean_database, at=T0)
    [report] = deliver_due(clean_database, test_settings, now=T0, policy=POLICY)
    assert not report.outcome.delivered and report.outcome.status_code is None
    assert "ConnectError" in report.outcome.error
    with clean_database.connect() as connection:
        [delivery], _ = webhooks.endpoint_deliveries(connection, created.endpoint.endpoint_id)
    assert delivery.status == "pending" and delivery.log[0].error == report.outcome.error


def test_a_deleted_endpoint_is_not_called_again(clean_database, receiver, test_settings):
    created = _firing_alert(clean_database, url=receiver.url)
    evaluate_all(clean_database, at=T0)
    with clean_database.begin() as connection:
        webhooks.archive_endpoint(connection, SYSTEM, created.endpoint.endpoint_id)
    [report] = deliver_due(clean_database, test_settings, now=T0)
    assert report.next_attempt_at is None and "deleted" in report.outcome.error
    assert receiver.received == []


def test_alert_email_goes_through_smtp_when_configured(clean_database, test_settings):
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    received = []

    class Collect(Message):
        def handle_message(self, message):
            received.append(message)

    with socket.socket() as probe:  # a free port (aiosmtpd checks it can connect to it)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Collect(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings = test_settings.model_copy(
            update={
                "smtp_host": "127.0.0.1",
                "smtp_port": port,
                "smtp_sender": "alerts@coalition.test",
                "alert_email_to": ["ops@coalition.test", "cfo@coalition.test"],
            }
        )
        _firing_alert(clean_database)
        evaluate_all(clean_database, at=T0, email_min_severity=Severity.CRITICAL)
        [report] = deliver_due(clean_database, settings, now=T0)
    finally:
        controller.stop()
    assert report.channel == "email" and report.outcome.delivered
    [message] = received
    assert message["Subject"] == "[Coalition critical] FIRING: Any purchase (network)"
    assert message["To"] == "ops@coalition.test, cfo@coalition.test"
    assert "Value: 1; threshold: gt 0.0" in message.get_payload()


def test_email_to_a_server_that_is_down_is_retried(clean_database, test_settings):
    settings = test_settings.model_copy(
        update={"smtp_host": "127.0.0.1", "smtp_port": 9, "alert_email_to": ["ops@x.test"]}
    )
    _firing_alert(clean_database)
    evaluate_all(clean_database, at=T0, email_min_severity=Severity.INFO)
    [report] = deliver_due(clean_database, settings, now=T0, policy=POLICY)
    assert not report.outcome.delivered and report.next_attempt_at is not None
