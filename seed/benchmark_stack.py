"""What the API's stack costs before any ledger work, under the earn benchmark's load.

    .venv/bin/python -m seed.benchmark_stack --duration 15 --connections 32 --workers 1

The earn benchmark (seed.benchmark_earn) says how much CPU an earn costs; this one says how
much of it is the stack itself. Each endpoint below is measured in turn with wrk
(`POST`, a small JSON body, the same connections), and the CPU each process spent per request
is printed as JSON:

- `http`: uvicorn and Litestar decode the body into a msgspec Struct and answer. No database.
- `statement`: the same, plus one statement (`SELECT $1`) on a pooled asyncpg connection.
- `transaction`: the same, through SQLAlchemy's `engine.begin()` and `shared.database.driver`
  like `api.idempotency.run_once`, with three statements: BEGIN, three statements, COMMIT,
  the five round trips of an earn, each doing nothing.

Subtracting the `transaction` figures from the earn benchmark's leaves what the ledger work
itself costs, in the API and in PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from contextlib import asynccontextmanager

import asyncpg
import msgspec
from litestar import Litestar, Request, get, post
from litestar.params import JSONBody
from sqlalchemy.ext.asyncio import create_async_engine

from seed.benchmark_earn import (
    bench_database,
    measured_load,
    require_wrk,
    run_wrk_script,
    server_env,
    uvicorn_server,
)
from shared.database.bootstrap import async_url
from shared.database.driver import driver

ENDPOINTS = ("http", "statement", "transaction")
WRK_SCRIPT = r"""
init = function(args) end
request = function()
  return wrk.format("POST", nil, nil, '{"amountMinor":' .. math.random(100, 20000) .. '}')
end
"""
_DATABASE_URL_VARIABLE = "COALITION_STACK_BENCH_URL"


class Purchase(msgspec.Struct, rename="camel"):
    amount_minor: int


@post("/http")
async def http_only(data: JSONBody[Purchase]) -> dict[str, int]:
    return {"amountMinor": data.amount_minor}


@post("/statement")
async def one_statement(request: Request, data: JSONBody[Purchase]) -> dict[str, int]:
    async with request.app.state.pool.acquire() as connection:
        value = await connection.fetchval("SELECT $1::bigint", data.amount_minor)
    return {"amountMinor": value}


@post("/transaction")
async def transaction_shape(request: Request, data: JSONBody[Purchase]) -> dict[str, int]:
    async with request.app.state.engine.begin() as transaction:
        for _ in range(3):
            value = await (await driver(transaction)).fetchval(
                "SELECT $1::bigint", data.amount_minor
            )
    return {"amountMinor": value}


@get("/ready")
async def ready() -> dict[str, str]:
    return {"status": "ready"}


@asynccontextmanager
async def _connections(app: Litestar):
    url = os.environ[_DATABASE_URL_VARIABLE]
    size = int(os.environ.get("COALITION_DB_POOL_SIZE", "16"))
    app.state.pool = await asyncpg.create_pool(url, min_size=size, max_size=size)
    app.state.engine = create_async_engine(
        async_url(url), pool_size=size, max_overflow=size, pool_recycle=1800
    )
    try:
        yield
    finally:
        await app.state.engine.dispose()
        await app.state.pool.close()


app = Litestar(
    [http_only, one_statement, transaction_shape, ready], lifespan=[_connections], debug=False
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    arguments = parser.parse_args()
    require_wrk()
    _, url = bench_database()
    libpq_url = url.set(drivername="postgresql").render_as_string(hide_password=False)
    env = server_env(
        arguments.connections, arguments.workers, **{_DATABASE_URL_VARIABLE: libpq_url}
    )
    results = {}
    with uvicorn_server(["seed.benchmark_stack:app"], arguments.workers, env, "/ready") as (
        base_url,
        api,
    ):
        for endpoint in ENDPOINTS:
            run_wrk_script(f"{base_url}/{endpoint}", WRK_SCRIPT, arguments.connections, 3)
            result = measured_load(
                api,
                lambda endpoint=endpoint: run_wrk_script(
                    f"{base_url}/{endpoint}", WRK_SCRIPT, arguments.connections, arguments.duration
                ),
            )
            results[endpoint] = {key: value for key, value in result.items() if key != "raw"}
    print(
        json.dumps(
            {
                "machine": {"cores": os.cpu_count()},
                "endpoints": results,
                "command": " ".join(sys.argv),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
