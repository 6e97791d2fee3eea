"""Live traffic: a point-of-sale load generator played against a running API over HTTP.

    coalition seed live --rate 200 --duration 20 --seed 1

Tills and web shops of a sample of active merchants serve a sample of active members.
Operations arrive as a Poisson process at `rate` per second (open loop: the next request
leaves on schedule whether or not earlier ones were answered; `concurrency` caps requests
in flight, and the report shows how late requests started when the cap was reached). Each
arrival is one HTTP request, so `rate` is the target request rate; a simulated timeout adds
its retry on top.

Operation mix (share of arrivals):

| operation | share | what the till sends |
|---|---|---|
| earn     | 60% | a purchase in the merchant's currency, amount log-normal around the industry's typical basket; 30% itemised (2-5 line items in the industry's categories, sometimes tobacco, lottery or gift cards, which earn nothing); 60% name one of the merchant's stores; 30% carry the till's own `reference` |
| balance  | 14% | `GET /v1/members/{id}/balance` |
| redeem   |  9% | by a member who had at least the minimum redemption when sampled: points as tender (75%: 20-80% of the member's balance as last seen, else 1-3 times the minimum) or points + cash (25%: a basket paid with points first) |
| hold     |  6% | an e-commerce checkout reserving points, member and points chosen like a tender |
| capture  |  5% | of the oldest open hold: in full (70%) or in part |
| void     |  1% | of the oldest open hold (a cancelled checkout; holds nobody follows up expire after their TTL) |
| refund   |  4% | of an earlier earn at the same merchant: in full (40%) or one item's worth; refunds of one purchase never add up to more than it |
| reversal |  1% | of an earlier redemption or capture, once |

Members are referred to by card (70%), phone, e-mail or member id, as far as they have
them. Each member shops at a rate drawn from an exponential distribution (the Gamma
heterogeneity of BG/NBD with shape 1: the busiest of 500 members shops some five times
as often as the average one), and merchants are Zipf-like (the largest of ten takes about a
fifth of the traffic). With a small sample of members, the same member is written
concurrently now and then, as at a real network's peak.

Capture, void, refund and reversal wait for the operation they follow up; when that one was
refused, they are skipped. With no open hold, refundable earn or reversible redemption
planned yet, the arrival is an earn instead.

The same seed gives the same sequence of intended operations (kind, merchant, member,
amounts, shares, idempotency keys, simulated timeouts: `plan_operations`). Amounts that
depend on the network's state (a share of a balance, a part of a hold) are resolved when
the request leaves.

Exactly once: every write carries an `Idempotency-Key` (`live-<run tag>-<uuid from the
seeded RNG>`; the run tag keeps two runs with one seed apart). With probability
`timeout_probability` a write "times out": the client retries it with the same key and the
same bytes, either after the answer it pretends to have lost or while the first attempt is
still in flight. When both attempts succeed, their status and body must be identical and
exactly one of them must be the replay (`Idempotent-Replayed: true`); anything else is a
replay mismatch. A refused first attempt is not stored by the API, so its retry runs anew.

Outcomes and errors: a business refusal the till must expect (insufficient points, below
the minimum redemption, a hold that expired, a member or merchant suspended meanwhile) is
an outcome. Errors are any 5xx, any transport error (including the client's own timeout),
any other 4xx, and any replay mismatch; `run_live` and `live_command` exit 1 when there
is one.

Credentials: `prepare_credentials` picks the merchants and members straight from the
product database and issues each merchant an API key labelled "seed-live" (keys are stored
hashed, so a run cannot reuse an older one); `retire_credentials` revokes them afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import random
import secrets
import time
import traceback
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import httpx
import numpy as np
from rich import box
from rich.console import Console
from rich.table import Table
from sqlalchemy import Text, cast, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from seed import catalogue
from shared import api_keys
from shared.access import SYSTEM, Role
from shared.program import CURRENCY_EXPONENTS
from shared.tables import member_balances, member_identifiers, members, merchants, stores

LIVE_KEY_LABEL = "seed-live"


# --- Configuration and credentials --------------------------------------------------------


@dataclass(frozen=True)
class LiveConfig:
    base_url: str = "http://127.0.0.1:8000"
    rate: float = 50.0  # target requests per second (Poisson arrivals)
    duration: float = 30.0  # seconds during which requests are sent
    seed: int = 1
    timeout_probability: float = 0.02  # share of writes whose answer the client "loses"
    concurrency: int = 64  # requests in flight at most
    # The program's rules as the API applies them (COALITION_PROGRAM): redemptions happen
    # only at merchants transacting in the points currency, never below the minimum.
    points_currency: str = "USD"
    min_redemption_points: int = 100
    request_timeout: float = 30.0  # seconds; a real timeout is a transport error
    run_tag: str = field(default_factory=lambda: secrets.token_hex(4))

    def __post_init__(self) -> None:
        if not self.rate > 0 or not self.duration > 0:
            raise ValueError("rate and duration are positive")
        if not 0 <= self.timeout_probability <= 1:
            raise ValueError("timeout_probability is between 0 and 1")
        if self.concurrency < 1:
            raise ValueError("concurrency is at least 1")


@dataclass(frozen=True)
class LiveMerchant:
    merchant_id: uuid.UUID
    name: str
    industry: str
    currency: str
    store_ids: tuple[uuid.UUID, ...]
    key_id: uuid.UUID
    api_key: str = field(repr=False)


@dataclass(frozen=True)
class LiveMember:
    member_id: uuid.UUID
    card: str | None
    phone: str | None
    email: str | None
    points: int = 0  # the stored balance when sampled


@dataclass(frozen=True)
class LiveCredentials:
    merchants: tuple[LiveMerchant, ...]
    members: tuple[LiveMember, ...]


async def prepare_credentials(
    connection: AsyncConnection, *, merchants_limit: int, members_limit: int, seed: int
) -> LiveCredentials:
    """Sample active merchants and members (the same ones for the same seed on unchanged
    data) and issue each merchant a fresh "seed-live" key. Commit before playing."""
    salt = f":{seed}"
    merchant_rows = (
        await connection.execute(
            select(
                merchants.c.merchant_id,
                merchants.c.name,
                merchants.c.industry,
                merchants.c.currency,
            )
            .where(merchants.c.status == "active")
            .order_by(func.md5(cast(merchants.c.merchant_id, Text) + salt))
            .limit(merchants_limit)
        )
    ).all()
    merchant_ids = [row.merchant_id for row in merchant_rows]
    stores_by_merchant: dict[uuid.UUID, list[uuid.UUID]] = {}
    for row in await connection.execute(
        select(stores.c.merchant_id, stores.c.store_id)
        .where(stores.c.merchant_id.in_(merchant_ids), stores.c.status == "open")
        .order_by(stores.c.merchant_id, stores.c.code)
    ):
        stores_by_merchant.setdefault(row.merchant_id, []).append(row.store_id)

    points = {
        row.member_id: row.balance
        for row in await connection.execute(
            select(members.c.member_id, member_balances.c.balance)
            .join(member_balances, member_balances.c.member_id == members.c.member_id)
            .where(members.c.status == "active")
            .order_by(func.md5(cast(members.c.member_id, Text) + salt))
            .limit(members_limit)
        )
    }
    member_ids = list(points)
    identifiers: dict[uuid.UUID, dict[str, str]] = {member_id: {} for member_id in member_ids}
    for row in await connection.execute(
        select(
            member_identifiers.c.member_id, member_identifiers.c.kind, member_identifiers.c.value
        )
        .where(
            member_identifiers.c.member_id.in_(member_ids),
            member_identifiers.c.kind.in_(("card", "phone", "email")),
        )
        # The newest identifier of a kind wins: a replacement card is the one in the wallet.
        .order_by(member_identifiers.c.added_at, member_identifiers.c.identifier_id)
    ):
        identifiers[row.member_id][row.kind] = row.value

    live_merchants = []
    for row in merchant_rows:
        issued = await api_keys.issue_key(
            connection,
            SYSTEM,
            role=Role.MERCHANT,
            label=LIVE_KEY_LABEL,
            merchant_id=row.merchant_id,
        )
        live_merchants.append(
            LiveMerchant(
                merchant_id=row.merchant_id,
                name=row.name,
                industry=row.industry,
                currency=row.currency,
                store_ids=tuple(stores_by_merchant.get(row.merchant_id, ())),
                key_id=issued.key.key_id,
                api_key=issued.secret,
            )
        )
    return LiveCredentials(
        merchants=tuple(live_merchants),
        members=tuple(
            LiveMember(
                member_id=member_id,
                card=identifiers[member_id].get("card"),
                phone=identifiers[member_id].get("phone"),
                email=identifiers[member_id].get("email"),
                points=points[member_id],
            )
            for member_id in member_ids
        ),
    )


async def retire_credentials(connection: AsyncConnection, credentials: LiveCredentials) -> None:
    """Revoke the run's keys: they were only ever meant for this run."""
    for merchant in credentials.merchants:
        await api_keys.revoke_key(connection, SYSTEM, merchant.key_id)


