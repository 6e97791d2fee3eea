"""What an earn and a redemption read for members who hold many lots.

    .venv/bin/python -m seed.benchmark_heavy_member

For each size below, a group of members gets that many base lots spread over the last 12
months (all open, none spent), inserted in random order among the group's other lots so
that, as in a real ledger, one member's lots lie on as many pages as it has lots. Then,
the median of `--repeat` runs for each member of the group:

- the earn's locking read (shared.ledger.earning), which sums the member's qualifying
  points: its execution time on the server (EXPLAIN ANALYZE), with the lots' qualifying
  index and without it (dropped in a transaction that is rolled back);
- a 100-point redemption's read of the lots it may spend, as the API sees it (the
  statement, decoding its rows into OpenLots, planning first-to-expire): every spendable
  lot (`journal.SPENDABLE_LOTS_SQL`, as transfers read them) against the first lots by
  expiry that a redemption reads (`redemption.spending_sql`, `enough_first_lots`).

Uses the coalition_bench database (emptied first), as the earn benchmark does. Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import time

import asyncpg

from seed.benchmark_earn import bench_database, prepare
from shared.database.migrate import upgrade
from shared.ledger import journal
from shared.ledger.earning import _EARN_CONTEXT
from shared.ledger.redemption import FIRST_LOTS_READ, enough_first_lots, spending_sql

REDEEMED = 100

SIZES = (10, 100, 1_000, 3_000)
_LOTS_SQL = """
INSERT INTO lots (member_id, lot_id, transaction_id, source, issuing_merchant_id,
    funder_merchant_id, earned_at, available_at, expires_at, original, remaining)
SELECT member_id, gen_random_uuid(), gen_random_uuid(), 'base', $2, $2, earned_at, earned_at,
       earned_at + interval '12 months', 10, 10
FROM (SELECT m.member_id, now() - (g * interval '364 days' / $3) AS earned_at
      FROM unnest($1::uuid[]) AS m(member_id), generate_series(1, $3) AS g) AS made
ORDER BY random()
"""
_EXECUTION = re.compile(r"Execution Time: ([\d.]+) ms")


async def _read_time(connection: asyncpg.Connection, member_id, merchant_id) -> float:
    """Milliseconds the server spent executing the earn's locking read for the member."""
    plan = await connection.fetch(
        "EXPLAIN (ANALYZE, TIMING OFF) " + _EARN_CONTEXT._by_id, member_id, merchant_id, None
    )
    return float(_EXECUTION.search(plan[-1][0]).group(1))


async def _spend_read_time(
    connection: asyncpg.Connection, member_id, first_lots_only: bool
) -> float:
    """Milliseconds the API spends reading and planning a redemption's lots."""
    now = await connection.fetchval("SELECT now()")
    started = time.perf_counter()
    if first_lots_only:
        found = await connection.fetchrow(spending_sql(FIRST_LOTS_READ), member_id, now)
        first_lots = [journal.OpenLot(*lot) for lot in found["first_lots"]]
        lots = enough_first_lots(first_lots, REDEEMED)
    else:
        found = await connection.fetchval(journal.SPENDABLE_LOTS_SQL, member_id, now)
        lots = [journal.OpenLot(*lot) for lot in found]
    journal.plan_first_to_expire(lots, REDEEMED)
    return (time.perf_counter() - started) * 1000


async def _medians(groups: dict[int, list], repeat: int, timed) -> dict:
    return {
        str(size): round(
            statistics.median(
                [await timed(member_id) for member_id in member_ids for _ in range(repeat)]
            ),
            3,
        )
        for size, member_ids in groups.items()
    }


async def measure(dsn: str, members_per_size: int, repeat: int) -> dict:
    connection = await asyncpg.connect(dsn)
    try:
        merchant_id = await connection.fetchval("SELECT merchant_id FROM merchants LIMIT 1")
        everyone = [row[0] for row in await connection.fetch("SELECT member_id FROM members")]
        groups = {
            size: everyone[index * members_per_size : (index + 1) * members_per_size]
            for index, size in enumerate(SIZES)
        }
        for size, member_ids in groups.items():
            await connection.execute(_LOTS_SQL, member_ids, merchant_id, size)
        await connection.execute("VACUUM ANALYZE lots")

        async def earn_read(member_id) -> float:
            return await _read_time(connection, member_id, merchant_id)

        result = {
            "earn_locking_read_server_ms": {"with_index": await _medians(groups, repeat, earn_read)}
        }
        dropped = connection.transaction()
        await dropped.start()
        try:
            await connection.execute("DROP INDEX ix_lots_qualifying")
            result["earn_locking_read_server_ms"]["without_index"] = await _medians(
                groups, repeat, earn_read
            )
        finally:
            await dropped.rollback()
        result["redemption_lots_read_api_ms"] = {
            name: await _medians(
                groups,
                repeat,
                lambda member_id, first_lots_only=first_lots_only: _spend_read_time(
                    connection, member_id, first_lots_only
                ),
            )
            for name, first_lots_only in (("every_spendable_lot", False), ("first_lots", True))
        }
    finally:
        await connection.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members-per-size", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=20)
    arguments = parser.parse_args()
    _, url = bench_database()
    upgrade(url)
    prepare(url, arguments.members_per_size * len(SIZES))
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    result = asyncio.run(measure(dsn, arguments.members_per_size, arguments.repeat))
    print(
        json.dumps(
            {
                "open_base_lots": list(SIZES),
                **result,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
