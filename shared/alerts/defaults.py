"""The default rule set of a new network (`coalition alerts install-defaults`).

Tuned on seeded networks (docs/alerts.md, "Default rules"): over the whole seeded history
after its first four months they fire on the seed's injected incidents (a partner's feed
stopping, a redemption surge, a churn spike) and on nothing else, on several seeds, and
stay quiet on the same network without incidents. The thresholds are relative (ratios to
a week before, shares of members), so they carry over to networks of other sizes; below a
few thousand members sampling noise in the churn rule grows past its margin.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import timedelta

from sqlalchemy import Connection, select

from shared.access import Principal
from shared.alerts.definitions import create_rule
from shared.alerts.rules import Comparator, NoDataPolicy, Severity
from shared.tables import alert_rules

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class DefaultRule:
    name: str
    description: str
    metric: str
    scope: str
    comparator: Comparator
    threshold: float
    recovery_threshold: float | None
    window: timedelta
    evaluate_every: timedelta
    severity: Severity
    baseline_offset: timedelta | None = None
    min_baseline: float | None = None
    pending_evaluations: int = 1
    recovery_evaluations: int = 1
    no_data: NoDataPolicy = NoDataPolicy.KEEP
    owner: str = "HQ operations"
    enabled: bool = True


DEFAULT_RULES = (
    DefaultRule(
        name="Partner feed silent",
        description=(
            "A partner's purchases over three days fell below 20% of the same three days a "
            "week before: its POS or e-commerce integration has most likely stopped sending. "
            "Only partners with at least 30 purchases in the week-before window are judged "
            "(a drop from 3 to 0 is noise). Resolves at half the week-before level."
        ),
        metric="purchases",
        scope="merchant",
        comparator=Comparator.LT,
        threshold=0.2,
        recovery_threshold=0.5,
        window=3 * DAY,
        baseline_offset=7 * DAY,
        min_baseline=30,
        evaluate_every=HOUR,
        pending_evaluations=3,
        severity=Severity.CRITICAL,
        owner="HQ partner integrations",
    ),
    DefaultRule(
        name="Redemption surge",
        description=(
            "More than 4 times as many redemptions over three days as in the same three days "
            "a week before (seeded networks never exceed 3.3): a promotion gone wrong, "
            "redemption made too cheap at a partner, or abuse. Counted in redemptions, not "
            "points, so one member spending a large balance does not trip it; judged once "
            "the week before had 10 redemptions."
        ),
        metric="redemptions",
        scope="network",
        comparator=Comparator.GT,
        threshold=4.0,
        recovery_threshold=2.0,
        window=3 * DAY,
        baseline_offset=7 * DAY,
        min_baseline=10,
        evaluate_every=HOUR,
        pending_evaluations=3,
        severity=Severity.WARNING,
        owner="HQ finance",
    ),
    DefaultRule(
        name="Points liability falling",
        description=(
            "The points members hold fell by more than 3% in a week (seeded networks never "
            "below -1.6%): redemptions far above issuance, as a growing network's liability "
            "rises or holds. Resolves above -1%."
        ),
        metric="liability_growth",
        scope="network",
        comparator=Comparator.LT,
        threshold=-0.03,
        recovery_threshold=-0.01,
        window=7 * DAY,
        evaluate_every=DAY,
        severity=Severity.WARNING,
        owner="HQ finance",
    ),
    DefaultRule(
        name="Points liability jumping",
        description=(
            "The points members hold grew by more than 25% in a week (a young network's "
            "busiest weeks stay under 15%): points issued far beyond purchases, such as a "
            "misconfigured campaign or a partner's earn rate typed wrong."
        ),
        metric="liability_growth",
        scope="network",
        comparator=Comparator.GT,
        threshold=0.25,
        recovery_threshold=0.15,
        window=7 * DAY,
        evaluate_every=DAY,
        severity=Severity.INFO,
        owner="HQ finance",
    ),
    DefaultRule(
        name="Regular members lapsing",
        description=(
            "Of the members with 3 or more purchases in the 28 days before the last 28, "
            "more than 31.5% made none in the last 28 (normally 17% to 25%, up to 32% on "
            "single days of a young network): regulars are leaving the network. Checked "
            "daily; must hold three days running. Resolves below 29%."
        ),
        metric="regular_lapse_rate",
        scope="network",
        comparator=Comparator.GT,
        threshold=0.315,
        recovery_threshold=0.29,
        window=28 * DAY,
        evaluate_every=DAY,
        pending_evaluations=3,
        severity=Severity.WARNING,
        owner="HQ marketing",
    ),
    DefaultRule(
        name="Earn velocity",
        description=(
            "One member made more than 6 purchases within an hour (members of the seeded "
            "networks never exceed 3): a card shared or stolen, or a till replaying "
            "transactions."
        ),
        metric="earn_velocity",
        scope="network",
        comparator=Comparator.GT,
        threshold=6,
        recovery_threshold=None,
        window=HOUR,
        evaluate_every=HOUR,
        severity=Severity.CRITICAL,
        owner="HQ fraud",
    ),
    DefaultRule(
        name="Settlement imbalance",
        description=(
            "A statement of a settlement period closed in the last 35 days does not "
            "reconcile with the ledger (its net is not the sum of its lines, or its points "
            "are not the ledger's). Closed statements never change: finance corrects in a "
            "later period; the alert clears when the period leaves the window."
        ),
        metric="settlement_imbalance",
        scope="network",
        comparator=Comparator.GT,
        threshold=0,
        recovery_threshold=None,
        window=35 * DAY,
        evaluate_every=HOUR,
        severity=Severity.CRITICAL,
        owner="HQ finance",
    ),
)


def definition(rule: DefaultRule) -> dict:
    return {field.name: getattr(rule, field.name) for field in fields(DefaultRule)}


def install_defaults(connection: Connection, actor: Principal) -> list[str]:
    """Create the default rules a network does not have yet (by name, archived ones
    included: a deleted default stays deleted). Returns the names created."""
    existing = set(connection.execute(select(alert_rules.c.name)).scalars())
    created = []
    for rule in DEFAULT_RULES:
        if rule.name not in existing:
            create_rule(connection, actor, **definition(rule))
            created.append(rule.name)
    return created
