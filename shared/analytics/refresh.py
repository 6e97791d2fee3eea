"""`coalition jobs rollups`: keep the analytics rollups (shared/tables.py) up to date.

The job reads what the ledger posted since its watermark and never writes in the posting
transaction, so the earn path stays as fast as it is. One batch (one database transaction)
covers a window [watermark, end) of posting times:

1. the touched members: those with a purchase, refund, redemption or reversal posted in
   the window, and those whose members row changed in it (enrolment, tier, status);
2. their contributions to the small aggregates are taken out, computed from their facts
   as they stand;
3. the window's transactions are added to activity_member_days (counters only grow);
4. their activity_members rows are recomputed from those days and the members table;
5. their contributions are put back, computed by the same statements from the new facts;
6. the window's allocations are added to activity_point_flows;
7. the watermark moves to the window's end.

Every aggregate is a sum over members of what each contributes, so steps 2 and 5 keep it
exact whatever changed for the member (a new active day, a later first purchase, a new
tier), and one code path serves both the incremental refresh and the full rebuild (empty
tables, a watermark at the beginning of time, every member touched). Per-period
contributions are recomputed only from the periods that can have changed (`from_day`
below), so a batch costs what its members did lately, not their whole history.

Late commits: `posted_at` is now() at the start of the posting transaction, which may
commit later. A window ends before the start of the oldest transaction still open in
this database (pg_stat_activity.xact_start, the very value its now() returns) and a few
seconds before the job's own start, so nothing posted before a window's end can still
appear after it. Where other sessions' activity is hidden from the job's role, the
window ends the settlement close delay (10 minutes) before now instead.

Idempotent and resumable: the watermark moves in the same transaction as the rows, and a
row lock on the state row keeps two jobs from refreshing at once. The rollups remember
the time zone they were built in; after a change of the programme's, the job rebuilds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, text

from shared.merchants import NETWORK
from shared.program import ProgramRules
from shared.settlement.closing import CLOSE_DELAY
from shared.tables import DAY_COUNTERS, PERIOD_COUNTERS

# Transactions that move activity_member_days; the others (behaviour points, expiry,
# adjustments, transfers, merges) are not something a member did at a partner.
ACTIVITY_KINDS = ("earn", "refund", "redeem", "capture", "reversal")
# Steady state: one batch per run. Catching up after a pause: a day of postings per batch.
DEFAULT_BATCH = timedelta(days=1)
# Covers a backwards step of the server clock between a posting's start and the job's.
DEFAULT_MARGIN = timedelta(seconds=5)
# Rollups that the job empties for a full rebuild (the state row is reset separately).
ROLLUP_TABLES = (
    "activity_member_days",
    "activity_members",
    "activity_periods",
    "activity_active_days",
    "activity_merchant_sets",
    "activity_merchant_pairs",
    "activity_cohorts",
    "activity_enrolments",
    "activity_spells",
    "activity_point_flows",
)
# The watermark of rollups that hold nothing yet: the next window is the whole ledger.
BEGINNING = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class RefreshReport:
    full: bool
    batches: int
    members: int  # touched members, summed over batches
    watermark: datetime | None
    seconds: float


def _local_day(column: str) -> str:
    return f"({column} AT TIME ZONE :tz)::date"


def _listed(values: tuple[str, ...]) -> str:
    """A SQL list of constants: ('earn', 'refund')."""
    return "(" + ", ".join(f"'{value}'" for value in values) + ")"


# Each touched member with `from_day`: its contributions to the per-period aggregates are
# recomputed from its days on or after it only. Every period that can change (those of the
# window's days) starts on or after the Monday of the month of its earliest day, and the
# member's rows before it do not change, so the parts before it cancel out. A changed
# members row (tier, enrolment) or a purchase dated before the enrolment changes every
# period: from_day is then -infinity.
_TOUCHED_SQL = (
    "CREATE TEMP TABLE activity_touched (member_id uuid PRIMARY KEY, from_day date NOT NULL)"
    " ON COMMIT DROP",
    f"""
