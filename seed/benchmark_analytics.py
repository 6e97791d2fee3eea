"""Analytics benchmark: every query function on a seeded network, and the same metrics
computed by DuckDB over the raw ledger tables exported from PostgreSQL.

    COALITION_DATA_DIR=/tmp/coalition-bench .venv/bin/python -m seed.benchmark_analytics
    ... --incremental-days 7 --no-duckdb   # the refresh job: rebuild, then 7 daily batches

Run `coalition jobs rollups` first (the bulk seed does). Prints one table of query ->
seconds (first run, then the best of --repeat runs), the export and load times, and the
DuckDB table. DuckDB (a dev dependency) reads the CSV the export writes; its extensions
cannot be downloaded here and are not needed (ICU and Parquet are built in).
"""

from __future__ import annotations

import argparse
import time
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import create_engine, text

from shared.analytics import activity, lifecycle, members, redemption, retention
from shared.analytics.query import MetricScope, Query, data_as_of, period_start, run
from shared.analytics.refresh import refresh
from shared.database.bootstrap import database_url
from shared.database.urls import libpq_conninfo
from shared.settings import get_settings


def _context(connection, as_of: date) -> dict:
    busiest = list(
        connection.execute(
            text(
                "SELECT merchant_id FROM activity_periods WHERE grain = 'month'"
                " AND merchant_id <> '00000000-0000-0000-0000-000000000000'"
                " GROUP BY 1 ORDER BY sum(active_members) DESC LIMIT 3"
            )
        ).scalars()
    )
    last_month = period_start(period_start(as_of, "month") - timedelta(days=1), "month")
    return {"merchants": tuple(busiest), "last_month": last_month}


def pg_queries(as_of: date, ctx: dict) -> list[tuple[str, Query]]:
    merchants, month = ctx["merchants"], ctx["last_month"]
    year_ago = as_of - timedelta(days=365)
    return [
        ("DAU, last 90 days", activity.series("day", MetricScope(as_of - timedelta(90), as_of), as_of)),
        ("WAU, all weeks", activity.series("week", MetricScope(), as_of)),
        ("MAU, all months", activity.series("month", MetricScope(), as_of)),
        ("MAU, one merchant", activity.series("month", MetricScope(merchant_ids=merchants[:1]), as_of)),
        ("MAU, three merchants", activity.series("month", MetricScope(merchant_ids=merchants), as_of)),
        ("MAU, gold + platinum", activity.series("month", MetricScope(tiers=("gold", "platinum")), as_of)),
        ("DAU, three merchants, 30 days",
         activity.series("day", MetricScope(as_of - timedelta(30), as_of, merchants), as_of)),
        ("active-days histogram, months", activity.active_days_histogram("month", MetricScope(), as_of)),
        ("partner-pair affinity, last month", activity.pair_affinity("month", month)),
        ("retention, month cohorts", retention.matrix("month", as_of)),
        ("retention, week cohorts", retention.matrix("week", as_of)),
        ("retention, month x acquiring merchant",
         retention.matrix("month", as_of, by_acquiring_merchant=True)),
        ("lifecycle + churn, months (T=90)", lifecycle.states("month", year_ago, as_of, as_of)),
        ("lifecycle + churn, weeks (T=90)", lifecycle.states("week", year_ago, as_of, as_of)),
        ("members lapsed in the last month (10,000)",
         lifecycle.member_states("month", month, as_of, states=("lapsed",), limit=10_000)),
        ("inter-purchase gaps", lifecycle.active_day_gaps()),
        ("time to first redemption", redemption.time_to_first_redemption(as_of)),
        ("earned-at -> redeemed-at flows, 12 months", redemption.flows(MetricScope(year_ago, as_of))),
        ("breakage, months", redemption.breakage("month", MetricScope(), as_of)),
        ("at-risk list (top 10,000 by balance)",
         members.at_risk(as_of, min_balance=500, min_days_inactive=30, limit=10_000)),
        ("member summaries (every member)", members.summaries(as_of)),
    ]  # fmt: skip


