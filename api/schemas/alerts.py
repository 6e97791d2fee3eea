from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Literal

from msgspec import UNSET, Meta, UnsetType

from api.schemas.common import Name, WireStruct
from shared.alerts.metrics import METRICS

MetricName = Annotated[
    Literal[tuple(METRICS)],  # type: ignore[valid-type]
    Meta(description="A metric of the registry (docs/alerts.md, Metrics)."),
]
Scope = Annotated[
    Literal["network", "merchant", "tier"],
    Meta(description="network: one alert; merchant: one per active merchant; tier: one per tier."),
]
Comparator = Annotated[
    Literal["gt", "gte", "lt", "lte"],
    Meta(description="The alert breaches when `value <comparator> threshold`."),
]
Severity = Literal["info", "warning", "critical"]
NoData = Annotated[
    Literal["keep", "ok", "breach", "alert"],
    Meta(
        description=(
            "When the value is no data: keep the state as it is; count it as ok (recovered) "
            "or as a breach; or alert (a no_data state of its own, notified)."
        )
    ),
]
State = Literal["normal", "pending", "firing", "recovering", "no_data"]
Description = Annotated[str, Meta(max_length=2000)]
Owner = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=200,
        pattern=r"^[^\x00-\x1f\x7f]*$",
        description="Who answers the alert (a person, team or address).",
        examples=["HQ finance"],
    ),
]
Threshold = Annotated[float, Meta(ge=-1e12, le=1e12)]
Duration = Annotated[
    timedelta,
    Meta(description="An ISO 8601 duration, e.g. PT1H, P3D.", examples=["P3D"]),
]
Evaluations = Annotated[int, Meta(ge=1, le=1000)]
Url = Annotated[
    str,
    Meta(
        min_length=8,
        max_length=2000,
        pattern=r"^https?://",
        examples=["https://ops.example.com/hooks/coalition"],
    ),
]


class AlertRuleIn(WireStruct):
    """A rule: the metric over `window` for each key of `scope`, optionally as a ratio to the
    same window `baselineOffset` earlier, compared with `threshold` every `evaluateEvery`."""

    name: Name
    metric: MetricName
    scope: Scope
    comparator: Comparator
    threshold: Threshold
    window: Duration
    severity: Severity
    owner: Owner
    description: Description = ""
    recovery_threshold: Threshold | None = None
    evaluate_every: Duration = timedelta(minutes=5)
    baseline_offset: Duration | None = None
    min_baseline: Threshold | None = None
    pending_evaluations: Evaluations = 1
    recovery_evaluations: Evaluations = 1
    no_data: NoData = "keep"
    enabled: bool = True


class AlertRuleUpdate(WireStruct):
    """Only the fields present change; changing the metric or scope starts the rule's
    alerts afresh."""

    name: Name | UnsetType = UNSET
    metric: MetricName | UnsetType = UNSET
    scope: Scope | UnsetType = UNSET
    comparator: Comparator | UnsetType = UNSET
    threshold: Threshold | UnsetType = UNSET
    window: Duration | UnsetType = UNSET
    severity: Severity | UnsetType = UNSET
    owner: Owner | UnsetType = UNSET
    description: Description | UnsetType = UNSET
    recovery_threshold: Threshold | None | UnsetType = UNSET
    evaluate_every: Duration | UnsetType = UNSET
    baseline_offset: Duration | None | UnsetType = UNSET
    min_baseline: Threshold | None | UnsetType = UNSET
    pending_evaluations: Evaluations | UnsetType = UNSET
    recovery_evaluations: Evaluations | UnsetType = UNSET
    no_data: NoData | UnsetType = UNSET
    enabled: bool | UnsetType = UNSET


class AlertRuleOut(WireStruct):
    rule_id: uuid.UUID
    name: str
    description: str
    metric: MetricName
    scope: Scope
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
    no_data: NoData
    owner: str
    enabled: bool
    created_at: datetime
    updated_at: datetime


class AlertOut(WireStruct):
    rule_id: uuid.UUID
    rule_name: str
    metric: MetricName
    scope: Scope
    scope_key: Annotated[str, Meta(description="'network', a merchantId or a tier name.")]
    scope_label: str
    severity: Severity
    owner: str
    comparator: Comparator
    threshold: float
    state: State
    value: Annotated[float | None, Meta(description="The last value seen; null: no data.")]
    since: datetime
    evaluated_at: datetime


class AlertEventOut(WireStruct):
    event_id: uuid.UUID
    rule_id: uuid.UUID
    rule_name: str
    scope_key: str
    scope_label: str
    tick: Annotated[datetime, Meta(description="The evaluation time of the change.")]
    from_state: State
    to_state: State
    value: float | None
    threshold: float
    severity: Severity
    notified: Annotated[bool, Meta(description="Sent to webhooks and e-mail.")]


class AlertEventPage(WireStruct):
    items: list[AlertEventOut]
    total: int
    limit: int
    offset: int


class BacktestPointOut(WireStruct):
    tick: datetime
    value: float | None
    state: State


class BacktestSeriesOut(WireStruct):
    scope_key: str
    scope_label: str
    points: list[BacktestPointOut]


class EpisodeOut(WireStruct):
    scope_key: str
    scope_label: str
    fired_at: datetime
    resolved_at: Annotated[datetime | None, Meta(description="null: still firing at the end.")]
    worst_value: float | None


class BacktestOut(WireStruct):
    """When the rule would have fired and resolved: its value at every tick, replayed
    through the state machine from normal."""

    rule_id: uuid.UUID
    start: datetime
    end: datetime
    step: Annotated[timedelta, Meta(description="The rule's period, at least an hour.")]
    episodes: list[EpisodeOut]
    series: list[BacktestSeriesOut]


class WebhookIn(WireStruct):
    url: Url
    description: Description = ""
    min_severity: Annotated[
        Severity, Meta(description="Alerts of a lower severity are not sent here.")
    ] = "warning"
    enabled: bool = True


class WebhookUpdate(WireStruct):
    url: Url | UnsetType = UNSET
    description: Description | UnsetType = UNSET
    min_severity: Severity | UnsetType = UNSET
    enabled: bool | UnsetType = UNSET


class WebhookOut(WireStruct):
    endpoint_id: uuid.UUID
    url: str
    description: str
    min_severity: Severity
    enabled: bool
    created_at: datetime
    updated_at: datetime


class WebhookSecretOut(WireStruct):
    """The signing secret is shown here only: store it now."""

    endpoint: WebhookOut
    secret: Annotated[
        str,
        Meta(
            description=(
                "Verify X-Coalition-Signature (t=<unix>,v1=<hex HMAC-SHA256 of '<t>.<body>'>) "
                "with it; see docs/alerts.md."
            )
        ),
    ]


class DeliveryAttemptOut(WireStruct):
    attempt: int
    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int
    next_attempt_at: datetime | None


class DeliveryOut(WireStruct):
    delivery_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    channel: Literal["webhook", "email"]
    endpoint_id: uuid.UUID | None
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime
    log: list[DeliveryAttemptOut]


class DeliveryPage(WireStruct):
    items: list[DeliveryOut]
    total: int
    limit: int
    offset: int
