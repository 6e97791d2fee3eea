"""Bulk mode: build a whole network with its history straight into the database.

The members are cut into shards of SHARD_MEMBERS; each shard has its own random streams
(derived from the run's seed and the shard number), so a shard's rows do not depend on
which process builds it or when: the same seed gives the same data with any number of
workers. Worker processes draw their shard's members and purchases, replay the ledger
(seed/replay.py) and COPY the rows in one transaction per shard.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import timedelta

import psycopg
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from seed.behaviour import draw_members, draw_purchases
from seed.config import SeedConfig
from seed.loading import BULK_TABLES, copy_rows, rebuild, set_aside
from seed.network import DAY, Network, build_network, moment
from seed.replay import Rows, ShardReplay
from shared.program import ProgramRules

FLUSH_ROWS = 200_000


@dataclass(slots=True)
class ShardReport:
    shard: int
    members: int
    purchases: int
    campaign_extra_visits: dict[int, int]
    counters: dict
    rows: dict[str, int]
    member_truth: list[tuple]
    arms: dict[str, dict[str, int]]


@dataclass(slots=True)
class SeedReport:
    network: Network
    seconds: float
    shards: list[ShardReport] = field(default_factory=list)
    rebuild_seconds: float = 0.0  # primary keys, indexes and foreign keys after the COPY

    def total(self, name: str) -> int:
        return sum(report.rows.get(name, 0) for report in self.shards)


def shard_plan(members: int, shard_members: int) -> list[tuple[int, int, int]]:
    """(shard, first member index, member count) for every shard."""
    return [
        (shard, first, min(shard_members, members - first))
        for shard, first in enumerate(range(0, members, shard_members))
    ]


def build_shard(network: Network, shard: int, first: int, count: int, sink: Sink) -> ShardReport:
    members = draw_members(network, shard, first, count)
    purchases = draw_purchases(network, shard, members)
    replay = ShardReplay(network, members, purchases, shard)
    for index in range(count - 1, -1, -1):  # newest first: referral credits flow backwards
        replay.replay(index)
        if replay.rows.size() >= FLUSH_ROWS:
            sink.write(replay.rows)
    sink.write(replay.rows)
    extra = defaultdict(int)
    for campaign_index in purchases.campaign_extra[purchases.campaign_extra >= 0]:
        extra[int(campaign_index)] += 1
    arms: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for assigned in members.arms:
        for campaign_index, arm in assigned.items():
            arms[network.campaigns[campaign_index].key][arm] += 1
    return ShardReport(
        shard=shard,
        members=count,
        purchases=len(purchases.member),
        campaign_extra_visits=dict(extra),
        counters={
            "transactions": dict(replay.counters.by_kind),
            "pointsIssued": replay.counters.points_issued,
            "pointsRedeemed": replay.counters.points_redeemed,
            "pointsExpired": replay.counters.points_expired,
            "holds": dict(replay.counters.holds),
            "campaignPoints": dict(replay.counters.campaign_points),
            "referrals": replay.counters.referrals,
        },
        rows=sink.counts,
        member_truth=[
            (
                str(members.member_ids[i]),
                round(float(members.rate_per_day[i]) * 7, 6),
                round(float(members.dropout[i]), 6),
                bool(members.alive_at_end[i]),
                bool(members.churned_by_spike[i]),
            )
            for i in range(count)
        ],
        arms={key: dict(value) for key, value in arms.items()},
    )


class Sink:
    """Where a shard's rows go: COPY on the shard's own connection (or a list in tests)."""

    def __init__(self, connection: psycopg.Connection | None) -> None:
        self.connection = connection
        self.counts: dict[str, int] = defaultdict(int)
        self.kept: dict[str, list] = defaultdict(list)

    def write(self, rows: Rows) -> None:
        for table in BULK_TABLES:
            batch = getattr(rows, table)
            if not batch:
                continue
            self.counts[table] += len(batch)
            if self.connection is None:
                self.kept[table].extend(batch)
            else:
                copy_rows(self.connection, table, batch)
        rows.clear()


def _worker(arguments) -> ShardReport:
    config, rules_json, card_prefix, conninfo, shard, first, count = arguments
    network = build_network(config, ProgramRules.model_validate_json(rules_json), card_prefix)
    with psycopg.connect(conninfo) as connection:
        connection.execute("SET synchronous_commit = off")
        report = build_shard(network, shard, first, count, Sink(connection))
        connection.commit()
    return report


def insert_network(connection: psycopg.Connection, network: Network) -> None:
    """Merchants, their stores and the campaigns: a few rows, plain INSERTs."""
    rules, calendar = network.rules, network.calendar
    joined = calendar.start - timedelta(days=60)
    for merchant in network.merchants:
        connection.execute(
            "INSERT INTO merchants (merchant_id, name, industry, status, currency, earn_rate,"
            " issuance_price, redemption_rate, pending_days, created_at, updated_at)"
            " VALUES (%s, %s, %s, 'active', %s, %s, %s, %s, %s, %s, %s)",
            (
                merchant.merchant_id, merchant.name, merchant.industry.name, rules.currency,
                merchant.earn_rate, merchant.issuance_price, merchant.redemption_rate,
                merchant.pending_days, joined, joined,
            ),
        )  # fmt: skip
        for number, (store_id, city) in enumerate(
            zip(merchant.store_ids, merchant.store_cities, strict=True), start=1
        ):
            connection.execute(
                "INSERT INTO stores (store_id, merchant_id, code, name, city, country, timezone,"
                " created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    store_id, merchant.merchant_id, f"S{number:03d}", f"{merchant.name} {city}",
                    city, network.region, network.time_zone, joined, joined,
                ),
            )  # fmt: skip
    for campaign in network.campaigns:
        status = "ended" if campaign.end_s <= calendar.end_s else "running"
        created = moment(campaign.start_s - 14 * DAY)
        connection.execute(
            "INSERT INTO campaigns (campaign_id, name, owner_merchant_id, kind, status,"
            " starts_at, ends_at, terms, merchant_ids, holdout_bps, salt, audience, launched_at,"
            " created_at, updated_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                campaign.campaign_id, campaign.name,
                campaign.owner.merchant_id if campaign.owner else None, campaign.kind, status,
                moment(campaign.start_s), moment(campaign.end_s), json.dumps(campaign.terms),
                [network.merchants[i].merchant_id for i in campaign.merchants],
                campaign.holdout_bps, campaign.salt, "enrolled_before_start",
                # The bulk rows include the launch's assignments.
                moment(campaign.start_s) if campaign.start_s <= calendar.end_s else None,
                created, created,
            ),
        )  # fmt: skip


def run(
    config: SeedConfig,
    rules: ProgramRules,
    card_prefix: str,
    conninfo: str,
    *,
    show_progress: bool = True,
) -> SeedReport:
    """Seed an empty database (tables migrated, no members) and return what was built."""
    started = time.perf_counter()
    network = build_network(config, rules, card_prefix)
    plan = shard_plan(config.members, config.shard_members)
    with psycopg.connect(conninfo) as connection:
        if connection.execute("SELECT count(*) FROM merchants").fetchone()[0]:
            raise RuntimeError("The database already has a network; seed with --reset.")
        insert_network(connection, network)
        kept = set_aside(connection, BULK_TABLES)
        connection.commit()
    report = SeedReport(network=network, seconds=0.0)
    try:
        workers = config.workers or os.cpu_count() or 1
        workers = max(1, min(workers, len(plan)))
        arguments = [
            (config, rules.model_dump_json(), card_prefix, conninfo, shard, first, count)
            for shard, first, count in plan
        ]
        with _progress(show_progress) as progress:
            task = progress.add_task("members", total=config.members)
            if workers == 1:
                for item in arguments:
                    report.shards.append(_worker(item))
                    progress.advance(task, item[-1])
            else:
                context = multiprocessing.get_context("spawn")
                with ProcessPoolExecutor(workers, mp_context=context) as pool:
                    futures = [pool.submit(_worker, item) for item in arguments]
                    for future in as_completed(futures):
                        shard_report = future.result()
                        report.shards.append(shard_report)
                        progress.advance(task, shard_report.members)
    finally:
        rebuilding = time.perf_counter()
        with psycopg.connect(conninfo, autocommit=True) as connection:
            rebuild(connection, kept)
            for table in BULK_TABLES:
                connection.execute(f"ANALYZE {table}")
        report.rebuild_seconds = time.perf_counter() - rebuilding
    report.shards.sort(key=lambda shard_report: shard_report.shard)
    report.seconds = time.perf_counter() - started
    return report


def _progress(show: bool) -> Progress:
    return Progress(
        TextColumn("[bold]seeding[/bold] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not show,
        transient=False,
    )