# --- The plan: what the tills intend to do, from the seed alone ------------------------------


class Operation(StrEnum):
    EARN = "earn"
    BALANCE = "balance"
    REDEEM = "redeem"
    HOLD = "hold"
    CAPTURE = "capture"
    VOID = "void"
    REFUND = "refund"
    REVERSAL = "reversal"


# Points are burnt less often than earned, as in any points economy: with redemptions as
# frequent as purchases, members run dry within minutes and the mix turns into refusals.
MIX: dict[Operation, int] = {
    Operation.EARN: 60,
    Operation.BALANCE: 14,
    Operation.REDEEM: 9,
    Operation.HOLD: 6,
    Operation.CAPTURE: 5,
    Operation.VOID: 1,
    Operation.REFUND: 4,
    Operation.REVERSAL: 1,
}
WRITES = frozenset(MIX) - {Operation.BALANCE}


class Retry(StrEnum):
    AFTER_RESPONSE = "after_response"  # the answer was lost on its way back
    WHILE_IN_FLIGHT = "while_in_flight"  # the client gave up before the server answered


# Baskets of industries the catalogue does not know (merchants created by hand), in major
# units: the median of a log-normal and its spread. Known industries use the catalogue's.
OTHER_INDUSTRY_BASKET = (30.0, 0.7)
# Rough major units per US dollar, so a basket in yen looks like one.
CURRENCY_SCALE = {"JPY": 150.0, "KRW": 1300.0, "CNY": 7.0, "INR": 83.0, "SEK": 10.0, "NOK": 10.0}
LINE_ITEM_CATEGORIES = {
    "grocery": ("groceries", "produce", "bakery", "household", "alcohol", "tobacco", "lottery"),
    "coffee": ("coffee", "bakery", "merchandise", "gift_card"),
    "fuel": ("fuel", "car_wash", "snacks", "tobacco", "lottery"),
    "cinema": ("tickets", "concessions", "gift_card"),
    "pharmacy": ("prescriptions", "health", "beauty"),
    "fashion": ("clothing", "shoes", "accessories", "gift_card"),
}
DEFAULT_CATEGORIES = ("general", "household", "gift_card")
MEMBER_REFERENCE_SHARES = (("card", 70), ("phone", 10), ("email", 10), ("member_id", 10))
# How far back a follow-up may reach; also how long the player keeps results for them.
DEPENDENCY_WINDOW = 20_000
FOLLOW_UP_POOL = 1_000  # open holds, refundable earns and reversible redemptions kept