INSERT INTO activity_touched (member_id, from_day)
SELECT member_id, min(from_day) FROM (
  SELECT member_id,
         date_trunc('week', date_trunc('month', {_local_day("occurred_at")}))::date AS from_day
  FROM ledger_transactions
  WHERE posted_at >= :start AND posted_at < :end AND merchant_id IS NOT NULL
    AND kind IN {_listed(ACTIVITY_KINDS)}
  UNION ALL
  SELECT member_id, '-infinity' FROM members WHERE updated_at >= :start AND updated_at < :end
) changed
GROUP BY member_id
""",
    """
UPDATE activity_touched t SET from_day = '-infinity'
WHERE NOT EXISTS (SELECT 1 FROM activity_members s
                  WHERE s.member_id = t.member_id AND s.enrolled_day <= t.from_day)
""",
    "ANALYZE activity_touched",
)


def _sum_of(kinds: tuple[str, ...], expression: str) -> str:
    return f"coalesce(sum({expression}) FILTER (WHERE kind IN {_listed(kinds)}), 0)"


def _count_of(kinds: tuple[str, ...]) -> str:
    return f"count(*) FILTER (WHERE kind IN {_listed(kinds)})"


_EARN, _REFUND, _REDEEM, _REVERSAL = ("earn",), ("refund",), ("redeem", "capture"), ("reversal",)
# Each counter of a member's day at a merchant, from that day's transactions; points are
# the member's side (negative for refunds and redemptions), counted as positive amounts.
_DAY_DELTAS = {
    "purchases": _count_of(_EARN),
    "spend_minor": _sum_of(_EARN, "amount_minor"),
    "points_earned": _sum_of(_EARN, "points"),
    "refunds": _count_of(_REFUND),
    "refunded_minor": _sum_of(_REFUND, "amount_minor"),
    "points_clawed_back": _sum_of(_REFUND, "-points"),
    "redemptions": _count_of(_REDEEM),
    "points_redeemed": _sum_of(_REDEEM, "-points"),
    "points_reversed": _sum_of(_REVERSAL, "points"),
}
assert tuple(_DAY_DELTAS) == DAY_COUNTERS

_MEMBER_DAYS_SQL = f"""
INSERT INTO activity_member_days AS d (member_id, day, merchant_id, {", ".join(DAY_COUNTERS)})
SELECT member_id, {_local_day("occurred_at")}, merchant_id,
       {", ".join(_DAY_DELTAS.values())}
FROM ledger_transactions
WHERE posted_at >= :start AND posted_at < :end AND merchant_id IS NOT NULL
  AND kind IN {_listed(ACTIVITY_KINDS)}
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3  -- key order: each index page is written once
ON CONFLICT (member_id, day, merchant_id) DO UPDATE SET
  {", ".join(f"{name} = d.{name} + excluded.{name}" for name in DAY_COUNTERS)}
"""

_ACTIVE = "(purchases > 0 OR redemptions > 0)"
_SUMMARY_COLUMNS = (
    "first_active_day", "last_active_day", "active_days", "first_purchase_day",
    "last_purchase_day", "purchase_days", "first_redemption_day", "merchants", *DAY_COUNTERS,
)  # fmt: skip
_SUMS = ", ".join(f"sum({name}) AS {name}" for name in DAY_COUNTERS)
_MEMBERS_SQL = f"""
INSERT INTO activity_members AS s (member_id, enrolled_day, acquiring_merchant_id, tier,
                                   {", ".join(_SUMMARY_COLUMNS)})
SELECT m.member_id, least({_local_day("m.enrolled_at")}, a.first_active_day),
       m.acquiring_merchant_id, m.tier,
       a.first_active_day, a.last_active_day, coalesce(a.active_days, 0),
       a.first_purchase_day, a.last_purchase_day, coalesce(a.purchase_days, 0),
       a.first_redemption_day, coalesce(a.merchants, 0),
       {", ".join(f"coalesce(a.{name}, 0)" for name in DAY_COUNTERS)}
