"""The metrics alert rules watch, computed from the ledger for a scope over a window.

Every metric answers, for a list of evaluation times (ticks) and a window length W, one
value per scope key and tick: the value over [tick - W, tick). Scopes are the network
(key 'network'), each active merchant (its merchant_id) and each tier (its name: the
member's current tier). A value is a number (a float for ratios) or None: no data (a
ratio with nothing to divide by).

**Time.** Windows are on `posted_at`, when a transaction reached the ledger: it is indexed,
a partner whose feed stops is exactly one whose transactions stop being posted, and a
window that has passed never changes afterwards, so a backtest sees what the live
evaluation saw. (For bulk-seeded and live POS traffic, posted_at is the purchase time.)

**Cost.** Each metric is one SQL statement whatever the number of ticks or scope keys: a
per-merchant metric is one query returning a value per merchant, and a 90-day backtest is
one query, not one per tick. The statements read each ledger row of the span once:

- flows (purchases, points issued, points redeemed, burn/earn) bin the transactions of
  [first point, last point) by the sorted list of sample points (`width_bucket`); window
  sums are differences of running totals, taken here in Python. A live evaluation reads
  one window (two with a baseline) through the posted_at index;
- activity (active members, lapse rate) cuts each member's purchases into "islands" (runs
  with no gap longer than W); a member is active at t exactly when an island started
  before t and its last purchase + W is not before t, so counts at every tick are running
  totals of island starts and ends: one sort of the purchases, not one scan per tick;
- liability reads the stored balances once and the transactions posted since the earliest
  point (outstanding at t = balances now - points posted since t);
- earn velocity joins each tick to its window (windows are short: an hour, a day);
- settlement imbalance runs the audit's statement checks on the periods closed in the
  span only (shared/settlement/reconciliation.py).

Each metric's SQL is in one place (a `_..._SQL` constant), so that pointing a metric at
the analytics rollups later replaces one statement and keeps the arithmetic.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import accumulate

from sqlalchemy import Connection, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import DateTime

from shared.settlement.reconciliation import STATEMENT_TOTALS_SQL, STATEMENTS_VS_LEDGER_SQL

NETWORK = "network"
SCOPES = ("network", "merchant", "tier")
REGULAR_PURCHASES = 3  # what makes a member a regular for regular_lapse_rate

Values = dict[str, list[float | None]]  # scope key -> one value per tick


# --- Scopes --------------------------------------------------------------------------------


def _scope_columns(scope: str) -> tuple[str, str]:
    """The scope key of a ledger transaction `t`, and the join it needs."""
    match scope:
        case "network":
            return "'network'", ""
        case "merchant":
            return "t.merchant_id::text", ""
        case "tier":
            return "m.tier", "JOIN members m ON m.member_id = t.member_id"
    raise ValueError(f"unknown scope {scope!r}")


def scope_keys(connection: Connection, scope: str, tiers: Sequence[str]) -> list[str]:
    """Every key of a scope, so that a merchant with no sale in the window reads 0, not
    nothing: active merchants (a suspended one is expected to be silent), the programme's
    tiers."""
    match scope:
        case "network":
            return [NETWORK]
        case "merchant":
            return list(
                connection.execute(
                    text(
                        "SELECT merchant_id::text FROM merchants WHERE status = 'active' "
                        "ORDER BY name, merchant_id"
                    )
                ).scalars()
            )
        case "tier":
            return list(tiers)
    raise ValueError(f"unknown scope {scope!r}")


# --- Sample points and running totals ------------------------------------------------------

_POINTS = bindparam("points", type_=ARRAY(DateTime(timezone=True)))
_TICKS = bindparam("ticks", type_=ARRAY(DateTime(timezone=True)))


def _sample_points(ticks: Sequence[datetime], window: timedelta) -> list[datetime]:
    return sorted(set(ticks) | {tick - window for tick in ticks})


def _running_totals(
    bins: dict[int, float], points: Sequence[datetime], *, before: bool = True
) -> dict[datetime, float]:
    """`bins` holds sums per width_bucket bin over the sorted `points` (bin b: rows with b
    points at or before them). Returns, at each point, the sum of the rows before it
    (`before`), or of the rows at or after it."""
    per_bin = [bins.get(b, 0.0) for b in range(len(points) + 1)]
    # before point i: bins 0..i; at or after it: bins i+1..n
    totals = list(accumulate(per_bin)) if before else list(accumulate(reversed(per_bin)))[::-1][1:]
    return {point: totals[i] for i, point in enumerate(points)}


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


# --- Flows: purchases, points issued and redeemed ------------------------------------------

# Points issued: what members earned on purchases (base, tier and campaign bonus), at the
# merchant where they bought. Points redeemed: taken as tender (redeem, captured holds) net
# of reversals, at the merchant where they were spent.
_FLOWS_SQL = """
SELECT {key} AS scope_key, width_bucket(t.posted_at, :points) AS bin,
       count(*) FILTER (WHERE t.kind = 'earn') AS purchases,
       count(*) FILTER (WHERE t.kind IN ('redeem', 'capture')) AS redemptions,
       coalesce(sum(t.points) FILTER (WHERE t.kind = 'earn'), 0) AS issued,
       coalesce(-sum(t.points) FILTER (WHERE t.kind IN ('redeem', 'capture', 'reversal')), 0)
           AS redeemed