@dataclass(frozen=True, slots=True)
class PlannedOperation:
    step: int
    at: float  # seconds after the start
    kind: Operation
    merchant: int  # index into credentials.merchants
    member: int | None  # index into credentials.members
    member_reference: str | None = None  # card, phone, email or member_id
    store: int | None = None  # index into the merchant's stores
    amount_minor: int | None = None  # earn, points + cash, refund
    line_items: tuple[tuple[int, str], ...] = ()
    reference: str | None = None  # the till's own transaction id, in the body
    share: float = 1.0  # of a balance (redeem, hold) or of a hold (partial capture)
    fallback_points: int = 0  # redeem / hold when no balance of the member was seen
    points_and_cash: bool = False
    ttl_seconds: int | None = None
    depends_on: int | None = None  # the step this one follows up
    idempotency_key: str | None = None
    retry: Retry | None = None
    retry_delay: float = 0.0


def _zipf_weights(count: int, exponent: float) -> list[float]:
    """Cumulative weights 1, 1/2^s, 1/3^s..., for random.choices."""
    return list(itertools.accumulate(1.0 / (rank + 1) ** exponent for rank in range(count)))


def basket_minor(rng: random.Random, industry: str, currency: str) -> int:
    known = catalogue.BY_NAME.get(industry)
    median, sigma = (known.basket_median, known.basket_sigma) if known else OTHER_INDUSTRY_BASKET
    typical = median * CURRENCY_SCALE.get(currency, 1.0)
    major = min(max(rng.lognormvariate(math.log(typical), sigma), 0.5), typical * 40)
    return max(1, round(major * 10 ** CURRENCY_EXPONENTS.get(currency, 2)))


def _line_items(
    rng: random.Random, industry: str, amount_minor: int
) -> tuple[tuple[int, str], ...]:
    categories = LINE_ITEM_CATEGORIES.get(industry, DEFAULT_CATEGORIES)
    count = min(rng.randint(2, 5), amount_minor)
    cuts = sorted(rng.sample(range(1, amount_minor), count - 1)) if count > 1 else []
    bounds = [0, *cuts, amount_minor]
    return tuple(
        (bounds[index + 1] - bounds[index], rng.choice(categories)) for index in range(count)
    )


def plan_operations(config: LiveConfig, credentials: LiveCredentials) -> Iterator[PlannedOperation]:
    """The run's operations in order, from the seed and the credentials' shape alone."""
    rng = random.Random(config.seed)
    kinds, kind_weights = list(MIX), list(itertools.accumulate(MIX.values()))
    merchant_weights = _zipf_weights(len(credentials.merchants), 0.5)
    activity = [rng.expovariate(1.0) for _ in credentials.members]
    member_weights = list(itertools.accumulate(activity))
    # Points are spent by members who have them (as sampled), whoever they are otherwise.
    spenders = [
        index
        for index, member in enumerate(credentials.members)
        if member.points >= config.min_redemption_points
    ] or list(range(len(credentials.members)))
    spender_weights = list(itertools.accumulate(activity[index] for index in spenders))
    spending_merchants = [
        index
        for index, merchant in enumerate(credentials.merchants)
        if merchant.currency == config.points_currency
    ]
    spending_weights = _zipf_weights(len(spending_merchants), 0.5)
    # Follow-up candidates, oldest first: [step, merchant, member(, refundable amount)].
    # Bounded, so a follow-up never reaches further back than DEPENDENCY_WINDOW steps.
    open_holds: deque[list[int]] = deque(maxlen=FOLLOW_UP_POOL)
    refundable: deque[list[int]] = deque(maxlen=FOLLOW_UP_POOL)
    reversible: deque[list[int]] = deque(maxlen=FOLLOW_UP_POOL)
    at, step = 0.0, 0
    while True:
        at += rng.expovariate(config.rate)
        if at >= config.duration:
            return
        for pool in (open_holds, refundable, reversible):
            while pool and pool[0][0] < step - DEPENDENCY_WINDOW:
                pool.popleft()
        kind = rng.choices(kinds, cum_weights=kind_weights)[0]
        if (
            (kind in (Operation.CAPTURE, Operation.VOID) and not open_holds)
            or (kind is Operation.REFUND and not refundable)
            or (kind is Operation.REVERSAL and not reversible)
            or (kind in (Operation.REDEEM, Operation.HOLD) and not spending_merchants)
        ):
            kind = Operation.EARN

        common: dict[str, Any] = {"step": step, "at": at, "kind": kind}
        if kind in WRITES:
            common["idempotency_key"] = (
                f"live-{config.run_tag}-{uuid.UUID(int=rng.getrandbits(128), version=4)}"
            )
            if rng.random() < config.timeout_probability:
                common["retry"] = rng.choice(list(Retry))
                common["retry_delay"] = rng.uniform(0.0, 0.02)

        if kind in (Operation.CAPTURE, Operation.VOID):
            hold_step, merchant, member = open_holds.popleft()
            partial = kind is Operation.CAPTURE and rng.random() < 0.3
            operation = PlannedOperation(
                **common,
                merchant=merchant,
                member=member,
                depends_on=hold_step,
                share=rng.uniform(0.3, 0.95) if partial else 1.0,
            )
            if kind is Operation.CAPTURE:
                reversible.append([step, merchant, member])
        elif kind is Operation.REFUND:
            index = rng.randrange(len(refundable))
            earn_step, merchant, member, remaining = refundable[index]
            amount = remaining
            if rng.random() >= 0.4:  # one item of the basket comes back
                amount = max(1, min(remaining, round(remaining * rng.uniform(0.1, 0.6))))
            if amount == remaining:
                del refundable[index]
            else:
                refundable[index][3] -= amount
            operation = PlannedOperation(
                **common,
                merchant=merchant,
                member=member,
                depends_on=earn_step,
                amount_minor=amount,
            )
        elif kind is Operation.REVERSAL:
            index = rng.randrange(len(reversible))
            target, merchant, member = reversible[index]
            del reversible[index]
            operation = PlannedOperation(
                **common, merchant=merchant, member=member, depends_on=target
            )
        else:
            if kind in (Operation.REDEEM, Operation.HOLD):
                chosen = rng.choices(range(len(spenders)), cum_weights=spender_weights)
                member = spenders[chosen[0]]
                chosen = rng.choices(range(len(spending_merchants)), cum_weights=spending_weights)
                merchant = spending_merchants[chosen[0]]
            else:
                member = rng.choices(range(len(credentials.members)), cum_weights=member_weights)[0]
                merchant = rng.choices(
                    range(len(credentials.merchants)), cum_weights=merchant_weights
                )[0]
            operation = _new_purchase_operation(rng, config, credentials, common, merchant, member)
            if kind is Operation.EARN:
                refundable.append([step, merchant, member, operation.amount_minor])
            elif kind is Operation.REDEEM:
                reversible.append([step, merchant, member])
            elif kind is Operation.HOLD:
                open_holds.append([step, merchant, member])
        yield operation
        step += 1