FROM members m
JOIN activity_touched USING (member_id)
LEFT JOIN (
  SELECT d.member_id,
         min(day) FILTER (WHERE {_ACTIVE}) AS first_active_day,
         max(day) FILTER (WHERE {_ACTIVE}) AS last_active_day,
         count(DISTINCT day) FILTER (WHERE {_ACTIVE}) AS active_days,
         min(day) FILTER (WHERE purchases > 0) AS first_purchase_day,
         max(day) FILTER (WHERE purchases > 0) AS last_purchase_day,
         count(DISTINCT day) FILTER (WHERE purchases > 0) AS purchase_days,
         min(day) FILTER (WHERE redemptions > 0) AS first_redemption_day,
         count(DISTINCT merchant_id) FILTER (WHERE {_ACTIVE}) AS merchants,
         {_SUMS}
  FROM activity_member_days d
  JOIN activity_touched USING (member_id)
  GROUP BY d.member_id
) a USING (member_id)
ORDER BY m.member_id
ON CONFLICT (member_id) DO UPDATE SET
  enrolled_day = excluded.enrolled_day, tier = excluded.tier,
  acquiring_merchant_id = excluded.acquiring_merchant_id,
  {", ".join(f"{name} = excluded.{name}" for name in _SUMMARY_COLUMNS)}
"""

# The touched members' days with what their contributions depend on, read once per phase
# by every contribution below.
_TOUCHED_DAYS_SQL = (
    "DROP TABLE IF EXISTS activity_touched_days",
    f"""
CREATE TEMP TABLE activity_touched_days ON COMMIT DROP AS
SELECT d.member_id, d.day, d.merchant_id, s.tier, s.enrolled_day, s.acquiring_merchant_id,
       (d.purchases > 0 OR d.redemptions > 0) AS active,
       {", ".join(f"d.{name}" for name in DAY_COUNTERS)}
FROM activity_touched t
JOIN activity_members s USING (member_id)
JOIN activity_member_days d ON d.member_id = t.member_id AND d.day >= t.from_day
""",
    "ANALYZE activity_touched_days",
    # Their active days, once each whatever the partners (distinct days are counted here
    # without DISTINCT aggregates, which sort), over their whole history: spells need it.
    "DROP TABLE IF EXISTS activity_touched_active_days",
    """
CREATE TEMP TABLE activity_touched_active_days ON COMMIT DROP AS
SELECT d.member_id, d.day, d.day >= t.from_day AS recent, s.tier, s.enrolled_day,
       s.acquiring_merchant_id
FROM activity_touched t
JOIN activity_members s USING (member_id)
JOIN activity_member_days d ON d.member_id = t.member_id
WHERE d.purchases > 0 OR d.redemptions > 0
GROUP BY d.member_id, d.day, t.from_day, s.tier, s.enrolled_day, s.acquiring_merchant_id
""",
    "ANALYZE activity_touched_active_days",
)


def _period(grain: str, day: str = "day") -> str:
    return day if grain == "day" else f"date_trunc('{grain}', {day})::date"


@dataclass(frozen=True, slots=True)
class _Contribution:
    """A small aggregate: `select` gives one row per key with the touched members'
    contributions (key columns first, then `values`), scaled by :sign and added in."""

    table: str
    keys: tuple[str, ...]
    values: tuple[str, ...]
    select: str

    def upsert(self) -> str:
        columns = (*self.keys, *self.values)
        return f"""
INSERT INTO {self.table} AS t ({", ".join(columns)})
SELECT {", ".join(self.keys)}, {", ".join(f":sign * {name}" for name in self.values)}
FROM ({self.select}) c
ORDER BY {", ".join(self.keys)}
ON CONFLICT ({", ".join(self.keys)}) DO UPDATE SET
  {", ".join(f"{name} = t.{name} + excluded.{name}" for name in self.values)}
"""

    def prune(self) -> str:
        """Rows every member left (a tier changed, a spell closed) are deleted, so the
        tables hold exactly what a rebuild writes."""
        return f"DELETE FROM {self.table} WHERE {' AND '.join(f'{v} = 0' for v in self.values)}"


def _periods(grain: str) -> _Contribution:
    # Per merchant, a member's active days there are its active rows (one per day). Across
    # the network: the partners it was active at (from the per-merchant rows) and its
    # distinct active days.
    return _Contribution(
        "activity_periods",
        ("grain", "period_start", "merchant_id", "tier"),
        PERIOD_COUNTERS,
        f"""