def time_pg(engine, queries, repeat: int) -> list[tuple[str, float, float, int]]:
    results = []
    with engine.connect() as connection:
        for name, query in queries:
            seconds = []
            for _ in range(repeat):
                started = time.perf_counter()
                result = run(connection, query)
                seconds.append(time.perf_counter() - started)
            size = len(result.rows) if hasattr(result, "rows") else _size(result)
            results.append((name, seconds[0], min(seconds), size))
    return results


def _size(result) -> int:
    if hasattr(result, "counts"):
        return len(result.counts)
    try:
        return len(result)
    except TypeError:
        return 1


# --- DuckDB over the raw tables -----------------------------------------------------------

_EXPORTS = {
    "tx": "SELECT member_id, kind, merchant_id, occurred_at, amount_minor, points"
    " FROM ledger_transactions WHERE merchant_id IS NOT NULL"
    " AND kind IN ('earn', 'refund', 'redeem', 'capture', 'reversal')",
    "members": "SELECT member_id, enrolled_at, acquiring_merchant_id, tier FROM members",
    "allocations": "SELECT kind, issuing_merchant_id, redeeming_merchant_id, posted_at, points"
    " FROM allocations WHERE kind IN ('redemption', 'reversal', 'expiry')",
}


def export(conninfo: str, directory: Path) -> float:
    import psycopg

    started = time.perf_counter()
    directory.mkdir(parents=True, exist_ok=True)
    with psycopg.connect(conninfo) as connection, connection.cursor() as cursor:
        for name, sql in _EXPORTS.items():
            with (
                (directory / f"{name}.csv").open("wb") as handle,
                cursor.copy(f"COPY ({sql}) TO STDOUT (FORMAT csv, HEADER)") as copy,
            ):
                for chunk in copy:
                    handle.write(chunk)
    return time.perf_counter() - started


def load(duck, directory: Path, zone: str) -> float:
    started = time.perf_counter()
    duck.execute(f"SET TimeZone = '{zone}'")
    for name in _EXPORTS:
        duck.execute(
            f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM read_csv('{directory / name}.csv')"
        )
    return time.perf_counter() - started