def _member_reference(rng: random.Random, member: LiveMember) -> str:
    choice = rng.choices(
        [kind for kind, _ in MEMBER_REFERENCE_SHARES],
        weights=[share for _, share in MEMBER_REFERENCE_SHARES],
    )[0]
    if choice != "member_id" and getattr(member, choice) is None:
        return "card" if member.card is not None else "member_id"
    return choice


def _new_purchase_operation(
    rng: random.Random,
    config: LiveConfig,
    credentials: LiveCredentials,
    common: dict[str, Any],
    merchant_index: int,
    member_index: int,
) -> PlannedOperation:
    """Earn, balance, redeem or hold: a member at a merchant's till."""
    merchant = credentials.merchants[merchant_index]
    kind: Operation = common["kind"]
    fields: dict[str, Any] = {"merchant": merchant_index, "member": member_index}
    if kind is Operation.BALANCE:
        return PlannedOperation(**common, **fields)
    fields["member_reference"] = _member_reference(rng, credentials.members[member_index])
    if merchant.store_ids and rng.random() < 0.6:
        fields["store"] = rng.randrange(len(merchant.store_ids))
    if kind is Operation.EARN:
        amount = basket_minor(rng, merchant.industry, merchant.currency)
        fields["amount_minor"] = amount
        if amount >= 2 and rng.random() < 0.3:
            fields["line_items"] = _line_items(rng, merchant.industry, amount)
        if rng.random() < 0.3:
            fields["reference"] = f"live-{config.run_tag}-{common['step']:08d}"
    elif kind is Operation.REDEEM and rng.random() < 0.25:
        fields["points_and_cash"] = True
        fields["amount_minor"] = basket_minor(rng, merchant.industry, merchant.currency)
    else:
        fields["share"] = rng.uniform(0.2, 0.8)
        fields["fallback_points"] = config.min_redemption_points * rng.choice((1, 1, 1, 2, 3))
        if kind is Operation.HOLD and rng.random() < 0.2:
            fields["ttl_seconds"] = rng.choice((300, 600, 1800))
    return PlannedOperation(**common, **fields)


# --- The report ------------------------------------------------------------------------------


# Refusals a till meets in normal business: outcomes, not errors.
EXPECTED_REFUSALS: dict[Operation, frozenset[str]] = {
    Operation.EARN: frozenset({"member-not-active", "merchant-not-active"}),
    Operation.BALANCE: frozenset(),
    Operation.REDEEM: frozenset(
        {
            "insufficient-points",
            "below-minimum-redemption",
            "member-not-active",
            "merchant-not-active",
        }
    ),
    Operation.CAPTURE: frozenset({"hold-not-active", "merchant-not-active"}),
    Operation.VOID: frozenset({"hold-not-active", "merchant-not-active"}),
    Operation.REFUND: frozenset({"member-not-active", "merchant-not-active"}),
    Operation.REVERSAL: frozenset({"member-not-active", "merchant-not-active"}),
}
EXPECTED_REFUSALS[Operation.HOLD] = EXPECTED_REFUSALS[Operation.REDEEM]  # the same checks
OK = "ok"
SKIPPED = "skipped"  # the operation it follows up was refused or failed
FAILED = "failed"  # no usable answer: an error was counted