FROM ledger_transactions t {join}
WHERE t.posted_at >= :scan_from AND t.posted_at < :scan_to
  AND t.kind IN ('earn', 'redeem', 'capture', 'reversal')
GROUP BY 1, 2
"""
_FLOW_COLUMNS = ("purchases", "redemptions", "issued", "redeemed")


def _flows(
    connection: Connection,
    scope: str,
    keys: Sequence[str],
    ticks: Sequence[datetime],
    window: timedelta,
) -> dict[str, dict[str, list[float]]]:
    """Per scope key and flow column: the window sum at each tick."""
    points = _sample_points(ticks, window)
    key, join = _scope_columns(scope)
    rows = connection.execute(
        text(_FLOWS_SQL.format(key=key, join=join)).bindparams(_POINTS),
        {"points": points, "scan_from": points[0], "scan_to": points[-1]},
    ).all()
    bins: dict[str, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for row in rows:
        for column in _FLOW_COLUMNS:
            bins[row.scope_key][column][row.bin] = float(getattr(row, column))
    result = {}
    for scope_key in keys:
        result[scope_key] = {}
        for column in _FLOW_COLUMNS:
            at = _running_totals(bins[scope_key][column], points)
            result[scope_key][column] = [at[tick] - at[tick - window] for tick in ticks]
    return result


def _flow_metric(combine: Callable[[dict[str, float]], float | None]):
    def compute(connection, scope, keys, ticks, window) -> Values:
        flows = _flows(connection, scope, keys, ticks, window)
        return {
            scope_key: [
                combine({column: columns[column][i] for column in _FLOW_COLUMNS})
                for i in range(len(ticks))
            ]
            for scope_key, columns in flows.items()
        }

    return compute


# --- Activity: active members and lapse rate -----------------------------------------------

# Islands: a member's purchases (per scope) cut wherever the gap exceeds the span. Each
# island is active from its first purchase (exclusive) until its last purchase + span
# (inclusive): one +1 and one -1, binned by the sample points.
_ISLANDS_SQL = """
WITH purchases AS (
    SELECT {key} AS scope_key, t.member_id, t.posted_at,
           t.posted_at - lag(t.posted_at) OVER (
               PARTITION BY {key}, t.member_id ORDER BY t.posted_at) AS gap
    FROM ledger_transactions t {join}
    WHERE t.kind = 'earn' AND t.posted_at >= :scan_from AND t.posted_at < :scan_to
), numbered AS (
    SELECT scope_key, member_id, posted_at,
           count(*) FILTER (WHERE gap IS NULL OR gap > :window) OVER (
               PARTITION BY scope_key, member_id ORDER BY posted_at) AS island
    FROM purchases
), islands AS (
    SELECT scope_key, min(posted_at) AS starts_at, max(posted_at) + :window AS ends_at
    FROM numbered GROUP BY scope_key, member_id, island
)
SELECT scope_key, width_bucket(starts_at, :points) AS bin, count(*) AS delta
FROM islands GROUP BY 1, 2
UNION ALL
SELECT scope_key, width_bucket(ends_at, :points) AS bin, -count(*) AS delta
FROM islands GROUP BY 1, 2
"""


def _active_members_metric(connection, scope, keys, ticks, window) -> Values:
    """Members with a purchase in [tick - window, tick), per scope key and tick.

    A member is active at t iff some island has starts_at < t <= ends_at: starts before t
    minus ends before t. An island that began before the scan is cut at the scan's start,
    which changes nothing at any tick t as long as the scan starts at t - window or earlier.
    """
    points = sorted(set(ticks))
    key, join = _scope_columns(scope)
    rows = connection.execute(
        text(_ISLANDS_SQL.format(key=key, join=join)).bindparams(_POINTS),
        {
            "points": points,
            "window": window,
            "scan_from": points[0] - window,
            "scan_to": points[-1],
        },
    ).all()
    bins: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    for row in rows:
        bins[row.scope_key][row.bin] += float(row.delta)
    result: Values = {}
    for scope_key in keys:
        active = _running_totals(bins[scope_key], points)
        result[scope_key] = [active[tick] for tick in ticks]
    return result


# Lapse: of the members with at least k purchases in the previous window P = [t - 2W, t - W),
# those with none in the current window C = [t - W, t). For each purchase p_j of a member
# (p_j+1 the next one, p_j-k+1 the k-th last up to p_j), p_j is the member's last purchase
# before t - W exactly when t is in (p_j + W, p_j+1 + W]; the member is then in the base
# while p_j-k+1 >= t - 2W, and lapsed while also no purchase came before t (p_j+1 >= t).
# So base and lapsed members at t are counts of intervals containing t: running totals of
# their starts and ends, one scan and one sort whatever the number of ticks.
_LAPSE_SQL = """
WITH purchases AS (
    SELECT {key} AS scope_key, t.posted_at,
           lead(t.posted_at) OVER member_purchases AS next_at,
           lag(t.posted_at, CAST(:k AS integer) - 1) OVER member_purchases AS kth_last_at
    FROM ledger_transactions t {join}
    WHERE t.kind = 'earn' AND t.posted_at >= :scan_from AND t.posted_at < :scan_to
    WINDOW member_purchases AS (
        PARTITION BY {key}, t.member_id ORDER BY t.posted_at, t.transaction_id)
), intervals AS (
    -- least() ignores NULLs: no next purchase leaves the interval open to the right.
    SELECT scope_key, 'base' AS kind, posted_at + :window AS starts_at,
           least(next_at + :window, kth_last_at + 2 * :window) AS ends_at
    FROM purchases WHERE kth_last_at IS NOT NULL
    UNION ALL
    SELECT scope_key, 'lapsed', posted_at + :window, least(next_at, kth_last_at + 2 * :window)
    FROM purchases WHERE kth_last_at IS NOT NULL
)
SELECT scope_key, kind, width_bucket(starts_at, :points) AS bin, count(*) AS delta
FROM intervals WHERE ends_at > starts_at GROUP BY 1, 2, 3
UNION ALL
SELECT scope_key, kind, width_bucket(ends_at, :points) AS bin, -count(*) AS delta
FROM intervals WHERE ends_at > starts_at GROUP BY 1, 2, 3
"""


def _lapse_metric(regular_purchases: int):
    def compute(connection, scope, keys, ticks, window) -> Values:
        points = sorted(set(ticks))
        key, join = _scope_columns(scope)
        rows = connection.execute(
            text(_LAPSE_SQL.format(key=key, join=join)).bindparams(_POINTS),
            {
                "points": points,
                "k": regular_purchases,
                "window": window,
                "scan_from": points[0] - 2 * window,
                "scan_to": points[-1],
            },
        ).all()
        bins: dict[tuple[str, str], dict[int, float]] = defaultdict(lambda: defaultdict(float))
        for row in rows:
            bins[(row.scope_key, row.kind)][row.bin] += float(row.delta)
        values: Values = {}
        for scope_key in keys:
            base = _running_totals(bins[(scope_key, "base")], points)
            lapsed = _running_totals(bins[(scope_key, "lapsed")], points)
            values[scope_key] = [_ratio(lapsed[tick], base[tick]) for tick in ticks]
        return values

    return compute


# --- Liability growth ------------------------------------------------------------------------

# Outstanding points at t = the stored balances now - the points posted since t (a
# transaction's points are its net effect on the member's balance). One statement, so the
# balances and the transactions are read in the same snapshot.
_LIABILITY_SQL = """
SELECT width_bucket(t.posted_at, :points) AS bin, sum(t.points) AS points
FROM ledger_transactions t WHERE t.posted_at >= :scan_from GROUP BY 1
UNION ALL
SELECT -1, coalesce(sum(balance), 0) FROM member_balances
"""


def _liability_growth_metric(connection, scope, keys, ticks, window) -> Values:
    """(outstanding at t - outstanding at t - W) / outstanding at t - W."""
    points = _sample_points(ticks, window)
    rows = connection.execute(
        text(_LIABILITY_SQL).bindparams(_POINTS), {"points": points, "scan_from": points[0]}
    ).all()
    balances = next(float(row.points) for row in rows if row.bin == -1)
    bins = {row.bin: float(row.points) for row in rows if row.bin != -1}
    posted_since = _running_totals(bins, points, before=False)
    outstanding = {point: balances - posted_since[point] for point in points}
    values = []
    for tick in ticks:
        opening = outstanding[tick - window]
        values.append((outstanding[tick] - opening) / opening if opening > 0 else None)
    return {NETWORK: values}


# --- Earn velocity ---------------------------------------------------------------------------

# The most purchases one member made in the window (per scope): a card used far more often
# than anyone shops is fraud or a till replaying.
_VELOCITY_SQL = """
SELECT tick, scope_key, max(purchases) AS velocity
FROM (
    SELECT tk.tick, {key} AS scope_key, t.member_id, count(*) AS purchases
    FROM unnest(:ticks) AS tk(tick)
    JOIN ledger_transactions t
      ON t.posted_at >= tk.tick - :window AND t.posted_at < tk.tick AND t.kind = 'earn'
    {join}
    GROUP BY 1, 2, 3
) per_member
GROUP BY 1, 2
"""


def _earn_velocity_metric(connection, scope, keys, ticks, window) -> Values:
    key, join = _scope_columns(scope)
    rows = connection.execute(
        text(_VELOCITY_SQL.format(key=key, join=join)).bindparams(_TICKS),
        {"ticks": list(ticks), "window": window},
    ).all()
    found = {(row.scope_key, row.tick): float(row.velocity) for row in rows}
    return {scope_key: [found.get((scope_key, tick), 0.0) for tick in ticks] for scope_key in keys}


# --- Settlement imbalance --------------------------------------------------------------------

# Statements of the periods closed in the span that fail the audit's checks: their net is
# not the sum of their lines, or their points are not the ledger's.
_SETTLEMENT_SQL = """
WITH closed AS (
    SELECT period_id, closed_at FROM settlement_periods
    WHERE closed_at >= :scan_from AND closed_at < :scan_to
), failing AS (
    SELECT period_id, merchant_id FROM ({totals}) totals
    UNION
    SELECT period_id, merchant_id FROM ({ledger}) ledger
)
SELECT closed.closed_at, failing.merchant_id::text AS merchant_id
FROM failing JOIN closed USING (period_id)
""".format(
    totals=STATEMENT_TOTALS_SQL.format(periods="SELECT period_id FROM closed"),
    ledger=STATEMENTS_VS_LEDGER_SQL.format(periods="SELECT period_id FROM closed"),
)


def _settlement_imbalance_metric(connection, scope, keys, ticks, window) -> Values:
    """Statements of the periods closed in the window that do not reconcile."""
    rows = connection.execute(
        text(_SETTLEMENT_SQL),
        {"scan_from": min(ticks) - window, "scan_to": max(ticks)},
    ).all()
    closings: dict[str, list[datetime]] = defaultdict(list)
    for row in rows:
        scope_key = NETWORK if scope == "network" else row.merchant_id
        closings[scope_key].append(row.closed_at)
    values: Values = {}
    for scope_key in keys:
        closed = sorted(closings[scope_key])
        values[scope_key] = [
            float(bisect.bisect_left(closed, tick) - bisect.bisect_left(closed, tick - window))
            for tick in ticks
        ]
    return values


# --- The registry ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    title: str
    unit: str
    description: str
    scopes: tuple[str, ...]
    compute: Callable[[Connection, str, Sequence[str], Sequence[datetime], timedelta], Values]


METRICS = {
    metric.name: metric
    for metric in (
        Metric(
            "purchases",
            "Purchases",
            "purchases",
            "Earn transactions posted in the window.",
            SCOPES,
            _flow_metric(lambda flows: flows["purchases"]),
        ),
        Metric(
            "redemptions",
            "Redemptions",
            "redemptions",
            "Redemptions posted in the window (points as tender and captured holds), at the "
            "merchant where points were spent. Counts, unlike points, are not swayed by one "
            "member spending a large balance.",
            SCOPES,
            _flow_metric(lambda flows: flows["redemptions"]),
        ),
        Metric(
            "points_issued",
            "Points issued",
            "points",
            "Points members earned on purchases in the window (base, tier and campaign "
            "bonuses), at the merchant where they bought.",
            SCOPES,
            _flow_metric(lambda flows: flows["issued"]),
        ),
        Metric(
            "points_redeemed",
            "Points redeemed",
            "points",
            "Points taken as tender in the window (redemptions and captured holds, net of "
            "reversals), at the merchant where they were spent.",
            SCOPES,
            _flow_metric(lambda flows: flows["redeemed"]),
        ),
        Metric(
            "burn_earn_ratio",
            "Burn/earn ratio",
            "ratio",
            "Points redeemed / points issued in the window; no data when nothing was issued.",
            SCOPES,
            _flow_metric(lambda flows: _ratio(flows["redeemed"], flows["issued"])),
        ),
        Metric(
            "active_members",
            "Active members",
            "members",
            "Members with at least one purchase in the window (per merchant: there; per "
            "tier: by the member's current tier).",
            SCOPES,
            _active_members_metric,
        ),
        Metric(
            "lapse_rate",
            "Lapse rate",
            "ratio",
            "Of the members who bought in the window before the last one, the share who "
            "made no purchase in the last window; no data without such members.",
            SCOPES,
            _lapse_metric(regular_purchases=1),
        ),
        Metric(
            "regular_lapse_rate",
            "Lapse rate of regulars",
            "ratio",
            f"Of the members with at least {REGULAR_PURCHASES} purchases in the window before "
            "the last one, the share who made no purchase in the last window. Regulars are "
            "rarely silent for a whole window by chance or in a slow season, so a spike of "
            "members leaving shows more clearly here than in the plain lapse rate.",
            SCOPES,
            _lapse_metric(regular_purchases=REGULAR_PURCHASES),
        ),
        Metric(
            "liability_growth",
            "Liability growth",
            "ratio",
            "Relative change of the points members hold (outstanding liability before "
            "breakage) over the window; no data while nothing is outstanding.",
            ("network",),
            _liability_growth_metric,
        ),
        Metric(
            "earn_velocity",
            "Earn velocity",
            "purchases per member",
            "The most purchases a single member made in the window (fraud, replaying tills).",
            SCOPES,
            _earn_velocity_metric,
        ),
        Metric(
            "settlement_imbalance",
            "Settlement imbalance",
            "statements",
            "Statements of the settlement periods closed in the window that do not "
            "reconcile with the ledger (the audit's statement checks).",
            ("network", "merchant"),
            _settlement_imbalance_metric,
        ),
    )
}


@dataclass(frozen=True, slots=True)
class Measure:
    """What a rule measures: a metric over a window, optionally against a baseline."""

    metric: str
    scope: str
    window: timedelta
    baseline_offset: timedelta | None = None
    min_baseline: float | None = None


def measure(
    connection: Connection,
    what: Measure,
    ticks: Sequence[datetime],
    tiers: Sequence[str] = (),
) -> Values:
    """The rule's value per scope key and tick, in one metric query.

    With a baseline offset O the value is metric(t) / metric(t - O): a ratio to the same
    window O earlier (a week before cancels the weekly rhythm). It is no data when the
    baseline is no data, zero, or below `min_baseline` (a drop from 3 purchases to 0 is
    noise, from 300 to 0 is an outage)."""
    metric = METRICS[what.metric]
    keys = scope_keys(connection, what.scope, tiers)
    if not ticks or not keys:
        return {scope_key: [] for scope_key in keys}
    if what.baseline_offset is None:
        return metric.compute(connection, what.scope, keys, ticks, what.window)
    baselines = [tick - what.baseline_offset for tick in ticks]
    every = sorted(set(ticks) | set(baselines))
    computed = metric.compute(connection, what.scope, keys, every, what.window)
    index = {tick: i for i, tick in enumerate(every)}
    values: Values = {}
    for scope_key, series in computed.items():
        values[scope_key] = []
        for tick, baseline_tick in zip(ticks, baselines, strict=True):
            current, baseline = series[index[tick]], series[index[baseline_tick]]
            usable = (
                current is not None
                and baseline is not None
                and baseline > 0
                and (what.min_baseline is None or baseline >= what.min_baseline)
            )
            values[scope_key].append(current / baseline if usable else None)
    return values