def duck_queries(as_of: date, ctx: dict) -> list[tuple[str, str]]:
    # Local days: DuckDB's TimeZone setting is the programme's, so a cast of a timestamptz
    # to DATE gives the local day, as AT TIME ZONE does in PostgreSQL.
    merchants = ", ".join(f"'{m}'" for m in ctx["merchants"])
    month, year_ago = ctx["last_month"], as_of - timedelta(days=365)
    active = "kind IN ('earn', 'redeem', 'capture')"
    days = f"SELECT DISTINCT member_id, CAST(occurred_at AS DATE) AS day FROM tx WHERE {active}"
    enrolled = f"""
      SELECT m.member_id, m.acquiring_merchant_id,
             least(CAST(m.enrolled_at AS DATE), f.first_day) AS enrolled
      FROM members m LEFT JOIN (SELECT member_id, min(day) AS first_day FROM ({days}) d
                                GROUP BY 1) f USING (member_id)"""
    spells = f"""
      WITH e AS ({enrolled}), d AS ({days}),
      anchors AS (SELECT member_id, day, false AS from_enrolment FROM d
                  UNION ALL
                  SELECT e.member_id, e.enrolled, true FROM e
                  WHERE NOT EXISTS (SELECT 1 FROM d WHERE d.member_id = e.member_id
                                    AND d.day = e.enrolled))
      SELECT day AS from_day, from_enrolment,
             lead(day) OVER (PARTITION BY member_id ORDER BY day) AS to_day FROM anchors"""
    return [
        ("DAU, last 90 days",
         f"SELECT CAST(occurred_at AS DATE) d, count(DISTINCT member_id) FROM tx WHERE {active}"
         f" AND CAST(occurred_at AS DATE) >= DATE '{as_of - timedelta(90)}' GROUP BY 1"),
        ("WAU, all weeks",
         f"SELECT date_trunc('week', CAST(occurred_at AS DATE)) p, count(DISTINCT member_id)"
         f" FROM tx WHERE {active} GROUP BY 1"),
        ("MAU, all months",
         f"SELECT date_trunc('month', CAST(occurred_at AS DATE)) p, count(DISTINCT member_id)"
         f" FROM tx WHERE {active} GROUP BY 1"),
        ("MAU, three merchants",
         f"SELECT date_trunc('month', CAST(occurred_at AS DATE)) p, count(DISTINCT member_id)"
         f" FROM tx WHERE {active} AND merchant_id IN ({merchants}) GROUP BY 1"),
        ("MAU, gold + platinum",
         f"SELECT date_trunc('month', CAST(occurred_at AS DATE)) p, count(DISTINCT member_id)"
         f" FROM tx JOIN members USING (member_id) WHERE {active}"
         f" AND tier IN ('gold', 'platinum') GROUP BY 1"),
        ("partner-pair affinity, last month",
         f"WITH u AS (SELECT DISTINCT member_id, merchant_id FROM tx WHERE {active}"
         f" AND date_trunc('month', CAST(occurred_at AS DATE)) = DATE '{month}')"
         f" SELECT a.merchant_id, b.merchant_id, count(*) FROM u a JOIN u b"
         f" ON a.member_id = b.member_id AND a.merchant_id < b.merchant_id GROUP BY 1, 2"),
        ("retention, month cohorts",
         f"WITH e AS ({enrolled}), a AS (SELECT DISTINCT member_id,"
         f" date_trunc('month', CAST(occurred_at AS DATE)) p FROM tx WHERE {active})"
         f" SELECT date_trunc('month', e.enrolled) c, a.p, count(*) FROM a JOIN e"
         f" USING (member_id) GROUP BY 1, 2"),
        ("lifecycle + churn, months (T=90)",
         f"WITH s AS ({spells}), p AS (SELECT CAST(range AS DATE) AS first,"
         f" CAST(range + INTERVAL 1 MONTH AS DATE) AS after FROM range(DATE '{period_start(year_ago, 'month')}',"
         f" DATE '{period_start(as_of, 'month')}', INTERVAL 1 MONTH))"
         f" SELECT first, count(*) FILTER (WHERE to_day < after AND to_day <= from_day + 90),"
         f" count(*) FILTER (WHERE to_day < after AND to_day > from_day + 90),"
         f" count(*) FILTER (WHERE (to_day IS NULL OR to_day >= after) AND from_day + 90 >= after),"
         f" count(*) FILTER (WHERE (to_day IS NULL OR to_day >= after) AND from_day + 90 < after)"
         f" FROM p JOIN s ON s.from_day < p.first AND (s.to_day IS NULL OR s.to_day >= p.first)"
         f" GROUP BY 1"),
        ("inter-purchase gaps",
         f"SELECT to_day - from_day g, count(*) FROM ({spells}) s"
         f" WHERE NOT from_enrolment AND to_day IS NOT NULL GROUP BY 1"),
        ("time to first redemption",
         f"WITH e AS ({enrolled}), r AS (SELECT member_id, min(CAST(occurred_at AS DATE)) f"
         f" FROM tx WHERE kind IN ('redeem', 'capture') GROUP BY 1)"
         f" SELECT coalesce(r.f, DATE '{as_of}') - e.enrolled d, r.f IS NOT NULL, count(*)"
         f" FROM e LEFT JOIN r USING (member_id) GROUP BY 1, 2"),
        ("earned-at -> redeemed-at flows, 12 months",
         "SELECT issuing_merchant_id, redeeming_merchant_id, sum(points) FROM allocations"
         f" WHERE kind IN ('redemption', 'reversal') AND CAST(posted_at AS DATE)"
         f" >= DATE '{year_ago}' GROUP BY 1, 2"),
        ("breakage, months",
         "SELECT date_trunc('month', CAST(posted_at AS DATE)),"
         " sum(points) FILTER (WHERE kind = 'expiry'),"
         " sum(points) FILTER (WHERE kind <> 'expiry') FROM allocations GROUP BY 1"),
        ("member summaries (every member)",
         "SELECT member_id, min(CAST(occurred_at AS DATE)) FILTER (WHERE kind = 'earn'),"
         " max(CAST(occurred_at AS DATE)) FILTER (WHERE kind = 'earn'),"
         " count(DISTINCT CAST(occurred_at AS DATE)) FILTER (WHERE kind = 'earn'),"
         " count(*) FILTER (WHERE kind = 'earn'),"
         " sum(CASE kind WHEN 'earn' THEN amount_minor WHEN 'refund' THEN -amount_minor END)"
         " FROM tx GROUP BY 1"),
    ]  # fmt: skip