def percentile(values: list[float], rank: float) -> float:
    """Nearest-rank percentile, a value that was measured (0 for no values)."""
    if not values:
        return 0.0
    return float(np.percentile(values, rank, method="inverted_cdf"))


@dataclass
class OperationStats:
    requests: int = 0
    retries: int = 0
    errors: int = 0  # requests that went wrong, and replays that did not match
    latencies_ms: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)  # one per operation

    @property
    def operations(self) -> int:
        return sum(self.outcomes.values())


@dataclass
class LiveReport:
    config: LiveConfig
    elapsed_seconds: float = 0.0
    planned: int = 0
    by_kind: dict[Operation, OperationStats] = field(
        default_factory=lambda: {kind: OperationStats() for kind in Operation}
    )
    statuses: Counter[str] = field(default_factory=Counter)
    replays_compared: int = 0
    errors_by_category: Counter[str] = field(default_factory=Counter)
    error_examples: list[str] = field(default_factory=list)
    start_lag_ms: list[float] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(self.errors_by_category.values())

    @property
    def replay_mismatches(self) -> int:
        return self.errors_by_category["replay mismatch"]

    @property
    def requests(self) -> int:
        return sum(stats.requests for stats in self.by_kind.values())

    @property
    def operations(self) -> int:
        return sum(stats.operations for stats in self.by_kind.values())

    @property
    def retries(self) -> int:
        return sum(stats.retries for stats in self.by_kind.values())

    @property
    def achieved_rate(self) -> float:
        return self.requests / self.elapsed_seconds if self.elapsed_seconds else 0.0

    def succeeded(self, kind: Operation) -> int:
        return self.by_kind[kind].outcomes[OK]

    def latencies_ms(self, kind: Operation | None = None) -> list[float]:
        if kind is not None:
            return self.by_kind[kind].latencies_ms
        return [value for stats in self.by_kind.values() for value in stats.latencies_ms]

    def record_error(self, kind: Operation, category: str, example: str) -> None:
        self.by_kind[kind].errors += 1
        self.errors_by_category[category] += 1
        if len(self.error_examples) < 20:
            self.error_examples.append(f"{category}: {example}")


def render_report(report: LiveReport, console: Console) -> None:
    config = report.config
    table = Table(
        title=f"Live traffic against {config.base_url} (seed {config.seed}, run {config.run_tag})",
        caption="latencies in ms, per HTTP request (retries included)",
        box=box.SIMPLE_HEAVY,
    )
    table.add_column("operation", no_wrap=True)
    for column in ("ops", "ok", "refused", "skipped", "errors", "requests", "retries"):
        table.add_column(column, justify="right")
    for column in ("p50", "p90", "p99", "max"):
        table.add_column(column, justify="right")

    def latency_cells(values: list[float]) -> list[str]:
        return [f"{percentile(values, rank):.1f}" for rank in (50, 90, 99, 100)]

    def error_cell(count: int) -> str:
        return f"[bold red]{count}[/bold red]" if count else "0"

    for kind, stats in report.by_kind.items():
        refused = stats.operations - stats.outcomes[OK] - stats.outcomes[SKIPPED]
        refused -= stats.outcomes[FAILED]
        table.add_row(
            kind.value,
            str(stats.operations),
            str(stats.outcomes[OK]),
            str(refused),
            str(stats.outcomes[SKIPPED]),
            error_cell(stats.errors),
            str(stats.requests),
            str(stats.retries),
            *latency_cells(stats.latencies_ms),
        )
    table.add_section()
    table.add_row(
        "all",
        str(report.operations),
        str(sum(stats.outcomes[OK] for stats in report.by_kind.values())),
        "",
        "",
        error_cell(report.errors),
        str(report.requests),
        str(report.retries),
        *latency_cells(report.latencies_ms()),
        style="bold",
    )
    console.print(table)
    refusals = Counter()
    for kind, stats in report.by_kind.items():
        for outcome, count in stats.outcomes.items():
            if outcome not in (OK, SKIPPED, FAILED):
                refusals[f"{kind.value}: {outcome}"] += count
    skipped = sum(stats.outcomes[SKIPPED] for stats in report.by_kind.values())
    console.print(
        f"target {config.rate:g} req/s for {config.duration:g} s: {report.planned} operations "
        f"planned, {skipped} follow-ups skipped (nothing to follow up), {report.retries} retries; "
        f"achieved {report.achieved_rate:.1f} req/s ({report.requests} requests in "
        f"{report.elapsed_seconds:.1f} s, concurrency cap {config.concurrency}); start lag "
        f"p50 {percentile(report.start_lag_ms, 50):.1f} ms, "
        f"p99 {percentile(report.start_lag_ms, 99):.1f} ms"
    )
    console.print(
        "HTTP statuses: "
        + ", ".join(f"{status}: {count}" for status, count in sorted(report.statuses.items()))
    )
    drained_late = report.elapsed_seconds > config.duration * 1.1 + 1
    if drained_late or percentile(report.start_lag_ms, 99) > 1000:
        console.print(
            "[yellow]the schedule was not kept: the API (or this machine) is saturated at this "
            "rate, or the concurrency cap is too low[/yellow]"
        )
    if refusals:
        console.print(
            "business refusals (expected): "
            + ", ".join(f"{name} {count}" for name, count in sorted(refusals.items()))
        )
    console.print(
        f"simulated timeouts: {report.retries} retried, {report.replays_compared} replays "
        f"compared, {report.replay_mismatches} mismatched"
    )
    if report.errors:
        console.print(
            f"[bold red]{report.errors} errors[/bold red]: "
            + ", ".join(f"{name} {count}" for name, count in report.errors_by_category.items())
        )
        for example in report.error_examples:
            console.print(f"  [red]{example}[/red]")
    else:
        console.print("[bold green]0 errors[/bold green]")


