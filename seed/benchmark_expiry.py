"""Expiry job benchmark: N expired lots, consistent with the ledger, expired by the real job.

    .venv/bin/python -m seed.benchmark_expiry --lots 1000000 --lots-per-member 4

Builds the data set-based in its own database (coalition_bench_expiry), runs
`expire_due_lots`, then `coalition audit`'s checks, and prints one JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import create_async_engine

from shared.database.bootstrap import async_url, ensure_database
from shared.database.migrate import upgrade
from shared.database.urls import server_url, with_driver
from shared.ledger.expiry import expire_due_lots
from shared.ledger.integrity import run_checks
from shared.settings import get_settings
from shared.tables import metadata

BUILD_SQL = """
INSERT INTO merchants (merchant_id, name, industry, currency, earn_rate, issuance_price, redemption_rate)
VALUES ('00000000-0000-0000-0000-00000000000a', 'Expiry Mart', 'grocery', 'USD', 1, 0.01, 0.008);

CREATE TEMP TABLE bench_lots AS
SELECT gen_random_uuid() AS lot_id, gen_random_uuid() AS transaction_id,
       m.member_id, (10 + (random() * 490)::int) AS points
FROM (SELECT gen_random_uuid() AS member_id FROM generate_series(1, :members)) m,
     generate_series(1, :per_member);

INSERT INTO members (member_id, enrolled_at, acquiring_merchant_id)
SELECT DISTINCT member_id, now() - interval '2 years', '00000000-0000-0000-0000-00000000000a'::uuid
FROM bench_lots;
INSERT INTO ledger_transactions (member_id, transaction_id, kind, merchant_id, occurred_at,
    posted_at, points, amount_minor, currency)
SELECT member_id, transaction_id, 'earn', '00000000-0000-0000-0000-00000000000a',
       now() - interval '13 months', now() - interval '13 months', points, points * 100, 'USD'
FROM bench_lots;
INSERT INTO postings (member_id, transaction_id, line, account, merchant_id, amount, posted_at)
SELECT member_id, transaction_id, 1, 'member', NULL::uuid, points, now() - interval '13 months' FROM bench_lots
UNION ALL
SELECT member_id, transaction_id, 2, 'issued', '00000000-0000-0000-0000-00000000000a'::uuid, -points,
       now() - interval '13 months' FROM bench_lots;
INSERT INTO lots (member_id, lot_id, transaction_id, source, issuing_merchant_id,
    funder_merchant_id, earned_at, available_at, expires_at, original, remaining)
SELECT member_id, lot_id, transaction_id, 'base', '00000000-0000-0000-0000-00000000000a',
       '00000000-0000-0000-0000-00000000000a', now() - interval '13 months',
       now() - interval '13 months', now() - interval '1 month', points, points
FROM bench_lots;
INSERT INTO member_balances (member_id, balance, lifetime_earned)
SELECT member_id, sum(points), sum(points) FROM bench_lots GROUP BY member_id;
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lots", type=int, default=1_000_000)
    parser.add_argument("--lots-per-member", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=5000)
    arguments = parser.parse_args()
    server = with_driver(server_url(get_settings()), "psycopg")
    ensure_database(server, "coalition_bench_expiry")
    url = server.set(database="coalition_bench_expiry")
    upgrade(url)
    engine = create_engine(url)
    names = ", ".join(table.name for table in metadata.sorted_tables)
    started = time.perf_counter()
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {names} CASCADE"))
        for statement in BUILD_SQL.split(";\n"):
            if statement.strip():
                connection.execute(
                    text(statement),
                    {
                        "members": arguments.lots // arguments.lots_per_member,
                        "per_member": arguments.lots_per_member,
                    },
                )
    with engine.begin() as connection:
        connection.execute(text("ANALYZE"))
    build_seconds = time.perf_counter() - started

    async def expire():
        async_engine = create_async_engine(async_url(url))
        try:
            return await expire_due_lots(async_engine, arguments.batch_size)
        finally:
            await async_engine.dispose()

    started = time.perf_counter()
    report = asyncio.run(expire())
    expiry_seconds = time.perf_counter() - started
    second = asyncio.run(expire())
    with engine.connect() as connection:
        checks = run_checks(connection)
    print(
        json.dumps(
            {
                "lots": report.lots,
                "members": report.members,
                "points": report.points,
                "build_seconds": round(build_seconds, 1),
                "expiry_seconds": round(expiry_seconds, 1),
                "lots_per_second": round(report.lots / expiry_seconds),
                "second_run_lots": second.lots,
                "audit": {result.check.name: result.violations for result in checks},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