def time_duck(duck, queries: list[tuple[str, str]], repeat: int) -> dict[str, float]:
    best = {}
    for name, sql in queries:
        seconds = []
        for _ in range(repeat):
            started = time.perf_counter()
            duck.execute(sql).fetchall()
            seconds.append(time.perf_counter() - started)
        best[name] = min(seconds)
    return best


def measure_refresh(engine, rules, days: int) -> None:
    """A full rebuild up to `days` before the last posting, then the rest incrementally,
    one day of postings per batch: what the job costs when it catches up."""
    with engine.connect() as connection:
        last = connection.execute(text("SELECT max(posted_at) FROM ledger_transactions")).scalar()
    full = refresh(engine, rules, full=True, until=last - timedelta(days=days))
    print(f"full rebuild up to {full.watermark}: {full.seconds:.1f} s")
    print("| batch ends | members touched | seconds |")
    print("|---|---|---|")
    watermark = full.watermark
    while watermark < last:
        step = refresh(engine, rules, until=watermark + timedelta(days=1))
        watermark = step.watermark
        print(f"| {watermark:%Y-%m-%d %H:%M} | {step.members:,} | {step.seconds:.1f} |")
    rest = refresh(engine, rules)
    print(f"up to now: {rest.batches} batches, {rest.seconds:.1f} s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--export-dir", type=Path, default=Path("/tmp/coalition-analytics-export"))
    parser.add_argument("--no-duckdb", action="store_true")
    parser.add_argument(
        "--incremental-days",
        type=int,
        default=0,
        help="First rebuild the rollups without the last N days, then add them day by day.",
    )
    options = parser.parse_args(argv)
    settings = get_settings()
    url = database_url(settings)
    engine = create_engine(url)
    if options.incremental_days:
        measure_refresh(engine, settings.program, options.incremental_days)
    with engine.connect() as connection:
        as_of = run(connection, data_as_of())
        if as_of is None:
            raise SystemExit("no rollups yet: run `coalition jobs rollups` first")
        ctx = _context(connection, as_of)
    results = time_pg(engine, pg_queries(as_of, ctx), options.repeat)
    engine.dispose()
    duck_seconds: dict[str, float] = {}
    if not options.no_duckdb:
        import duckdb

        exported = export(libpq_conninfo(url), options.export_dir)
        duck = duckdb.connect()
        loaded = load(duck, options.export_dir, settings.program.time_zone)
        print(f"export PostgreSQL -> CSV: {exported:.1f} s; load CSV -> DuckDB: {loaded:.1f} s")
        duck_seconds = time_duck(duck, duck_queries(as_of, ctx), options.repeat)
    _print(results, duck_seconds, as_of)


def _print(results, duck_seconds: dict[str, float], as_of: date) -> None:
    print(f"as of {as_of}")
    print("| query | rows | first run (s) | best (s) | DuckDB on raw tables (s) |")
    print("|---|---|---|---|---|")

    def format_duck(name: str) -> str:
        return f"{duck_seconds[name]:.3f}" if name in duck_seconds else "–"

    for name, first, best, size in results:
        print(f"| {name} | {size:,} | {first:.3f} | {best:.3f} | {format_duck(name)} |")


if __name__ == "__main__":
    main()