WITH at_merchant AS MATERIALIZED (
  SELECT {_period(grain)} AS period_start, merchant_id, tier, member_id,
         bool_or(active) AS active, bool_or(purchases > 0) AS purchased,
         bool_or(redemptions > 0) AS redeemed, false AS multi,
         count(*) FILTER (WHERE active) AS active_days, {_SUMS}
  FROM activity_touched_days GROUP BY 1, 2, 3, 4
), days AS (
  SELECT {_period(grain)} AS period_start, member_id, count(*) AS active_days
  FROM activity_touched_active_days WHERE recent GROUP BY 1, 2
), per_member AS (
  SELECT * FROM at_merchant
  UNION ALL
  SELECT m.period_start, CAST(:network AS uuid), m.tier, m.member_id, m.active, m.purchased,
         m.redeemed, m.multi, coalesce(d.active_days, 0), {", ".join(f"m.{n}" for n in DAY_COUNTERS)}
  FROM (SELECT period_start, tier, member_id, bool_or(active) AS active,
               bool_or(purchased) AS purchased, bool_or(redeemed) AS redeemed,
               count(*) FILTER (WHERE active) >= 2 AS multi, {_SUMS}
        FROM at_merchant GROUP BY 1, 2, 3) m
  LEFT JOIN days d USING (period_start, member_id)
)
SELECT '{grain}' AS grain, period_start, merchant_id, tier,
       count(*) FILTER (WHERE active) AS active_members,
       count(*) FILTER (WHERE purchased) AS purchasers,
       count(*) FILTER (WHERE redeemed) AS redeemers,
       count(*) FILTER (WHERE multi) AS multi_merchant_members,
       sum(active_days) AS active_member_days, {_SUMS}
FROM per_member GROUP BY 1, 2, 3, 4
""",
    )


def _active_days(grain: str) -> _Contribution:
    return _Contribution(
        "activity_active_days",
        ("grain", "period_start", "tier", "active_days"),
        ("members",),
        f"""
SELECT '{grain}' AS grain, period_start, tier, active_days, count(*) AS members
FROM (SELECT {_period(grain)} AS period_start, tier, member_id, count(*) AS active_days
      FROM activity_touched_active_days WHERE recent GROUP BY 1, 2, 3) m
GROUP BY 1, 2, 3, 4
""",
    )


def _merchant_sets(grain: str) -> _Contribution:
    def partners(condition: str) -> str:
        return (
            f"coalesce(array_agg(merchant_id ORDER BY merchant_id) FILTER (WHERE {condition}),"
            " '{}')"
        )

    return _Contribution(
        "activity_merchant_sets",
        ("grain", "period_start", "tier", "active_at", "purchased_at", "redeemed_at"),
        ("members",),
        f"""
WITH used AS (  -- one row per member, period and partner
  SELECT {_period(grain)} AS period_start, tier, member_id, merchant_id,
         bool_or(purchases > 0) AS purchased, bool_or(redemptions > 0) AS redeemed
  FROM activity_touched_days WHERE active GROUP BY 1, 2, 3, 4
)
SELECT '{grain}' AS grain, period_start, tier, active_at, purchased_at, redeemed_at,
       count(*) AS members
FROM (SELECT period_start, tier, member_id, {partners("true")} AS active_at,
             {partners("purchased")} AS purchased_at, {partners("redeemed")} AS redeemed_at
      FROM used GROUP BY 1, 2, 3) m
GROUP BY 1, 2, 3, 4, 5, 6
""",
    )


def _merchant_pairs(grain: str) -> _Contribution:
    return _Contribution(
        "activity_merchant_pairs",
        ("grain", "period_start", "merchant_a", "merchant_b"),
        ("members",),
        f"""
WITH used AS (
  SELECT DISTINCT {_period(grain)} AS period_start, member_id, merchant_id
  FROM activity_touched_days WHERE active
)
SELECT '{grain}' AS grain, a.period_start, a.merchant_id AS merchant_a,
       b.merchant_id AS merchant_b, count(*) AS members
FROM used a
JOIN used b ON b.member_id = a.member_id AND b.period_start = a.period_start
           AND b.merchant_id > a.merchant_id
GROUP BY 1, 2, 3, 4
""",
    )


def _cohorts(grain: str) -> _Contribution:
    return _Contribution(
        "activity_cohorts",
        ("grain", "cohort_start", "acquiring_merchant_id", "period_start"),
        ("active_members", "last_active_members"),
        f"""
SELECT '{grain}' AS grain, cohort_start, acquiring_merchant_id, period_start,
       count(*) AS active_members, 0 AS last_active_members
