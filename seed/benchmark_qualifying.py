"""What an earn's locking read costs for members who earned many lots in the last 12 months.

    .venv/bin/python -m seed.benchmark_qualifying

The earn's locking read (shared.ledger.earning) sums the member's qualifying points: its
base lots of the last 12 months. For each size below, a group of members gets that many
base lots spread over the year, inserted in random order among the group's other lots so
that, as in a real ledger, one member's lots lie on as many pages as it has lots. The read
is then timed on the server (EXPLAIN ANALYZE's execution time, the median of `--repeat`
runs for each member of the group), once with the lots' qualifying index and once without
it (dropped in a transaction that is rolled back). Prints JSON.

Uses the coalition_bench database (emptied first), as the earn benchmark does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics

import asyncpg

from seed.benchmark_earn import bench_database, prepare
from shared.database.migrate import upgrade
from shared.ledger.earning import _EARN_CONTEXT

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


async def _timings(connection, groups: dict[int, list], merchant_id, repeat: int) -> dict:
    medians = {}
    for size, member_ids in groups.items():
        times = [
            await _read_time(connection, member_id, merchant_id)
            for member_id in member_ids
            for _ in range(repeat)
        ]
        medians[str(size)] = round(statistics.median(times), 3)
    return medians


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
        with_index = await _timings(connection, groups, merchant_id, repeat)
        dropped = connection.transaction()
        await dropped.start()
        try:
            await connection.execute("DROP INDEX ix_lots_qualifying")
            without_index = await _timings(connection, groups, merchant_id, repeat)
        finally:
            await dropped.rollback()
    finally:
        await connection.close()
    return {"with_index_ms": with_index, "without_index_ms": without_index}


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
                "measure": "server execution time of the earn's locking read, median",
                "base_lots_in_12_months": list(SIZES),
                **result,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