def exit_code(report: LiveReport) -> int:
    return 1 if report.errors else 0


# --- Playing the plan ------------------------------------------------------------------------

REPLAYED_HEADER = "idempotent-replayed"


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes | None


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int | None  # None: no answer (transport error)
    content: bytes = b""
    replayed: bool = False

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def json(self) -> Any:
        try:
            return json.loads(self.content)
        except ValueError:
            return None


class _Player:
    def __init__(
        self,
        config: LiveConfig,
        credentials: LiveCredentials,
        clients: Sequence[httpx.AsyncClient],
    ) -> None:
        self.config = config
        self.credentials = credentials
        self.clients = clients  # one per merchant, as each merchant's tills have their own
        self.slots = asyncio.Semaphore(config.concurrency)
        self.report = LiveReport(config)
        # What follow-ups need from the operations they follow (None: it did not happen).
        self.results: dict[int, asyncio.Future[dict | None]] = {}
        # The member's points as last seen (balances move under us).
        self.seen_points = {
            index: member.points for index, member in enumerate(credentials.members)
        }

    async def run(self, progress: Callable[[LiveReport], None] | None = None) -> LiveReport:
        loop = asyncio.get_running_loop()
        started = loop.time()
        tasks: set[asyncio.Task] = set()
        ticker = asyncio.create_task(self._tick(progress, started)) if progress else None
        for operation in plan_operations(self.config, self.credentials):
            delay = started + operation.at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self.report.planned += 1
            if operation.kind in (
                Operation.EARN,
                Operation.REDEEM,
                Operation.HOLD,
                Operation.CAPTURE,
            ):
                self.results[operation.step] = loop.create_future()
            self.results.pop(operation.step - DEPENDENCY_WINDOW - 1, None)
            follows = (
                self.results.get(operation.depends_on) if operation.depends_on is not None else None
            )
            task = asyncio.create_task(self._perform(operation, follows, started + operation.at))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        while tasks:
            await asyncio.gather(*tasks)
        self.report.elapsed_seconds = loop.time() - started
        if ticker is not None:
            ticker.cancel()
        return self.report

    async def _tick(self, progress: Callable[[LiveReport], None], started: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(1.0)
            self.report.elapsed_seconds = loop.time() - started
            progress(self.report)

    async def _perform(
        self,
        operation: PlannedOperation,
        follows: asyncio.Future[dict | None] | None,
        scheduled_at: float,
    ) -> None:
        stats = self.report.by_kind[operation.kind]
        result: dict | None = None
        try:
            loop = asyncio.get_running_loop()
            previous, ready_at = None, scheduled_at
            if operation.depends_on is not None:
                # Waited for outside the slots: a follow-up holding a slot while the request
                # it follows waits for one could stall the whole run.
                if follows is not None and not follows.done():
                    await asyncio.wait([follows])
                    ready_at = max(scheduled_at, loop.time())
                previous = follows.result() if follows is not None else None
                if previous is None:
                    stats.outcomes[SKIPPED] += 1
                    return
            async with self.slots:
                # Lateness the client caused: the concurrency cap, or a busy event loop.
                self.report.start_lag_ms.append((loop.time() - ready_at) * 1000)
                request = self._request(operation, previous)
                reply = await self._send(operation, request)
            outcome = self._outcome(operation, reply)
            stats.outcomes[outcome] += 1
            if reply.succeeded:
                result = reply.json()
                self._remember_points(operation, result)
            elif outcome == "insufficient-points":
                available = (reply.json() or {}).get("available")
                if isinstance(available, int) and operation.member is not None:
                    self.seen_points[operation.member] = available
        except Exception:  # a bug here must show up as an error, not end the run silently
            stats.outcomes[FAILED] += 1
            self.report.record_error(
                operation.kind,
                "client error",
                f"step {operation.step}: {traceback.format_exc(limit=3)}",
            )
        finally:
            own = self.results.get(operation.step)
            if own is not None and not own.done():
                own.set_result(result)

    # -- requests

    def _request(self, operation: PlannedOperation, previous: dict | None) -> _Request:
        merchant = self.credentials.merchants[operation.merchant]
        headers = {"Authorization": f"Bearer {merchant.api_key}"}
        if operation.kind is Operation.BALANCE:
            member = self.credentials.members[operation.member]
            return _Request("GET", f"/v1/members/{member.member_id}/balance", headers, None)
        headers["Content-Type"] = "application/json"
        headers["Idempotency-Key"] = operation.idempotency_key
        path, body = self._write(operation, merchant, previous)
        return _Request("POST", path, headers, json.dumps(body, separators=(",", ":")).encode())

    def _write(
        self, operation: PlannedOperation, merchant: LiveMerchant, previous: dict | None
    ) -> tuple[str, dict]:
        kind = operation.kind
        if kind is Operation.CAPTURE:
            body = {}
            if operation.share < 1.0:
                body["points"] = max(1, int(previous["points"] * operation.share))
            return f"/v1/holds/{previous['holdId']}/capture", body
        if kind is Operation.VOID:
            return f"/v1/holds/{previous['holdId']}/void", {}
        if kind is Operation.REFUND:
            path = f"/v1/transactions/{previous['transactionId']}/refunds"
            return path, {"amountMinor": operation.amount_minor}
        if kind is Operation.REVERSAL:
            return f"/v1/transactions/{previous['transactionId']}/reversal", {}

        body: dict[str, Any] = {"member": self._member_reference(operation)}
        if operation.store is not None:
            body["storeId"] = str(merchant.store_ids[operation.store])
        if kind is Operation.EARN:
            body |= {
                "amountMinor": operation.amount_minor,
                "currency": merchant.currency,
                "occurredAt": datetime.now(UTC).isoformat(timespec="milliseconds"),
            }
            if operation.line_items:
                body["lineItems"] = [
                    {"amountMinor": amount, "category": category}
                    for amount, category in operation.line_items
                ]
            if operation.reference:
                body["reference"] = operation.reference
            return "/v1/earn", body
        if kind is Operation.REDEEM:
            body["currency"] = merchant.currency
            if operation.points_and_cash:
                body["purchaseAmountMinor"] = operation.amount_minor
            else:
                body["points"] = self._points_to_spend(operation)
            return "/v1/redemptions", body
        body["points"] = self._points_to_spend(operation)
        if operation.ttl_seconds is not None:
            body["ttlSeconds"] = operation.ttl_seconds
        return "/v1/holds", body

    def _member_reference(self, operation: PlannedOperation) -> dict[str, str]:
        member = self.credentials.members[operation.member]
        kind = operation.member_reference or "member_id"
        value = str(member.member_id) if kind == "member_id" else getattr(member, kind)
        return {"kind": kind, "value": value}

    def _points_to_spend(self, operation: PlannedOperation) -> int:
        minimum = self.config.min_redemption_points
        seen = self.seen_points.get(operation.member)
        if seen is not None and seen >= minimum:
            return max(minimum, int(seen * operation.share))
        return operation.fallback_points

    # -- exchanges, retries and replays

    async def _send(self, operation: PlannedOperation, request: _Request) -> _Reply:
        """The reply the till acts on: after a simulated timeout, the successful one of the
        two attempts if any (that is where the points moved), else the retry's."""
        if operation.retry is None:
            return await self._exchange(operation, request)
        stats = self.report.by_kind[operation.kind]
        stats.retries += 1
        if operation.retry is Retry.AFTER_RESPONSE:
            first = await self._exchange(operation, request)
            second = await self._exchange(operation, request)
        else:
            pending = asyncio.create_task(self._exchange(operation, request))
            await asyncio.sleep(operation.retry_delay)
            second = await self._exchange(operation, request)
            first = await pending
        self._compare(operation, first, second)
        if second.succeeded or not first.succeeded:
            return second
        return first

    def _compare(self, operation: PlannedOperation, first: _Reply, second: _Reply) -> None:
        where = f"{operation.kind.value} step {operation.step} ({operation.retry.value})"
        if first.succeeded and second.succeeded:
            self.report.replays_compared += 1
            if first.status != second.status or first.content != second.content:
                self.report.record_error(
                    operation.kind,
                    "replay mismatch",
                    f"{where}: {first.status} {first.content[:200]!r} then "
                    f"{second.status} {second.content[:200]!r}",
                )
            elif first.replayed == second.replayed:
                self.report.record_error(
                    operation.kind,
                    "replay mismatch",
                    f"{where}: {'both' if first.replayed else 'neither'} marked as replayed",
                )
        elif first.succeeded and operation.retry is Retry.AFTER_RESPONSE and second.status:
            # A stored success must be replayed, never refused or run again.
            self.report.record_error(
                operation.kind,
                "replay mismatch",
                f"{where}: {first.status} then {second.status} {second.content[:200]!r}",
            )

    async def _exchange(self, operation: PlannedOperation, request: _Request) -> _Reply:
        stats = self.report.by_kind[operation.kind]
        stats.requests += 1
        started = time.perf_counter()
        try:
            response = await self.clients[operation.merchant].request(
                request.method, request.path, headers=request.headers, content=request.body
            )
        except httpx.HTTPError as error:
            stats.latencies_ms.append((time.perf_counter() - started) * 1000)
            self.report.statuses["transport error"] += 1
            self.report.record_error(
                operation.kind,
                "transport",
                f"{operation.kind.value} step {operation.step}: {type(error).__name__} {error}",
            )
            return _Reply(None)
        stats.latencies_ms.append((time.perf_counter() - started) * 1000)
        self.report.statuses[str(response.status_code)] += 1
        reply = _Reply(
            response.status_code,
            response.content,
            response.headers.get(REPLAYED_HEADER) == "true",
        )
        if response.status_code >= 500:
            self.report.record_error(
                operation.kind,
                "5xx",
                f"{operation.kind.value} step {operation.step}: {response.status_code} "
                f"{response.content[:300]!r}",
            )
        elif (
            response.status_code >= 400
            and self._slug(reply) not in EXPECTED_REFUSALS[operation.kind]
        ):
            self.report.record_error(
                operation.kind,
                "unexpected 4xx",
                f"{operation.kind.value} step {operation.step}: {request.method} {request.path} "
                f"-> {response.status_code} {response.content[:300]!r}",
            )
        return reply

    @staticmethod
    def _slug(reply: _Reply) -> str:
        problem = reply.json()
        kind = problem.get("type", "") if isinstance(problem, dict) else ""
        return kind.rsplit("/", 1)[-1] if kind else f"http-{reply.status}"

    def _outcome(self, operation: PlannedOperation, reply: _Reply) -> str:
        if reply.succeeded:
            return OK
        if reply.status is None or reply.status >= 500:
            return FAILED
        slug = self._slug(reply)
        return slug if slug in EXPECTED_REFUSALS[operation.kind] else FAILED

    def _remember_points(self, operation: PlannedOperation, answer: Any) -> None:
        if operation.member is None or not isinstance(answer, dict):
            return
        if operation.kind is Operation.BALANCE:
            self.seen_points[operation.member] = answer["available"]
        elif operation.kind is Operation.HOLD:
            seen = self.seen_points.get(operation.member)
            if seen is not None:
                self.seen_points[operation.member] = max(0, seen - answer["points"])
        elif "balance" in answer:
            self.seen_points[operation.member] = answer["balance"]


async def play(
    config: LiveConfig,
    credentials: LiveCredentials,
    progress: Callable[[LiveReport], None] | None = None,
) -> LiveReport:
    """Play the plan against the API at `config.base_url` and report what happened.
    `progress` is called with the report so far about once a second."""
    if not credentials.merchants or not credentials.members:
        raise ValueError("live traffic needs at least one active merchant and one active member")
    # Two connections per slot: a retry sent while its first attempt is in flight. Idle
    # connections are dropped well before uvicorn's 5 s keep-alive closes them, or a request
    # sent on a connection the server is closing fails with a ReadError.
    limits = httpx.Limits(
        max_connections=2 * config.concurrency,
        max_keepalive_connections=2 * config.concurrency,
        keepalive_expiry=2.0,
    )
    # A pool per merchant: httpcore assigns requests to connections in time proportional
    # to connections x waiting requests, and one pool of 128 busy connections cost more
    # CPU than the requests themselves once the API fell behind (measured with cProfile).
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=config.base_url,
                    limits=limits,
                    timeout=httpx.Timeout(config.request_timeout, pool=None),
                )
            )
            for _ in credentials.merchants
        ]
        return await _Player(config, credentials, clients).run(progress)