FROM (SELECT DISTINCT {_period(grain, "enrolled_day")} AS cohort_start, acquiring_merchant_id,
             member_id, {_period(grain)} AS period_start
      FROM activity_touched_active_days WHERE recent) active
GROUP BY 1, 2, 3, 4
""",
    )


def _cohort_last_periods(grain: str) -> _Contribution:
    """A member's last active period depends on its whole history: it comes from its
    summary row."""
    return _Contribution(
        "activity_cohorts",
        ("grain", "cohort_start", "acquiring_merchant_id", "period_start"),
        ("active_members", "last_active_members"),
        f"""
SELECT '{grain}' AS grain, {_period(grain, "enrolled_day")} AS cohort_start,
       acquiring_merchant_id, {_period(grain, "last_active_day")} AS period_start,
       0 AS active_members, count(*) AS last_active_members
FROM activity_members JOIN activity_touched USING (member_id)
WHERE last_active_day IS NOT NULL
GROUP BY 1, 2, 3, 4
""",
    )


_ENROLMENTS = _Contribution(
    "activity_enrolments",
    ("day", "acquiring_merchant_id"),
    ("members",),
    """
SELECT enrolled_day AS day, acquiring_merchant_id, count(*) AS members
FROM activity_members JOIN activity_touched USING (member_id)
GROUP BY 1, 2
""",
)
# A member's anchors are its active days, and its enrolment day when no activity fell on
# it; each anchor opens a spell that the next one closes.
_SPELLS = _Contribution(
    "activity_spells",
    ("from_day", "to_day", "from_enrolment"),
    ("members",),
    """
WITH anchors AS (
  SELECT member_id, day, false AS from_enrolment FROM activity_touched_active_days
  UNION ALL
  SELECT member_id, enrolled_day, true
  FROM activity_members JOIN activity_touched USING (member_id)
  WHERE first_active_day IS NULL OR first_active_day > enrolled_day
)
SELECT from_day, to_day, from_enrolment, count(*) AS members
FROM (SELECT day AS from_day, from_enrolment,
             coalesce(lead(day) OVER (PARTITION BY member_id ORDER BY day),
                      'infinity'::date) AS to_day
      FROM anchors) s
GROUP BY 1, 2, 3
""",
)
CONTRIBUTIONS = (
    *(_periods(grain) for grain in ("day", "week", "month")),
    *(_active_days(grain) for grain in ("week", "month")),
    *(_merchant_sets(grain) for grain in ("day", "week", "month")),
    *(_merchant_pairs(grain) for grain in ("week", "month")),
    *(_cohorts(grain) for grain in ("week", "month")),
    *(_cohort_last_periods(grain) for grain in ("week", "month")),
    _ENROLMENTS,
    _SPELLS,
)

# Allocations carry their transaction's posting time; joining through the transactions
# posted in the window uses the ledger's posted_at index instead of adding one to the
# allocations table the redemption path writes.
_POINT_FLOWS_SQL = f"""
INSERT INTO activity_point_flows AS f (day, kind, issuing_merchant_id, redeeming_merchant_id,
                                       points)
SELECT {_local_day("t.posted_at")}, a.kind,
       coalesce(a.issuing_merchant_id, :network), coalesce(a.redeeming_merchant_id, :network),
       sum(a.points)
FROM ledger_transactions t
JOIN allocations a ON a.member_id = t.member_id AND a.transaction_id = t.transaction_id
WHERE t.posted_at >= :start AND t.posted_at < :end
  AND t.kind IN ('redeem', 'capture', 'reversal', 'expiry')
  AND a.kind IN ('redemption', 'reversal', 'expiry')
GROUP BY 1, 2, 3, 4
ON CONFLICT (day, kind, issuing_merchant_id, redeeming_merchant_id) DO UPDATE SET
  points = f.points + excluded.points
"""

# The end of the next windows: before every transaction still open in this database (a
# posting's posted_at is its transaction's start) and `margin` before the job's own start.
# `hidden` counts sessions whose transaction start the job's role may not see.
_SAFE_END_SQL = """
SELECT now() AS now,
       min(xact_start) FILTER (WHERE xact_start IS NOT NULL) AS oldest_open,
       count(*) FILTER (WHERE state IS NULL) AS hidden
FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
  AND backend_type = 'client backend'
