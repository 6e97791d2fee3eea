"""Alerts for HQ: rules (admins write, analysts read), current alerts, their history,
backtests, webhook endpoints and their delivery log.

The services are sync functions shared with the dashboard; each handler makes one call
through `run_sync` on the request's transaction."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime
from typing import Annotated

from litestar import Controller, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from api.auth import hq_admin, hq_reader
from api.dependencies import Caller, Config, Transaction
from api.problems import problem_responses
from api.schemas.alerts import (
    AlertEventOut,
    AlertEventPage,
    AlertOut,
    AlertRuleIn,
    AlertRuleOut,
    AlertRuleUpdate,
    BacktestOut,
    DeliveryPage,
    State,
    WebhookIn,
    WebhookOut,
    WebhookSecretOut,
    WebhookUpdate,
)
from api.schemas.common import Limit, Offset
from api.wire import changes_of, to_wire
from shared.alerts import backtest, definitions, reads, webhooks
from shared.alerts.rules import State as AlertState

BacktestDays = Annotated[int, QueryParameter(ge=1, le=backtest.MAX_DAYS)]
_NAME_TAKEN = {409: ["conflict"]}


class AlertRuleController(Controller):
    path = "/v1/hq/alerts/rules"
    tags = ["Alerts"]
    guards = [hq_reader]

    @post(
        guards=[hq_admin],
        summary="Create an alert rule",
        responses=problem_responses(400, 401, 403, 409, 413, 422, slugs=_NAME_TAKEN),
    )
    async def create_rule(
        self, data: JSONBody[AlertRuleIn], transaction: Transaction, principal: Caller
    ) -> AlertRuleOut:
        rule = await transaction.run_sync(definitions.create_rule, principal, **changes_of(data))
        return to_wire(rule, AlertRuleOut)

    @get(summary="List alert rules", responses=problem_responses(401, 403))
    async def list_rules(self, transaction: Transaction) -> list[AlertRuleOut]:
        rules = await transaction.run_sync(definitions.list_rules)
        return [to_wire(rule, AlertRuleOut) for rule in rules]

    @get(
        "/{rule_id:uuid}", summary="Read an alert rule", responses=problem_responses(401, 403, 404)
    )
    async def get_rule(
        self, rule_id: FromPath[uuid.UUID], transaction: Transaction
    ) -> AlertRuleOut:
        return to_wire(await transaction.run_sync(definitions.get_rule, rule_id), AlertRuleOut)

    @patch(
        "/{rule_id:uuid}",
        guards=[hq_admin],
        summary="Change an alert rule (the fields present only)",
        responses=problem_responses(400, 401, 403, 404, 409, 413, 422, slugs=_NAME_TAKEN),
    )
    async def update_rule(
        self,
        rule_id: FromPath[uuid.UUID],
        data: JSONBody[AlertRuleUpdate],
        transaction: Transaction,
        principal: Caller,
    ) -> AlertRuleOut:
        rule = await transaction.run_sync(
            definitions.update_rule, principal, rule_id, changes_of(data)
        )
        return to_wire(rule, AlertRuleOut)

    @delete(
        "/{rule_id:uuid}",
        guards=[hq_admin],
        summary="Delete an alert rule (archived: its history stays readable)",
        responses=problem_responses(401, 403, 404),
    )
    async def delete_rule(
        self, rule_id: FromPath[uuid.UUID], transaction: Transaction, principal: Caller
    ) -> None:
        await transaction.run_sync(definitions.archive_rule, principal, rule_id)

    @get(
        "/{rule_id:uuid}/backtest",
        summary="When the rule would have fired over the last N days",
        description=(
            "The rule's value at every tick (its period, at least an hour) replayed through "
            "the state machine from normal, over the `days` days up to `end` (default: now). "
            "`series=false` leaves out the values and keeps the episodes (fired / resolved)."
        ),
        responses=problem_responses(400, 401, 403, 404),
    )
    async def backtest_rule(
        self,
        rule_id: FromPath[uuid.UUID],
        transaction: Transaction,
        settings: Config,
        days: FromQuery[BacktestDays] = 90,
        end: FromQuery[datetime | None] = None,
        series: FromQuery[bool] = True,
    ) -> BacktestOut:
        result = await transaction.run_sync(
            backtest.backtest, rule_id, days=days, tiers=settings.program.tier_names, end=end
        )
        return to_wire(result if series else replace(result, series=[]), BacktestOut)


class AlertController(Controller):
    path = "/v1/hq/alerts"
    tags = ["Alerts"]
    guards = [hq_reader]

    @get(
        summary="Current alerts: firing first, then no data, recovering and pending",
        description="`state` filters (repeatable); `state=normal` lists the quiet instances.",
        responses=problem_responses(400, 401, 403),
    )
    async def current_alerts(
        self,
        transaction: Transaction,
        # `state` is Litestar's reserved name for application state: the query alias.
        states: Annotated[list[State] | None, QueryParameter(name="state")] = None,
    ) -> list[AlertOut]:
        wanted = [AlertState(value) for value in states] if states else reads.ACTIVE_STATES
        alerts = await transaction.run_sync(reads.current_alerts, wanted)
        return [to_wire(alert, AlertOut) for alert in alerts]

    @get(
        "/events",
        summary="Alert history: state changes, newest first",
        responses=problem_responses(400, 401, 403),
    )
    async def list_events(
        self,
        transaction: Transaction,
        rule_id: FromQuery[uuid.UUID | None] = None,
        scope_key: FromQuery[str | None] = None,
        since: FromQuery[datetime | None] = None,
        notified_only: FromQuery[bool] = False,
        limit: FromQuery[Limit] = 100,
        offset: FromQuery[Offset] = 0,
    ) -> AlertEventPage:
        items, total = await transaction.run_sync(
            reads.list_events,
            rule_id=rule_id,
            scope_key=scope_key,
            since=since,
            notified_only=notified_only,
            limit=limit,
            offset=offset,
        )
        return AlertEventPage(
            items=[to_wire(item, AlertEventOut) for item in items],
            total=total,
            limit=limit,
            offset=offset,
        )


class WebhookController(Controller):
    path = "/v1/hq/alerts/webhooks"
    tags = ["Alerts"]
    guards = [hq_reader]

    @post(
        guards=[hq_admin],
        summary="Subscribe a webhook endpoint to alerts; the signing secret is shown once",
        responses=problem_responses(400, 401, 403, 413, 422),
    )
    async def create_webhook(
        self, data: JSONBody[WebhookIn], transaction: Transaction, principal: Caller
    ) -> WebhookSecretOut:
        created = await transaction.run_sync(
            webhooks.create_endpoint, principal, **changes_of(data)
        )
        return to_wire(created, WebhookSecretOut)

    @get(summary="List webhook endpoints (without secrets)", responses=problem_responses(401, 403))
    async def list_webhooks(self, transaction: Transaction) -> list[WebhookOut]:
        found = await transaction.run_sync(webhooks.list_endpoints)
        return [to_wire(endpoint, WebhookOut) for endpoint in found]

    @get(
        "/{endpoint_id:uuid}",
        summary="Read a webhook endpoint",
        responses=problem_responses(401, 403, 404),
    )
    async def get_webhook(
        self, endpoint_id: FromPath[uuid.UUID], transaction: Transaction
    ) -> WebhookOut:
        return to_wire(await transaction.run_sync(webhooks.get_endpoint, endpoint_id), WebhookOut)

    @patch(
        "/{endpoint_id:uuid}",
        guards=[hq_admin],
        summary="Change a webhook endpoint",
        responses=problem_responses(400, 401, 403, 404, 413, 422),
    )
    async def update_webhook(
        self,
        endpoint_id: FromPath[uuid.UUID],
        data: JSONBody[WebhookUpdate],
        transaction: Transaction,
        principal: Caller,
    ) -> WebhookOut:
        endpoint = await transaction.run_sync(
            webhooks.update_endpoint, principal, endpoint_id, changes_of(data)
        )
        return to_wire(endpoint, WebhookOut)

    @post(
        "/{endpoint_id:uuid}/rotate-secret",
        guards=[hq_admin],
        status_code=200,
        summary="Replace the signing secret (shown once); later deliveries use the new one",
        responses=problem_responses(401, 403, 404),
    )
    async def rotate_secret(
        self, endpoint_id: FromPath[uuid.UUID], transaction: Transaction, principal: Caller
    ) -> WebhookSecretOut:
        rotated = await transaction.run_sync(webhooks.rotate_secret, principal, endpoint_id)
        return to_wire(rotated, WebhookSecretOut)

    @delete(
        "/{endpoint_id:uuid}",
        guards=[hq_admin],
        summary="Delete a webhook endpoint (its delivery log stays)",
        responses=problem_responses(401, 403, 404),
    )
    async def delete_webhook(
        self, endpoint_id: FromPath[uuid.UUID], transaction: Transaction, principal: Caller
    ) -> None:
        await transaction.run_sync(webhooks.archive_endpoint, principal, endpoint_id)

    @get(
        "/{endpoint_id:uuid}/deliveries",
        summary="The endpoint's delivery log: every notification with each attempt",
        responses=problem_responses(400, 401, 403, 404),
    )
    async def list_deliveries(
        self,
        endpoint_id: FromPath[uuid.UUID],
        transaction: Transaction,
        limit: FromQuery[Limit] = 100,
        offset: FromQuery[Offset] = 0,
    ) -> DeliveryPage:
        items, total = await transaction.run_sync(
            webhooks.endpoint_deliveries, endpoint_id, limit=limit, offset=offset
        )
        return to_wire(
            {"items": items, "total": total, "limit": limit, "offset": offset}, DeliveryPage
        )