def run_live(
    config: LiveConfig, credentials: LiveCredentials, console: Console | None = None
) -> int:
    """Play, print the report, and return the exit code (1 when there was any error)."""
    report = asyncio.run(play(config, credentials))
    render_report(report, console or Console())
    return exit_code(report)


# --- The command -----------------------------------------------------------------------------


async def _check_api(config: LiveConfig, credentials: LiveCredentials) -> str | None:
    """Why the API cannot take the run, or None when it can."""
    merchant, member = credentials.merchants[0], credentials.members[0]
    async with httpx.AsyncClient(base_url=config.base_url, timeout=10.0) as client:
        try:
            ready = await client.get("/ready")
            probe = await client.get(
                f"/v1/members/{member.member_id}/balance",
                headers={"Authorization": f"Bearer {merchant.api_key}"},
            )
        except httpx.HTTPError as error:
            return f"the API at {config.base_url} does not answer ({type(error).__name__}: {error})"
    if ready.status_code != 200:
        return f"the API at {config.base_url} is not ready ({ready.status_code} {ready.text})"
    if probe.status_code == 401:
        return (
            f"the API at {config.base_url} does not know the keys just issued: "
            "is it serving the same database (DATABASE_URL / COALITION_DATA_DIR)?"
        )
    if probe.status_code != 200:
        return f"a balance read failed: {probe.status_code} {probe.text}"
    return None