"""


def safe_end(connection: Connection, margin: timedelta = DEFAULT_MARGIN) -> datetime:
    """The latest posting time before which every transaction has committed or aborted."""
    row = connection.execute(text(_SAFE_END_SQL)).one()
    end = row.now - (CLOSE_DELAY if row.hidden else margin)
    return min(end, row.oldest_open) if row.oldest_open is not None else end


def refresh(
    engine: Engine,
    rules: ProgramRules,
    *,
    full: bool = False,
    until: datetime | None = None,
    batch: timedelta = DEFAULT_BATCH,
    margin: timedelta = DEFAULT_MARGIN,
) -> RefreshReport:
    """Bring the rollups up to date (`full`: rebuild them from the whole ledger).

    `until` caps the windows (tests and benchmarks replay history in steps)."""
    started = time.perf_counter()
    with engine.begin() as connection:
        end = safe_end(connection, margin)
        built_in = connection.scalar(text("SELECT time_zone FROM activity_refresh"))
    if until is not None:
        end = min(end, until)
    # The first run is a rebuild; so is the first after a change of the programme's time
    # zone, since every day moves.
    full = full or built_in != rules.time_zone
    batches = members = 0
    watermark = None
    while True:
        with engine.begin() as connection:
            if full and not batches:
                # Emptied in the rebuild's own transaction: readers see the old rollups,
                # then the new ones, and a failed rebuild leaves the old ones in place.
                _reset(connection, rules)
            watermark = _lock_state(connection)
            if watermark >= end:
                break
            window_end = end if watermark == BEGINNING else min(end, watermark + batch)
            members += _apply_window(connection, rules, watermark, window_end)
            _set_watermark(connection, window_end)
            watermark = window_end
            batches += 1
    if full and batches:
        with engine.begin() as connection:
            for table in ROLLUP_TABLES:  # the planner's estimates for the new rows
                connection.execute(text(f"ANALYZE {table}"))
    return RefreshReport(full, batches, members, watermark, time.perf_counter() - started)


def _reset(connection: Connection, rules: ProgramRules) -> None:
    connection.execute(text(f"TRUNCATE {', '.join(ROLLUP_TABLES)}"))
    connection.execute(
        text(
            "INSERT INTO activity_refresh (id, watermark, time_zone, refreshed_at)"
            " VALUES (true, :beginning, :tz, now()) ON CONFLICT (id) DO UPDATE SET"
            " watermark = :beginning, time_zone = :tz, refreshed_at = now()"
        ),
        {"tz": rules.time_zone, "beginning": BEGINNING},
    )


def _lock_state(connection: Connection) -> datetime:
    """The watermark, with the state row locked until the batch commits."""
    return connection.execute(
        text("SELECT watermark FROM activity_refresh FOR UPDATE")
    ).scalar_one()


def _set_watermark(connection: Connection, watermark: datetime) -> None:
    connection.execute(
        text("UPDATE activity_refresh SET watermark = :watermark, refreshed_at = now()"),
        {"watermark": watermark},
    )


def _apply_window(
    connection: Connection, rules: ProgramRules, start: datetime, end: datetime
) -> int:
    """One batch: steps 1-6 of the module docstring. Returns the touched members."""
    window = {"start": start, "end": end, "tz": rules.time_zone, "network": NETWORK}
    # The job's sorts and hashes are large and few: give them memory, for this
    # transaction only.
    connection.execute(text("SET LOCAL work_mem = '256MB'"))
    for statement in _TOUCHED_SQL:
        connection.execute(text(statement), window)
    touched = connection.scalar(text("SELECT count(*) FROM activity_touched"))
    if touched:
        _contribute(connection, -1)
        connection.execute(text(_MEMBER_DAYS_SQL), window)
        connection.execute(text(_MEMBERS_SQL), window)
        _contribute(connection, +1)
        # Several contributions share a table and its values: prune each table once.
        for prune in dict.fromkeys(contribution.prune() for contribution in CONTRIBUTIONS):
            connection.execute(text(prune))
    connection.execute(text(_POINT_FLOWS_SQL), window)
    return touched


def _contribute(connection: Connection, sign: int) -> None:
    for statement in _TOUCHED_DAYS_SQL:
        connection.execute(text(statement))
    for contribution in CONTRIBUTIONS:
        connection.execute(text(contribution.upsert()), {"sign": sign, "network": NETWORK})