def live_command(
    rate: float,
    duration: float,
    seed: int,
    timeout_probability: float,
    concurrency: int,
    base_url: str,
    merchants: int,
    members: int,
) -> int:
    """Prepare keys on the product database, play live traffic against the API at
    `base_url`, print the report, revoke the keys. 0: no error; 1: errors; 2: cannot run."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from shared.database.bootstrap import async_url, database_url
    from shared.settings import get_settings

    settings = get_settings()
    console = Console()
    if not console.is_terminal:
        console = Console(width=120)  # the report's table, unsqueezed in logs and pipes
    config = LiveConfig(
        base_url=base_url.rstrip("/"),
        rate=rate,
        duration=duration,
        seed=seed,
        timeout_probability=timeout_probability,
        concurrency=concurrency,
        points_currency=settings.program.currency,
        min_redemption_points=settings.program.min_redemption_points,
    )

    async def main() -> int:
        engine = create_async_engine(async_url(database_url(settings)), pool_size=1)
        try:
            async with engine.begin() as connection:
                credentials = await prepare_credentials(
                    connection, merchants_limit=merchants, members_limit=members, seed=seed
                )
            try:
                if not credentials.merchants or not credentials.members:
                    console.print(
                        "[red]no active merchants or members: create a network first "
                        "(coalition seed-demo, or the bulk seed)[/red]"
                    )
                    return 2
                problem = await _check_api(config, credentials)
                if problem:
                    console.print(f"[red]{problem}[/red]")
                    return 2
                console.print(
                    f"live traffic: {len(credentials.merchants)} merchants, "
                    f"{len(credentials.members)} members, {rate:g} req/s for {duration:g} s "
                    f"against {config.base_url} (run tag {config.run_tag})"
                )
                with console.status("starting") as status:
                    report = await play(
                        config,
                        credentials,
                        lambda so_far: status.update(
                            f"{so_far.elapsed_seconds:.0f} s: {so_far.requests} requests, "
                            f"{so_far.achieved_rate:.0f} req/s, {so_far.errors} errors"
                        ),
                    )
                render_report(report, console)
                return exit_code(report)
            finally:
                async with engine.begin() as connection:
                    await retire_credentials(connection, credentials)
        finally:
            await engine.dispose()

    return asyncio.run(main())
